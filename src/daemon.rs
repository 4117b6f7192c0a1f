//! The daemon's data path: consume a batch of purchase events from Kafka,
//! score it against the shared store, produce its rewards and dead letters,
//! and only once they are acknowledged store its offsets.
//!
//! ```text
//! gather (max_batch_events or max_batch_wait_ms)
//!   -> BatchScorer::score_batch (decode, load, evaluate, write: batch.rs)
//!   -> send its rewards / dead letters        (the batch is now in flight)
//! ...while the next batches are gathered, scored and sent:
//!   -> its acknowledgements, oldest batch first; what failed is sent again
//!   -> store the offsets of the batch (committed by librdkafka)
//! ```
//!
//! Batches wait for their acknowledgements while the next ones are scored,
//! up to `max_in_flight_events` received and unfinished events (memory is
//! bounded by it). A batch owns copies of its outputs (reward bytes, dead
//! letters with their keys and sources), so its messages are released once
//! it is scored. It is finished in order: a partition's offsets only ever
//! advance over finished events. A store that is unavailable pauses the
//! assigned partitions and retries the same batch with backoff (the
//! consumer keeps polling, so the group keeps the scorer); a record that
//! fails is sent again, after the records of later batches already sent
//! (a reward may then follow a later reward of its member; `reward_id`
//! tells them apart). Nothing is skipped: an event whose output was not
//! acknowledged is not committed, and its redelivery re-emits the stored
//! outcome. A broken invariant (a corrupt store, a configuration the store
//! refuses) stops the daemon with an error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::batch::{BatchError, BatchScorer};
use crate::config::Config;
use crate::kafka::offsets::Offsets;
use crate::kafka::output::{OutputKind, Outputs, Source};
use crate::kafka::{self, ScorerContext};
use crate::rules::ProgramSet;
use crate::state::{BatchStore, Disposition};
use crate::telemetry::metric::{self, EventOutcome, ReloadResult, RetryTarget, label};

/// First and longest wait between two attempts of a failing batch.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a run did, for the closing log line and the demo's summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub batches: u64,
    pub events: u64,
    pub rewards: u64,
    pub dead_letters: u64,
    pub retries: u64,
}

/// How the rest of the process steers and watches a running daemon.
#[derive(Debug, Default)]
pub struct Controls {
    /// Flipped by the daemon: partitions assigned, store available, stopping.
    pub readiness: Arc<Readiness>,
    /// Cancelled to stop: the batches in flight are finished and committed.
    pub shutdown: CancellationToken,
    /// Set to reload the rules files before the next batch (SIGHUP).
    pub reload: AtomicBool,
    /// Events whose offsets were stored.
    pub finished: AtomicU64,
}

/// Runs the daemon until `controls.shutdown` is cancelled, then finishes the
/// batches in flight, commits and returns. `store` is the shared state store
/// (Redis in production; the embedded store for the demo and tests).
pub async fn run<S: BatchStore>(
    config: &Config,
    programs: ProgramSet,
    mut store: S,
    controls: &Controls,
) -> anyhow::Result<Summary> {
    let Controls { readiness, shutdown, reload, finished } = controls;
    let consumer: StreamConsumer<ScorerContext> = kafka::consumer_config(&config.kafka)
        .create_with_context(ScorerContext::new(readiness.clone()))
        .context("creating the Kafka consumer")?;
    let producer: FutureProducer =
        kafka::producer_config(&config.kafka).create().context("creating the Kafka producer")?;
    consumer
        .subscribe(&[config.kafka.input_topic.as_str()])
        .with_context(|| format!("subscribing to {}", config.kafka.input_topic))?;
    // From zero, so that `rate()` sees each program's first rewards.
    for program in programs.iter() {
        metrics::counter!(metric::REWARDS_TOTAL, metric::label::PROGRAM => program.id.clone()).increment(0);
    }
    let mut scorer = BatchScorer::new(programs, config.engine_settings(), config.kafka.max_message_bytes)
        .map_err(|why| anyhow::anyhow!(why))?;
    readiness.set_redis_available(true);

    let mut lane = Lane {
        consumer: &consumer,
        producer: &producer,
        config,
        input_topic: config.kafka.input_topic.as_str(),
        shutdown,
        offsets: Offsets::new(),
        summary: Summary::default(),
        finished,
        spare: Vec::new(),
    };
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let max_events = config.batching.max_batch_events.max(1);
    let max_in_flight = config.batching.max_in_flight_events.max(max_events);
    tracing::info!(topic = lane.input_topic, group = %config.kafka.group_id, "consuming");

    'run: loop {
        if reload.swap(false, Ordering::Relaxed) {
            reload_rules(config, &mut scorer);
        }
        // Room for a full batch: finish the oldest batches until there is.
        while lane.offsets.in_flight() + max_events > max_in_flight && !in_flight.is_empty() {
            if !lane.finish_front(&mut in_flight).await {
                break 'run;
            }
        }
        // Gather: wait for a first message (or the end), finishing batches
        // as their acknowledgements come meanwhile; then fill the batch until
        // it is full or its wait is over.
        let mut messages: Vec<BorrowedMessage<'_>> = Vec::with_capacity(max_events);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break 'run,
                () = acknowledged_front(&mut in_flight), if !in_flight.is_empty() => {
                    if !lane.finish_front(&mut in_flight).await {
                        break 'run;
                    }
                }
                received = consumer.recv() => match received {
                    Ok(message) => {
                        messages.push(message);
                        break;
                    }
                    Err(error) => tracing::warn!(%error, "kafka consumer error"),
                },
            }
        }
        let deadline = tokio::time::Instant::now() + config.batching.max_batch_wait;
        while messages.len() < max_events {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => messages.push(message),
                Ok(Err(error)) => tracing::warn!(%error, "kafka consumer error"),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        for m in &messages {
            lane.offsets.received(m.partition(), m.offset());
        }
        metrics::gauge!(metric::IN_FLIGHT_EVENTS).set(lane.offsets.in_flight() as f64);
        let batch: Vec<(u64, &[u8])> =
            messages.iter().enumerate().map(|(i, m)| (i as u64 + 1, m.payload().unwrap_or_default())).collect();

        // Score, retrying while the store is unavailable.
        let mut outputs = lane.spare.pop().unwrap_or_default();
        let mut backoff = BACKOFF_FIRST;
        loop {
            outputs.clear();
            match scorer.score_batch(&mut store, &batch, &mut outputs).await {
                Ok(()) => break,
                Err(BatchError::Store(error)) if error.disposition() == Disposition::Retry => {
                    lane.summary.retries += 1;
                    metrics::counter!(metric::RETRIES_TOTAL, label::WHAT => RetryTarget::Redis.as_str()).increment(1);
                    readiness.set_redis_available(false);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "state store unavailable; retrying the batch");
                    pause(&consumer, true);
                    if wait(&consumer, shutdown, backoff).await {
                        // Nothing of this batch is committed: it is redelivered.
                        break 'run;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(BatchError::Store(error)) => {
                    return Err(anyhow::Error::new(error).context("the state store failed"));
                }
                Err(error) => return Err(anyhow::Error::new(error).context("scoring a batch")),
            }
        }
        if backoff != BACKOFF_FIRST {
            readiness.set_redis_available(true);
            pause(&consumer, false);
            tracing::info!("state store available again");
        }

        // Send, and go on with the next batch while the broker acknowledges.
        let sources: Vec<Source<'_>> =
            messages.iter().map(|m| Source { partition: m.partition(), offset: m.offset(), key: m.key() }).collect();
        outputs.attach_sources(&sources);
        let mut flight = InFlight {
            messages: messages.iter().map(|m| (m.partition(), m.offset(), m.timestamp().to_millis())).collect(),
            outputs,
            deliveries: Vec::new(),
            failed: Vec::new(),
            started,
        };
        let records = 0..flight.outputs.records.len();
        lane.send(&mut flight, records).await;
        in_flight.push_back(flight);
    }

    // Stopping: what is in flight finishes, unless its records cannot be
    // delivered before the shutdown timeout (then it is redelivered).
    while !in_flight.is_empty() {
        if !lane.finish_front(&mut in_flight).await {
            break;
        }
    }
    let summary = lane.summary;
    readiness.begin_shutdown();
    tracing::info!(events = summary.events, batches = summary.batches, "stopping: committing offsets");
    kafka::commit_sync(&consumer);
    if let Err(error) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "flushing the producer");
    }
    Ok(summary)
}

/// A batch whose records are sent and not all acknowledged yet. It owns
/// what it needs to send them again and to store its offsets, so the next
/// batch is gathered and scored meanwhile.
struct InFlight {
    outputs: Outputs,
    /// Each message's partition, offset and timestamp (milliseconds).
    messages: Vec<(i32, i64, Option<i64>)>,
    /// Records sent and not yet answered, by index in `outputs.records`.
    deliveries: Vec<(usize, DeliveryFuture)>,
    /// Records refused or not acknowledged: to send again.
    failed: Vec<usize>,
    started: Instant,
}

impl InFlight {
    /// Waits for every answer. Cancel-safe (it runs in `select!`): an
    /// answer is taken off `deliveries` only once it has come.
    async fn acknowledged(&mut self) {
        while let Some((_, delivery)) = self.deliveries.last_mut() {
            let answer = delivery.await;
            let Some((i, _)) = self.deliveries.pop() else { break };
            match answer {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    tracing::warn!(%error, "a record was not acknowledged; sending it again");
                    self.failed.push(i);
                }
                Err(_) => self.failed.push(i),
            }
        }
    }
}

/// The answers of the oldest batch in flight (never ready when there is none).
async fn acknowledged_front(in_flight: &mut VecDeque<InFlight>) {
    match in_flight.front_mut() {
        Some(flight) => flight.acknowledged().await,
        None => std::future::pending().await,
    }
}

/// The daemon's side of Kafka and what it counts.
struct Lane<'a> {
    consumer: &'a StreamConsumer<ScorerContext>,
    producer: &'a FutureProducer,
    config: &'a Config,
    input_topic: &'a str,
    shutdown: &'a CancellationToken,
    offsets: Offsets,
    summary: Summary,
    finished: &'a AtomicU64,
    /// Output buffers of finished batches, to be used again.
    spare: Vec<Outputs>,
}

impl Lane<'_> {
    /// Sends the records `indices` of the batch; what librdkafka refuses is
    /// noted in `flight.failed`.
    async fn send(&self, flight: &mut InFlight, indices: impl IntoIterator<Item = usize>) {
        let outputs = &flight.outputs;
        for i in indices {
            let Some(output) = outputs.records.get(i) else { continue };
            let record = match &output.kind {
                OutputKind::Reward { payload, key, program, kind, rules_version } => {
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "program", value: Some(outputs.text(*program)) })
                        .insert(Header { key: "kind", value: Some(*kind) })
                        .insert(Header { key: "rules_version", value: Some(outputs.text(*rules_version)) });
                    FutureRecord::to(&self.config.kafka.rewards_topic)
                        .payload(outputs.slice(*payload))
                        .key(outputs.slice(*key))
                        .headers(headers)
                }
                OutputKind::DeadLetter { error, payload, key, partition, offset } => {
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "reason", value: Some(error.reason.as_str()) })
                        .insert(Header { key: "detail", value: Some(error.detail.as_str()) })
                        .insert(Header { key: "source_topic", value: Some(self.input_topic) })
                        .insert(Header { key: "source_partition", value: Some(&partition.to_string()) })
                        .insert(Header { key: "source_offset", value: Some(&offset.to_string()) });
                    let record = FutureRecord::to(&self.config.kafka.dead_letter_topic)
                        .payload(outputs.slice(*payload))
                        .headers(headers);
                    match key {
                        Some(key) => record.key(outputs.slice(*key)),
                        None => record,
                    }
                }
            };
            match kafka::send(self.producer, record).await {
                Ok(delivery) => flight.deliveries.push((i, delivery)),
                Err(error) => {
                    tracing::warn!(%error, "a record was refused; sending it again");
                    flight.failed.push(i);
                }
            }
        }
    }

    /// Finishes the oldest batch in flight: waits for its answers, sends
    /// again what failed (with backoff) until all is acknowledged, then
    /// stores its offsets and counts it. `false` when shutdown came before
    /// everything was acknowledged: its offsets are not stored.
    async fn finish_front(&mut self, in_flight: &mut VecDeque<InFlight>) -> bool {
        let Some(mut flight) = in_flight.pop_front() else { return true };
        flight.acknowledged().await;
        if !flight.failed.is_empty() {
            // The batches after this one stay in flight; while this one is
            // sent again the partitions are paused, so `wait` hands out
            // nothing (what it would drop would be skipped).
            pause(self.consumer, true);
            let mut backoff = BACKOFF_FIRST;
            while !flight.failed.is_empty() {
                metrics::counter!(metric::RETRIES_TOTAL, label::WHAT => RetryTarget::Kafka.as_str()).increment(1);
                if wait(self.consumer, self.shutdown, backoff).await {
                    return false;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                let mut again = std::mem::take(&mut flight.failed);
                again.sort_unstable();
                self.send(&mut flight, again).await;
                flight.acknowledged().await;
            }
            pause(self.consumer, false);
        }

        // Everything of the batch is done: store its offsets.
        let mut positions: Vec<(i32, i64)> = Vec::new();
        for &(partition, offset, _) in &flight.messages {
            if let Some(position) = self.offsets.finished(partition, offset) {
                match positions.iter_mut().find(|(p, _)| *p == partition) {
                    Some(entry) => entry.1 = position,
                    None => positions.push((partition, position)),
                }
            }
        }
        store_positions(self.consumer, self.input_topic, &positions);
        let events = flight.messages.len() as u64;
        self.summary.rewards += record_metrics(&flight.messages, &flight.outputs, flight.started);
        self.summary.batches += 1;
        self.summary.events += events;
        self.summary.dead_letters += flight.outputs.tally.dead_lettered;
        self.finished.fetch_add(events, Ordering::Relaxed);
        metrics::gauge!(metric::IN_FLIGHT_EVENTS).set(self.offsets.in_flight() as f64);
        self.spare.push(flight.outputs);
        true
    }
}

/// Reads the rules files again and puts them in force when every one is
/// valid; otherwise keeps the rules in force and says why.
fn reload_rules(config: &Config, scorer: &mut BatchScorer) {
    match crate::commands::load_programs(&config.programs.rules) {
        Ok(programs) => {
            let versions: Vec<String> = programs.iter().map(|p| format!("{}@{}", p.id, p.version)).collect();
            scorer.reload(programs);
            metrics::counter!(metric::RULES_RELOADS_TOTAL, label::RESULT => ReloadResult::Ok.as_str()).increment(1);
            tracing::info!(programs = %versions.join(", "), "rules reloaded");
        }
        Err(error) => {
            metrics::counter!(metric::RULES_RELOADS_TOTAL, label::RESULT => ReloadResult::Error.as_str()).increment(1);
            tracing::error!(error = %format!("{error:#}"), "rules reload failed; the rules in force stay");
        }
    }
}

/// Stores each partition's position (the offset of its first event not yet
/// finished), to be committed as it is. `store_offset` would not do: it
/// stores the offset after the one given (that of a message consumed), and
/// a restart would skip the event at the position.
fn store_positions(consumer: &StreamConsumer<ScorerContext>, topic: &str, positions: &[(i32, i64)]) {
    if positions.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(positions.len());
    for &(partition, position) in positions {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(position)) {
            tracing::warn!(%error, partition, position, "offset not stored");
        }
    }
    if let Err(error) = consumer.store_offsets(&list) {
        // A partition revoked while the batch was in flight: its next owner
        // gets these events again, and finds them recorded.
        tracing::debug!(%error, "offsets not stored");
    }
}

/// Pauses (or resumes) every assigned partition: while the store is down the
/// consumer keeps polling (heartbeats, rebalances) without fetching.
fn pause(consumer: &StreamConsumer<ScorerContext>, paused: bool) {
    let Ok(assignment) = consumer.assignment() else { return };
    let result = if paused { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    if let Err(error) = result {
        tracing::warn!(%error, paused, "pausing or resuming partitions");
    }
}

/// Waits `delay` while serving the consumer (so the group keeps this member);
/// `true` when shutdown was asked for meanwhile. Messages that still arrive
/// from paused partitions are dropped uncommitted: they are redelivered.
async fn wait(consumer: &StreamConsumer<ScorerContext>, shutdown: &CancellationToken, delay: Duration) -> bool {
    let until = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return true,
            () = tokio::time::sleep_until(until) => return false,
            _ = consumer.recv() => {}
        }
    }
}

/// The batch's metrics, counted once per batch; the count of its rewards.
fn record_metrics(messages: &[(i32, i64, Option<i64>)], outputs: &Outputs, started: Instant) -> u64 {
    for outcome in EventOutcome::ALL {
        let n = outputs.tally.get(outcome);
        // Dead letters are counted by reason below.
        if n > 0 && outcome != EventOutcome::DeadLettered {
            metrics::counter!(metric::EVENTS_TOTAL, label::OUTCOME => outcome.as_str()).increment(n);
        }
    }
    let mut dead: Vec<(&'static str, u64)> = Vec::new();
    for output in &outputs.records {
        if let OutputKind::DeadLetter { error, .. } = &output.kind {
            let reason = error.reason.as_str();
            match dead.iter_mut().find(|(r, _)| *r == reason) {
                Some(entry) => entry.1 += 1,
                None => dead.push((reason, 1)),
            }
        }
    }
    for (reason, n) in dead {
        metrics::counter!(
            metric::EVENTS_TOTAL,
            label::OUTCOME => EventOutcome::DeadLettered.as_str(),
            label::REASON => reason,
        )
        .increment(n);
    }
    let mut points: Vec<(&str, &str, &str, i64)> = Vec::new();
    for (program, rule, kind, p) in &outputs.points {
        match points.iter_mut().find(|(a, b, c, _)| a == program && b == rule && c == kind) {
            Some(entry) => entry.3 += p,
            None => points.push((program, rule, kind, *p)),
        }
    }
    for (program, rule, kind, p) in points {
        let labels =
            [(label::PROGRAM, program.to_owned()), (label::RULE, rule.to_owned()), (label::KIND, kind.to_owned())];
        if p > 0 {
            metrics::counter!(metric::POINTS_AWARDED_TOTAL, &labels).increment(p.unsigned_abs());
        } else {
            metrics::counter!(metric::POINTS_DEBITED_TOTAL, &labels).increment(p.unsigned_abs());
        }
    }
    // Programs are few: a short list beats a map.
    let mut rewards: Vec<(&str, u64)> = Vec::new();
    for output in &outputs.records {
        if let OutputKind::Reward { program, .. } = &output.kind {
            let program = outputs.text(*program);
            match rewards.iter_mut().find(|(p, _)| *p == program) {
                Some((_, n)) => *n += 1,
                None => rewards.push((program, 1)),
            }
        }
    }
    let mut total = 0;
    for (program, n) in rewards {
        metrics::counter!(metric::REWARDS_TOTAL, metric::label::PROGRAM => program.to_owned()).increment(n);
        total += n;
    }
    metrics::histogram!(metric::BATCH_EVENTS).record(messages.len() as f64);
    metrics::histogram!(metric::BATCH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let latency = metrics::histogram!(metric::END_TO_END_LATENCY_SECONDS);
    for &(_, _, timestamp) in messages {
        if let Some(at) = timestamp {
            latency.record((now_ms - at).max(0) as f64 / 1000.0);
        }
    }
    total
}
