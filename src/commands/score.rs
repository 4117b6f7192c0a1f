//! `score`: a JSON-lines file in, reward events and dead letters out.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::commands::{ScoreArgs, is_stdio, load_programs, open_input, score_file, settings};
use crate::output;
use crate::pipeline::{Disposition, Scorer, Sink};
use crate::state::memory::MemoryStore;

/// Writes rewards and dead letters as JSON lines, and counts them.
struct FileSink<'w> {
    rewards: &'w mut dyn Write,
    dead_letters: &'w mut dyn Write,
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

fn create(path: &std::path::Path) -> anyhow::Result<Box<dyn Write>> {
    if is_stdio(path) {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())));
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    if args.state != "memory" {
        bail!(
            "--state {:?} is not supported by this build: use --state memory (member state kept in memory for the run)",
            args.state
        );
    }
    let programs = load_programs(&args.stream.rules)?;
    let input = open_input(&args.input)?;
    let mut rewards = create(&args.output)?;
    let mut dead_letters: Box<dyn Write> = match &args.dlq {
        Some(path) => create(path)?,
        None => Box::new(io::stderr().lock()),
    };
    let mut scorer = Scorer::new(programs, settings(&args.stream), args.stream.max_message_bytes, MemoryStore::new());
    let mut sink = FileSink {
        rewards: &mut rewards,
        dead_letters: &mut dead_letters,
        line: Vec::new(),
        counts: Counts::default(),
    };
    score_file(&mut scorer, input, &mut sink)?;
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
