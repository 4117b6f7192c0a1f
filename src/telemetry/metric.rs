//! Every metric the daemon exports: its name, kind, unit, help text and, for
//! histograms, its buckets. No metric name string appears outside this file.
//!
//! Names follow `loyalty_scorer_<what>_<unit>[_total]` in base units, and
//! labels come from the closed sets below (or from the rules file, for
//! `program` and `rule`), so the number of series is bounded by the
//! configuration and never by the input: no member id, event id or error text.

use metrics::Unit;

/// Events handled, by `outcome` ([`EventOutcome`]); dead letters also carry
/// `reason` ([`crate::decode::Reason::as_str`]).
pub const EVENTS_TOTAL: &str = "loyalty_scorer_events_total";
/// Points credited, by `program`, `rule` and `kind`. Counters cannot go down,
/// so credits and debits are two counters; their difference is the net.
pub const POINTS_AWARDED_TOTAL: &str = "loyalty_scorer_points_awarded_total";
/// Points debited (redeemed, refunded, expired, negative adjustments), as a
/// positive number, by `program`, `rule` and `kind`.
pub const POINTS_DEBITED_TOTAL: &str = "loyalty_scorer_points_debited_total";
/// Reward events produced and acknowledged by the broker, by `program`.
pub const REWARDS_TOTAL: &str = "loyalty_scorer_rewards_total";
/// Events per batch.
pub const BATCH_EVENTS: &str = "loyalty_scorer_batch_events";
/// Time to process one batch, from its first message to its last acknowledgement.
pub const BATCH_DURATION_SECONDS: &str = "loyalty_scorer_batch_duration_seconds";
/// Where a batch's time goes, by `stage` ([`BatchStage`]): each stage's
/// share of [`BATCH_DURATION_SECONDS`] and of the end-to-end latency.
pub const BATCH_STAGE_SECONDS: &str = "loyalty_scorer_batch_stage_seconds";
/// Now minus the message timestamp, when its outcome is acknowledged.
pub const END_TO_END_LATENCY_SECONDS: &str = "loyalty_scorer_end_to_end_latency_seconds";
/// One Redis round trip (a pipeline or a script call).
pub const REDIS_ROUND_TRIP_SECONDS: &str = "loyalty_scorer_redis_round_trip_seconds";
/// High watermark minus the consumer position, by `topic` and `partition`.
pub const CONSUMER_LAG_MESSAGES: &str = "loyalty_scorer_consumer_lag_messages";
/// Events received and not yet acknowledged.
pub const IN_FLIGHT_EVENTS: &str = "loyalty_scorer_in_flight_events";
/// Consumer group rebalances seen by this process.
pub const REBALANCES_TOTAL: &str = "loyalty_scorer_rebalances_total";
/// Retries after a transient failure, by `what` ([`RetryTarget`]).
pub const RETRIES_TOTAL: &str = "loyalty_scorer_retries_total";
/// Rules file reloads, by `result` ([`ReloadResult`]).
pub const RULES_RELOADS_TOTAL: &str = "loyalty_scorer_rules_reloads_total";
/// Always 1; `version` carries the crate version.
pub const BUILD_INFO: &str = "loyalty_scorer_build_info";
/// 1 when `/health/readyz` would answer 200, else 0; sampled at each scrape
/// ([`crate::admin`]), so it is exported only where `/metrics` is served.
pub const READY: &str = "loyalty_scorer_ready";

/// Label keys.
pub mod label {
    pub const OUTCOME: &str = "outcome";
    pub const REASON: &str = "reason";
    pub const PROGRAM: &str = "program";
    /// A breakdown line as the reward event names it: `base`, `tier:<name>`,
    /// a rule id, `expired`, `redeem`, `refund` or `adjust`.
    pub const RULE: &str = "rule";
    /// The event kind ([`crate::event::Kind::as_str`]).
    pub const KIND: &str = "kind";
    pub const TOPIC: &str = "topic";
    pub const PARTITION: &str = "partition";
    pub const WHAT: &str = "what";
    pub const RESULT: &str = "result";
    pub const VERSION: &str = "version";
    pub const STAGE: &str = "stage";
}

/// Values of the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventOutcome {
    Scored,
    /// A redeem the balance does not cover.
    Rejected,
    /// A repeated `event_id`: the stored outcome was re-emitted.
    Duplicate,
    /// A valid event without a member.
    Anonymous,
    DeadLettered,
}

impl EventOutcome {
    pub const ALL: [EventOutcome; 5] = [
        EventOutcome::Scored,
        EventOutcome::Rejected,
        EventOutcome::Duplicate,
        EventOutcome::Anonymous,
        EventOutcome::DeadLettered,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Scored => "scored",
            EventOutcome::Rejected => "rejected",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Anonymous => "anonymous",
            EventOutcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Values of the `what` label of [`RETRIES_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryTarget {
    Redis,
    Kafka,
}

impl RetryTarget {
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryTarget::Redis => "redis",
            RetryTarget::Kafka => "kafka",
        }
    }
}

/// Values of the `stage` label of [`BATCH_STAGE_SECONDS`], in the order a
/// batch goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchStage {
    /// From the batch's first message to the batch closing: full, or what
    /// has arrived taken (after `max_batch_wait`) and a lane free.
    Gather,
    /// Closed, waiting for a lane: one scoring the same partition (a batch
    /// closes only once some lane is free).
    Queue,
    /// Loading the members, evaluating, writing the members back: the
    /// lane's work, Redis round trips included.
    Score,
    /// Handing the outputs to the Kafka producer.
    Send,
    /// From sent to every output acknowledged by the broker (`linger.ms`
    /// and `acks` are in here), resends included.
    Acknowledge,
}

impl BatchStage {
    pub const ALL: [BatchStage; 5] =
        [BatchStage::Gather, BatchStage::Queue, BatchStage::Score, BatchStage::Send, BatchStage::Acknowledge];

    pub const fn as_str(self) -> &'static str {
        match self {
            BatchStage::Gather => "gather",
            BatchStage::Queue => "queue",
            BatchStage::Score => "score",
            BatchStage::Send => "send",
            BatchStage::Acknowledge => "acknowledge",
        }
    }

    /// Records `seconds` spent in this stage by one batch (or one job of a
    /// batch split across lanes).
    pub fn record(self, seconds: f64) {
        metrics::histogram!(BATCH_STAGE_SECONDS, label::STAGE => self.as_str()).record(seconds);
    }
}

/// Values of the `result` label of [`RULES_RELOADS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    Ok,
    Error,
}

impl ReloadResult {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// Upper bounds for durations of work done in this process or one hop away:
/// 100 µs (a local Redis answer) to 10 s (a batch stuck behind retries).
pub const DURATION_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds for end-to-end latency. It includes time spent waiting in
/// the topic, so it starts at 1 ms and goes on to 5 minutes to tell a lagging
/// consumer from a slow one.
pub const END_TO_END_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Upper bounds for events per batch.
pub const BATCH_EVENTS_BUCKETS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram { buckets: &'static [f64] },
}

use MetricKind::{Counter, Gauge, Histogram};

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub unit: Unit,
    pub help: &'static str,
}

const fn def(name: &'static str, kind: MetricKind, unit: Unit, help: &'static str) -> MetricDef {
    MetricDef { name, kind, unit, help }
}

/// The table [`describe`] registers and the recorder takes its buckets from.
pub const METRICS: &[MetricDef] = &[
    def(EVENTS_TOTAL, Counter, Unit::Count, "Events handled, by outcome; dead letters by reason."),
    def(POINTS_AWARDED_TOTAL, Counter, Unit::Count, "Points credited, by program, breakdown line and event kind."),
    def(POINTS_DEBITED_TOTAL, Counter, Unit::Count, "Points debited, by program, breakdown line and event kind."),
    def(REWARDS_TOTAL, Counter, Unit::Count, "Reward events produced and acknowledged, by program."),
    def(BATCH_EVENTS, Histogram { buckets: BATCH_EVENTS_BUCKETS }, Unit::Count, "Events per batch."),
    def(
        BATCH_DURATION_SECONDS,
        Histogram { buckets: DURATION_BUCKETS },
        Unit::Seconds,
        "Time to process one batch, up to its last acknowledgement.",
    ),
    def(
        BATCH_STAGE_SECONDS,
        Histogram { buckets: DURATION_BUCKETS },
        Unit::Seconds,
        "Time a batch spends in each stage: gather, queue, score, send, acknowledge.",
    ),
    def(
        END_TO_END_LATENCY_SECONDS,
        Histogram { buckets: END_TO_END_BUCKETS },
        Unit::Seconds,
        "Acknowledgement time minus the message timestamp.",
    ),
    def(REDIS_ROUND_TRIP_SECONDS, Histogram { buckets: DURATION_BUCKETS }, Unit::Seconds, "Redis round trips."),
    def(CONSUMER_LAG_MESSAGES, Gauge, Unit::Count, "High watermark minus consumer position, by topic and partition."),
    def(IN_FLIGHT_EVENTS, Gauge, Unit::Count, "Events received and not yet acknowledged."),
    def(REBALANCES_TOTAL, Counter, Unit::Count, "Consumer group rebalances."),
    def(RETRIES_TOTAL, Counter, Unit::Count, "Retries after a transient failure, by what failed (redis, kafka)."),
    def(RULES_RELOADS_TOTAL, Counter, Unit::Count, "Rules file reloads, by result (ok, error)."),
    def(BUILD_INFO, Gauge, Unit::Count, "Always 1; the version label names the build."),
    def(READY, Gauge, Unit::Count, "1 when /health/readyz answers 200, else 0, as of this scrape."),
];

/// Registers every metric's help text and unit with the current recorder,
/// sets [`BUILD_INFO`] and creates the series known in advance. Call once
/// after installing the recorder.
pub fn describe() {
    for m in METRICS {
        match m.kind {
            Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Histogram { .. } => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
    metrics::gauge!(BUILD_INFO, label::VERSION => env!("CARGO_PKG_VERSION")).set(1.0);
    create_known_series();
}

/// Exports, at zero, every series whose labels do not depend on the input
/// or the rules. A series that appears only at its first increment hides
/// that increment from `rate()` and `increase()`, and a daemon that never
/// scores an event would have no events series for an alert to find at
/// zero. Series labelled by rule, reason or partition appear when they
/// first count; rewards by program, when the daemon starts with its rules.
fn create_known_series() {
    for outcome in EventOutcome::ALL {
        if outcome != EventOutcome::DeadLettered {
            metrics::counter!(EVENTS_TOTAL, label::OUTCOME => outcome.as_str()).increment(0);
        }
    }
    metrics::counter!(REBALANCES_TOTAL).increment(0);
    for what in [RetryTarget::Redis, RetryTarget::Kafka] {
        metrics::counter!(RETRIES_TOTAL, label::WHAT => what.as_str()).increment(0);
    }
    for result in [ReloadResult::Ok, ReloadResult::Error] {
        metrics::counter!(RULES_RELOADS_TOTAL, label::RESULT => result.as_str()).increment(0);
    }
    metrics::gauge!(IN_FLIGHT_EVENTS).set(0.0);
    for stage in BatchStage::ALL {
        let _ = metrics::histogram!(BATCH_STAGE_SECONDS, label::STAGE => stage.as_str());
    }
    for m in METRICS {
        // The stages' series are labelled, created above.
        if let Histogram { .. } = m.kind
            && m.name != BATCH_STAGE_SECONDS
        {
            // Registering is enough: an empty histogram exports zero counts.
            let _ = metrics::histogram!(m.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("loyalty_scorer_"), "{}", m.name);
            assert!(m.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", m.name);
            match m.kind {
                Counter => assert!(m.name.ends_with("_total"), "counter {} must end in _total", m.name),
                Gauge | Histogram { .. } => assert!(!m.name.ends_with("_total"), "{} is not a counter", m.name),
            }
            if m.unit == Unit::Seconds {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            if let Histogram { buckets } = m.kind {
                assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{} buckets must increase", m.name);
            }
        }
    }

    #[test]
    fn series_known_in_advance_are_exported_at_zero() {
        let recorder = crate::telemetry::build_recorder().expect("a recorder");
        metrics::with_local_recorder(&recorder, describe);
        let body = recorder.handle().render();
        for series in [
            "loyalty_scorer_events_total{outcome=\"scored\"} 0\n",
            "loyalty_scorer_rebalances_total 0\n",
            "loyalty_scorer_retries_total{what=\"redis\"} 0\n",
            "loyalty_scorer_retries_total{what=\"kafka\"} 0\n",
            "loyalty_scorer_rules_reloads_total{result=\"error\"} 0\n",
            "loyalty_scorer_in_flight_events 0\n",
            "loyalty_scorer_redis_round_trip_seconds_count 0\n",
            "loyalty_scorer_end_to_end_latency_seconds_bucket{le=\"+Inf\"} 0\n",
            "loyalty_scorer_batch_stage_seconds_count{stage=\"gather\"} 0\n",
            "loyalty_scorer_batch_stage_seconds_count{stage=\"acknowledge\"} 0\n",
        ] {
            assert!(body.contains(series), "{series:?} missing from:\n{body}");
        }
        // Only the stages: an unlabelled series would sit beside them at zero forever.
        assert!(!body.contains("loyalty_scorer_batch_stage_seconds_count 0"), "{body}");
        assert!(!body.contains("dead_lettered"), "dead letters appear with their reason, when they count:\n{body}");
    }

    #[test]
    fn duration_buckets_span_100us_to_10s() {
        assert_eq!(DURATION_BUCKETS.first(), Some(&0.0001));
        assert_eq!(DURATION_BUCKETS.last(), Some(&10.0));
    }

    #[test]
    fn every_constant_is_in_the_table() {
        let constants = [
            EVENTS_TOTAL,
            POINTS_AWARDED_TOTAL,
            POINTS_DEBITED_TOTAL,
            REWARDS_TOTAL,
            BATCH_EVENTS,
            BATCH_DURATION_SECONDS,
            BATCH_STAGE_SECONDS,
            END_TO_END_LATENCY_SECONDS,
            REDIS_ROUND_TRIP_SECONDS,
            CONSUMER_LAG_MESSAGES,
            IN_FLIGHT_EVENTS,
            REBALANCES_TOTAL,
            RETRIES_TOTAL,
            RULES_RELOADS_TOTAL,
            BUILD_INFO,
            READY,
        ];
        assert_eq!(constants.len(), METRICS.len());
        for name in constants {
            assert!(METRICS.iter().any(|m| m.name == name), "{name} missing from METRICS");
        }
    }
}
