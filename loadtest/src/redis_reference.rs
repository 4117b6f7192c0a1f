//! `loadtest redis-reference --port P`: the reference of the Redis issue,
//! `redis-benchmark -P 16 -n 200000 -r 1000000` of `EVALSHA` on
//! `benches/reference.lua` (EXISTS of an outcome key, HGET of a version,
//! HSET of two state fields, SET EX of a 60-byte outcome, all under one
//! hash tag `{m:__rand_int__}`), and of a trivial script (`return 1`) as a
//! ceiling. Prints calls/s of each. `benches/redis.rs` runs the same against
//! its own server before its groups.

use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use crate::resp::{Conn, Reply};

const REFERENCE_SCRIPT: &str = include_str!("../../benches/reference.lua");
const TRIVIAL_SCRIPT: &str = "return 1";

#[derive(Debug, Args)]
pub struct Options {
    /// Port of the redis-server on 127.0.0.1 (it must be one you may write to).
    #[arg(long)]
    pub port: u16,
    /// Requests per script.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u64,
    /// Pipeline depth (`redis-benchmark -P`).
    #[arg(long, default_value_t = 16)]
    pub pipeline: u32,
}

/// Loads `script`, runs redis-benchmark on it with `args` after the SHA; calls/s.
fn run(options: &Options, script: &str, args: &[String]) -> anyhow::Result<f64> {
    let mut conn = Conn::open("127.0.0.1", options.port).context("connecting")?;
    let sha = match conn.must(&[b"SCRIPT", b"LOAD", script.as_bytes()])? {
        Reply::Bulk(Some(sha)) => String::from_utf8(sha)?,
        other => bail!("SCRIPT LOAD answered {other:?}"),
    };
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-h", "127.0.0.1", "-p", &options.port.to_string(), "-P", &options.pipeline.to_string()])
        .args(["-n", &options.requests.to_string(), "-r", "1000000", "-q", "EVALSHA", &sha])
        .args(args);
    eprintln!("running: {command:?}");
    let output = command.output().context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.rsplit(['\r', '\n'])
        .filter_map(|l| l.split(": ").nth(1)?.split(" requests per second").next()?.trim().parse::<f64>().ok())
        .next()
        .with_context(|| {
            format!("no rate in redis-benchmark output: {text} {}", String::from_utf8_lossy(&output.stderr))
        })
}

pub fn reference_args() -> Vec<String> {
    vec![
        "1".into(),
        "{m:__rand_int__}".into(),
        "ev__rand_int__".into(),
        "s".repeat(64),
        "o".repeat(60),
        "7776000".into(),
    ]
}

pub fn main(options: &Options) -> anyhow::Result<()> {
    let reference = run(options, REFERENCE_SCRIPT, &reference_args())?;
    let trivial = run(options, TRIVIAL_SCRIPT, &["1".into(), "{m:__rand_int__}".into()])?;
    println!("reference.lua EVALSHA: {reference:.0} calls/s");
    println!("trivial EVALSHA (return 1): {trivial:.0} calls/s");
    println!("reference / trivial: {:.3}", reference / trivial);
    Ok(())
}
