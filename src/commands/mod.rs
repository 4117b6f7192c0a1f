//! The offline commands: argument definitions and what each command does
//! with the library. Errors here are `anyhow` with context: they end the
//! command with a message, never a panic.

pub mod check_rules;
pub mod demo;
pub mod probe;
pub mod run;
pub mod score;
pub mod simulate;

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::decode::DEFAULT_MAX_MESSAGE_BYTES;
use crate::pipeline::{Scorer, Sink, for_each_line};
use crate::rules::engine::Settings;
use crate::rules::load;
use crate::rules::{Program, ProgramSet};
use crate::state::memory::MemoryStore;

#[derive(Debug, Parser)]
#[command(name = "loyalty-scorer", version, about = "Scores retail purchase streams for loyalty programs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score a JSON-lines file of events, in order, and write one reward event per line.
    Score(ScoreArgs),
    /// Validate rules files; print a summary of each, or every problem found.
    CheckRules(CheckRulesArgs),
    /// Score a file in memory and report what the program would cost.
    Simulate(SimulateArgs),
    /// Run the daemon: consume purchases from Kafka, keep member state in
    /// Redis, produce reward events.
    Run(run::RunArgs),
    /// Run the whole pipeline on embedded defaults, with nothing installed:
    /// an in-process Kafka broker, the embedded state store, a built-in
    /// program and a generated stream.
    Demo(demo::DemoArgs),
    /// Ask a health endpoint of a running daemon (for container health
    /// checks): exit 0 on a 2xx answer, 1 otherwise with the reason.
    Probe(probe::ProbeArgs),
}

/// Options shared by the commands that score a stream.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Rules file of a program; repeat for several programs (the first is the default).
    #[arg(long = "rules", required = true, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Days of event time outcomes are kept for refunds and repeated event ids.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=36_500))]
    pub retention_days: i64,
    /// Largest message accepted; larger ones are dead letters (`too_large`).
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Events to score, one JSON object per line (`-`: standard input).
    #[arg(long, default_value = "-", value_name = "FILE")]
    pub input: PathBuf,
    /// Where reward events go (`-`: standard output).
    #[arg(long, default_value = "-", value_name = "FILE")]
    pub output: PathBuf,
    /// Where dead letters go, one JSON object per line (default: standard error).
    #[arg(long, value_name = "FILE")]
    pub dlq: Option<PathBuf>,
    /// Member state: `memory` (embedded, nothing kept after the run), or a
    /// Redis URL: `redis://[user:password@]host:port[/db]`, `rediss://...`
    /// (TLS), or `redis+cluster://host:port[,host:port...]` for Redis Cluster.
    #[arg(long, default_value = "memory")]
    pub state: String,
    /// Events per batch against a shared state store (one round trip to
    /// load a batch's members, one to write them).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_events: u32,
    /// Prefix of every Redis key the scorer writes.
    #[arg(long, default_value = "ls")]
    pub key_prefix: String,
    /// PEM file of the CA certificates to trust for a `rediss://` state,
    /// instead of the webpki roots (a private CA).
    #[arg(long, value_name = "FILE")]
    pub redis_tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate, for a Redis that asks for one.
    #[arg(long, value_name = "FILE", requires = "redis_tls_key")]
    pub redis_tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, value_name = "FILE", requires = "redis_tls_cert")]
    pub redis_tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckRulesArgs {
    /// Rules files to validate.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Events to score, one JSON object per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Candidate rules: score the same history under them too and report
    /// the differences. Each replaces the `--rules` program with its id.
    #[arg(long = "compare", value_name = "FILE")]
    pub compare: Vec<PathBuf>,
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Loads every rules file, reporting all problems of all files at once.
pub fn load_programs(paths: &[PathBuf]) -> anyhow::Result<ProgramSet> {
    let mut programs: Vec<Arc<Program>> = Vec::with_capacity(paths.len());
    let mut problems = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read rules file {}", path.display()))?;
        match load::load_str(&path.display().to_string(), &text) {
            Ok(program) => {
                if let Some(other) = programs.iter().find(|p| p.id == program.id) {
                    problems.push(format!(
                        "{}: program id {:?} is already used by another --rules file ({} {}); give each program its own id",
                        path.display(),
                        program.id,
                        other.id,
                        other.currency
                    ));
                }
                programs.push(Arc::new(program));
            }
            Err(diagnostics) => problems.extend(diagnostics.iter().map(ToString::to_string)),
        }
    }
    if !problems.is_empty() {
        bail!("invalid rules:\n{}", problems.join("\n"));
    }
    ProgramSet::new(programs).context("no rules file given")
}

pub fn settings(args: &StreamArgs) -> Settings {
    Settings { retention_days: args.retention_days }
}

/// Opens the input (`-`: standard input).
pub fn open_input(path: &Path) -> anyhow::Result<Input> {
    if is_stdio(path) {
        let reader = Box::new(BufReader::with_capacity(1 << 16, io::stdin()));
        return Ok(Input { path: path.to_owned(), reader, len: None });
    }
    let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok(Input { path: path.to_owned(), reader: Box::new(BufReader::with_capacity(1 << 16, file)), len })
}

/// An opened input stream of events.
pub struct Input {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    /// Length in bytes when known (for progress).
    len: Option<u64>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("path", &self.path).field("len", &self.len).finish_non_exhaustive()
    }
}

/// Scores `input` into `sink`, with a progress bar on a terminal.
pub fn score_file(scorer: &mut Scorer<MemoryStore>, input: Input, sink: &mut dyn Sink) -> anyhow::Result<()> {
    each_line(input, |number, line| scorer.score(number, line, sink))
}

/// Hands every message of `input` to `f`, with a progress bar on a terminal.
pub fn each_line(input: Input, f: impl FnMut(u64, &[u8]) -> io::Result<()>) -> anyhow::Result<()> {
    let Input { path, reader, len } = input;
    let bar = progress_bar(len);
    for_each_line(
        reader,
        |read| {
            if let Some(bar) = &bar {
                bar.set_position(read);
            }
        },
        f,
    )
    .with_context(|| format!("scoring {}", path.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Hands the messages of `input` to `f` in batches of up to `size`, with a
/// progress bar on a terminal. The batch's bytes are reused from batch to
/// batch.
pub fn each_batch(
    input: Input,
    size: usize,
    mut f: impl FnMut(&[(u64, &[u8])]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let size = size.max(1);
    let mut bytes: Vec<u8> = Vec::with_capacity(size * 1024);
    let mut spans: Vec<(u64, usize, usize)> = Vec::with_capacity(size);
    let mut run = |bytes: &mut Vec<u8>, spans: &mut Vec<(u64, usize, usize)>| -> anyhow::Result<()> {
        let batch: Vec<(u64, &[u8])> = spans.iter().map(|&(n, a, b)| (n, &bytes[a..b])).collect();
        f(&batch)?;
        bytes.clear();
        spans.clear();
        Ok(())
    };
    let mut failure: Option<anyhow::Error> = None;
    each_line(input, |number, line| {
        let start = bytes.len();
        bytes.extend_from_slice(line);
        spans.push((number, start, bytes.len()));
        if spans.len() == size {
            if let Err(error) = run(&mut bytes, &mut spans) {
                failure = Some(error);
                return Err(io::Error::other("batch failed"));
            }
        }
        Ok(())
    })
    .or_else(|e| failure.take().map_or(Err(e), Err))?;
    if let Some(error) = failure {
        return Err(error);
    }
    if !spans.is_empty() {
        run(&mut bytes, &mut spans)?;
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal, else nothing.
fn progress_bar(len: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}
