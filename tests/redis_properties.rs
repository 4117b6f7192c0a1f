//! The embedded store and Redis give the same results (proptest): a
//! generated stream scored one event at a time against a `MemoryStore` and
//! in batches of generated sizes against a `RedisStore` on a real
//! `redis-server` emits the same reward lines and dead letters, and leaves
//! the same member states and budget spend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use loyalty_scorer::batch::BatchScorer;
use loyalty_scorer::pipeline::Scorer;
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::model::Caps;
use loyalty_scorer::rules::{Program, ProgramSet, load};
use loyalty_scorer::state::memory::MemoryStore;
use loyalty_scorer::state::redis::RedisStore;
use loyalty_scorer::state::{BatchStore, MemberKey, MemberState};
use support::lines::Lines;
use support::redis::{RedisServer, Reply};
use support::streams::{lifecycle_program, lifecycle_step, render_with};

/// Enough cases to meet every kind of step and rule many times over, few
/// enough that a debug build runs them in seconds.
const CASES: u32 = 48;

/// Lines slipped into a stream: the decoder refuses all but the last (one
/// per reason, for the dead-letter path); the last refunds an id no event has.
const EXTRA: &[&str] = &[
    "not json at all",
    r#"{"member_id":"M1","occurred_at":"2026-03-01T10:00:00Z","currency":"EUR","total":"1.00"}"#,
    r#"{"event_id":"J1","kind":"gift","member_id":"M1","occurred_at":"2026-03-01T10:00:00Z"}"#,
    r#"{"event_id":"J2","member_id":"M2","occurred_at":"2026-03-01T10:00:00Z","currency":"EUR","total":"-3.00"}"#,
    r#"{"event_id":"J3","kind":"refund","member_id":"M0","occurred_at":"2026-03-01T10:00:00Z","currency":"EUR","total":"1.00"}"#,
    r#"{"event_id":"J4","kind":"refund","original_event_id":"NONE","member_id":"M1","occurred_at":"2026-03-01T10:00:00Z","currency":"EUR","total":"5.00"}"#,
];

fn golden(name: &str) -> Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name).join("rules.toml");
    load::load_str("rules.toml", &std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `program` with its caps or its budgets, not both. When a cap cuts an
/// event's award, the batch path reserves budget for the cut award, and a
/// later evaluation of the member (after another rule's grant fell short)
/// stays capped by that grant where one-at-a-time scoring would award more.
fn caps_or_budgets(mut program: Program, keep_caps: bool) -> Program {
    let budgeted = program.rules.iter().any(|r| r.budget_points.is_some());
    if budgeted && program.caps != Caps::default() {
        if keep_caps {
            program.rules.iter_mut().for_each(|r| r.budget_points = None);
        } else {
            program.caps = Caps::default();
        }
    }
    program
}

/// The stream's lines with extra lines slipped in at the drawn places.
fn with_extra(mut lines: Vec<String>, extra: &[(prop::sample::Index, usize)]) -> Vec<String> {
    for (at, which) in extra {
        lines.insert(at.index(lines.len() + 1), EXTRA[*which].to_owned());
    }
    lines
}

/// One event at a time through the single-event path, as `--state memory` scores.
fn score_in_memory(programs: &ProgramSet, lines: &[String]) -> (Lines, Scorer<MemoryStore>) {
    let mut scorer = Scorer::new(programs.clone(), Settings::default(), 65536, MemoryStore::new());
    let mut sink = Lines::default();
    for (n, line) in lines.iter().enumerate() {
        scorer.score(n as u64 + 1, line.as_bytes(), &mut sink).expect("score");
    }
    (sink, scorer)
}

/// In batches of `sizes` (cycled) through the batch path against `store`.
async fn score_in_redis(programs: &ProgramSet, lines: &[String], sizes: &[usize], store: &mut RedisStore) -> Lines {
    let mut scorer = BatchScorer::new(programs.clone(), Settings::default(), 65536).unwrap();
    let mut sink = Lines::default();
    let numbered: Vec<(u64, &[u8])> = lines.iter().enumerate().map(|(n, l)| (n as u64 + 1, l.as_bytes())).collect();
    let mut rest = &numbered[..];
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at((*size).min(rest.len()));
        scorer.score_batch(store, batch, &mut sink).await.unwrap();
        rest = after;
    }
    sink
}

/// The first place two lists of lines differ, with both lines.
fn same_lines(what: &str, memory: &[Value], redis: &[Value]) -> Result<(), TestCaseError> {
    if let Some(n) = (0..memory.len().min(redis.len())).find(|&n| memory[n] != redis[n]) {
        return Err(TestCaseError::fail(format!("{what} {n} differs:\n memory: {}\n redis:  {}", memory[n], redis[n])));
    }
    prop_assert_eq!(memory.len(), redis.len(), "number of {}", what);
    Ok(())
}

/// Points spent per budget key, as the memory store counts them (zeros left out).
fn budgets_in_memory(store: &MemoryStore, prefix: &str) -> BTreeMap<String, i64> {
    store
        .budgets()
        .filter(|(_, _, points)| *points != 0)
        .map(|(program, rule, points)| (format!("{prefix}:{{{program}:budget:{rule}}}"), points))
        .collect()
}

/// Points spent per budget key matching `pattern`, as Redis holds them (zeros left out).
fn budgets_in_redis(server: &RedisServer, pattern: &str) -> BTreeMap<String, i64> {
    let Reply::Array(Some(keys)) = server.call(&["KEYS", pattern]) else { panic!("KEYS {pattern}") };
    keys.iter()
        .map(|key| key.expect_text("key"))
        .map(|key| {
            let spent = server.call(&["HGET", &key, "spent"]).expect_text("spent").parse::<i64>().unwrap();
            (key, spent)
        })
        .filter(|(_, spent)| *spent != 0)
        .collect()
}

#[test]
fn memory_and_redis_states_give_the_same_outputs() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let programs = prop_oneof![
        4 => (lifecycle_program(), any::<bool>()).prop_map(|(program, keep_caps)| caps_or_budgets(program, keep_caps)),
        1 => Just(golden("basic")),
        1 => Just(golden("lifecycle")),
    ];
    // Program, events, spread over a year or not, extra lines, batch sizes.
    let cases = (
        programs,
        prop::collection::vec(lifecycle_step(), 1..60),
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), 0..EXTRA.len()), 0..4),
        prop::collection::vec(1usize..=64, 1..4),
    );
    let config = Config { cases: CASES, max_shrink_iters: 512, source_file: Some(file!()), ..Config::default() };
    let mut runner = TestRunner::new(config);
    let case = Cell::new(0u32);
    let result = runner.run(&cases, |(program, steps, spread, extra, sizes)| {
        // A prefix per case (and per shrinking step): no case sees another's members.
        case.set(case.get() + 1);
        let prefix = format!("prop{}", case.get());
        let programs = ProgramSet::new(vec![Arc::new(program)]).unwrap();
        let lines = with_extra(render_with(&steps, spread), &extra);

        let (memory, scorer) = score_in_memory(&programs, &lines);
        let mut store = runtime.block_on(RedisStore::connect(&server.url(), &prefix)).unwrap();
        let redis = runtime.block_on(score_in_redis(&programs, &lines, &sizes, &mut store));
        same_lines("reward", &memory.rewards, &redis.rewards)?;
        same_lines("dead letter", &memory.dead, &redis.dead)?;

        // The states behind the lines, apart from the records: a load brings
        // only the records it names, and the batch path stamps them with
        // wall-clock time.
        let members: Vec<(MemberKey, MemberState)> = scorer
            .store()
            .iter()
            .map(|(p, m, s)| (MemberKey { program: p.to_owned(), member: m.to_owned() }, s.without_records()))
            .collect();
        let keys: Vec<MemberKey> = members.iter().map(|(k, _)| k.clone()).collect();
        let loaded = runtime.block_on(store.load(&keys, &[])).unwrap();
        for ((key, want), got) in members.iter().zip(&loaded) {
            // The horizon of the last record sweep is a shared store's own
            // bookkeeping: the embedded store sweeps by event time instead.
            let got = MemberState { records_swept: 0, ..got.state.clone() };
            prop_assert_eq!(&got, want, "state of {:?}", key);
        }
        let pattern = format!("{prefix}:{{*:budget:*}}");
        prop_assert_eq!(budgets_in_redis(&server, &pattern), budgets_in_memory(scorer.store(), &prefix));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
