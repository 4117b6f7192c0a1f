//! The schemas under `docs/schema/` against what the scorer writes: every
//! expected output file passes them, they reject what breaks the contract,
//! their closed sets are the code's, and the JSON examples in the docs pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loyalty_scorer::decode::Reason;
use loyalty_scorer::event::Kind;
use loyalty_scorer::outcome::Line;
use loyalty_scorer::output::line_name;
use serde_json::{Value, json};
use support::schema::{
    DEAD_LETTER_SCHEMA, REWARD_SCHEMA, assert_dead_letter_valid, assert_reward_valid, dead_letter_errors, reward_errors,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display())))
        .collect()
}

/// Files under `dir` (two levels: `tests/golden/<example>/`) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The rules file an expected rewards file was scored with:
/// `<example>/rules.toml` beside `expected-rewards.jsonl`, or `<case>.toml`
/// beside `<case>-expected-rewards.jsonl`.
fn rules_beside(rewards: &Path) -> PathBuf {
    let name = rewards.file_name().and_then(|n| n.to_str()).expect("file name");
    match name.strip_suffix("-expected-rewards.jsonl") {
        Some(case) => rewards.with_file_name(format!("{case}.toml")),
        None => rewards.with_file_name("rules.toml"),
    }
}

fn schema_strings(value: &Value) -> Vec<&str> {
    value.as_array().expect("a JSON array").iter().map(|v| v.as_str().expect("a string")).collect()
}

#[test]
fn every_expected_output_file_passes_the_schemas() {
    let mut kinds = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    let mut reward_files = 0;
    for dir in ["tests/golden", "tests/regression"] {
        for path in files_ending(&root().join(dir), "expected-rewards.jsonl") {
            // The contract's examples leave `rules_version` out (comparisons
            // ignore it); the scorer always writes the one of the rules file.
            let version = loyalty_scorer::rules::load::load_file(&rules_beside(&path)).expect("rules").version;
            let lines = json_lines(&path);
            for mut reward in lines {
                if reward.get("rules_version").is_none() {
                    reward["rules_version"] = Value::from(version.as_str());
                }
                assert_reward_valid(&reward);
                kinds.insert(reward["kind"].as_str().expect("kind").to_owned());
                statuses.insert(reward["status"].as_str().expect("status").to_owned());
            }
            reward_files += 1;
        }
    }
    let mut dead_letter_files = 0;
    for dir in ["tests/golden", "tests/regression"] {
        for path in files_ending(&root().join(dir), "expected-dlq.jsonl") {
            json_lines(&path).iter().for_each(assert_dead_letter_valid);
            dead_letter_files += 1;
        }
    }
    assert!(reward_files >= 6 && dead_letter_files >= 6, "{reward_files} reward and {dead_letter_files} dlq files");
    // Every kind and status of the schema is exercised by the files, so each
    // conditional part of the schema has been tried on real output.
    let all = |set: &Value| schema_strings(set).into_iter().map(str::to_owned).collect::<BTreeSet<_>>();
    assert_eq!(kinds, all(&REWARD_SCHEMA["properties"]["kind"]["enum"]));
    assert_eq!(statuses, all(&REWARD_SCHEMA["properties"]["status"]["enum"]));
}

/// A valid reward event to break in the negative cases.
fn reward() -> Value {
    json!({
        "reward_id": "r:E1", "event_id": "E1", "member_id": "M1", "program": "acme", "merchant_id": "acme",
        "kind": "purchase", "status": "scored", "occurred_at": "2026-11-02T09:15:00Z", "points": 150, "balance": 150,
        "breakdown": [{"rule": "base", "points": 100}, {"rule": "tier:silver", "points": 25}, {"rule": "coffee-x3", "points": 25}],
        "tier": {"before": "silver", "after": "silver"}, "qualifying_spend": "3100.00",
        "stamps": [{"card": "fifth-coffee-free", "stamps": 3, "completed": 0}], "rewards": [],
        "rules_version": "3f1c0e9a2b7d4c55"
    })
}

#[test]
fn the_reward_schema_rejects_what_breaks_the_contract() {
    assert_reward_valid(&reward());
    type Break = fn(&mut Value);
    // (what, a piece of the violation it must cause, how)
    let cases: &[(&str, &str, Break)] = &[
        ("an unknown field", "'bonus' was unexpected", |r| r["bonus"] = json!(1)),
        ("a kind that is not one", "at '/kind'", |r| r["kind"] = json!("gift")),
        ("a missing required field", "\"balance\" is a required", |r| {
            r.as_object_mut().unwrap().remove("balance");
        }),
        ("no rules_version", "\"rules_version\" is a required", |r| {
            r.as_object_mut().unwrap().remove("rules_version");
        }),
        ("a reward_id without its prefix", "at '/reward_id'", |r| r["reward_id"] = json!("E1")),
        ("an empty member_id", "at '/member_id'", |r| r["member_id"] = json!("")),
        ("a member_id over 64 characters", "at '/member_id'", |r| r["member_id"] = json!("M".repeat(65))),
        ("points as a string", "at '/points'", |r| r["points"] = json!("150")),
        ("a fractional balance", "at '/balance'", |r| r["balance"] = json!(1.5)),
        ("a breakdown line of 0 points", "at '/breakdown/0/points'", |r| r["breakdown"][0]["points"] = json!(0)),
        ("a negative earning line", "at '/breakdown/0/points'", |r| r["breakdown"][0]["points"] = json!(-100)),
        ("a positive expiry line", "at '/breakdown/0/points'", |r| {
            r["breakdown"][0] = json!({"rule": "expired", "points": 5})
        }),
        ("a breakdown line with a stray field", "'why' was unexpected", |r| r["breakdown"][0]["why"] = json!("x")),
        ("a redeem line on a purchase", "at '/breakdown/0/rule'", |r| {
            r["breakdown"][0] = json!({"rule": "redeem", "points": -5})
        }),
        ("a tier without after", "\"after\" is a required", |r| {
            r["tier"].as_object_mut().unwrap().remove("after");
        }),
        ("qualifying spend with one decimal", "at '/qualifying_spend'", |r| r["qualifying_spend"] = json!("3100.0")),
        ("qualifying spend as a number", "at '/qualifying_spend'", |r| r["qualifying_spend"] = json!(3100)),
        ("negative pending points", "at '/pending'", |r| r["pending"] = json!(-1)),
        ("a negative stamp count", "at '/stamps/0/stamps'", |r| r["stamps"][0]["stamps"] = json!(-1)),
        ("a gift that is not a string", "at '/rewards/0'", |r| r["rewards"] = json!([1])),
        ("an upper-case rules_version", "at '/rules_version'", |r| r["rules_version"] = json!("3F1C0E9A2B7D4C55")),
        ("a timestamp that is not one", "at '/occurred_at'", |r| r["occurred_at"] = json!("yesterday")),
        ("a date not on the calendar", "is not a \"date-time\"", |r| r["occurred_at"] = json!("2026-02-30T09:15:00Z")),
        ("a leap second", "at '/occurred_at'", |r| r["occurred_at"] = json!("2026-12-31T23:59:60Z")),
        ("a timestamp without offset", "at '/occurred_at'", |r| r["occurred_at"] = json!("2026-11-02T09:15:00")),
        ("a reason on a scored event", "{\"required\":[\"reason\"]} is not allowed", |r| {
            r["reason"] = json!("insufficient_points")
        }),
        ("a rejected purchase", "at '/kind'", |r| {
            r["status"] = json!("rejected");
            r["reason"] = json!("insufficient_points");
        }),
        ("a rejected redeem without reason", "\"reason\" is a required", |r| {
            r["kind"] = json!("redeem");
            r["status"] = json!("rejected");
            r["breakdown"] = json!([]);
        }),
        ("a rejected redeem that redeemed", "at '/breakdown/0/rule'", |r| {
            r["kind"] = json!("redeem");
            r["status"] = json!("rejected");
            r["reason"] = json!("insufficient_points");
            r["breakdown"] = json!([{"rule": "redeem", "points": -100}]);
        }),
        ("original on a purchase", "at '/kind'", |r| r["original"] = json!("unknown")),
        ("original other than unknown", "at '/original'", |r| {
            r["kind"] = json!("refund");
            r["breakdown"] = json!([{"rule": "refund", "points": -100}]);
            r["original"] = json!("E0");
        }),
        ("a base line on a refund", "at '/breakdown/0/rule'", |r| r["kind"] = json!("refund")),
        ("points on a profile", "at '/breakdown/0/rule'", |r| r["kind"] = json!("profile")),
    ];
    for (what, needle, break_it) in cases {
        let mut r = reward();
        break_it(&mut r);
        let errors = reward_errors(&r);
        assert!(!errors.is_empty(), "{what} must be rejected: {r}");
        assert!(errors.iter().any(|e| e.contains(needle)), "{what}: expected {needle:?} among {errors:#?}");
    }
    // The conditional parts also accept what they are for.
    let mut refund = reward();
    refund["kind"] = json!("refund");
    refund["original"] = json!("unknown");
    refund["breakdown"] = json!([{"rule": "expired", "points": -3}, {"rule": "refund", "points": -147}]);
    assert_reward_valid(&refund);
    let mut rejected = reward();
    rejected["kind"] = json!("redeem");
    rejected["status"] = json!("rejected");
    rejected["reason"] = json!("insufficient_points");
    rejected["breakdown"] = json!([{"rule": "expired", "points": -150}]);
    assert_reward_valid(&rejected);
    let mut adjust = reward();
    adjust["kind"] = json!("adjust");
    adjust["breakdown"] = json!([{"rule": "adjust", "points": -650}]);
    adjust["pending"] = json!(0);
    adjust["occurred_at"] = json!("2026-11-02t09:15:00.123456789+05:30");
    assert_reward_valid(&adjust);
}

#[test]
fn the_dead_letter_schema_rejects_what_breaks_the_contract() {
    let line = json!({"line": 16, "reason": "missing_field", "detail": "event_id", "input": "{}"});
    assert_dead_letter_valid(&line);
    let mut no_input = line.clone();
    no_input.as_object_mut().unwrap().remove("input");
    assert_dead_letter_valid(&no_input);
    type Break = fn(&mut Value);
    // (what, a piece of the violation it must cause, how)
    let cases: &[(&str, &str, Break)] = &[
        ("an unknown field", "'topic' was unexpected", |d| d["topic"] = json!("purchases")),
        ("a reason that is not one", "at '/reason'", |d| d["reason"] = json!("bad")),
        ("no detail", "\"detail\" is a required", |d| {
            d.as_object_mut().unwrap().remove("detail");
        }),
        ("no line", "\"line\" is a required", |d| {
            d.as_object_mut().unwrap().remove("line");
        }),
        ("line 0", "at '/line'", |d| d["line"] = json!(0)),
        ("a detail on invalid_json", "at '/detail'", |d| d["reason"] = json!("invalid_json")),
        ("a missing field that is not a field", "at '/detail'", |d| d["detail"] = json!("colour")),
        ("an amount that is not an amount", "at '/detail'", |d| {
            d["reason"] = json!("invalid_amount");
            d["detail"] = json!("points");
        }),
        ("input that is not text", "at '/input'", |d| d["input"] = json!([1, 2])),
    ];
    for (what, needle, break_it) in cases {
        let mut d = line.clone();
        break_it(&mut d);
        let errors = dead_letter_errors(&d);
        assert!(!errors.is_empty(), "{what} must be rejected: {d}");
        assert!(errors.iter().any(|e| e.contains(needle)), "{what}: expected {needle:?} among {errors:#?}");
    }
}

/// Every input kind, each also the `kind` of its reward event.
const KINDS: [Kind; 5] = [Kind::Purchase, Kind::Refund, Kind::Redeem, Kind::Profile, Kind::Adjust];

/// Every reason, in the order they are checked (the order the schema lists).
const REASONS: [Reason; 8] = [
    Reason::TooLarge,
    Reason::InvalidJson,
    Reason::UnknownKind,
    Reason::MissingField,
    Reason::UnknownProgram,
    Reason::InvalidAmount,
    Reason::CurrencyMismatch,
    Reason::InvalidField,
];

/// Breakdown lines whose name does not come from the rules file.
const FIXED_LINES: [Line; 5] = [Line::Expired, Line::Base, Line::Redeem, Line::Refund, Line::Adjust];

/// Matches without a `_` arm: a new variant stops this file from compiling
/// until it is added to the lists above, and so to the schema check below.
#[expect(dead_code, reason = "checked by the compiler, never called")]
fn listed(kind: Kind, reason: Reason, line: Line) {
    match kind {
        Kind::Purchase | Kind::Refund | Kind::Redeem | Kind::Profile | Kind::Adjust => {}
    }
    match reason {
        Reason::TooLarge
        | Reason::InvalidJson
        | Reason::UnknownKind
        | Reason::MissingField
        | Reason::UnknownProgram
        | Reason::InvalidAmount
        | Reason::CurrencyMismatch
        | Reason::InvalidField => {}
    }
    match line {
        Line::Expired | Line::Base | Line::Redeem | Line::Refund | Line::Adjust => {}
        // Named by the rules file: `tier:<name>` and bonus rule ids.
        Line::Tier(_) | Line::Rule(_) => {}
    }
}

#[test]
fn the_schemas_closed_sets_are_the_codes() {
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    assert_eq!(schema_strings(&REWARD_SCHEMA["properties"]["kind"]["enum"]), kinds);

    let mut reasons = REASONS;
    reasons.sort();
    assert_eq!(reasons, REASONS, "REASONS is in the order the decoder checks them");
    let reasons: Vec<&str> = REASONS.iter().map(|r| r.as_str()).collect();
    assert_eq!(schema_strings(&DEAD_LETTER_SCHEMA["properties"]["reason"]["enum"]), reasons);

    // The line names the schema treats apart (debits, adjustments, the
    // names a purchase never has) are the engine's.
    let program = loyalty_scorer::rules::load::load_file(&root().join("config/rules/acme.toml")).expect("rules");
    let names: Vec<String> = FIXED_LINES.iter().map(|&l| line_name(&program, l)).collect();
    assert_eq!(names, ["expired", "base", "redeem", "refund", "adjust"]);
    let line = &REWARD_SCHEMA["$defs"]["line"]["allOf"];
    assert_eq!(schema_strings(&line[0]["if"]["properties"]["rule"]["enum"]), ["expired", "redeem", "refund"]);
    assert_eq!(
        schema_strings(&line[1]["if"]["properties"]["rule"]["not"]["enum"]),
        ["expired", "redeem", "refund", "adjust"]
    );
    let tier = line_name(&program, Line::Tier(1));
    assert!(tier.starts_with("tier:") && tier.len() > "tier:".len(), "{tier}");
}

/// The fenced `json` blocks of the README and of every page under `docs/`.
fn json_examples() -> Vec<(PathBuf, Value)> {
    let mut pages = vec![root().join("README.md")];
    pages.extend(files_ending(&root().join("docs"), ".md"));
    let mut found = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("page");
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```json\n") {
            let block = &rest[start + "```json\n".len()..];
            let end = block.find("```").expect("closed block");
            let value = serde_json::from_str(&block[..end])
                .unwrap_or_else(|e| panic!("{}: a json block is not JSON ({e}): {}", page.display(), &block[..end]));
            found.push((page.clone(), value));
            rest = &block[end + 3..];
        }
    }
    found
}

#[test]
fn the_json_examples_in_the_docs_pass_the_schemas() {
    let (mut rewards, mut dead_letters) = (0, 0);
    for (page, example) in json_examples() {
        if example.get("reward_id").is_some() {
            assert!(reward_errors(&example).is_empty(), "{}: {:#?}", page.display(), reward_errors(&example));
            rewards += 1;
        } else if example.get("reason").is_some() && example.get("line").is_some() {
            assert!(dead_letter_errors(&example).is_empty(), "{}: {:#?}", page.display(), dead_letter_errors(&example));
            dead_letters += 1;
        }
    }
    assert!(rewards >= 1 && dead_letters >= 1, "{rewards} reward and {dead_letters} dead-letter examples");
}
