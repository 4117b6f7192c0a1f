//! The daemon's data path: consume a batch of purchase events from Kafka,
//! score it against the shared store, produce its rewards and dead letters,
//! and only once they are acknowledged store its offsets.
//!
//! ```text
//! gather (up to max_batch_events; after max_batch_wait_ms once a lane is
//!         free, filling on while every lane is busy)
//!   -> split by partition into jobs, each to a free lane once no lane
//!      scores its partition
//!   -> BatchScorer::score_batch (decode, load, evaluate, write: batch.rs)
//!   -> send its rewards / dead letters        (the job is now in flight)
//! ...while the next batches are gathered, scored and sent:
//!   -> its acknowledgements, oldest first; what failed is sent again
//!   -> store the offsets of the job (committed by librdkafka)
//! ```
//!
//! Lanes (`batching.lanes`) each hold a scorer and their own store
//! connection, so one lane evaluates while another waits for Redis. A
//! partition is scored by one lane at a time, its batches in offset order:
//! a member's events (one partition when the input is keyed by member)
//! are evaluated in order, whatever the lanes.
//!
//! Jobs wait for their acknowledgements while the next ones are scored, up
//! to `max_in_flight_events` received and unfinished events (memory is
//! bounded by it). A job owns copies of its outputs (reward bytes, dead
//! letters with their keys and sources), so its messages are released once
//! it is scored. Offsets only ever advance over finished events, per
//! partition. A store that is unavailable pauses the assigned partitions and
//! retries the same job with backoff (the consumer keeps polling, so the
//! group keeps the scorer); a record that fails is sent again, after the
//! records of later jobs already sent (a reward may then follow a later
//! reward of its member; `reward_id` tells them apart). Nothing is skipped:
//! an event whose output was not acknowledged is not committed, and its
//! redelivery re-emits the stored outcome. A broken invariant (a corrupt
//! store, a configuration the store refuses) stops the daemon with an error.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
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
use crate::telemetry::metric::{self, BatchStage, EventOutcome, ReloadResult, RetryTarget, label};

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
    /// Batches that started scoring while another lane was scoring.
    pub overlapped: u64,
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
/// batches in flight, commits and returns. `stores` are the scoring lanes'
/// handles on the shared state store, one per lane (Redis in production,
/// each its own connection; the embedded store, one lane, for the demo and
/// tests).
pub async fn run<S: BatchStore>(
    config: &Config,
    programs: ProgramSet,
    stores: Vec<S>,
    controls: &Controls,
) -> anyhow::Result<Summary> {
    let Controls { readiness, shutdown, reload, finished } = controls;
    anyhow::ensure!(!stores.is_empty(), "no store to score against");
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
    let mut idle = Vec::with_capacity(stores.len());
    for store in stores {
        let scorer = BatchScorer::new(programs.clone(), config.engine_settings(), config.kafka.max_message_bytes)
            .map_err(|why| anyhow::anyhow!(why))?;
        idle.push(Lane { scorer, store, generation: 0 });
    }
    readiness.set_redis_available(true);

    let mut daemon = Daemon {
        feed: Feed {
            consumer: &consumer,
            producer: &producer,
            config,
            input_topic: config.kafka.input_topic.as_str(),
            shutdown,
            readiness,
            offsets: Offsets::new(),
            summary: Summary::default(),
            finished,
            spare: Vec::new(),
            store_down: false,
        },
        lanes: Lanes { idle, busy: Vec::new() },
        in_flight: VecDeque::new(),
        rules: (0, programs),
    };
    let max_events = config.batching.max_batch_events.max(1);
    let max_in_flight = config.batching.max_in_flight_events.max(max_events);
    tracing::info!(
        topic = daemon.feed.input_topic,
        group = %config.kafka.group_id,
        lanes = daemon.lanes.idle.len(),
        "consuming"
    );

    'run: loop {
        if reload.swap(false, Ordering::Relaxed) {
            daemon.reload_rules();
        }
        // Room for a full batch: finish or score what is under way until there is.
        while daemon.feed.offsets.in_flight() + max_events > max_in_flight && daemon.under_way() {
            if let Step::Stop = daemon.step(false).await? {
                break 'run;
            }
        }
        // Gather: wait for a first message (or the end) while the work under
        // way progresses; then fill the batch until it is full or its wait
        // is over.
        let mut messages: Vec<BorrowedMessage<'_>> = Vec::with_capacity(max_events);
        loop {
            match daemon.step(true).await? {
                Step::Stop => break 'run,
                Step::Received(message) => {
                    messages.push(message);
                    break;
                }
                Step::Progress | Step::Timeout => {}
            }
        }
        let gathering = Instant::now();
        // The work under way goes on meanwhile: a job's next round trip
        // does not wait for this batch to fill.
        let deadline = tokio::time::Instant::now() + config.batching.max_batch_wait;
        while messages.len() < max_events {
            match daemon.step_until(true, Some(deadline)).await? {
                Step::Received(message) => messages.push(message),
                Step::Progress => {}
                Step::Timeout => break,
                Step::Stop => break 'run,
            }
        }
        // No lane could take the batch yet: it goes on filling meanwhile, so
        // that under load batches grow instead of queueing behind each other.
        while messages.len() < max_events && daemon.lanes.idle.is_empty() {
            match daemon.step(true).await? {
                Step::Received(message) => messages.push(message),
                Step::Progress | Step::Timeout => {}
                Step::Stop => break 'run,
            }
        }
        for m in &messages {
            daemon.feed.offsets.received(m.partition(), m.offset());
        }
        metrics::gauge!(metric::IN_FLIGHT_EVENTS).set(daemon.feed.offsets.in_flight() as f64);
        let started = Instant::now();
        BatchStage::Gather.record((started - gathering).as_secs_f64());
        // One job per partition of the batch when there are lanes to share
        // them: a partition's jobs are scored one after the other, in order,
        // and different partitions' at once.
        for (partitions, messages) in split_by_partition(messages, daemon.lanes.count()) {
            let outputs = daemon.feed.spare.pop().unwrap_or_default();
            let job = Job { messages, partitions, outputs, started, delay: Duration::ZERO };
            while !daemon.lanes.can_start(&job.partitions) {
                if let Step::Stop = daemon.step(false).await? {
                    break 'run;
                }
            }
            daemon.start(job);
        }
    }

    // Stopping: batches being scored are finished, unless they wait for an
    // unavailable store (they are redelivered); what is in flight finishes,
    // unless its records cannot be delivered before the shutdown timeout
    // (then it is redelivered too).
    daemon.lanes.busy.retain(|b| b.delay.is_zero());
    while !daemon.lanes.busy.is_empty() {
        let (lane, job, result) = daemon.lanes.next().await;
        // A job the store refuses now is not retried: it is redelivered.
        let retry = matches!(&result, Err(BatchError::Store(error)) if error.disposition() == Disposition::Retry);
        if !retry {
            daemon.scored(lane, job, result).await?;
        }
    }
    let Daemon { mut feed, mut in_flight, .. } = daemon;
    while !in_flight.is_empty() {
        if !feed.finish_front(&mut in_flight).await {
            break;
        }
    }
    let summary = feed.summary;
    readiness.begin_shutdown();
    tracing::info!(
        events = summary.events,
        batches = summary.batches,
        overlapped = summary.overlapped,
        "stopping: committing offsets"
    );
    kafka::commit_sync(&consumer);
    if let Err(error) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "flushing the producer");
    }
    Ok(summary)
}

/// The batch as jobs: one per partition, in order of first message, when
/// there are several lanes; else the batch whole. Each with its partitions.
fn split_by_partition(messages: Vec<BorrowedMessage<'_>>, lanes: usize) -> Vec<(Vec<i32>, Vec<BorrowedMessage<'_>>)> {
    let mut jobs: Vec<(Vec<i32>, Vec<BorrowedMessage<'_>>)> = Vec::new();
    if lanes <= 1 {
        let mut partitions: Vec<i32> = Vec::new();
        for m in &messages {
            if !partitions.contains(&m.partition()) {
                partitions.push(m.partition());
            }
        }
        jobs.push((partitions, messages));
        return jobs;
    }
    for m in messages {
        match jobs.iter_mut().find(|(p, _)| p.first() == Some(&m.partition())) {
            Some((_, of_partition)) => of_partition.push(m),
            None => jobs.push((vec![m.partition()], vec![m])),
        }
    }
    jobs
}

/// What happened while the daemon waited.
enum Step<'c> {
    /// Shutdown was asked for, or came while records were being sent again.
    Stop,
    Received(BorrowedMessage<'c>),
    /// A batch was scored and sent, or finished, or the consumer reported an error.
    Progress,
    /// The deadline of [`Daemon::step_until`] passed.
    Timeout,
}

/// The daemon's state: its side of Kafka, the scoring lanes and the batches
/// waiting for their acknowledgements.
struct Daemon<'c, S> {
    feed: Feed<'c>,
    lanes: Lanes<'c, S>,
    in_flight: VecDeque<InFlight>,
    /// The rules in force and their generation (reloads so far); a lane
    /// takes them before its next batch.
    rules: (u64, ProgramSet),
}

impl<'c, S: BatchStore + 'c> Daemon<'c, S> {
    /// Batches being scored or waiting for their acknowledgements.
    fn under_way(&self) -> bool {
        !self.in_flight.is_empty() || !self.lanes.busy.is_empty()
    }

    /// Waits for the next thing to happen: shutdown, the oldest batch in
    /// flight acknowledged (it is finished), a lane done scoring (its batch
    /// is sent) or, when `receive`, a message. Without `receive`, something
    /// must be under way.
    async fn step(&mut self, receive: bool) -> anyhow::Result<Step<'c>> {
        self.step_until(receive, None).await
    }

    /// [`Self::step`], or [`Step::Timeout`] at `deadline`. The deadline is
    /// one of the branches, so what a branch started (sending a batch,
    /// finishing one) is never cut short by it.
    async fn step_until(&mut self, receive: bool, deadline: Option<tokio::time::Instant>) -> anyhow::Result<Step<'c>> {
        let consumer = self.feed.consumer;
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = self.feed.shutdown.cancelled() => Ok(Step::Stop),
            () = acknowledged_front(&mut self.in_flight), if !self.in_flight.is_empty() => {
                if self.feed.finish_front(&mut self.in_flight).await { Ok(Step::Progress) } else { Ok(Step::Stop) }
            }
            (lane, job, result) = self.lanes.next(), if !self.lanes.busy.is_empty() => {
                self.scored(lane, job, result).await?;
                Ok(Step::Progress)
            }
            received = consumer.recv(), if receive => match received {
                Ok(message) => Ok(Step::Received(message)),
                Err(error) => {
                    tracing::warn!(%error, "kafka consumer error");
                    Ok(Step::Progress)
                }
            },
            () = timeout => Ok(Step::Timeout),
        }
    }

    /// Starts scoring `job` on an idle lane (`lanes.can_start` said there is one).
    fn start(&mut self, job: Job<'c>) {
        let Some(mut lane) = self.lanes.idle.pop() else { return };
        BatchStage::Queue.record(job.started.elapsed().as_secs_f64());
        if !self.lanes.busy.is_empty() {
            self.feed.summary.overlapped += 1;
        }
        if lane.generation != self.rules.0 {
            lane.scorer.set_programs(self.rules.1.clone());
            lane.generation = self.rules.0;
        }
        self.lanes.start(lane, job);
    }

    /// A lane is done with `job`: its batch is sent and waits for its
    /// acknowledgements, or is scored again after a backoff while the store
    /// is unavailable. A broken invariant stops the daemon.
    async fn scored(&mut self, lane: Lane<S>, mut job: Job<'c>, result: Result<(), BatchError>) -> anyhow::Result<()> {
        match result {
            Ok(()) => {}
            Err(BatchError::Store(error)) if error.disposition() == Disposition::Retry => {
                job.delay = if job.delay.is_zero() { BACKOFF_FIRST } else { (job.delay * 2).min(BACKOFF_MAX) };
                self.feed.summary.retries += 1;
                metrics::counter!(metric::RETRIES_TOTAL, label::WHAT => RetryTarget::Redis.as_str()).increment(1);
                tracing::warn!(%error, retry_in_ms = job.delay.as_millis() as u64, "state store unavailable; retrying the batch");
                // Nothing of this batch is committed until it is scored; the
                // partitions pause meanwhile (the consumer keeps polling, so
                // the group keeps the scorer).
                self.feed.readiness.set_redis_available(false);
                self.feed.store_down = true;
                pause(self.feed.consumer, true);
                self.lanes.start(lane, job);
                return Ok(());
            }
            Err(BatchError::Store(error)) => {
                return Err(anyhow::Error::new(error).context("the state store failed"));
            }
            Err(error) => return Err(anyhow::Error::new(error).context("scoring a batch")),
        }
        if self.feed.store_down {
            self.feed.store_down = false;
            self.feed.readiness.set_redis_available(true);
            pause(self.feed.consumer, false);
            tracing::info!("state store available again");
        }
        self.lanes.idle.push(lane);

        // Send, and go on with the next batches while the broker acknowledges.
        let sending = Instant::now();
        let Job { messages, mut outputs, started, .. } = job;
        let sources: Vec<Source<'_>> =
            messages.iter().map(|m| Source { partition: m.partition(), offset: m.offset(), key: m.key() }).collect();
        outputs.attach_sources(&sources);
        let mut flight = InFlight {
            messages: messages.iter().map(|m| (m.partition(), m.offset(), m.timestamp().to_millis())).collect(),
            outputs,
            deliveries: Vec::new(),
            failed: Vec::new(),
            started,
            sent: Instant::now(),
        };
        let records = 0..flight.outputs.records.len();
        self.feed.send(&mut flight, records).await;
        flight.sent = Instant::now();
        BatchStage::Send.record((flight.sent - sending).as_secs_f64());
        self.in_flight.push_back(flight);
        Ok(())
    }

    /// Reads the rules files again and puts them in force when every one is
    /// valid (each lane takes them before its next batch); otherwise keeps
    /// the rules in force and says why.
    fn reload_rules(&mut self) {
        match crate::commands::load_programs(&self.feed.config.programs.rules) {
            Ok(programs) => {
                let versions: Vec<String> = programs.iter().map(|p| format!("{}@{}", p.id, p.version)).collect();
                self.rules = (self.rules.0 + 1, self.rules.1.reloaded(programs));
                metrics::counter!(metric::RULES_RELOADS_TOTAL, label::RESULT => ReloadResult::Ok.as_str()).increment(1);
                tracing::info!(programs = %versions.join(", "), "rules reloaded");
            }
            Err(error) => {
                metrics::counter!(metric::RULES_RELOADS_TOTAL, label::RESULT => ReloadResult::Error.as_str())
                    .increment(1);
                tracing::error!(error = %format!("{error:#}"), "rules reload failed; the rules in force stay");
            }
        }
    }
}

/// A scoring lane: a scorer and its own handle on the store. Lanes score
/// batches of disjoint partitions at once, so one lane evaluates while
/// another's round trip is in Redis; a member's events (one partition when
/// the input is keyed by member) stay in order.
struct Lane<S> {
    scorer: BatchScorer,
    store: S,
    /// The generation of the rules its scorer holds.
    generation: u64,
}

/// A batch of messages on its way through a lane.
struct Job<'c> {
    messages: Vec<BorrowedMessage<'c>>,
    /// The distinct partitions of `messages`.
    partitions: Vec<i32>,
    outputs: Outputs,
    started: Instant,
    /// How long to wait before scoring: the backoff while the store is unavailable.
    delay: Duration,
}

type Scored<'c, S> = (Lane<S>, Job<'c>, Result<(), BatchError>);

/// A lane at work on a job.
struct Busy<'c, S> {
    partitions: Vec<i32>,
    delay: Duration,
    scoring: Pin<Box<dyn Future<Output = Scored<'c, S>> + 'c>>,
}

struct Lanes<'c, S> {
    idle: Vec<Lane<S>>,
    busy: Vec<Busy<'c, S>>,
}

impl<'c, S: BatchStore + 'c> Lanes<'c, S> {
    fn count(&self) -> usize {
        self.idle.len() + self.busy.len()
    }

    /// Whether a batch of `partitions` may start: a lane is idle and no
    /// busy lane scores one of them.
    fn can_start(&self, partitions: &[i32]) -> bool {
        !self.idle.is_empty() && self.busy.iter().all(|b| b.partitions.iter().all(|p| !partitions.contains(p)))
    }

    fn start(&mut self, mut lane: Lane<S>, mut job: Job<'c>) {
        let (partitions, delay) = (job.partitions.clone(), job.delay);
        let scoring = Box::pin(async move {
            if !job.delay.is_zero() {
                tokio::time::sleep(job.delay).await;
            }
            let batch: Vec<(u64, &[u8])> =
                job.messages.iter().enumerate().map(|(i, m)| (i as u64 + 1, m.payload().unwrap_or_default())).collect();
            job.outputs.clear();
            let scoring = Instant::now();
            let result = lane.scorer.score_batch(&mut lane.store, &batch, &mut job.outputs).await;
            BatchStage::Score.record(scoring.elapsed().as_secs_f64());
            drop(batch);
            (lane, job, result)
        });
        self.busy.push(Busy { partitions, delay, scoring });
    }

    /// The next lane done scoring. Cancel-safe: a job leaves `busy` only
    /// once it is done. Lanes are few, so each wake polls them all.
    async fn next(&mut self) -> Scored<'c, S> {
        std::future::poll_fn(|cx| {
            for i in 0..self.busy.len() {
                if let Poll::Ready(done) = self.busy[i].scoring.as_mut().poll(cx) {
                    self.busy.swap_remove(i);
                    return Poll::Ready(done);
                }
            }
            Poll::Pending
        })
        .await
    }
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
    /// When its records were all handed to the producer.
    sent: Instant,
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
struct Feed<'a> {
    consumer: &'a StreamConsumer<ScorerContext>,
    producer: &'a FutureProducer,
    config: &'a Config,
    input_topic: &'a str,
    shutdown: &'a CancellationToken,
    readiness: &'a Readiness,
    offsets: Offsets,
    summary: Summary,
    finished: &'a AtomicU64,
    /// Output buffers of finished batches, to be used again.
    spare: Vec<Outputs>,
    /// The store refused a batch and none has been scored since: the
    /// partitions stay paused.
    store_down: bool,
}

impl Feed<'_> {
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
            if !self.store_down {
                pause(self.consumer, false);
            }
        }

        BatchStage::Acknowledge.record(flight.sent.elapsed().as_secs_f64());
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
