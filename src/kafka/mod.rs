//! Kafka: the consumer of purchase events, the producer of reward events and
//! dead letters, and the offsets that say how far the scorer has come.
//!
//! Delivery is at least once with effectively-once effects: an offset is
//! stored only after its event's state change is in the store and its
//! reward (or dead letter) is acknowledged by the broker; librdkafka commits
//! the stored offsets in the background (`enable.auto.commit=true`,
//! `enable.auto.offset.store=false`), on partition revoke and on shutdown.
//! A redelivered event finds its record in the store and re-emits the same
//! reward event (same `reward_id`), so consumers deduplicate by it.

pub mod offsets;
pub mod output;

use std::sync::Arc;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;

use crate::admin::Readiness;
use crate::config;
use crate::telemetry::metric;

/// Settings the scorer owns: the at-least-once recipe and the producer's
/// guarantees. The configuration's pass-through properties cannot change
/// them (the configuration rejects them), apart from those listed in
/// [`CONSUMER_DEFAULTS`] and [`PRODUCER_DEFAULTS`].
const CONSUMER_FIXED: &[(&str, &str)] =
    &[("enable.auto.commit", "true"), ("enable.auto.offset.store", "false"), ("enable.partition.eof", "false")];

/// Consumer defaults that `kafka.properties` may override.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // Members keep their partitions across rebalances: a rebalance revokes
    // only the partitions that move, so the others keep flowing.
    ("partition.assignment.strategy", "cooperative-sticky"),
    // A new group starts at the beginning of the topic: nothing is skipped.
    ("auto.offset.reset", "earliest"),
    ("auto.commit.interval.ms", "1000"),
    // Statistics every 5 s: the consumer lag per partition, for the metrics.
    ("statistics.interval.ms", "5000"),
];

/// Producer guarantees: no duplicate or reordered writes from retries, and
/// an acknowledgement only once every in-sync replica has the record.
const PRODUCER_FIXED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// Producer defaults that `kafka.properties` may override.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "5"), ("compression.type", "zstd")];

/// The client configuration of the consumer.
pub fn consumer_config(kafka: &config::Kafka) -> ClientConfig {
    let mut client = base(kafka, CONSUMER_DEFAULTS);
    client.set("group.id", &kafka.group_id);
    for (key, value) in CONSUMER_FIXED {
        client.set(*key, *value);
    }
    client
}

/// The client configuration of the producer.
pub fn producer_config(kafka: &config::Kafka) -> ClientConfig {
    let mut client = base(kafka, PRODUCER_DEFAULTS);
    for (key, value) in PRODUCER_FIXED {
        client.set(*key, *value);
    }
    // Rewards are produced as large as the largest input may make them.
    client.set("message.max.bytes", (kafka.max_message_bytes.max(1 << 20) + 4096).to_string());
    client
}

/// Brokers, then defaults, then the configuration's properties.
fn base(kafka: &config::Kafka, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", kafka.brokers.join(","));
    for (key, value) in defaults {
        client.set(*key, *value);
    }
    for (key, value) in kafka.properties.expose() {
        client.set(key, value);
    }
    // librdkafka's own `debug` property asks for its debug lines: let them
    // through to the log filter (`LOYALTY_SCORER_LOG=info,librdkafka=debug`).
    let debug = kafka.properties.expose().any(|(key, _)| key == "debug");
    client.set_log_level(if debug { RDKafkaLogLevel::Debug } else { RDKafkaLogLevel::Warning });
    client
}

/// The consumer's callbacks: rebalances (commit what is stored before
/// partitions leave; readiness and metrics) and librdkafka's logs.
#[derive(Debug)]
pub struct ScorerContext {
    readiness: Arc<Readiness>,
}

impl ScorerContext {
    pub fn new(readiness: Arc<Readiness>) -> Self {
        Self { readiness }
    }
}

impl ClientContext for ScorerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
    }

    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1: unknown (not assigned, or no position yet); the
                // internal partition -1 is librdkafka's, not the topic's.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    metric::CONSUMER_LAG_MESSAGES,
                    metric::label::TOPIC => topic.clone(),
                    metric::label::PARTITION => partition.to_string()
                )
                .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for ScorerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The callback runs inside the consumer's poll. What is finished is
        // stored: commit it now, so the next owner starts after it. Batches
        // of these partitions still waiting for acknowledgements store
        // nothing once the partitions are gone; their events go to the next
        // owner again, which recognises them as repeats.
        if let Rebalance::Revoke(partitions) = rebalance {
            // The next owner reports the lag of these partitions from now on;
            // this member's last figure would otherwise stay exported.
            for p in partitions.elements() {
                metrics::gauge!(
                    metric::CONSUMER_LAG_MESSAGES,
                    metric::label::TOPIC => p.topic().to_owned(),
                    metric::label::PARTITION => p.partition().to_string()
                )
                .set(0.0);
            }
            if consumer.assignment_lost() {
                // The group has moved on without this member (its session
                // expired): a commit would be refused, and the next owners
                // start from the last commit, redelivering what came after.
                tracing::warn!(
                    partitions = partitions.count(),
                    "partition assignment lost; the events after the last commit will be redelivered to their next owner"
                );
            } else {
                tracing::info!(partitions = partitions.count(), "partitions revoked; committing stored offsets");
                commit_sync(consumer);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        metrics::counter!(metric::REBALANCES_TOTAL).increment(1);
        // A member of the group is ready even with no partitions (a group
        // may have more members than partitions, and a rolling update must
        // not wait for one); a member whose assignment was lost is out of
        // the group until its next assignment.
        let member = match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                true
            }
            Rebalance::Revoke(_) => !consumer.assignment_lost(),
            Rebalance::Error(error) => {
                tracing::warn!(%error, "rebalance failed");
                false
            }
        };
        self.readiness.set_assigned(member);
    }
}

/// Sends `record`, waiting while librdkafka's local queue is full; any
/// other refusal is returned.
pub async fn send<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Commits the stored offsets and waits for the broker's answer; nothing
/// stored yet is not an error.
pub fn commit_sync<C: Consumer<X>, X: ConsumerContext>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => {
            tracing::warn!(%error, "committing offsets failed; the events after the last commit will be redelivered and recognised as repeats")
        }
    }
}

/// librdkafka's log lines, through `tracing`.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}
