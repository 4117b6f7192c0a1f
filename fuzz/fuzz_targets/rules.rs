//! Hostile rules files through `rules::load::load_str`: errors are fine,
//! panics and hangs are not. A file that loads is then used: a fixed member
//! history (purchases with items, a refund, a redemption, a profile, an
//! adjustment) is scored with it, so rules at the edges of their ranges meet
//! the engine's arithmetic.

#![no_main]

use std::io;
use std::sync::Arc;

use libfuzzer_sys::{Corpus, fuzz_target};
use loyalty_scorer::decode::DEFAULT_MAX_MESSAGE_BYTES;
use loyalty_scorer::pipeline::{Disposition, Scorer, Sink};
use loyalty_scorer::rules::ProgramSet;
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::load::{load_str, summary};
use loyalty_scorer::state::memory::MemoryStore;
use serde_json::Value;

fuzz_target!(|data: &[u8]| -> Corpus {
    // Rules files are UTF-8 (`load_file` reports other bytes itself).
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let program = match load_str("fuzz.toml", text) {
        Ok(program) => program,
        Err(problems) => {
            assert!(!problems.is_empty(), "rejected without a reason");
            for p in &problems {
                assert!(p.line >= 1 && p.column >= 1, "{p}");
                assert!(p.line <= text.split('\n').count(), "past the last line: {p}");
                assert!(!p.message.is_empty(), "{p}");
            }
            return Corpus::Keep;
        }
    };
    assert!(!summary(&program).is_empty());
    let again = load_str("fuzz.toml", text).unwrap_or_else(|p| panic!("loads once, not twice: {p:?}"));
    assert_eq!(again.version, program.version, "rules_version depends on the text alone");
    score_history(program);
    Corpus::Keep
});

/// Events of one member in the program's currency, at dates its filters
/// and expiry may or may not cover.
fn history(currency: &str) -> Vec<String> {
    let purchase = |id: &str, at: &str, total: &str, items: &str| {
        format!(
            r#"{{"event_id":"{id}","member_id":"M","merchant_id":"fuel-co","store_id":"S1","channel":"app","occurred_at":"{at}","currency":"{currency}","total":"{total}","items":[{items}]}}"#
        )
    };
    let coffee = r#"{"sku":"C","category":"coffee","quantity":1000000,"amount":"999999999999.9999"}"#;
    let tobacco = r#"{"category":"tobacco","amount":"12.5"},{"amount":"0.0001"}"#;
    vec![
        r#"{"event_id":"B","kind":"profile","member_id":"M","occurred_at":"2026-01-01T00:00:00Z","birth_date":"1990-11-02"}"#
            .to_owned(),
        purchase("P1", "2026-11-02T08:15:00Z", "1000000000000", coffee),
        purchase("P2", "2026-11-02T08:16:00+01:00", "0.0001", tobacco),
        purchase("P3", "2027-06-30T23:59:59Z", "100", &format!("{coffee},{tobacco}")),
        format!(
            r#"{{"event_id":"R1","kind":"refund","member_id":"M","original_event_id":"P1","occurred_at":"2026-12-01T00:00:00Z","currency":"{currency}","total":"500000000000"}}"#
        ),
        r#"{"event_id":"D1","kind":"redeem","member_id":"M","occurred_at":"2027-01-01T00:00:00Z","points":1000000000}"#
            .to_owned(),
        r#"{"event_id":"A1","kind":"adjust","member_id":"M","occurred_at":"2027-01-02T00:00:00Z","points":-1000000000}"#
            .to_owned(),
        purchase("P4", "2999-12-31T23:59:59.999999Z", "1000000000000", coffee),
        purchase("P1", "2026-11-02T08:15:00Z", "1000000000000", coffee),
    ]
}

fn score_history(program: loyalty_scorer::rules::Program) {
    let currency = program.currency.clone();
    let programs = ProgramSet::new(vec![Arc::new(program)]).unwrap_or_else(|| panic!("one program is a set"));
    let mut scorer = Scorer::new(programs, Settings::default(), DEFAULT_MAX_MESSAGE_BYTES, MemoryStore::new());
    let mut sink = Rewards;
    for (i, event) in history(&currency).iter().enumerate() {
        if let Err(error) = scorer.score(i as u64 + 1, event.as_bytes(), &mut sink) {
            panic!("scoring {event} failed: {error}");
        }
    }
}

/// Checks each reward: JSON whose breakdown sums to its points.
struct Rewards;

impl Sink for Rewards {
    fn accept(&mut self, _: u64, _: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        match disposition {
            Disposition::Scored { reward, outcome, .. } => {
                let v = json(reward);
                assert_eq!(v["points"], outcome.points);
                let lines = v["breakdown"].as_array().unwrap_or_else(|| panic!("no breakdown"));
                let sum = lines.iter().try_fold(0i64, |sum, line| sum.checked_add(line["points"].as_i64()?));
                assert_eq!(sum, Some(outcome.points), "breakdown sums to the points");
            }
            Disposition::Repeat { reward, .. } => {
                json(reward);
            }
            // A currency the events cannot name as written: fine, as long
            // as nothing breaks.
            Disposition::Dead(_) | Disposition::Anonymous { .. } => {}
        }
        Ok(())
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}
