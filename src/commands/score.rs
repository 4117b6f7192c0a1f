//! `score`: a JSON-lines file in, reward events and dead letters out.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};

use std::time::Duration;

use crate::batch::{BatchError, BatchScorer};
use crate::commands::{Input, ScoreArgs, each_batch, is_stdio, load_programs, open_input, score_file, settings};
use crate::output;
use crate::pipeline::{Disposition, Scorer, Sink};
use crate::state::memory::MemoryStore;
use crate::state::redis::{RedisStore, redact, tls_files};
use crate::state::{BatchStore, StoreError};

/// Writes rewards and dead letters as JSON lines, and counts them.
struct FileSink<'w> {
    rewards: &'w mut (dyn Write + Send),
    dead_letters: &'w mut (dyn Write + Send),
    line: Vec<u8>,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    scored: u64,
    repeats: u64,
    anonymous: u64,
    dead: u64,
}

impl Sink for FileSink<'_> {
    fn accept(&mut self, position: u64, message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        match disposition {
            Disposition::Scored { reward, .. } => {
                self.counts.scored += 1;
                self.rewards.write_all(reward)?;
                self.rewards.write_all(b"\n")
            }
            Disposition::Repeat { reward, .. } => {
                self.counts.repeats += 1;
                self.rewards.write_all(reward)?;
                self.rewards.write_all(b"\n")
            }
            Disposition::Anonymous { .. } => {
                self.counts.anonymous += 1;
                Ok(())
            }
            Disposition::Dead(error) => {
                self.counts.dead += 1;
                self.line.clear();
                output::write_dead_letter(&mut self.line, position, message, &error);
                self.line.push(b'\n');
                self.dead_letters.write_all(&self.line)
            }
        }
    }
}

fn create(path: &std::path::Path) -> anyhow::Result<Box<dyn Write + Send>> {
    if is_stdio(path) {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())));
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

/// Scores `input` in batches against a shared store. A store that is
/// unavailable is retried with backoff, the same batch again: nothing is
/// skipped, and nothing applied twice (repeats are recognised).
fn score_batched<S: BatchStore>(
    runtime: &tokio::runtime::Runtime,
    mut store: S,
    scorer: &mut BatchScorer,
    input: Input,
    batch_events: usize,
    sink: &mut (dyn Sink + Send),
) -> anyhow::Result<()> {
    each_batch(input, batch_events, |batch| {
        let mut backoff = Duration::from_millis(100);
        loop {
            match runtime.block_on(scorer.score_batch(&mut store, batch, sink)) {
                Ok(()) => return Ok(()),
                Err(BatchError::Store(StoreError::Unavailable(why))) => {
                    tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, "state store unavailable; retrying the batch");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error).context("scoring a batch"),
            }
        }
    })
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let shared = args.state != "memory";
    if shared && !args.state.starts_with("redis") {
        bail!("--state {:?}: use memory, or a redis://, rediss:// or redis+cluster:// URL", args.state);
    }
    if !shared && (args.redis_tls_ca.is_some() || args.redis_tls_cert.is_some()) {
        bail!("--redis-tls-ca, --redis-tls-cert and --redis-tls-key need a rediss:// --state");
    }
    let programs = load_programs(&args.stream.rules)?;
    let input = open_input(&args.input)?;
    let mut rewards = create(&args.output)?;
    let mut dead_letters: Box<dyn Write + Send> = match &args.dlq {
        Some(path) => create(path)?,
        None => Box::new(io::stderr()),
    };
    let mut sink = FileSink {
        rewards: &mut rewards,
        dead_letters: &mut dead_letters,
        line: Vec::new(),
        counts: Counts::default(),
    };
    if shared {
        let mut scorer = BatchScorer::new(programs, settings(&args.stream), args.stream.max_message_bytes)
            .map_err(anyhow::Error::msg)?;
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the I/O runtime")?;
        let tls =
            tls_files(args.redis_tls_ca.as_deref(), args.redis_tls_cert.as_deref(), args.redis_tls_key.as_deref())?;
        let store = runtime
            .block_on(RedisStore::connect_with_tls(&args.state, &args.key_prefix, tls.as_ref()))
            .with_context(|| format!("connecting to {}", redact(&args.state)))?;
        score_batched(&runtime, store, &mut scorer, input, args.batch_events as usize, &mut sink)?;
    } else {
        let mut scorer =
            Scorer::new(programs, settings(&args.stream), args.stream.max_message_bytes, MemoryStore::new());
        score_file(&mut scorer, input, &mut sink)?;
    }
    let counts = std::mem::take(&mut sink.counts);
    drop(sink);
    rewards.flush().context("writing reward events")?;
    dead_letters.flush().context("writing dead letters")?;
    tracing::info!(
        scored = counts.scored,
        repeats = counts.repeats,
        anonymous = counts.anonymous,
        dead_letters = counts.dead,
        "score finished"
    );
    Ok(ExitCode::SUCCESS)
}
