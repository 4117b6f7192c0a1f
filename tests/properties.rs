//! Invariants of the engine over generated programs and streams (proptest):
//! points equal the breakdown, `balance + pending` changes by exactly
//! `points` on every event, replaying a stream changes nothing and re-emits
//! identical lines, refunding every purchase returns lifetime qualifying
//! spend to 0, and lifecycle features a stream never uses change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use loyalty_scorer::pipeline::{Disposition, Scorer, Sink};
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::model::*;
use loyalty_scorer::rules::{Program, ProgramSet};
use loyalty_scorer::state::memory::MemoryStore;
use proptest::test_runner::TestCaseError;
use support::streams::*;

#[derive(Default)]
struct Collect {
    rewards: Vec<String>,
    new: Vec<bool>,
    dead: usize,
}

impl Sink for Collect {
    fn accept(&mut self, _: u64, _: &[u8], d: Disposition<'_>) -> io::Result<()> {
        match d {
            Disposition::Scored { reward, .. } => {
                self.rewards.push(String::from_utf8_lossy(reward).into_owned());
                self.new.push(true);
            }
            Disposition::Repeat { reward, .. } => {
                self.rewards.push(String::from_utf8_lossy(reward).into_owned());
                self.new.push(false);
            }
            Disposition::Anonymous { .. } => {}
            Disposition::Dead(_) => self.dead += 1,
        }
        Ok(())
    }
}

fn scorer(program: Program) -> Scorer<MemoryStore> {
    let programs = ProgramSet::new(vec![Arc::new(program)]).expect("one program");
    Scorer::new(programs, Settings::default(), 65536, MemoryStore::new())
}

fn run(scorer: &mut Scorer<MemoryStore>, lines: &[String]) -> Collect {
    let mut sink = Collect::default();
    for (n, line) in lines.iter().enumerate() {
        scorer.score(n as u64 + 1, line.as_bytes(), &mut sink).expect("score");
    }
    sink
}

fn snapshot(store: &MemoryStore) -> BTreeMap<String, String> {
    store.iter().map(|(p, m, s)| (format!("{p}/{m}"), format!("{s:?}"))).collect()
}

fn check_points_and_replay(program: Program, lines: &[String]) -> Result<(), TestCaseError> {
    let pending_field = program.pending_days.is_some();
    let mut scorer = scorer(program);
    let first = run(&mut scorer, lines);
    prop_assert_eq!(first.dead, 0);
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for (reward, new) in first.rewards.iter().zip(&first.new) {
        let v: Value = serde_json::from_str(reward).expect("reward is JSON");
        let breakdown = v["breakdown"].as_array().expect("breakdown");
        let lines: i64 = breakdown.iter().map(|l| l["points"].as_i64().unwrap_or(0)).sum();
        prop_assert_eq!(v["points"].as_i64(), Some(lines), "points = sum of breakdown: {}", reward);
        prop_assert!(breakdown.iter().all(|l| l["points"].as_i64() != Some(0)));
        prop_assert_eq!(v.get("pending").is_some(), pending_field, "pending present iff [pending]: {}", reward);
        if *new {
            let member = v["member_id"].as_str().unwrap_or_default().to_owned();
            let sum = sums.entry(member).or_default();
            *sum += v["points"].as_i64().unwrap_or(0);
            let held = v["balance"].as_i64().unwrap_or(0) + v["pending"].as_i64().unwrap_or(0);
            prop_assert_eq!(held, *sum, "balance + pending = sum of points: {}", reward);
        }
    }
    let before = snapshot(scorer.store());
    let second = run(&mut scorer, lines);
    prop_assert_eq!(&second.rewards, &first.rewards, "a replay re-emits identical lines");
    prop_assert!(second.new.iter().all(|n| !n), "a replay scores nothing anew");
    prop_assert_eq!(snapshot(scorer.store()), before, "a replay changes no state");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn points_balance_and_replay(program in program(), steps in prop::collection::vec(step(), 1..60)) {
        check_points_and_replay(program, &render(&steps))?;
    }

    #[test]
    fn lifecycle_points_balance_pending_and_replay(
        program in lifecycle_program(),
        steps in prop::collection::vec(lifecycle_step(), 1..80),
        spread in any::<bool>(),
    ) {
        check_points_and_replay(program, &render_with(&steps, spread))?;
    }

    #[test]
    fn lifecycle_features_a_stream_never_uses_change_nothing(
        program in program(),
        steps in prop::collection::vec(step(), 1..60),
        spread in any::<bool>(),
    ) {
        // No profile ever sets a birthday, and no member is inactive for 10^6 days.
        let mut extended = program.clone();
        extended.expiry.inactivity_days = Some(1_000_000);
        extended.rules.push(Rule {
            id: "bday".into(),
            kind: RuleKind::Birthday { bonus_points: 100, window_days: 31, gift: Some("cake".into()) },
            filters: Filters::default(),
            budget_points: None,
        });
        let lines = render_with(&steps, spread);
        let plain = run(&mut scorer(program), &lines);
        let with = run(&mut scorer(extended), &lines);
        prop_assert_eq!(plain.rewards, with.rewards);
    }

    #[test]
    fn full_refunds_return_lifetime_spend_to_zero(mut program in program(), steps in prop::collection::vec(step(), 1..40)) {
        program.qualification.basis = Basis::Lifetime;
        let purchases: Vec<Step> = steps.into_iter().filter(|s| matches!(s, Step::Purchase { .. })).collect();
        let mut lines = render(&purchases);
        let refunds: Vec<String> = purchases.iter().enumerate().map(|(n, s)| {
            let Step::Purchase { member, total, .. } = s else { unreachable!() };
            json!({"event_id": format!("F{n}"), "kind": "refund", "original_event_id": format!("E{n}"),
                "member_id": format!("M{member}"), "occurred_at": "2026-04-30T12:00:00Z", "currency": "EUR",
                "total": format!("{}.{:02}", total / 100, total % 100)}).to_string()
        }).collect();
        lines.extend(refunds);
        let mut scorer = scorer(program);
        let out = run(&mut scorer, &lines);
        prop_assert_eq!(out.dead, 0);
        for (_, _, state) in scorer.store().iter() {
            prop_assert_eq!(state.lifetime_spend, Decimal::ZERO);
        }
    }
}
