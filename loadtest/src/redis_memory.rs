//! `loadtest redis-memory --port P --members N`: what a typical member costs
//! in Redis.
//!
//! Builds one typical member through the real engine (`BatchScorer` over a
//! `MemoryStore`): a 20-byte member id, 12 purchases over a year (one a
//! month), 2 items each (one in the stamp card's category), 20-byte event
//! ids, in a program with a rolling tier (12 months, 3 tiers), one stamp
//! card and a 365-day expiry. Then writes N copies of it under distinct
//! 20-byte member ids, in the Redis store's layout (the state string `SET
//! <prefix>:{<program>:<member>} <version><encode_state>` and the records
//! hash `HSET <prefix>:{<program>:<member>}:r "" <horizon> <event id>
//! <record> ...`), pipelined, and reports `MEMORY USAGE` of each (mean over 100
//! members), the `used_memory` delta per member, and the encoded sizes.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use loyalty_scorer::batch::BatchScorer;
use loyalty_scorer::decode::DEFAULT_MAX_MESSAGE_BYTES;
use loyalty_scorer::pipeline::{Disposition, Sink};
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::{ProgramSet, load};
use loyalty_scorer::state::MemberState;
use loyalty_scorer::state::codec::encode_state;
use loyalty_scorer::state::memory::MemoryStore;
use loyalty_scorer::state::redis::stored_state;

use crate::resp::{Conn, Reply, info_field};

/// The program of the typical member.
const RULES: &str = r#"
[program]
id = "shop"
currency = "EUR"
timezone = "Europe/Berlin"
points_per_unit = "1"
rounding = "floor"

[[tiers]]
name = "basic"
threshold = "0"
multiplier = "1"

[[tiers]]
name = "silver"
threshold = "500"
multiplier = "1.25"

[[tiers]]
name = "gold"
threshold = "1500"
multiplier = "1.5"

[tier_qualification]
basis = "rolling"
window_months = 12
downgrade = "immediate"

[[rules]]
id = "coffee-card"
kind = "stamp_card"
categories = ["coffee"]
count = "purchases"
stamps_required = 10
gift = "free-coffee"

[expiry]
points_ttl_days = 365
"#;

const PROGRAM: &str = "shop";
const PREFIX: &str = "ls";

#[derive(Debug, Args)]
pub struct Options {
    /// Port of the redis-server on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// How many copies of the typical member to write.
    #[arg(long, default_value_t = 100_000)]
    pub members: u64,
    /// Commands per pipeline.
    #[arg(long, default_value_t = 10_000)]
    pub chunk: u64,
}

/// Member id number `i`, 20 bytes.
fn member_id(i: u64) -> String {
    format!("member-{i:013}")
}

struct Discard;

impl Sink for Discard {
    fn accept(&mut self, _position: u64, _message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        match disposition {
            Disposition::Scored { .. } => Ok(()),
            _ => Err(io::Error::other("a purchase of the typical member was not scored")),
        }
    }
}

/// The typical member's state, scored through the real engine.
fn typical_member() -> anyhow::Result<MemberState> {
    let program = load::load_str("typical.toml", RULES).map_err(|d| anyhow::anyhow!("rules: {d:?}"))?;
    let programs = ProgramSet::new(vec![Arc::new(program)]).context("one program")?;
    let mut scorer =
        BatchScorer::new(programs, Settings::default(), DEFAULT_MAX_MESSAGE_BYTES).map_err(|e| anyhow::anyhow!(e))?;
    let member = member_id(0);
    let mut payloads = Vec::new();
    for month in 1..=12u32 {
        let event_id = format!("evt-{:016}", 7_000_000 + u64::from(month) * 37);
        let coffee = format!("{}.{:02}", 3 + month % 3, 10 + month * 7 % 80);
        let grocery = format!("{}.{:02}", 20 + month * 13 % 50, month * 11 % 100);
        let total =
            format!("{:.2}", coffee.parse::<f64>().unwrap_or_default() + grocery.parse::<f64>().unwrap_or_default());
        payloads.push(format!(
            concat!(
                r#"{{"event_id":"{event_id}","member_id":"{member}","merchant_id":"shop","store_id":"S042","#,
                r#""channel":"store","occurred_at":"2025-{month:02}-15T10:{minute:02}:00Z","currency":"EUR","#,
                r#""total":"{total}","items":[{{"sku":"COF-1","category":"coffee","quantity":1,"amount":"{coffee}"}},"#,
                r#"{{"sku":"GRO-{month}","category":"grocery","quantity":1,"amount":"{grocery}"}}]}}"#
            ),
            event_id = event_id,
            member = member,
            month = month,
            minute = month * 3,
            total = total,
            coffee = coffee,
            grocery = grocery,
        ));
    }
    let batch: Vec<(u64, &[u8])> = payloads.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.as_bytes())).collect();
    let mut store = MemoryStore::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().context("runtime")?;
    rt.block_on(scorer.score_batch(&mut store, &batch, &mut Discard)).context("scoring the typical member")?;
    let state = store.iter().find(|(_, m, _)| *m == member).map(|(_, _, s)| s.clone());
    state.context("the typical member has no state")
}

/// Encoded size of the state with some part removed: what that part takes.
fn without(state: &MemberState, full: usize, strip: impl FnOnce(&mut MemberState)) -> usize {
    let mut s = state.clone();
    strip(&mut s);
    full - encode_state(&s).len()
}

fn used_memory(conn: &mut Conn) -> anyhow::Result<i64> {
    let info = conn.must(&[b"INFO", b"memory"])?.text().context("INFO memory")?;
    info_field(&info, "used_memory").context("used_memory")?.parse().context("used_memory")
}

pub fn main(options: &Options) -> anyhow::Result<()> {
    let state = typical_member()?;
    let base = encode_state(&state);
    let base_len = base.len();
    let records = state.events.len();
    if records != 12 {
        bail!("the typical member has {records} event records, not 12");
    }
    let record_bytes: usize = state.events.values().map(|r| r.0.len()).sum();
    let id_bytes: usize = state.events.keys().map(|k| k.len()).sum();
    let longest = state.events.values().map(|r| r.0.len()).max().unwrap_or(0);

    println!(
        "typical member: tier {:?}, {} lots, {} pending, {} monthly spends, {} daily earned, {} stamps entries, {} records",
        state.tier,
        state.lots.len(),
        state.pending.len(),
        state.monthly_spend.len(),
        state.daily_earned.len(),
        state.stamps.len(),
        records
    );
    println!("encoded state (encode_state, records apart): {base_len} bytes");
    println!(
        "  of it: lots {} B, monthly_spend {} B, daily_earned {} B, lifetime_spend {} B, tier {} B, stamps {} B",
        without(&state, base_len, |s| s.lots = VecDeque::new()),
        without(&state, base_len, |s| s.monthly_spend.clear()),
        without(&state, base_len, |s| s.daily_earned.clear()),
        without(&state, base_len, |s| s.lifetime_spend = Default::default()),
        without(&state, base_len, |s| s.tier.clear()),
        without(&state, base_len, |s| s.stamps.clear()),
    );
    println!(
        "event records: {:.1} bytes of record + {:.1} of event id per stored purchase outcome (longest record {longest})",
        record_bytes as f64 / records as f64,
        id_bytes as f64 / records as f64,
    );

    let mut conn = Conn::open("127.0.0.1", options.port).context("connecting")?;
    let before = used_memory(&mut conn)?;
    let keys_before = conn.must(&[b"DBSIZE"])?;
    let started = Instant::now();
    let horizon = b"1790000000";
    let value = stored_state(1, &state);
    let mut i = 0;
    while i < options.members {
        let end = (i + options.chunk).min(options.members);
        for n in i..end {
            let key = state_key(1_000_000_000 + n);
            conn.send(&[b"SET", key.as_bytes(), &value])?;
            let records_key = format!("{key}:r");
            let mut fields: Vec<&[u8]> = vec![b"HSET", records_key.as_bytes(), b"", horizon];
            for (id, record) in &state.events {
                fields.extend([id.as_bytes(), &record.0]);
            }
            conn.send(&fields)?;
        }
        conn.flush()?;
        for _ in i..end {
            match conn.read()? {
                Reply::Status(ok) if ok == "OK" => {}
                other => bail!("SET answered {other:?}"),
            }
            match conn.read()? {
                Reply::Int(n) if n == records as i64 + 1 => {}
                other => bail!("HSET answered {other:?} (are the keys already there? use an empty server)"),
            }
        }
        i = end;
    }
    let elapsed = started.elapsed();
    // Let the server finish any incremental rehash of its key space.
    std::thread::sleep(Duration::from_millis(1500));
    let after = used_memory(&mut conn)?;
    let n = options.members;
    println!(
        "wrote {n} members in {:.1} s ({:.0} members/s), DBSIZE before {:?}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        keys_before
    );

    let sample = 100.min(n);
    let (mut state_usage, mut records_usage) = (0i64, 0i64);
    for k in 0..sample {
        let key = state_key(1_000_000_000 + k * (n / sample));
        for (name, total) in [(key.clone(), &mut state_usage), (format!("{key}:r"), &mut records_usage)] {
            match conn.must(&[b"MEMORY", b"USAGE", name.as_bytes(), b"SAMPLES", b"0"])? {
                Reply::Int(b) => *total += b,
                other => bail!("MEMORY USAGE answered {other:?}"),
            }
        }
    }
    let key = state_key(1_000_000_000);
    let encoding = |name: &str, conn: &mut Conn| -> String {
        conn.must(&[b"OBJECT", b"ENCODING", name.as_bytes()]).ok().and_then(|r| r.text()).unwrap_or_default()
    };
    let (state_encoding, records_encoding) = (encoding(&key, &mut conn), encoding(&format!("{key}:r"), &mut conn));
    let state_usage = state_usage as f64 / sample as f64;
    let per_record = records_usage as f64 / sample as f64 / records as f64;
    println!("keys: {key} ({} bytes, {state_encoding}) and {key}:r ({records_encoding})", key.len());
    println!(
        "MEMORY USAGE (mean of {sample} members): state {state_usage:.1} bytes, records {per_record:.1} bytes each"
    );
    println!(
        "used_memory: {before} -> {after}, delta {} = {:.1} bytes per member (amortized, Redis overhead included)",
        after - before,
        (after - before) as f64 / n as f64
    );
    println!(
        "targets: state {base_len} B encoded, {state_usage:.0} B in Redis (< 200: {}); per stored purchase outcome {per_record:.1} B in Redis (< 100: {})",
        state_usage < 200.0,
        per_record < 100.0
    );
    Ok(())
}

/// The Redis key of member number `i`'s state.
fn state_key(i: u64) -> String {
    format!("{PREFIX}:{{{PROGRAM}:{}}}", member_id(i))
}
