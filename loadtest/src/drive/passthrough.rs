//! The `passthrough` mode's system under test: a consumer -> producer loop
//! with the scorer's own Kafka clients and nothing else, in this process.
//!
//! Both clients are built by `loyalty_scorer::kafka::consumer_config` and
//! `producer_config` from the same `Config` the daemon modes load, with the
//! daemon's consumer context; the loop keeps the daemon's delivery contract
//! (an input offset is stored only once its output is acknowledged, and
//! offsets advance over contiguous runs) but does no decoding, no Redis and
//! no rules. Its rate is the ceiling the broker and the clients allow on
//! this machine: what the scorer would reach if scoring cost nothing.
//!
//! Unlike the daemon, it keeps up to `batching.max_in_flight_events`
//! outputs unacknowledged at once instead of a batch at a time.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use loyalty_scorer::admin::Readiness;
use loyalty_scorer::config::Config;
use loyalty_scorer::kafka::{self, ScorerContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running passthrough; stopped (offsets committed) by [`Passthrough::stop`].
#[derive(Debug)]
pub struct Passthrough {
    pub readiness: Arc<Readiness>,
    token: CancellationToken,
    task: JoinHandle<anyhow::Result<u64>>,
}

impl Passthrough {
    pub fn start(config: &Config) -> anyhow::Result<Passthrough> {
        let readiness = Arc::new(Readiness::new());
        // Ready means assigned: there is no store to wait for.
        readiness.set_redis_available(true);
        let consumer: StreamConsumer<ScorerContext> = kafka::consumer_config(&config.kafka)
            .create_with_context(ScorerContext::new(readiness.clone()))
            .context("creating the passthrough consumer")?;
        let producer: FutureProducer =
            kafka::producer_config(&config.kafka).create().context("creating the passthrough producer")?;
        consumer
            .subscribe(&[config.kafka.input_topic.as_str()])
            .with_context(|| format!("subscribing to {}", config.kafka.input_topic))?;
        let token = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::new(consumer),
            producer,
            config.kafka.input_topic.clone(),
            config.kafka.rewards_topic.clone(),
            config.batching.max_in_flight_events,
            token.clone(),
        ));
        Ok(Passthrough { readiness, token, task })
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops consuming, waits for what is in flight, commits; the number
    /// of records passed through.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.token.cancel();
        self.task.await.context("the passthrough task panicked")?
    }
}

/// One record sent: where it came from, and its acknowledgement.
type InFlight = (i32, i64, DeliveryFuture);

async fn run(
    consumer: Arc<StreamConsumer<ScorerContext>>,
    producer: FutureProducer,
    input: String,
    output: String,
    max_in_flight: usize,
    token: CancellationToken,
) -> anyhow::Result<u64> {
    // Sender: the consume loop; receiver: the acknowledger. Bounded by the
    // scorer's in-flight limit; closed when the consume loop stops.
    let (tx, rx) = mpsc::channel::<InFlight>(max_in_flight.max(1));
    let acknowledger = tokio::spawn(acknowledge(rx, consumer.clone(), producer.clone(), input.clone(), output.clone()));
    loop {
        let message = tokio::select! {
            biased;
            () = token.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => message,
                Err(error) => {
                    eprintln!("  passthrough consumer: {error}");
                    continue;
                }
            },
        };
        let mut record = FutureRecord::to(&output).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let delivery = kafka::send(&producer, record).await.context("passthrough produce")?;
        if tx.send((message.partition(), message.offset(), delivery)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let passed = acknowledger.await.context("the passthrough acknowledger panicked")??;
    kafka::commit_sync(consumer.as_ref());
    producer.flush(Duration::from_secs(10)).context("flushing the passthrough producer")?;
    Ok(passed)
}

/// Awaits acknowledgements in the order the records were sent, sends again
/// what was not acknowledged, and stores each partition's position once
/// everything before it is acknowledged.
async fn acknowledge(
    mut rx: mpsc::Receiver<InFlight>,
    consumer: Arc<StreamConsumer<ScorerContext>>,
    producer: FutureProducer,
    input: String,
    output: String,
) -> anyhow::Result<u64> {
    let mut positions: Vec<(i32, i64)> = Vec::new();
    let mut passed = 0u64;
    while let Some((partition, offset, mut delivery)) = rx.recv().await {
        let mut tries = 0;
        loop {
            match delivery.await {
                Ok(Ok(_)) => break,
                Ok(Err((error, message))) if tries < 5 => {
                    tries += 1;
                    eprintln!("  passthrough: a record was not acknowledged ({error}); sending it again");
                    delivery = resend(&producer, &output, &message).await?;
                }
                Ok(Err((error, _))) => return Err(error).context("passthrough produce, after 5 tries"),
                Err(_) => anyhow::bail!("the passthrough producer went away"),
            }
        }
        passed += 1;
        match positions.iter_mut().find(|(p, _)| *p == partition) {
            Some(entry) => entry.1 = offset + 1,
            None => positions.push((partition, offset + 1)),
        }
        // Store once caught up with what is in flight, as the daemon does once a batch.
        if rx.is_empty() {
            store(&consumer, &input, &mut positions);
        }
    }
    store(&consumer, &input, &mut positions);
    Ok(passed)
}

async fn resend(producer: &FutureProducer, output: &str, message: &OwnedMessage) -> anyhow::Result<DeliveryFuture> {
    let mut record = FutureRecord::to(output).payload(message.payload().unwrap_or_default());
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    kafka::send(producer, record).await.context("passthrough produce")
}

fn store(consumer: &StreamConsumer<ScorerContext>, topic: &str, positions: &mut Vec<(i32, i64)>) {
    if positions.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(positions.len());
    for &(partition, position) in positions.iter() {
        // A position only ever comes from a consumed offset: never negative.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(position));
    }
    // A partition revoked meanwhile: its next owner reads these again.
    let _ = consumer.store_offsets(&list);
    positions.clear();
}
