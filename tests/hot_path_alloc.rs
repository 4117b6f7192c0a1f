//! Scoring a purchase allocates nothing once warm (birthday bonuses aside,
//! see below): decoding it, evaluating it against the member's state in the
//! embedded store, and encoding its reward event, the per-event work
//! `benches/engine.rs` times, all reuse memory kept from earlier events.
//!
//! "Warm" means the member is known and has been scoring for a few simulated
//! years, with the benchmark's payloads (`benches/data/purchases.jsonl`, 1-8
//! items) and programs (`config/rules/acme.toml`, and its lifecycle variant
//! with pending points, end-of-year and inactivity expiry and a birthday
//! rule, every birthday known), event times one hour apart as in the
//! benchmark. Until then a member's state grows to its working size: its
//! first state and stamp card, lots and day counters up to the longest the
//! program keeps.
//!
//! The exact bound, per event once warm:
//!
//! - no allocation, except for an event that awards a birthday bonus: the
//!   member's record of that year names the rule, a string. It reuses the
//!   string of a record that drops out (older than the three years kept), so
//!   it allocates only when the member's number of records grows (a member
//!   who skipped a birthday has fewer), plus the list of records itself on
//!   the member's first birthday bonus: at most 2, at most once a year per
//!   member;
//! - keeping the outcome (the `score` command and the daemon keep every
//!   outcome for repeats and refunds, the benchmark does not) costs exactly
//!   one more: the encoded record itself.
//!
//! Its own test binary, because it installs a counting global allocator
//! (`tests/alloc_support`).

#![allow(unsafe_code, reason = "a global allocator is an unsafe impl; it only delegates to System")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod alloc_support;

use std::hint::black_box;
use std::sync::Arc;

use alloc_support::{allocations, so_far};
use loyalty_scorer::decode::{DEFAULT_MAX_MESSAGE_BYTES, Decoder};
use loyalty_scorer::event::Micros;
use loyalty_scorer::outcome::{Line, RewardView};
use loyalty_scorer::output::write_reward;
use loyalty_scorer::rules::engine::{Outcome, Settings, apply};
use loyalty_scorer::rules::{Program, ProgramSet, load};
use loyalty_scorer::state::StateStore;
use loyalty_scorer::state::codec::StoredEvent;
use loyalty_scorer::state::memory::MemoryStore;

const PAYLOADS: &str = include_str!("../benches/data/purchases.jsonl");

/// 2026-11-01T00:00:00Z, the benchmark's first event time.
const START: Micros = Micros(1_793_491_200_000_000);
const HOUR: i64 = 3_600_000_000;
const YEAR: i64 = 24 * 365;

/// The benchmark's loop, with the outcome's record encoded besides.
struct Scoring {
    programs: ProgramSet,
    program: Arc<Program>,
    settings: Settings,
    decoder: Decoder,
    store: MemoryStore,
    outcome: Outcome,
    reward: Vec<u8>,
    payloads: Vec<&'static [u8]>,
    /// Events scored so far; the next one happens `n + 1` hours after START.
    n: i64,
}

/// Allocations of scored events: the hot path, and encoding the records kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    scored: u64,
    hot_path: u64,
    record: u64,
    /// Events that awarded a birthday bonus, and their hot-path allocations.
    birthdays: u64,
    birthday_allocations: u64,
    /// Events that expired points.
    expiring: u64,
    /// The most allocations of one event's hot path.
    worst: u64,
}

impl Scoring {
    fn new(rules: &str, birthdays: bool) -> Self {
        let program = Arc::new(load::load_str("rules.toml", rules).unwrap());
        let programs = ProgramSet::new(vec![program.clone()]).unwrap();
        let payloads: Vec<&'static [u8]> = PAYLOADS.lines().map(str::as_bytes).collect();
        let mut decoder = Decoder::new(DEFAULT_MAX_MESSAGE_BYTES);
        let mut store = MemoryStore::new();
        if birthdays {
            // As the benchmark: November birthdays, so windows open and close
            // as the simulated years go by.
            for (n, payload) in payloads.iter().enumerate() {
                if let Some(member) = decoder.decode(payload, &programs).unwrap().member_id {
                    store.member(&program.id, member).0.birthday = Some((11, (n % 28) as u8 + 1));
                }
            }
        }
        Self {
            programs,
            program,
            settings: Settings::default(),
            decoder,
            store,
            outcome: Outcome::default(),
            reward: Vec::with_capacity(2048),
            payloads,
            n: 0,
        }
    }

    /// Scores the next `events` payloads, counting allocations.
    fn score(&mut self, events: i64) -> Counts {
        let mut counts = Counts::default();
        for _ in 0..events {
            let payload = self.payloads[(self.n as usize) % self.payloads.len()];
            self.n += 1;
            let at = Micros(START.0 + self.n * HOUR);
            let (all, record) = allocations(|| self.score_one(payload, at));
            if let Some(record) = record {
                let hot_path = all - record;
                counts.scored += 1;
                counts.record += record;
                counts.hot_path += hot_path;
                counts.expiring += u64::from(self.outcome.lines.iter().any(|(line, _)| *line == Line::Expired));
                if !self.outcome.birthdays.is_empty() {
                    counts.birthdays += 1;
                    counts.birthday_allocations += hot_path;
                }
                counts.worst = counts.worst.max(hot_path);
            }
        }
        counts
    }

    /// Scores one payload at `at`; returns the allocations of encoding its
    /// record, or `None` for an anonymous purchase (not scored).
    fn score_one(&mut self, payload: &[u8], at: Micros) -> Option<u64> {
        let Self { programs, program, settings, decoder, store, outcome, reward, .. } = self;
        let mut event = decoder.decode(payload, programs).expect("the benchmark's payloads are valid");
        event.occurred_at = at;
        let member = event.member_id?;
        let (state, budgets) = store.member(&program.id, member);
        apply(program, settings, state, budgets, &event, outcome);
        reward.clear();
        let view = RewardView::new(program, &event, outcome);
        write_reward(reward, program, event.event_id, member, &view);
        black_box(&reward);
        let before = so_far();
        let record = StoredEvent::encode(event.occurred_at, &view, outcome.purchase.as_ref());
        black_box(&record);
        Some(so_far() - before)
    }
}

/// Scores through the first pass of the payloads (new members), four
/// simulated years, then counts two more.
fn warm_counts(rules: &str, birthdays: bool) -> Counts {
    let mut scoring = Scoring::new(rules, birthdays);
    let first = scoring.score(scoring.payloads.len() as i64);
    // The counter does count: new members' states allocate.
    assert!(first.hot_path > 0, "{first:?}");
    scoring.score(4 * YEAR);
    let warm = scoring.score(2 * YEAR);
    assert!(warm.scored > 10_000, "{warm:?}");
    assert_eq!(warm.record, warm.scored, "one allocation per kept record: {warm:?}");
    // The states did change all along, not only grow.
    assert!(warm.expiring > 500, "{warm:?}");
    warm
}

#[test]
fn warm_scoring_allocates_nothing() {
    let warm = warm_counts(include_str!("../config/rules/acme.toml"), false);
    assert_eq!(warm.hot_path, 0, "allocations while scoring warm: {warm:?}");
}

#[test]
fn warm_scoring_with_the_member_lifecycle_allocates_only_for_birthdays() {
    let warm = warm_counts(include_str!("../benches/data/acme-lifecycle.toml"), true);
    assert_eq!(warm.hot_path, warm.birthday_allocations, "allocations outside birthday bonuses: {warm:?}");
    assert!(warm.worst <= 2, "{warm:?}");
    // Every member has a birthday: bonuses are awarded, and most of them
    // reuse the string of a record that dropped out.
    assert!(warm.birthdays > 100, "{warm:?}");
    assert!(warm.birthday_allocations * 2 < warm.birthdays, "{warm:?}");
}
