//! The batch path (decode all -> load -> evaluate -> versioned write ->
//! emit) against the embedded store: the contract's examples at every batch
//! size, and members changed by another scorer between load and write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use loyalty_scorer::batch::BatchScorer;
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::{ProgramSet, load};
use loyalty_scorer::state::memory::MemoryStore;
use loyalty_scorer::state::{BatchStore, MemberKey, Reservation, StoreError, Versioned, Write};
use support::lines::Lines;

fn example(name: &str) -> (ProgramSet, Vec<String>, Vec<Value>, Vec<Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let program = load::load_str("rules.toml", &read("rules.toml")).unwrap();
    let programs = ProgramSet::new(vec![Arc::new(program)]).unwrap();
    let json = |text: String| -> Vec<Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("rules_version");
                }
                v
            })
            .collect()
    };
    let events = read("events.jsonl").lines().map(str::to_owned).collect();
    (programs, events, json(read("expected-rewards.jsonl")), json(read("expected-dlq.jsonl")))
}

async fn score<S: BatchStore>(programs: &ProgramSet, lines: &[String], size: usize, store: &mut S) -> Lines {
    let mut scorer = BatchScorer::new(programs.clone(), Settings::default(), 65536).unwrap();
    let mut sink = Lines::default();
    let numbered: Vec<(u64, &[u8])> = lines.iter().enumerate().map(|(n, l)| (n as u64 + 1, l.as_bytes())).collect();
    for chunk in numbered.chunks(size) {
        scorer.score_batch(store, chunk, &mut sink).await.unwrap();
    }
    for r in &mut sink.rewards {
        r.as_object_mut().unwrap().remove("rules_version");
    }
    sink
}

#[tokio::test]
async fn examples_at_every_batch_size() {
    for name in ["basic", "coalition", "lifecycle"] {
        let (programs, events, rewards, dead) = example(name);
        for size in [1, 2, 3, 7, 64] {
            let out = score(&programs, &events, size, &mut MemoryStore::new()).await;
            assert_eq!(out.rewards, rewards, "{name} in batches of {size}");
            assert_eq!(out.dead, dead, "{name} in batches of {size}");
        }
    }
}

#[tokio::test]
async fn a_budget_is_never_overspent_and_charged_once_per_event() {
    // Coalition: weekend-breakfast has a budget of 100 points across all members.
    let (programs, events, ..) = example("coalition");
    let mut store = MemoryStore::new();
    let first = score(&programs, &events, 2, &mut store).await;
    let awarded = |lines: &Lines| -> i64 {
        lines
            .rewards
            .iter()
            .flat_map(|r| r["breakdown"].as_array().unwrap().clone())
            .filter(|l| l["rule"] == "weekend-breakfast")
            .map(|l| l["points"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(awarded(&first), 100);
    // The same events again (a replay after a crash): all repeats, nothing charged again.
    let again = score(&programs, &events, 5, &mut store).await;
    assert_eq!(again.rewards, first.rewards);
    let spent: Vec<(String, String, i64)> = store.budgets().map(|(p, r, v)| (p.to_owned(), r.to_owned(), v)).collect();
    assert_eq!(spent, vec![("citypoints".to_owned(), "weekend-breakfast".to_owned(), 100)]);
}

#[tokio::test]
async fn a_budget_that_runs_out_in_a_batch_goes_to_the_earlier_events() {
    let rules = "[program]\nid = \"p\"\ncurrency = \"EUR\"\npoints_per_unit = \"0\"\n\n\
        [[rules]]\nid = \"bonus\"\nkind = \"basket_threshold\"\nmin_spend = \"0\"\nbonus_points = 10\nbudget_points = 15\n";
    let programs = ProgramSet::new(vec![Arc::new(load::load_str("rules.toml", rules).unwrap())]).unwrap();
    let event = |id: &str, member: &str| {
        format!(
            r#"{{"event_id":"{id}","member_id":"{member}","occurred_at":"2026-03-01T10:00:00Z","currency":"EUR","total":"1.00"}}"#
        )
    };
    // A appears first in the batch, but B's purchase comes before A's.
    let profile = r#"{"event_id":"P","kind":"profile","member_id":"A","occurred_at":"2026-03-01T09:00:00Z"}"#;
    let lines = vec![profile.to_owned(), event("B1", "B"), event("A1", "A")];
    let points = |out: &Lines| -> Vec<i64> { out.rewards.iter().map(|r| r["points"].as_i64().unwrap()).collect() };
    let one_at_a_time = score(&programs, &lines, 1, &mut MemoryStore::new()).await;
    assert_eq!(points(&one_at_a_time), [0, 10, 5]);
    let batched = score(&programs, &lines, 3, &mut MemoryStore::new()).await;
    assert_eq!(points(&batched), points(&one_at_a_time));
}

/// A store where another scorer changes a member between this scorer's
/// load and its write, once per member (it credits 1,000 points of its own):
/// every first write loses the race.
struct Raced {
    inner: MemoryStore,
    raced: Vec<MemberKey>,
}

impl BatchStore for Raced {
    async fn load(&mut self, keys: &[MemberKey], records: &[Vec<&str>]) -> Result<Vec<Versioned>, StoreError> {
        self.inner.load(keys, records).await
    }

    async fn apply(&mut self, writes: &[Write<'_>]) -> Result<Vec<bool>, StoreError> {
        for w in writes {
            if !self.raced.contains(w.key) {
                self.raced.push(w.key.clone());
                let mut other = self.inner.load(std::slice::from_ref(w.key), &[]).await?.remove(0);
                // Earned in 2030: newer than every lot of the examples, so it
                // never expires there and is spent last.
                let at = loyalty_scorer::event::Micros(1_900_000_000_000_000);
                other
                    .state
                    .credit(1000, loyalty_scorer::state::Lot { earned_at: at, month: 0, release_at: at, points: 0 });
                assert!(
                    self.inner
                        .apply(&[Write { state: &other.state, expected: other.version, records: &[], ..*w }])
                        .await?[0]
                );
            }
        }
        self.inner.apply(writes).await
    }

    async fn reserve(&mut self, reservations: &[Reservation<'_>]) -> Result<Vec<i64>, StoreError> {
        self.inner.reserve(reservations).await
    }
}

#[tokio::test]
async fn a_lost_race_reloads_and_evaluates_again_on_the_winners_state() {
    let (programs, events, rewards, _) = example("basic");
    let mut store = Raced { inner: MemoryStore::new(), raced: Vec::new() };
    let out = score(&programs, &events, 64, &mut store).await;
    assert_eq!(out.rewards.len(), rewards.len());
    for (got, want) in out.rewards.iter().zip(&rewards) {
        // Same points, on top of the other scorer's 1,000: nothing lost, nothing doubled.
        assert_eq!(got["points"], want["points"], "{got}");
        assert_eq!(got["balance"].as_i64().unwrap(), want["balance"].as_i64().unwrap() + 1000, "{got}");
    }
    let states = store.inner.load(&store.raced.clone(), &[]).await.unwrap();
    assert_eq!(states.len(), 3, "M1, M2, M3");
    assert!(states.iter().all(|v| v.version == 2), "the other scorer's write, then this one's");
}

#[test]
fn records_expire_a_retention_window_of_wall_clock_after_they_were_written() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (programs, ..) = example("basic");
    let now = Arc::new(AtomicU64::new(1_800_000_000));
    let clock = now.clone();
    let mut scorer = BatchScorer::new(programs, Settings { retention_days: 90 }, 65536)
        .unwrap()
        .with_clock(move || clock.load(Ordering::Relaxed));
    let mut store = MemoryStore::new();
    let purchase = |id: &str| {
        format!(
            r#"{{"event_id":"{id}","member_id":"M1","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"10"}}"#
        )
    };
    let run = |line: String, scorer: &mut BatchScorer, store: &mut MemoryStore| {
        let mut sink = Lines::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(scorer.score_batch(store, &[(1, line.as_bytes())], &mut sink)).unwrap();
        sink.rewards.remove(0)
    };
    let first = run(purchase("A"), &mut scorer, &mut store);
    // 90 days later A is still known: its repeat re-emits the same reward.
    now.fetch_add(90 * 86_400, Ordering::Relaxed);
    assert_eq!(run(purchase("A"), &mut scorer, &mut store), first);
    // A write one second later drops A's record; a redelivery of A now is
    // outside the contract's window and is scored as new.
    now.fetch_add(1, Ordering::Relaxed);
    run(purchase("B"), &mut scorer, &mut store);
    let again = run(purchase("A"), &mut scorer, &mut store);
    // 500 welcome + 10 (A), + 10 (B), + 10 (A scored again).
    assert_eq!((first["balance"].as_i64(), again["balance"].as_i64()), (Some(510), Some(530)), "{again}");
}

#[tokio::test]
async fn a_reload_keeps_re_emitting_outcomes_scored_under_the_rules_it_replaced() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/basic");
    let text = std::fs::read_to_string(dir.join("rules.toml")).unwrap();
    let set = |text: &str| ProgramSet::new(vec![Arc::new(load::load_str("rules.toml", text).unwrap())]).unwrap();
    let old = set(&text);
    // The same program with another base rate: another rules_version.
    let changed = text.replacen("points_per_unit = \"", "points_per_unit = \"2", 1);
    let new = set(&changed);
    let (old_version, new_version) = (old.get(0).unwrap().version.clone(), new.get(0).unwrap().version.clone());
    assert_ne!(old_version, new_version, "the edit must change the rules");

    let mut scorer = BatchScorer::new(old, Settings::default(), 65536).unwrap();
    let mut store = MemoryStore::new();
    let purchase = |id: &str| {
        format!(
            r#"{{"event_id":"{id}","member_id":"M1","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"10"}}"#
        )
    };
    let mut run = async |line: String, scorer: &mut BatchScorer| {
        let mut sink = Lines::default();
        scorer.score_batch(&mut store, &[(1, line.as_bytes())], &mut sink).await.unwrap();
        sink.rewards.remove(0)
    };
    let first = run(purchase("A"), &mut scorer).await;
    scorer.reload(new);
    // A's repeat is the very same reward event, version and all.
    assert_eq!(run(purchase("A"), &mut scorer).await, first);
    assert_eq!(first["rules_version"], old_version.as_str());
    let next = run(purchase("B"), &mut scorer).await;
    assert_eq!(next["rules_version"], new_version.as_str());
    assert_ne!(next["points"], first["points"], "{next} {first}");
}
