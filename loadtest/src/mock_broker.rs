//! `loadtest mock-broker`: librdkafka's mock cluster as a broker other
//! processes reach on loopback, for runs that measure the daemon's memory
//! over time rather than throughput. It keeps a bounded tail of each
//! partition, so a long soak does not slow it down as the log grows, as
//! an in-memory broker that keeps everything does.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Brokers of the cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Stop after this many seconds (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
}

pub fn main(options: &Options) -> anyhow::Result<()> {
    let cluster: MockCluster<'static, DefaultProducerContext> =
        MockCluster::new(options.brokers).context("starting the mock cluster")?;
    // The address on standard output alone, for scripts: `--brokers $(...)`.
    println!("{}", cluster.bootstrap_servers());
    let until = (options.seconds > 0).then(|| std::time::Instant::now() + Duration::from_secs(options.seconds));
    while until.is_none_or(|t| std::time::Instant::now() < t) {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
