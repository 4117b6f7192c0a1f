//! The Prometheus recorder, without the exporter's own HTTP listener:
//! [`crate::admin`] serves `/metrics` from the [`PrometheusHandle`].

use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio_util::sync::CancellationToken;

use super::metric::{self, METRICS, MetricKind};

/// How often [`upkeep`] runs. Histogram samples wait in a buffer until
/// upkeep or a scrape folds them into buckets; a few seconds bounds that
/// buffer at the event rate times this interval.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A builder with every histogram of [`METRICS`] given its buckets, so each
/// exports as a Prometheus histogram rather than a summary.
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for m in METRICS {
        if let MetricKind::Histogram { buckets } = m.kind {
            builder = builder.set_buckets_for_metric(Matcher::Full(m.name.to_owned()), buckets)?;
        }
    }
    Ok(builder)
}

/// Installs the process-wide recorder, registers the descriptions and
/// returns the handle that renders `/metrics`.
///
/// Fails if a recorder is already installed. The caller keeps [`upkeep`]
/// running ([`crate::admin::AdminServer::serve`] does).
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = builder()?.install_recorder()?;
    metric::describe();
    // Descriptions are published to the handle only by upkeep: without this,
    // scrapes before the first tick would miss their HELP lines.
    handle.run_upkeep();
    Ok(handle)
}

/// A recorder that is not installed, for tests and tools that scope it with
/// [`metrics::with_local_recorder`] (then call [`metric::describe`] inside).
pub fn build_recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(builder()?.build_recorder())
}

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] until `shutdown` is
/// cancelled.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
