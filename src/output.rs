//! Encoding of what the scorer emits: reward events (contract section 2) and
//! dead-letter lines (section 5).
//!
//! Writes JSON by hand into a caller's reused buffer: the field set is fixed
//! and small, and this keeps the hot path free of allocation and of a
//! serializer's generic machinery.

use std::io::Write;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::decode::DecodeError;
use crate::outcome::{Line, RewardView, Status};
use crate::rules::Program;

/// Appends `s` as a JSON string literal.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    write_escaped(buf, s);
    buf.push(b'"');
}

/// Appends `s` as a JSON string literal that starts with `prefix` (plain ASCII).
fn write_prefixed(buf: &mut Vec<u8>, prefix: &str, s: &str) {
    buf.push(b'"');
    buf.extend_from_slice(prefix.as_bytes());
    write_escaped(buf, s);
    buf.push(b'"');
}

/// Appends the body of a JSON string literal holding `s`.
fn write_escaped(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

fn write_int(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_key(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// A decimal rounded half-even to exactly 2 places, as the contract prints
/// `qualifying_spend`.
pub fn money(d: Decimal) -> Decimal {
    let mut d = d.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    if d.is_zero() {
        // A zero reached by subtraction may carry a sign: never print "-0.00".
        d = Decimal::ZERO;
    }
    d.rescale(2);
    d
}

/// Name of a breakdown line as the reward event shows it (`base`,
/// `tier:gold`, a rule id), for metric labels.
pub fn line_name(program: &Program, line: Line) -> String {
    let mut buf = Vec::new();
    write_line_name(&mut buf, program, line);
    // The name is written as a JSON string: drop its quotes.
    let text = String::from_utf8_lossy(&buf);
    text.trim_matches('"').to_owned()
}

/// Name of a breakdown line in the reward event.
fn write_line_name(buf: &mut Vec<u8>, program: &Program, line: Line) {
    match line {
        Line::Expired => write_str(buf, "expired"),
        Line::Base => write_str(buf, "base"),
        Line::Redeem => write_str(buf, "redeem"),
        Line::Refund => write_str(buf, "refund"),
        Line::Adjust => write_str(buf, "adjust"),
        Line::Tier(i) => write_prefixed(buf, "tier:", tier_name(program, i)),
        Line::Rule(i) => write_str(buf, rule_id(program, i)),
    }
}

/// Appends the reward event of `record` (one JSON object, no newline): the
/// same bytes on first emission and on every repeat. `program` is the one
/// whose `rules_version` the view carries.
pub fn write_reward(buf: &mut Vec<u8>, program: &Program, event_id: &str, member_id: &str, record: &RewardView<'_>) {
    buf.extend_from_slice(b"{\"reward_id\":");
    write_prefixed(buf, "r:", event_id);
    write_key(buf, "event_id");
    write_str(buf, event_id);
    write_key(buf, "member_id");
    write_str(buf, member_id);
    write_key(buf, "program");
    write_str(buf, &program.id);
    if let Some(merchant) = record.merchant_id {
        write_key(buf, "merchant_id");
        write_str(buf, merchant);
    }
    write_key(buf, "kind");
    write_str(buf, record.kind.as_str());
    write_key(buf, "status");
    match record.status {
        Status::Scored => write_str(buf, "scored"),
        Status::Rejected => {
            write_str(buf, "rejected");
            write_key(buf, "reason");
            write_str(buf, "insufficient_points");
        }
    }
    write_key(buf, "occurred_at");
    write_str(buf, record.occurred_at);
    if record.original_unknown {
        write_key(buf, "original");
        write_str(buf, "unknown");
    }
    write_key(buf, "points");
    write_int(buf, record.points);
    write_key(buf, "balance");
    write_int(buf, record.balance);
    if let Some(pending) = record.pending {
        write_key(buf, "pending");
        write_int(buf, pending);
    }
    write_key(buf, "breakdown");
    buf.push(b'[');
    for (n, &(line, points)) in record.lines.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"rule\":");
        write_line_name(buf, program, line);
        write_key(buf, "points");
        write_int(buf, points);
        buf.push(b'}');
    }
    buf.push(b']');
    write_key(buf, "tier");
    buf.extend_from_slice(b"{\"before\":");
    write_str(buf, tier_name(program, record.tier_before));
    write_key(buf, "after");
    write_str(buf, tier_name(program, record.tier_after));
    buf.push(b'}');
    write_key(buf, "qualifying_spend");
    buf.push(b'"');
    // Writing a Decimal into a Vec cannot fail.
    let _ = write!(buf, "{}", money(record.qualifying_spend));
    buf.push(b'"');
    write_key(buf, "stamps");
    buf.push(b'[');
    for (n, touch) in record.stamps.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"card\":");
        write_str(buf, rule_id(program, touch.rule));
        write_key(buf, "stamps");
        write_int(buf, i64::from(touch.stamps));
        write_key(buf, "completed");
        write_int(buf, i64::from(touch.completed));
        buf.push(b'}');
    }
    buf.push(b']');
    write_key(buf, "rewards");
    buf.push(b'[');
    for (n, &rule) in record.gifts.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        write_str(buf, gift_name(program, rule).unwrap_or_default());
    }
    buf.push(b']');
    write_key(buf, "rules_version");
    write_str(buf, record.rules_version);
    buf.push(b'}');
}

/// Names by index; an index the program does not have (a record written
/// under other rules) renders as empty rather than panicking.
fn tier_name(program: &Program, index: usize) -> &str {
    program.tiers.get(index).map_or("", |t| t.name.as_str())
}

fn rule_id(program: &Program, index: usize) -> &str {
    program.rules.get(index).map_or("", |r| r.id.as_str())
}

/// The gift a rule awards, if any.
pub fn gift_name(program: &Program, rule: usize) -> Option<&str> {
    use crate::rules::model::RuleKind;
    match &program.rules.get(rule)?.kind {
        RuleKind::BasketThreshold { gift, .. }
        | RuleKind::StampCard { gift, .. }
        | RuleKind::Milestone { gift, .. }
        | RuleKind::Birthday { gift, .. } => gift.as_deref(),
        RuleKind::CategoryMultiplier { .. } | RuleKind::FirstPurchase { .. } => None,
    }
}

/// Appends one line of a `--dlq` file (no newline): the line number, the
/// reason and detail, and the input itself when it is valid UTF-8.
pub fn write_dead_letter(buf: &mut Vec<u8>, line: u64, input: &[u8], error: &DecodeError) {
    buf.extend_from_slice(b"{\"line\":");
    buf.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    write_key(buf, "reason");
    write_str(buf, error.reason.as_str());
    write_key(buf, "detail");
    write_str(buf, &error.detail);
    if let Ok(text) = std::str::from_utf8(input) {
        write_key(buf, "input");
        write_str(buf, text);
    }
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut buf = Vec::new();
        write_str(&mut buf, s);
        String::from_utf8(buf).unwrap_or_default()
    }

    #[test]
    fn strings_escape_as_json() {
        for s in ["plain", "quote\"back\\slash", "tab\tnl\ncr\r", "ctl\u{1}\u{1f}", "üñí €", ""] {
            let json = escaped(s);
            let back: String = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(back, s, "{json}");
        }
    }

    #[test]
    fn money_rounds_half_even_to_two_places() {
        for (v, want) in [
            ("1.005", "1.00"),
            ("1.015", "1.02"),
            ("3", "3.00"),
            ("0.125", "0.12"),
            ("-1.5", "-1.50"),
            ("-0.001", "0.00"),
        ] {
            let d: Decimal = v.parse().unwrap_or_default();
            assert_eq!(money(d).to_string(), want);
            assert_eq!(money(-Decimal::ZERO).to_string(), "0.00");
        }
    }
}
