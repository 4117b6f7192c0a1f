//! `loadtest`: generates realistic retail event streams for loyalty-scorer.
//!
//! `loadtest generate --events N` writes JSON lines: members with Zipf-like
//! popularity, baskets of 1-20 lines across categories, refunds of earlier
//! purchases, redemptions, repeated deliveries and a small share of invalid
//! events, several merchants, stores and channels. Deterministic for a seed.
//!
//! `loadtest drive` is the end-to-end load test: a broker, Redis, the real
//! daemon, events/s and latency percentiles, a report with plots (`drive`).

use loyalty_scorer::generate;
mod drive;
mod mock_broker;
mod redis_memory;
mod redis_reference;
mod resp;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "loadtest", about = "Load generator for loyalty-scorer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a generated event stream as JSON lines.
    Generate(generate::Options),
    /// Run redis-benchmark -P 16 on the reference script and a trivial one.
    RedisReference(redis_reference::Options),
    /// Write N copies of a typical member's state to Redis and report its memory.
    RedisMemory(redis_memory::Options),
    /// The end-to-end load test: passthrough, unbatched and batched scorer
    /// against a broker and Redis; writes a report with plots.
    Drive(drive::Options),
    /// Serve librdkafka's mock cluster on loopback and print its address
    /// (for soak runs: it keeps a bounded tail of each partition).
    MockBroker(mock_broker::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate(options) => {
            let out: Box<dyn Write> = match &options.output {
                Some(path) if path != &PathBuf::from("-") => {
                    Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
                }
                _ => Box::new(io::stdout().lock()),
            };
            let mut out = BufWriter::with_capacity(1 << 16, out);
            generate::write_stream(&options, &mut out).context("writing events")?;
            out.flush().context("writing events")?;
            Ok(())
        }
        Command::RedisReference(options) => redis_reference::main(&options),
        Command::RedisMemory(options) => redis_memory::main(&options),
        Command::Drive(options) => drive::main(&options),
        Command::MockBroker(options) => mock_broker::main(&options),
    }
}
