//! The two ends of a mode, each on its own thread so that neither waits on
//! the other or on the system under test: the load producer, which offers
//! the stream at a rate and notes when each line was handed to its client,
//! and the output reader, which reads the output topics from the beginning
//! and notes when each line's output arrived.
//!
//! One clock serves both ([`Clock`]: microseconds since the mode's epoch on
//! this process's monotonic clock), so a latency is the reader's time minus
//! the producer's for the same line: from the moment the line was produced
//! (librdkafka's queue, the broker, the system under test, the broker again)
//! to the moment its output was read back. Each input record also carries
//! its wall-clock produce time as its Kafka timestamp (CreateTime).
//!
//! Before the stream, the load producer sends warm-up events through the
//! system under test and waits until the reader has their outputs: neither
//! a new client's start (metadata, a producer id; about 0.5 s here, seen
//! as a p99 of 0.4 s at 2,000 events/s before the warm-up) nor the
//! system's first connections are timed.
//!
//! Both stop when `stop` is set (the mode is over or the run interrupted);
//! the reader also stops once every expected output has arrived. They share
//! the [`Index`] of awaited outputs: the producer adds each line of a stream
//! generated as offered just before it sends it, and closes the index when
//! it is done; the reader finishes lines in it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::stream::{Index, OutputKind, Stream, json_string};

/// The index, whichever thread panicked holding it: the other still ends
/// cleanly and the panic is reported when that thread is joined.
pub fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Microseconds since the mode's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { epoch: Instant::now() }
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// When each line was handed to the producer: [`Clock`] time + 1; 0 while
/// not yet. Written by the load producer, read by the output reader.
#[derive(Debug)]
pub struct SentTimes(Vec<AtomicU64>);

impl SentTimes {
    pub fn new(lines: usize) -> SentTimes {
        SentTimes((0..lines).map(|_| AtomicU64::new(0)).collect())
    }

    fn set(&self, line: usize, at_us: u64) {
        self.0[line].store(at_us + 1, Ordering::Release);
    }

    fn get(&self, line: usize) -> Option<u64> {
        self.0.get(line)?.load(Ordering::Acquire).checked_sub(1)
    }
}

/// The load producer's client settings (not the system under test's):
/// little lingering, so that what is measured is the system's latency, and
/// record batches of at most 16 KiB (the Java client's default, what a fleet
/// of point-of-sale producers sends): librdkafka's own default of 1 MB would
/// lay a backlog out in long runs of one partition, which no real input
/// topic looks like.
pub fn load_producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "loadtest-producer")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("batch.size", "65536")
        .set("queue.buffering.max.messages", "1000000");
    config
}

/// The output reader's client settings: it assigns itself every partition
/// (no group), and asks the broker to answer a fetch within 10 ms.
pub fn reader_config(brokers: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "loadtest-reader")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    config
}

/// Counts the input records the broker did not acknowledge.
struct Deliveries {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the load producer did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Produced {
    pub sent: usize,
    /// Records the broker did not acknowledge: their outputs never come.
    pub failed: u64,
    pub first_us: u64,
    /// When the last line was handed to the client.
    pub last_us: u64,
    /// When the broker had acknowledged every line.
    pub acked_us: u64,
}

/// Where the offered lines come from.
#[derive(Debug)]
pub enum Lines {
    /// A stream held whole, its outputs awaited in the index already.
    Whole(Arc<Stream>),
    /// Chunks in order, as they are generated; each line is added to the
    /// index just before it is sent.
    Chunks(Receiver<Stream>),
}

impl Lines {
    /// The chunk after `current` (the whole stream first); `None` when there is none.
    fn next(&mut self, current: Option<&Arc<Stream>>) -> Option<Arc<Stream>> {
        match self {
            Lines::Whole(stream) => current.is_none().then(|| stream.clone()),
            Lines::Chunks(chunks) => chunks.recv().ok().map(Arc::new),
        }
    }
}

/// Closes the index when dropped: the reader then knows that no line is to
/// be added, however the producer ended.
struct CloseOnDrop<'a>(&'a Mutex<Index>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        lock(self.0).close();
    }
}

/// What the load producer offers.
#[derive(Debug)]
pub struct Offer {
    pub topic: String,
    /// The first `lines` lines of the stream.
    pub lines: usize,
    /// Lines per second; 0: as fast as the client takes them.
    pub rate: u64,
    /// (key, line) produced first; the stream waits until `warmed` counts
    /// all of their outputs, so that neither the load producer's start nor
    /// the system under test's is timed.
    pub warm_up: Vec<(String, String)>,
}

/// Produces the warm-up, waits for its outputs, then produces the offered
/// lines, keyed by their member, and waits for every acknowledgement.
#[expect(clippy::too_many_arguments, reason = "the producer's inputs, each shared with another thread")]
pub fn produce(
    brokers: &str,
    offer: &Offer,
    mut lines: Lines,
    index: &Mutex<Index>,
    sent: &SentTimes,
    clock: Clock,
    warmed: &AtomicUsize,
    stop: &AtomicBool,
) -> anyhow::Result<Produced> {
    let _close = CloseOnDrop(index);
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Deliveries> = load_producer_config(brokers)
        .create_with_context(Deliveries { failed: failed.clone() })
        .context("creating the load producer")?;
    let topic = offer.topic.as_str();
    for (key, line) in &offer.warm_up {
        let record = BaseRecord::<str, str>::to(topic).key(key.as_str()).payload(line.as_str());
        producer.send(record).map_err(|(e, _)| e).context("producing the warm-up")?;
    }
    producer.flush(Duration::from_secs(30)).context("producing the warm-up")?;
    while warmed.load(Ordering::Relaxed) < offer.warm_up.len() {
        if stop.load(Ordering::Relaxed) {
            return Ok(Produced::default());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let add_each_line = matches!(lines, Lines::Chunks(_));
    let mut chunk = lines.next(None);
    let (total, rate) = (offer.lines, offer.rate);
    let mut produced = Produced { first_us: clock.now_us(), ..Produced::default() };
    let started = Instant::now();
    let mut line = 0;
    'offer: while line < total && !stop.load(Ordering::Relaxed) {
        // Lines due by now: all of them when unpaced.
        let due =
            if rate == 0 { total } else { ((started.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(total) };
        if line >= due {
            let next = Duration::from_secs_f64(line as f64 / rate as f64);
            std::thread::sleep(next.saturating_sub(started.elapsed()).min(Duration::from_millis(5)));
            continue;
        }
        while line < due && !stop.load(Ordering::Relaxed) {
            let stream = match &chunk {
                Some(c) if line < c.first + c.len() => c,
                _ => {
                    chunk = lines.next(chunk.as_ref());
                    match &chunk {
                        Some(c) if line >= c.first && line < c.first + c.len() => c,
                        // The stream is shorter than the offer: it ends here.
                        _ => break 'offer,
                    }
                }
            };
            let i = line - stream.first;
            if add_each_line {
                lock(index).add(stream, i);
            }
            let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let mut record = BaseRecord::to(topic).payload(stream.line(i)).timestamp(wall_ms);
            if let Some(key) = stream.key(i) {
                record = record.key(key);
            }
            sent.set(line, clock.now_us());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((error, _)) => return Err(error).context("producing the stream"),
                }
            }
            line += 1;
        }
    }
    produced.sent = line;
    produced.last_us = clock.now_us();
    producer.flush(Duration::from_secs(60)).context("waiting for the stream's acknowledgements")?;
    produced.acked_us = clock.now_us();
    produced.failed = failed.load(Ordering::Relaxed);
    Ok(produced)
}

/// What the output reader saw.
#[derive(Debug)]
pub struct Read {
    /// End-to-end latency of each finished line, microseconds.
    pub latency: hdrhistogram::Histogram<u64>,
    /// When each finished line's output arrived ([`Clock`] time), in arrival order.
    pub finished_us: Vec<u64>,
    /// Outputs read that finished no line: repeats of an output already
    /// read (a redelivery), or records not from this stream.
    pub extra: u64,
    /// Outputs still awaited when the reader stopped.
    pub missing: usize,
    /// Outputs awaited in all: of every line offered, or produced when the
    /// offer was cut short.
    pub awaited: usize,
}

/// Reads `topics` (each with `partitions` partitions) from the beginning
/// until every output `index` awaits has arrived and no more will be added,
/// or `stop` is set. Counts the outputs of warm-up events in `warmed` and
/// nothing else of them.
#[expect(clippy::too_many_arguments, reason = "the reader's inputs, each shared with another thread")]
pub fn read(
    brokers: &str,
    group: &str,
    topics: &[(String, OutputKind)],
    partitions: i32,
    index: &Mutex<Index>,
    sent: &SentTimes,
    clock: Clock,
    stop: &AtomicBool,
    warmed: &AtomicUsize,
) -> anyhow::Result<Read> {
    let consumer: BaseConsumer = reader_config(brokers, group).create().context("creating the output reader")?;
    let mut assignment = TopicPartitionList::new();
    for (topic, _) in topics {
        for p in 0..partitions {
            assignment.add_partition_offset(topic, p, Offset::Beginning).context("assigning the outputs")?;
        }
    }
    consumer.assign(&assignment).context("assigning the outputs")?;
    let mut latency =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("creating the histogram")?;
    let mut finished_us = Vec::with_capacity(lock(index).expected);
    let mut extra = 0;
    let mut errors = 0u64;
    while !lock(index).done() && !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("  output reader: {error}");
                }
                continue;
            }
        };
        let now = clock.now_us();
        let kind = topics.iter().find(|(t, _)| t == message.topic()).map_or(OutputKind::Echo, |(_, k)| *k);
        let payload = message.payload().unwrap_or_default();
        if is_warm_up(payload) {
            warmed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some(line) = lock(index).finish(kind, payload) else {
            extra += 1;
            continue;
        };
        finished_us.push(now);
        if let Some(at) = sent.get(line as usize) {
            latency.saturating_record(now.saturating_sub(at).max(1));
        }
    }
    let index = lock(index);
    Ok(Read { latency, finished_us, extra, missing: index.expected, awaited: index.awaited })
}

/// The id prefix of warm-up events.
const WARM_UP: &str = "warmup-";

/// Events that pass through the system under test before the stream, so
/// that what is timed is not its first connections, producer id requests
/// and topic metadata. Purchases of their own members (one per partition
/// or so, by key), never members of the stream: (key, line).
pub fn warm_up_lines(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let member = format!("{WARM_UP}{i}");
            let line = format!(
                r#"{{"event_id":"{WARM_UP}{i}","member_id":"{member}","merchant_id":"acme","store_id":"S000","channel":"store","occurred_at":"2026-11-01T00:00:00Z","currency":"EUR","total":"1.00","items":[{{"sku":"WRM-00000","category":"grocery","quantity":1,"amount":"1.00"}}],"pos":{{"terminal":"T00","receipt":"R00000000"}}}}"#
            );
            (member, line)
        })
        .collect()
}

/// A warm-up event, or its reward or dead letter.
fn is_warm_up(payload: &[u8]) -> bool {
    json_string(payload, "event_id").is_some_and(|(s, _)| payload[s..].starts_with(WARM_UP.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_outputs_are_recognised() {
        let lines = warm_up_lines(3);
        assert!(lines.iter().all(|(_, line)| is_warm_up(line.as_bytes())));
        let reward = br#"{"reward_id":"r:warmup-2","event_id":"warmup-2","member_id":"warmup-2"}"#;
        assert!(is_warm_up(reward));
        assert!(!is_warm_up(br#"{"reward_id":"r:ev-000000001","event_id":"ev-000000001"}"#));
        assert!(!is_warm_up(br#"{"member_id":"M1","total":"3.00"}"#));
    }
}
