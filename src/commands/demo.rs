//! `loyalty-scorer demo`: the whole pipeline with nothing installed.
//!
//! librdkafka's in-process mock cluster is the broker, the embedded store
//! holds member state, `config/rules/acme.toml` (built in) is the program,
//! and a generated stream (members with Zipf-like popularity, baskets,
//! refunds, redemptions, redeliveries and a few invalid lines) is the
//! input. The daemon of `run` scores it; a reader of the reward and
//! dead-letter topics measures end-to-end latency and what was awarded.
//!
//! The mock broker keeps about 5 MiB per partition (older records are
//! dropped), so the demo spreads its topics over enough partitions, and
//! reads with `fetch.wait.max.ms=10` (the mock does not answer a waiting
//! fetch early when data arrives).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::admin::AdminServer;
use crate::config::Config;
use crate::daemon::{self, Controls};
use crate::generate;
use crate::rules::{ProgramSet, load};
use crate::state::memory::MemoryStore;
use crate::telemetry::{metric, prometheus};

/// The built-in program.
const RULES: &str = include_str!("../../config/rules/acme.toml");
const INPUT: &str = "purchases";
const REWARDS: &str = "loyalty-rewards";
const DEAD_LETTERS: &str = "loyalty-dead-letters";
/// Bytes per partition the demo plans for, under the mock's 5 MiB.
const PARTITION_BUDGET: u64 = 3 << 20;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Events to generate and score.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Distinct members.
    #[arg(long, default_value_t = 2_000)]
    pub members: u32,
    /// Events per second to offer (0: as fast as the producer goes).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed of the generated stream.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where `/metrics` and the health endpoints are served while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub admin: SocketAddr,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(demo(args))
}

/// What the reader of the output topics saw.
#[derive(Debug, Default)]
struct Seen {
    rewards: u64,
    /// End-to-end latency of each reward, in microseconds: read minus sent.
    latencies_us: Vec<u64>,
    points: BTreeMap<String, i64>,
    dead_letters: BTreeMap<String, u64>,
    reward_ids: std::collections::HashSet<String>,
}

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let handle = prometheus::install_recorder().context("installing the metrics recorder")?;
    metric::describe();
    let controls = Controls::default();
    let readiness = controls.readiness.clone();
    let token = controls.shutdown.clone();
    let admin = match AdminServer::bind(args.admin).await {
        Ok(admin) => admin,
        // Another process has the port: serve on any free one instead.
        Err(_) => AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
    };
    let metrics_at = admin.local_addr();
    let admin_task = tokio::spawn(admin.serve(handle, readiness.clone(), token.clone()));

    let mut stream = Vec::new();
    let options = generate::Options {
        events: args.events,
        members: args.members.max(1),
        zipf: 1.1,
        seed: args.seed,
        interval_ms: 2_600,
        currency: "EUR".into(),
        output: None,
    };
    generate::write_stream(&options, &mut stream).context("generating the stream")?;
    let lines: Vec<&[u8]> = stream.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let partitions = i32::try_from((stream.len() as u64 * 2).div_ceil(PARTITION_BUDGET).max(4)).unwrap_or(64);

    let cluster = MockCluster::new(1).context("starting the in-process Kafka broker")?;
    for topic in [INPUT, REWARDS, DEAD_LETTERS] {
        cluster.create_topic(topic, partitions, 1).with_context(|| format!("creating topic {topic}"))?;
    }
    let brokers = cluster.bootstrap_servers();
    println!("loyalty-scorer demo: {} events, {} members, program acme (built in)", lines.len(), options.members);
    println!("  broker: librdkafka's in-process mock cluster at {brokers} ({partitions} partitions a topic)");
    println!("  state: embedded store; metrics: http://{metrics_at}/metrics");

    let config = Config::load_str(
        "demo.toml",
        &format!(
            r#"
[kafka]
brokers = ["{brokers}"]
group_id = "loyalty-scorer-demo"
input_topic = "{INPUT}"
rewards_topic = "{REWARDS}"
dead_letter_topic = "{DEAD_LETTERS}"
[kafka.properties]
"fetch.wait.max.ms" = "10"
[redis]
url = "redis://127.0.0.1:6379/"
[programs]
rules = ["config/rules/acme.toml"]
[admin]
listen = "{metrics_at}"
"#
        ),
        std::iter::empty::<(String, String)>(),
        &[],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let program = load::load_str("acme.toml", RULES).map_err(|d| anyhow::anyhow!("built-in rules: {d:?}"))?;
    let programs = ProgramSet::new(vec![Arc::new(program)]).context("the built-in program")?;

    // The reader starts first, so that it sees every output.
    let sent: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
    let reader_stop = CancellationToken::new();
    let reader =
        tokio::spawn(read_outputs(brokers.clone(), partitions, sent.clone(), seen.clone(), reader_stop.clone()));

    let finished = &controls.finished;
    let total = lines.len() as u64;
    // One lane: the embedded store answers at once, there is no round trip to overlap.
    let daemon = daemon::run(&config, programs, vec![MemoryStore::new()], &controls);
    tokio::pin!(daemon);
    // The stream starts once the scorer has joined its group and holds its
    // partitions (the mock broker delays a new group's first assignment
    // by 3 s): the figures are the scorer's, not the group join's.
    let joined = async {
        while readiness.check().is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        result = &mut daemon => {
            result?;
            anyhow::bail!("the scorer stopped before it was assigned its partitions");
        }
        () = joined => {}
    }
    let started = Instant::now();
    let producer = tokio::spawn(produce(brokers.clone(), stream.clone(), args.rate, sent.clone()));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last = (Instant::now(), 0u64);
    let summary = loop {
        tokio::select! {
            result = &mut daemon => break result?,
            _ = ticker.tick() => {
                let done = finished.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, done);
                println!("  {done:>9} / {total} events scored ({rate:>8.0} events/s)");
                if done >= total {
                    token.cancel();
                }
            }
        }
    };
    let elapsed = started.elapsed();
    producer.await.context("the demo's producer")??;
    // Let the reader catch up with what was produced.
    let expected = summary.rewards + summary.dead_letters;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let got = seen.lock().map(|s| s.rewards + s.dead_letters.values().sum::<u64>()).unwrap_or(0);
        if got >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader_stop.cancel();
    reader.await.context("the demo's reader")??;
    token.cancel();
    let _ = admin_task.await;

    let seen = seen.lock().map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    print_summary(&summary, &seen, elapsed);
    Ok(ExitCode::SUCCESS)
}

/// Produces the stream to the input topic, keyed by member, at `rate`
/// events per second (0: unpaced), noting when each event id was sent.
async fn produce(
    brokers: String,
    stream: Vec<u8>,
    rate: u64,
    sent: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "1")
        .create()
        .context("demo producer")?;
    let started = Instant::now();
    let mut deliveries = Vec::new();
    for (n, line) in stream.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        if rate > 0 {
            let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let key = field(line, b"\"member_id\":\"");
        if let (Some(id), Ok(mut sent)) = (field(line, b"\"event_id\":\""), sent.lock()) {
            sent.entry(String::from_utf8_lossy(id).into_owned()).or_insert_with(Instant::now);
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(INPUT).payload(line);
        if let Some(key) = key {
            record = record.key(key);
        }
        deliveries.push(crate::kafka::send(&producer, record).await.context("producing the demo stream")?);
    }
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => anyhow::bail!("producing the demo stream: {error}"),
            Err(_) => anyhow::bail!("producing the demo stream: delivery cancelled"),
        }
    }
    producer.flush(Duration::from_secs(5)).context("flushing the demo producer")?;
    Ok(())
}

/// Reads the reward and dead-letter topics from the start until stopped.
async fn read_outputs(
    brokers: String,
    partitions: i32,
    sent: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    seen: Arc<std::sync::Mutex<Seen>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "loyalty-scorer-demo-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("demo reader")?;
    let mut assignment = TopicPartitionList::new();
    for topic in [REWARDS, DEAD_LETTERS] {
        for p in 0..partitions {
            assignment.add_partition_offset(topic, p, Offset::Beginning).context("demo reader assignment")?;
        }
    }
    consumer.assign(&assignment).context("demo reader assignment")?;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = consumer.recv() => message,
        };
        let Ok(message) = message else { continue };
        let now = Instant::now();
        let Ok(mut seen) = seen.lock() else { anyhow::bail!("demo state poisoned") };
        if message.topic() == DEAD_LETTERS {
            let reason = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "reason").and_then(|h| h.value))
                .map_or_else(|| "?".to_owned(), |v| String::from_utf8_lossy(v).into_owned());
            *seen.dead_letters.entry(reason).or_default() += 1;
            continue;
        }
        seen.rewards += 1;
        let Some(payload) = message.payload() else { continue };
        let Ok(reward) = serde_json::from_slice::<serde_json::Value>(payload) else { continue };
        let id = reward["reward_id"].as_str().unwrap_or_default().to_owned();
        let event = reward["event_id"].as_str().unwrap_or_default();
        if let Some(at) = sent.lock().ok().and_then(|s| s.get(event).copied())
            && seen.reward_ids.insert(id)
        {
            seen.latencies_us.push(now.duration_since(at).as_micros() as u64);
            for line in reward["breakdown"].as_array().into_iter().flatten() {
                let rule = line["rule"].as_str().unwrap_or("?").to_owned();
                *seen.points.entry(rule).or_default() += line["points"].as_i64().unwrap_or(0);
            }
        }
    }
}

fn print_summary(summary: &daemon::Summary, seen: &Seen, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-3);
    println!();
    println!("scored {} events in {:.2} s: {:.0} events/s", summary.events, secs, summary.events as f64 / secs);
    println!(
        "  rewards produced {} ({} distinct reward ids read back; the rest re-emit the reward of a redelivered event), dead letters {}",
        summary.rewards,
        seen.reward_ids.len(),
        summary.dead_letters
    );
    let mut latencies = seen.latencies_us.clone();
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i.min(latencies.len() - 1)] as f64 / 1000.0
    };
    println!(
        "  end-to-end latency (produced -> reward read back): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    println!("  points by rule:");
    for (rule, points) in &seen.points {
        println!("    {rule:<24} {points:>12}");
    }
    println!("  dead letters by reason:");
    for (reason, n) in &seen.dead_letters {
        println!("    {reason:<24} {n:>12}");
    }
    println!(
        "  note: the broker is librdkafka's in-process mock, sharing this process and its cores;\n  \
         these figures show the pipeline working, not the scorer's speed against a real broker\n  \
         (see README, Performance)."
    );
}

/// The value of a JSON string field, found by its exact `"name":"` prefix.
fn field<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = line.windows(prefix.len()).position(|w| w == prefix)? + prefix.len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    Some(&line[start..start + len])
}
