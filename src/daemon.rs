//! The daemon's data path: consume a batch of purchase events from Kafka,
//! score it against the shared store, produce its rewards and dead letters,
//! and only then store its offsets.
//!
//! ```text
//! gather (max_batch_events or max_batch_wait_ms)
//!   -> BatchScorer::score_batch (decode, load, evaluate, write: batch.rs)
//!   -> produce rewards / dead letters, await every acknowledgement
//!   -> store the offsets of the batch (committed by librdkafka)
//! ```
//!
//! One batch is in flight at a time, so memory is bounded by the batch and
//! a partition's offsets only ever advance over finished events. A store
//! that is unavailable pauses the assigned partitions and retries the same
//! batch with backoff (the consumer keeps polling, so the group keeps the
//! scorer); a produce that fails is sent again. Nothing is skipped: an
//! event whose output was not acknowledged is not committed, and its
//! redelivery re-emits the stored outcome. A broken invariant (a corrupt
//! store, a configuration the store refuses) stops the daemon with an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
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
    /// Cancelled to stop: the batch in flight is finished and committed.
    pub shutdown: CancellationToken,
    /// Set to reload the rules files before the next batch (SIGHUP).
    pub reload: AtomicBool,
    /// Events whose offsets were stored.
    pub finished: AtomicU64,
}

/// Runs the daemon until `controls.shutdown` is cancelled, then finishes the
/// batch in flight, commits and returns. `store` is the shared state store
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

    let mut summary = Summary::default();
    let mut outputs = Outputs::default();
    let mut offsets = Offsets::new();
    let max_events = config.batching.max_batch_events.max(1);
    let input_topic = config.kafka.input_topic.as_str();
    tracing::info!(topic = input_topic, group = %config.kafka.group_id, "consuming");

    'run: loop {
        if reload.swap(false, Ordering::Relaxed) {
            reload_rules(config, &mut scorer);
        }
        // Gather: wait for a first message (or the end), then fill the batch
        // until it is full or its wait is over.
        let mut messages: Vec<BorrowedMessage<'_>> = Vec::with_capacity(max_events);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'run,
            received = consumer.recv() => match received {
                Ok(message) => messages.push(message),
                Err(error) => {
                    tracing::warn!(%error, "kafka consumer error");
                    continue 'run;
                }
            },
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
            offsets.received(m.partition(), m.offset());
        }
        metrics::gauge!(metric::IN_FLIGHT_EVENTS).set(offsets.in_flight() as f64);
        let batch: Vec<(u64, &[u8])> =
            messages.iter().enumerate().map(|(i, m)| (i as u64 + 1, m.payload().unwrap_or_default())).collect();
        let sources: Vec<Source<'_>> =
            messages.iter().map(|m| Source { partition: m.partition(), offset: m.offset(), key: m.key() }).collect();

        // Score, retrying while the store is unavailable.
        let mut backoff = BACKOFF_FIRST;
        loop {
            outputs.clear();
            match scorer.score_batch(&mut store, &batch, &mut outputs).await {
                Ok(()) => break,
                Err(BatchError::Store(error)) if error.disposition() == Disposition::Retry => {
                    summary.retries += 1;
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

        // Produce, then wait for every acknowledgement; send again what fails.
        if !produce_all(&producer, config, input_topic, &sources, &batch, &outputs, &consumer, shutdown).await {
            break 'run;
        }

        // Everything of the batch is done: store its offsets.
        let mut positions: Vec<(i32, i64)> = Vec::new();
        for m in &messages {
            if let Some(position) = offsets.finished(m.partition(), m.offset()) {
                match positions.iter_mut().find(|(p, _)| *p == m.partition()) {
                    Some(entry) => entry.1 = position,
                    None => positions.push((m.partition(), position)),
                }
            }
        }
        store_positions(&consumer, input_topic, &positions);
        summary.rewards += record_metrics(&messages, &outputs, started);
        summary.batches += 1;
        summary.events += messages.len() as u64;
        finished.fetch_add(messages.len() as u64, Ordering::Relaxed);
        summary.dead_letters += outputs.tally.dead_lettered;
        metrics::gauge!(metric::IN_FLIGHT_EVENTS).set(offsets.in_flight() as f64);
    }

    readiness.begin_shutdown();
    tracing::info!(events = summary.events, batches = summary.batches, "stopping: committing offsets");
    kafka::commit_sync(&consumer);
    if let Err(error) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "flushing the producer");
    }
    Ok(summary)
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

/// Produces the batch's outputs and waits for every acknowledgement, sending
/// again (with backoff) whatever was not acknowledged. `false` when shutdown
/// was asked for before everything was acknowledged.
#[expect(clippy::too_many_arguments, reason = "the batch's parts, borrowed apart")]
async fn produce_all(
    producer: &FutureProducer,
    config: &Config,
    input_topic: &str,
    sources: &[Source<'_>],
    batch: &[(u64, &[u8])],
    outputs: &Outputs,
    consumer: &StreamConsumer<ScorerContext>,
    shutdown: &CancellationToken,
) -> bool {
    let mut pending: Vec<usize> = (0..outputs.records.len()).collect();
    let mut backoff = BACKOFF_FIRST;
    let mut paused = false;
    loop {
        let mut deliveries = Vec::with_capacity(pending.len());
        let mut refused = Vec::new();
        for &i in &pending {
            let output = &outputs.records[i];
            let source = sources.get(output.message).copied();
            let message = batch.get(output.message).map_or(&[][..], |(_, m)| *m);
            let record = match &output.kind {
                OutputKind::Reward { payload, key, program, kind, rules_version } => {
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "program", value: Some(outputs.text(*program)) })
                        .insert(Header { key: "kind", value: Some(*kind) })
                        .insert(Header { key: "rules_version", value: Some(outputs.text(*rules_version)) });
                    FutureRecord::to(&config.kafka.rewards_topic)
                        .payload(outputs.slice(*payload))
                        .key(outputs.slice(*key))
                        .headers(headers)
                }
                OutputKind::DeadLetter { error } => {
                    let (partition, offset) = source.map_or((-1, -1), |s| (s.partition, s.offset));
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "reason", value: Some(error.reason.as_str()) })
                        .insert(Header { key: "detail", value: Some(error.detail.as_str()) })
                        .insert(Header { key: "source_topic", value: Some(input_topic) })
                        .insert(Header { key: "source_partition", value: Some(&partition.to_string()) })
                        .insert(Header { key: "source_offset", value: Some(&offset.to_string()) });
                    let record = FutureRecord::to(&config.kafka.dead_letter_topic).payload(message).headers(headers);
                    match source.and_then(|s| s.key) {
                        Some(key) => record.key(key),
                        None => record,
                    }
                }
            };
            match kafka::send(producer, record).await {
                Ok(delivery) => deliveries.push((i, delivery)),
                Err(error) => {
                    tracing::warn!(%error, "a record was refused; sending it again");
                    refused.push(i);
                }
            }
        }
        let mut failed = refused;
        for (i, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    tracing::warn!(%error, "a record was not acknowledged; sending it again");
                    failed.push(i);
                }
                Err(_) => failed.push(i),
            }
        }
        if failed.is_empty() {
            if paused {
                pause(consumer, false);
            }
            return true;
        }
        metrics::counter!(metric::RETRIES_TOTAL, label::WHAT => RetryTarget::Kafka.as_str()).increment(1);
        // `wait` drops what the consumer hands out meanwhile; paused, the
        // partitions hand out nothing and resume after this batch. Unpaused,
        // the dropped events would be skipped and their offsets stored past.
        if !paused {
            pause(consumer, true);
            paused = true;
        }
        if wait(consumer, shutdown, backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        pending = failed;
    }
}

/// The batch's metrics, counted once per batch; the count of its rewards.
fn record_metrics(messages: &[BorrowedMessage<'_>], outputs: &Outputs, started: Instant) -> u64 {
    for outcome in EventOutcome::ALL {
        let n = outputs.tally.get(outcome);
        // Dead letters are counted by reason below.
        if n > 0 && outcome != EventOutcome::DeadLettered {
            metrics::counter!(metric::EVENTS_TOTAL, label::OUTCOME => outcome.as_str()).increment(n);
        }
    }
    let mut dead: Vec<(&'static str, u64)> = Vec::new();
    for output in &outputs.records {
        if let OutputKind::DeadLetter { error } = &output.kind {
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
    for m in messages {
        if let Some(at) = m.timestamp().to_millis() {
            latency.record((now_ms - at).max(0) as f64 / 1000.0);
        }
    }
    total
}
