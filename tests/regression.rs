//! A program that uses none of the member-lifecycle keys scores exactly as
//! the engine did before they existed: generated streams (`loadtest
//! generate`, four months of events, refunds, redemptions, repeats, invalid
//! lines) scored by that earlier engine are kept under `tests/regression/part1/`,
//! and the current binary must reproduce them byte for byte. Every line
//! also passes `docs/schema/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::schema::{assert_dead_letter_valid, assert_reward_valid};

fn check(case: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regression/part1");
    let out = tempfile::tempdir().expect("tempdir");
    let status = Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
        .arg("score")
        .arg("--rules")
        .arg(dir.join(format!("{case}.toml")))
        .arg("--input")
        .arg(dir.join(format!("{case}-events.jsonl")))
        .arg("--output")
        .arg(out.path().join("rewards.jsonl"))
        .arg("--dlq")
        .arg(out.path().join("dlq.jsonl"))
        .status()
        .expect("run loyalty-scorer");
    assert!(status.success());
    let outputs: [(_, _, fn(&Value)); 2] = [
        ("rewards.jsonl", "expected-rewards.jsonl", assert_reward_valid),
        ("dlq.jsonl", "expected-dlq.jsonl", assert_dead_letter_valid),
    ];
    for (got, want, assert_valid) in outputs {
        let got = std::fs::read_to_string(out.path().join(got)).expect("output");
        let want = std::fs::read_to_string(dir.join(format!("{case}-{want}"))).expect("expected");
        for line in got.lines() {
            assert_valid(&serde_json::from_str(line).unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {line}")));
        }
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{case}: line {} of {want}", n + 1);
        }
        assert_eq!(got.lines().count(), want.lines().count(), "{case}: lines of {want}");
    }
}

#[test]
fn supermarket_program() {
    check("acme");
}

#[test]
fn coalition_program() {
    check("citypoints");
}

#[test]
fn rolling_tiers_budgets_caps_and_stamp_cards() {
    check("rolling");
}
