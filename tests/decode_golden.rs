//! The contract's golden inputs: every line of `events.jsonl` decodes, or
//! fails with exactly the reason and detail of its `expected-dlq.jsonl` line.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod decode_support;

use std::collections::BTreeMap;
use std::path::Path;

use loyalty_scorer::decode::Decoder;

fn check(dir: &str, id: &str, currency: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(dir);
    let events = std::fs::read_to_string(root.join("events.jsonl")).unwrap();
    let dlq = std::fs::read_to_string(root.join("expected-dlq.jsonl")).unwrap();
    let mut expected = BTreeMap::new();
    for line in dlq.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let n = v["line"].as_u64().unwrap() as usize;
        let reason = v["reason"].as_str().unwrap().to_owned();
        let detail = v["detail"].as_str().unwrap().to_owned();
        expected.insert(n, (reason, detail));
    }
    let programs = decode_support::programs(vec![decode_support::program(id, currency)]);
    let mut decoder = Decoder::default();
    let mut failures = 0;
    for (i, line) in events.lines().enumerate() {
        let n = i + 1;
        let got = match decoder.decode(line.as_bytes(), &programs) {
            Ok(_) => None,
            Err(e) => Some((e.reason.as_str().to_owned(), e.detail)),
        };
        assert_eq!(got, expected.get(&n).cloned(), "{dir} line {n}: {line}");
        failures += usize::from(got.is_some());
    }
    assert_eq!(failures, expected.len(), "{dir}: every expected dead letter has a line");
}

#[test]
fn basic() {
    check("basic", "acme", "EUR");
}

#[test]
fn coalition() {
    check("coalition", "citypoints", "PLN");
}

/// Profiles and adjustments (`scoring-v2.md` section 1). Only the program's
/// id and currency matter to the decoder, so its rules file is not loaded.
#[test]
fn lifecycle() {
    check("lifecycle", "style", "EUR");
}
