//! Encoding of what the scorer emits: reward events (contract section 2) and
//! dead-letter lines (section 5).
//!
//! Writes JSON by hand into a caller's reused buffer: the field set is fixed
//! and small, and this keeps the hot path free of allocation and of a
//! serializer's generic machinery.

use std::io::Write as _;

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
    // Ids, names and timestamps almost never hold a character to escape:
    // one scan, eight bytes at a time, then one copy.
    if !needs_escape(bytes) {
        buf.extend_from_slice(bytes);
        return;
    }
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

/// Whether `bytes` holds a `"`, a `\` or a control character (below 0x20),
/// tested eight bytes at a time with the bit tricks `hasless(w, 0x20)` and
/// `haszero(w ^ c)` ("Bit Twiddling Hacks"). They answer exactly whether
/// some byte matches (not which), which is all the caller needs.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        (below_space | (quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash)) & HIGH != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut found = false;
    for chunk in &mut chunks {
        let mut w = [0; 8];
        w.copy_from_slice(chunk);
        found |= word(u64::from_le_bytes(w));
    }
    // The tail byte by byte: copying it into a padded word would cost a
    // call to `memcpy` and a stalled load of the word it just wrote.
    found || chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends a string this module spells itself (a status, a kind, a line
/// name): plain ASCII with nothing to escape.
fn write_plain(buf: &mut Vec<u8>, s: &str) {
    debug_assert!(!needs_escape(s.as_bytes()), "{s}");
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

fn write_int(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `,"name":` as one constant, appended with a single copy.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":").as_bytes()
    };
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

/// Appends `money(d)` as a JSON string, as `Display` prints it (`"-12.30"`),
/// by integer arithmetic on the mantissa rather than the formatting
/// machinery: the same digits, and no `-0.00`.
fn write_money(buf: &mut Vec<u8>, d: Decimal) {
    let scale = d.scale();
    let mantissa = d.mantissa();
    let negative = mantissa < 0;
    let magnitude = mantissa.unsigned_abs();
    let cents = if scale <= 2 {
        // |mantissa| < 2^96: times 100 stays far within u128.
        magnitude * 10u128.pow(2 - scale)
    } else {
        let divisor = 10u128.pow(scale - 2);
        let (quotient, remainder) = (magnitude / divisor, magnitude % divisor);
        // Half to even, on the magnitude: the same as on the signed value.
        let twice = 2 * remainder;
        let up = twice > divisor || (twice == divisor && quotient % 2 == 1);
        quotient + u128::from(up)
    };
    if cents >= 1 << 96 {
        // Beyond a decimal's mantissa at 2 places (some 8 x 10^26): `money`
        // keeps fewer places there; print what it prints.
        let _ = write!(buf, "\"{}\"", money(d));
        return;
    }
    buf.push(b'"');
    if negative && cents != 0 {
        buf.push(b'-');
    }
    let mut digits = itoa::Buffer::new();
    buf.extend_from_slice(digits.format(cents / 100).as_bytes());
    let fraction = (cents % 100) as u8;
    buf.extend_from_slice(&[b'.', b'0' + fraction / 10, b'0' + fraction % 10, b'"']);
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
        Line::Expired => write_plain(buf, "expired"),
        Line::Base => write_plain(buf, "base"),
        Line::Redeem => write_plain(buf, "redeem"),
        Line::Refund => write_plain(buf, "refund"),
        Line::Adjust => write_plain(buf, "adjust"),
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
    buf.extend_from_slice(key!("event_id"));
    write_str(buf, event_id);
    buf.extend_from_slice(key!("member_id"));
    write_str(buf, member_id);
    buf.extend_from_slice(key!("program"));
    write_str(buf, &program.id);
    if let Some(merchant) = record.merchant_id {
        buf.extend_from_slice(key!("merchant_id"));
        write_str(buf, merchant);
    }
    buf.extend_from_slice(key!("kind"));
    write_plain(buf, record.kind.as_str());
    buf.extend_from_slice(key!("status"));
    match record.status {
        Status::Scored => write_plain(buf, "scored"),
        Status::Rejected => {
            write_plain(buf, "rejected");
            buf.extend_from_slice(key!("reason"));
            write_plain(buf, "insufficient_points");
        }
    }
    buf.extend_from_slice(key!("occurred_at"));
    write_str(buf, record.occurred_at);
    if record.original_unknown {
        buf.extend_from_slice(key!("original"));
        write_plain(buf, "unknown");
    }
    buf.extend_from_slice(key!("points"));
    write_int(buf, record.points);
    buf.extend_from_slice(key!("balance"));
    write_int(buf, record.balance);
    if let Some(pending) = record.pending {
        buf.extend_from_slice(key!("pending"));
        write_int(buf, pending);
    }
    buf.extend_from_slice(key!("breakdown"));
    buf.push(b'[');
    for (n, &(line, points)) in record.lines.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"rule\":");
        write_line_name(buf, program, line);
        buf.extend_from_slice(key!("points"));
        write_int(buf, points);
        buf.push(b'}');
    }
    buf.push(b']');
    buf.extend_from_slice(key!("tier"));
    buf.extend_from_slice(b"{\"before\":");
    write_str(buf, tier_name(program, record.tier_before));
    buf.extend_from_slice(key!("after"));
    write_str(buf, tier_name(program, record.tier_after));
    buf.push(b'}');
    buf.extend_from_slice(key!("qualifying_spend"));
    write_money(buf, record.qualifying_spend);
    buf.extend_from_slice(key!("stamps"));
    buf.push(b'[');
    for (n, touch) in record.stamps.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"card\":");
        write_str(buf, rule_id(program, touch.rule));
        buf.extend_from_slice(key!("stamps"));
        write_int(buf, i64::from(touch.stamps));
        buf.extend_from_slice(key!("completed"));
        write_int(buf, i64::from(touch.completed));
        buf.push(b'}');
    }
    buf.push(b']');
    buf.extend_from_slice(key!("rewards"));
    buf.push(b'[');
    for (n, &rule) in record.gifts.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        write_str(buf, gift_name(program, rule).unwrap_or_default());
    }
    buf.push(b']');
    buf.extend_from_slice(key!("rules_version"));
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
    buf.extend_from_slice(key!("reason"));
    write_plain(buf, error.reason.as_str());
    buf.extend_from_slice(key!("detail"));
    write_str(buf, &error.detail);
    if let Ok(text) = std::str::from_utf8(input) {
        buf.extend_from_slice(key!("input"));
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
    fn the_word_scan_finds_every_character_to_escape() {
        // Each position of a word and of the tail, each class of character.
        for len in 0..20 {
            for at in 0..len {
                for c in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut s = vec![b'a'; len];
                    s[at] = c;
                    assert!(needs_escape(&s), "{s:?}");
                }
            }
            assert!(!needs_escape(&vec![b'a'; len]));
        }
        // Neighbours of the classes, and UTF-8, need no escape.
        assert!(!needs_escape(" !#[]^~\x7f".as_bytes()));
        assert!(!needs_escape("üñí €, ä 😀 \u{2028}".as_bytes()));
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_serde_json(s in "\\PC*|[\"\\\\\u{0}-\u{1f}a-z]{0,40}") {
            let back: String = serde_json::from_str(&escaped(&s)).unwrap_or_default();
            proptest::prop_assert_eq!(back, s);
        }

        #[test]
        fn money_is_written_as_display_prints_it(mantissa in proptest::num::i128::ANY, scale in 0u32..=28) {
            let d = Decimal::from_i128_with_scale(mantissa % (1i128 << 96), scale);
            let mut buf = Vec::new();
            write_money(&mut buf, d);
            proptest::prop_assert_eq!(String::from_utf8(buf).unwrap_or_default(), format!("\"{}\"", money(d)));
        }

        #[test]
        fn money_is_written_as_display_prints_it_for_amounts(cents in -10_000_000_000_000i64..10_000_000_000_000, scale in 0u32..=6) {
            let d = Decimal::new(cents, scale);
            let mut buf = Vec::new();
            write_money(&mut buf, d);
            proptest::prop_assert_eq!(String::from_utf8(buf).unwrap_or_default(), format!("\"{}\"", money(d)));
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
            let mut buf = Vec::new();
            write_money(&mut buf, d);
            assert_eq!(buf, format!("\"{want}\"").into_bytes());
        }
    }
}
