//! The published contract of what the scorer emits, as test assertions:
//! the JSON Schemas under `docs/schema/` (reward events and dead-letter
//! lines), compiled once per test binary with format checks on.
//!
//! - [`assert_reward_valid`]: call it on every reward event a test sees (a
//!   line of `score` output, the value of a rewards-topic message parsed
//!   with `serde_json::from_slice`).
//! - [`assert_dead_letter_valid`]: the same for every `--dlq` line (the
//!   dead-letter topic carries the input unchanged, so there is nothing to
//!   validate there but its headers).
//! - [`reward_errors`] / [`dead_letter_errors`]: the violations as text, for
//!   tests that expect some.
//!
//! A failed assertion panics with every violation (where in the value, what
//! is wrong) and the offending JSON.

use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::Value;

/// `docs/schema/reward-event.schema.json`, parsed.
pub static REWARD_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| parse("reward-event", include_str!("../../docs/schema/reward-event.schema.json")));

/// `docs/schema/dead-letter-line.schema.json`, parsed.
pub static DEAD_LETTER_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| parse("dead-letter-line", include_str!("../../docs/schema/dead-letter-line.schema.json")));

static REWARD: LazyLock<Validator> = LazyLock::new(|| compile("reward-event", &REWARD_SCHEMA));
static DEAD_LETTER: LazyLock<Validator> = LazyLock::new(|| compile("dead-letter-line", &DEAD_LETTER_SCHEMA));

fn parse(name: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("docs/schema/{name}.schema.json is not JSON: {e}"))
}

fn compile(name: &str, schema: &Value) -> Validator {
    jsonschema::draft202012::options()
        // Formats are annotations in draft 2020-12 unless asked for; the
        // contract's timestamps are worth checking.
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("docs/schema/{name}.schema.json is not a valid draft 2020-12 schema: {e}"))
}

fn errors(validator: &Validator, value: &Value) -> Vec<String> {
    validator.iter_errors(value).map(|e| format!("at '{}': {e}", e.instance_path())).collect()
}

/// Every way `value` breaks the reward event schema; empty when it is valid.
pub fn reward_errors(value: &Value) -> Vec<String> {
    errors(&REWARD, value)
}

/// Every way `value` breaks the dead-letter line schema; empty when it is valid.
pub fn dead_letter_errors(value: &Value) -> Vec<String> {
    errors(&DEAD_LETTER, value)
}

/// Panics unless `value` is a valid reward event.
#[track_caller]
pub fn assert_reward_valid(value: &Value) {
    let found = reward_errors(value);
    assert!(
        found.is_empty(),
        "reward event breaks docs/schema/reward-event.schema.json:\n  {}\n{value}",
        found.join("\n  ")
    );
}

/// Panics unless `value` is a valid dead-letter line.
#[track_caller]
pub fn assert_dead_letter_valid(value: &Value) {
    let found = dead_letter_errors(value);
    assert!(
        found.is_empty(),
        "dead-letter line breaks docs/schema/dead-letter-line.schema.json:\n  {}\n{value}",
        found.join("\n  ")
    );
}
