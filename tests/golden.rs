//! The contract's examples, through the real binary: `score` must reproduce
//! each example's rewards and dead letters exactly, compared as JSON values
//! (`scored_at` and `rules_version` are ignored, as the contract allows).
//! Every line written and every expected line also passes `docs/schema/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::schema::{assert_dead_letter_valid, assert_reward_valid};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_loyalty-scorer")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn without_ignored(mut values: Vec<Value>) -> Vec<Value> {
    for v in &mut values {
        if let Some(o) = v.as_object_mut() {
            o.remove("scored_at");
            o.remove("rules_version");
        }
    }
    values
}

fn check(name: &str) {
    let dir = example(name);
    let out = tempfile::tempdir().expect("tempdir");
    let rewards = out.path().join("rewards.jsonl");
    let dlq = out.path().join("dlq.jsonl");
    let status = Command::new(bin())
        .arg("score")
        .arg("--rules")
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl"))
        .arg("--output")
        .arg(&rewards)
        .arg("--dlq")
        .arg(&dlq)
        .status()
        .expect("run loyalty-scorer");
    assert!(status.success(), "score exited with {status}");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let got = json_lines(&read(&rewards));
    let want = json_lines(&read(&dir.join("expected-rewards.jsonl")));
    got.iter().for_each(assert_reward_valid);
    // The examples leave `rules_version` out (comparisons ignore it); the
    // scorer always writes the one of the rules file.
    let version = loyalty_scorer::rules::load::load_file(&dir.join("rules.toml")).expect("rules").version;
    for w in &want {
        let mut w = w.clone();
        w["rules_version"] = Value::from(version.as_str());
        assert_reward_valid(&w);
    }
    let (got, want) = (without_ignored(got), without_ignored(want));
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name}: reward line {}", n + 1);
    }
    assert_eq!(got.len(), want.len(), "{name}: number of reward lines");
    let got = json_lines(&read(&dlq));
    let want = json_lines(&read(&dir.join("expected-dlq.jsonl")));
    got.iter().chain(&want).for_each(assert_dead_letter_valid);
    assert_eq!(got, want, "{name}: dead letters");
}

#[test]
fn basic_example() {
    check("basic");
}

#[test]
fn coalition_example() {
    check("coalition");
}

#[test]
fn lifecycle_example() {
    check("lifecycle");
}

#[test]
fn every_reward_carries_the_rules_version() {
    let dir = example("basic");
    let output = Command::new(bin())
        .args(["score", "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl"))
        .arg("--dlq")
        .arg("/dev/null")
        .output()
        .expect("run loyalty-scorer");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let rewards = json_lines(&text);
    rewards.iter().for_each(assert_reward_valid);
    let versions: Vec<Value> = rewards.into_iter().map(|v| v["rules_version"].clone()).collect();
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|v| v.as_str().is_some_and(|s| s.len() == 16) && *v == versions[0]), "{versions:?}");
}
