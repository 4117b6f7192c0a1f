#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::*;
use crate::event::{Date, Micros};
use crate::rules::load::load_str;
use crate::rules::model::Program;

fn program(id: &str, currency: &str) -> Arc<Program> {
    let text = format!("[program]\nid = \"{id}\"\ncurrency = \"{currency}\"\n");
    match load_str("test.toml", &text) {
        Ok(program) => Arc::new(program),
        Err(problems) => panic!("test program: {problems:?}"),
    }
}

fn programs() -> ProgramSet {
    ProgramSet::new(vec![program("acme", "EUR"), program("city", "PLN")]).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// The verdict for `json`, as `(reason, detail)`.
fn verdict(json: &str) -> (&'static str, String) {
    verdict_bytes(json.as_bytes())
}

fn verdict_bytes(json: &[u8]) -> (&'static str, String) {
    let mut d = Decoder::default();
    match d.decode(json, &programs()) {
        Ok(_) => ("ok", String::new()),
        Err(e) => (e.reason.as_str(), e.detail),
    }
}

fn err(reason: &'static str, detail: &str) -> (&'static str, String) {
    (reason, detail.to_owned())
}

const OK: (&str, String) = ("ok", String::new());

const P: &str = r#""event_id":"E1","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"1.00""#;

/// A valid purchase with `extra` fields appended.
fn purchase(extra: &str) -> String {
    if extra.is_empty() { format!("{{{P}}}") } else { format!("{{{P},{extra}}}") }
}

#[test]
fn decodes_a_full_purchase() {
    let json = r#"{"event_id":"E\u0031","kind":"purchase","member_id":"M\"1","program":"city","merchant_id":"grocer","store_id":"S1","channel":"store","occurred_at":"2026-01-10T07:30:00.5+01:00","currency":"PLN","total":41,"items":[{"sku":"EGG","category":"breakfast","quantity":2,"amount":"21.00"},{"sku":"LOT","amount":20.5,"extra":[1,2]}],"unknown":{"a":1,"a":2}}"#;
    let mut d = Decoder::default();
    let ps = programs();
    let e = d.decode(json.as_bytes(), &ps).unwrap();
    assert_eq!(e.event_id, "E1");
    assert_eq!(e.kind, Kind::Purchase);
    assert_eq!(e.member_id, Some("M\"1"));
    assert_eq!(e.program, 1);
    assert_eq!(e.merchant_id, Some("grocer"));
    assert_eq!(e.store_id, Some("S1"));
    assert_eq!(e.channel, Some("store"));
    assert_eq!(e.occurred_at, parse_timestamp("2026-01-10T06:30:00.5Z").unwrap());
    assert_eq!(e.occurred_at_raw, "2026-01-10T07:30:00.5+01:00");
    assert_eq!(e.total, dec("41"));
    assert_eq!(e.items.len(), 2);
    assert_eq!(e.items[0], Item { sku: Some("EGG"), category: Some("breakfast"), quantity: 2, amount: dec("21.00") });
    assert_eq!(e.items[1], Item { sku: Some("LOT"), category: None, quantity: 1, amount: dec("20.5") });
    assert_eq!(e.original_event_id, None);
    assert_eq!(e.points, 0);
}

#[test]
fn decoder_is_reusable_across_messages() {
    let mut d = Decoder::default();
    let ps = programs();
    for i in 0..3 {
        let json = format!(
            r#"{{"event_id":"E{i}","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"{i}.5","items":[{{"amount":"{i}"}}]}}"#
        );
        let e = d.decode(json.as_bytes(), &ps).unwrap();
        assert_eq!(e.event_id, format!("E{i}"));
        assert_eq!(e.items[0].amount, Decimal::from(i));
        assert!(d.decode(b"{", &ps).is_err());
    }
}

#[test]
fn refund_and_redeem() {
    let mut d = Decoder::default();
    let ps = programs();
    let e = d
        .decode(
            br#"{"event_id":"R1","kind":"refund","original_event_id":"E1","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"3","items":[{"amount":"x"}],"points":"x"}"#,
            &ps,
        )
        .unwrap();
    assert_eq!(e.kind, Kind::Refund);
    assert_eq!(e.original_event_id, Some("E1"));
    assert_eq!(e.total, dec("3"));
    assert!(e.items.is_empty());
    let e = d
        .decode(
            br#"{"event_id":"D1","kind":"redeem","occurred_at":"2026-11-02T08:15:00Z","points":1000000000,"currency":5,"total":"bad","items":3,"original_event_id":7}"#,
            &ps,
        )
        .unwrap();
    assert_eq!(e.kind, Kind::Redeem);
    assert_eq!(e.points, 1_000_000_000);
    assert_eq!(e.total, Decimal::ZERO);
    assert_eq!(e.original_event_id, None);
}

#[test]
fn too_large_comes_first() {
    let mut d = Decoder::new(10);
    let e = d.decode(b"{not json!!", &programs()).unwrap_err();
    assert_eq!((e.reason, e.detail.as_str()), (Reason::TooLarge, ""));
    let mut d = Decoder::new(purchase("").len());
    assert!(d.decode(purchase("").as_bytes(), &programs()).is_ok());
}

#[test]
fn invalid_json_cases() {
    let bad = err("invalid_json", "");
    for json in [
        "not json at all",
        "",
        "[]",
        "5",
        "\"x\"",
        "null",
        &format!("{} x", purchase("")),
        r#"{"a":NaN}"#,
        r#"{"a":Infinity}"#,
        r#"{"a":-Infinity}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00x"}"#,
        r#"{"a":01}"#,
        r#"{"event_id":"E1","event_id":"E2"}"#,
        r#"{"x":1,"y":2,"x":3}"#,
        r#"{"event_id":null,"event_id":null}"#,
        r#"{"kind":"gift","k\u0069nd":"x"}"#,
    ] {
        assert_eq!(verdict(json), bad, "{json}");
    }
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(purchase("").as_bytes());
    assert_eq!(verdict_bytes(&bom), bad);
    let mut invalid = purchase("\"x\":\"??\"").into_bytes();
    let at = invalid.iter().position(|&c| c == b'?').unwrap();
    invalid[at] = 0xff;
    assert_eq!(verdict_bytes(&invalid), bad);
    // A surrogate pair is fine.
    assert_eq!(verdict(&purchase(r#""x":"\ud83d\ude00""#)), OK);
}

#[test]
fn repeated_keys() {
    let bad = err("invalid_json", "");
    assert_eq!(verdict(&purchase(r#""total":"2""#)), bad);
    assert_eq!(verdict(&purchase(r#""u":1,"v":2,"u":{}"#)), bad);
    assert_eq!(verdict(&purchase(r#""items":[{"amount":"1","amount":"1"}]"#)), bad);
    assert_eq!(verdict(&purchase(r#""items":[{"amount":"1","z":1,"z":1}]"#)), bad);
    // Whatever the kind: it is a property of the document.
    assert_eq!(verdict(r#"{"kind":"redeem","items":[{"sku":"a","sku":"b"}]}"#), bad);
    // Inside unknown fields nothing is checked.
    assert_eq!(verdict(&purchase(r#""u":{"a":1,"a":2},"w":[{"b":1,"b":1}]"#)), OK);
    assert_eq!(verdict(&purchase(r#""items":[{"amount":"1","u":{"c":1,"c":1}}]"#)), OK);
    // Many distinct unknown keys.
    let many: Vec<String> = (0..300).map(|i| format!("\"k{i}\":{i}")).collect();
    assert_eq!(verdict(&purchase(&many.join(","))), OK);
}

/// `n` nested arrays inside an unknown field of the event object.
fn nested(n: usize) -> String {
    purchase(&format!(r#""deep":{}{}"#, "[".repeat(n), "]".repeat(n)))
}

#[test]
fn depth_limit() {
    // The event object is level 1: 127 more levels are accepted, 128 are not.
    assert_eq!(verdict(&nested(MAX_DEPTH - 1)), OK);
    assert_eq!(verdict(&nested(MAX_DEPTH)), err("invalid_json", ""));
    let objects = |n: usize| purchase(&format!(r#""o":{}1{}"#, r#"{"a":"#.repeat(n), "}".repeat(n)));
    assert_eq!(verdict(&objects(MAX_DEPTH - 1)), OK);
    assert_eq!(verdict(&objects(MAX_DEPTH)), err("invalid_json", ""));
}

#[test]
fn unknown_kind() {
    assert_eq!(
        verdict(r#"{"event_id":"E015","kind":"gift","member_id":"M1","occurred_at":"2026-11-08T12:00:00Z"}"#),
        err("unknown_kind", "gift")
    );
    for (kind, detail) in [
        (r#""Purchase""#, "Purchase"),
        (r#""""#, ""),
        ("true", "true"),
        ("5", "5"),
        ("-5", "-5"),
        ("1.5", "1.5"),
        ("1e400", "1e300"),
        ("{}", "object"),
        ("[1]", "array"),
    ] {
        assert_eq!(verdict(&format!(r#"{{"kind":{kind}}}"#)), err("unknown_kind", detail), "{kind}");
    }
    // Before missing fields, after invalid JSON.
    assert_eq!(verdict(r#"{"kind":"x","kind":"y"}"#), err("invalid_json", ""));
    // null is the default.
    assert_eq!(verdict(&format!(r#"{{"kind":null,{P}}}"#)), OK);
}

#[test]
fn missing_fields_in_order() {
    let occurred = r#""occurred_at":"2026-11-02T08:15:00Z""#;
    assert_eq!(verdict("{}"), err("missing_field", "event_id"));
    assert_eq!(verdict(r#"{"event_id":"E"}"#), err("missing_field", "occurred_at"));
    assert_eq!(verdict(&format!(r#"{{"event_id":"E",{occurred}}}"#)), err("missing_field", "currency"));
    assert_eq!(verdict(&format!(r#"{{"event_id":"E",{occurred},"currency":"EUR"}}"#)), err("missing_field", "total"));
    assert_eq!(
        verdict(&format!(r#"{{"event_id":"E",{occurred},"currency":"EUR","total":null}}"#)),
        err("missing_field", "total")
    );
    assert_eq!(verdict(&purchase(r#""items":[{"amount":"1"},{"sku":"x"}]"#)), err("missing_field", "items.amount"));
    assert_eq!(verdict(&purchase(r#""items":[{"amount":null}]"#)), err("missing_field", "items.amount"));
    assert_eq!(verdict(&format!(r#"{{"kind":"refund",{P}}}"#)), err("missing_field", "original_event_id"));
    assert_eq!(verdict(&format!(r#"{{"kind":"redeem","event_id":"E",{occurred}}}"#)), err("missing_field", "points"));
    assert_eq!(verdict(r#"{"kind":"redeem","event_id":"E","points":0}"#), err("missing_field", "occurred_at"));
    // Missing beats every later reason.
    assert_eq!(
        verdict(r#"{"program":"nope","currency":"USD","total":"-1","member_id":5}"#),
        err("missing_field", "event_id")
    );
}

#[test]
fn unknown_program() {
    assert_eq!(verdict(&purchase(r#""program":"nope""#)), err("unknown_program", "nope"));
    // Before invalid amounts and currency mismatches.
    assert_eq!(
        verdict(r#"{"event_id":"E","occurred_at":"bad","program":"nope","currency":"USD","total":"-1"}"#),
        err("unknown_program", "nope")
    );
    assert_eq!(verdict(&purchase(r#""program":"acme""#)), OK);
    assert_eq!(verdict(&purchase(r#""program":null"#)), OK);
    assert_eq!(verdict(&purchase(r#""program":5"#)), err("invalid_field", "program"));
}

#[test]
fn invalid_amounts() {
    let total = |t: &str| {
        verdict(&format!(r#"{{"event_id":"E","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":{t}}}"#))
    };
    for t in [
        r#""-5.00""#,
        r#""1.00001""#,
        r#""1e3""#,
        r#""12.""#,
        r#""""#,
        r#"" 1""#,
        r#""1_0""#,
        r#""1000000000000.01""#,
        "-1",
        "1.00001",
        "1000000000000.5",
        "1e400",
        "-1e400",
        "100000000000000000000",
        "-100000000000000000000",
        "true",
        "{}",
        "[]",
    ] {
        assert_eq!(total(t), err("invalid_amount", "total"), "{t}");
    }
    for t in [
        r#""0""#,
        r#""12""#,
        r#""00012.5000""#,
        r#""1000000000000""#,
        "0",
        "-0",
        "-0.0",
        "12.99",
        "1e12",
        "1e-400",
        "0.0001",
    ] {
        assert_eq!(total(t), OK, "{t}");
    }
    assert_eq!(
        verdict(&purchase(r#""items":[{"amount":"1"},{"amount":"-1"}]"#)),
        err("invalid_amount", "items.amount")
    );
    assert_eq!(verdict(&purchase(r#""items":[{"amount":1e400}]"#)), err("invalid_amount", "items.amount"));
    // Total is named before items; amounts beat currency and field errors.
    assert_eq!(
        verdict(r#"{"event_id":"E","occurred_at":"x","currency":"USD","total":"-1","items":[{"amount":"-1"}]}"#),
        err("invalid_amount", "total")
    );
    assert_eq!(
        verdict(r#"{"kind":"redeem","event_id":"E","occurred_at":"x","points":1,"total":"-1"}"#),
        err("invalid_field", "occurred_at")
    );
}

#[test]
fn currency_mismatch() {
    assert_eq!(
        verdict(r#"{"event_id":"E","occurred_at":"2026-11-02T08:15:00Z","currency":"USD","total":"1"}"#),
        err("currency_mismatch", "USD")
    );
    assert_eq!(
        verdict(
            r#"{"event_id":"E","program":"city","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"1"}"#
        ),
        err("currency_mismatch", "EUR")
    );
    // Before invalid fields.
    assert_eq!(
        verdict(r#"{"event_id":"","occurred_at":"x","currency":"USD","total":"1"}"#),
        err("currency_mismatch", "USD")
    );
    assert_eq!(
        verdict(r#"{"event_id":"E","occurred_at":"2026-11-02T08:15:00Z","currency":7,"total":"1"}"#),
        err("invalid_field", "currency")
    );
    // A mistyped program has no currency to compare with.
    assert_eq!(
        verdict(r#"{"event_id":"E","program":1,"occurred_at":"2026-11-02T08:15:00Z","currency":"USD","total":"1"}"#),
        err("invalid_field", "program")
    );
}

#[test]
fn invalid_fields_each_named() {
    let long = "x".repeat(129);
    let cases = [
        (r#"{"event_id":"","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"1"}"#.to_owned(), "event_id"),
        (
            format!(r#"{{"event_id":"{long}","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"1"}}"#),
            "event_id",
        ),
        (r#"{"event_id":5,"occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":"1"}"#.to_owned(), "event_id"),
        (purchase(r#""member_id":"""#), "member_id"),
        (purchase(&format!(r#""member_id":"{}""#, "m".repeat(65))), "member_id"),
        (purchase(r#""member_id":7"#), "member_id"),
        (purchase(r#""program":[]"#), "program"),
        (purchase(r#""merchant_id":1"#), "merchant_id"),
        (purchase(r#""store_id":true"#), "store_id"),
        (purchase(r#""channel":{}"#), "channel"),
        (
            r#"{"event_id":"E","occurred_at":"2026-02-30T00:00:00Z","currency":"EUR","total":"1"}"#.to_owned(),
            "occurred_at",
        ),
        (r#"{"event_id":"E","occurred_at":1700000000,"currency":"EUR","total":"1"}"#.to_owned(), "occurred_at"),
        (purchase(r#""items":{}"#), "items"),
        (purchase(r#""items":"x""#), "items"),
        (purchase(r#""items":[1]"#), "items"),
        (purchase(r#""items":[{"amount":"1","sku":1}]"#), "items.sku"),
        (purchase(r#""items":[{"amount":"1","category":[]}]"#), "items.category"),
        (purchase(r#""items":[{"amount":"1","quantity":0}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":1000001}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":2.0}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":"2"}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":-1}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":1e400}]"#), "items.quantity"),
        (purchase(r#""items":[{"amount":"1","quantity":100000000000000000000}]"#), "items.quantity"),
        (format!(r#"{{"kind":"refund","original_event_id":"",{P}}}"#), "original_event_id"),
        (format!(r#"{{"kind":"refund","original_event_id":["E"],{P}}}"#), "original_event_id"),
    ];
    for (json, field) in cases {
        assert_eq!(verdict(&json), err("invalid_field", field), "{json}");
    }
    let redeem = |p: &str| {
        verdict(&format!(r#"{{"kind":"redeem","event_id":"E","occurred_at":"2026-11-02T08:15:00Z","points":{p}}}"#))
    };
    for p in ["0", "-1", "1000000001", "5.0", "\"5\"", "1e400", "100000000000000000000", "true"] {
        assert_eq!(redeem(p), err("invalid_field", "points"), "{p}");
    }
    for p in ["1", "1000000000"] {
        assert_eq!(redeem(p), OK, "{p}");
    }
}

#[test]
fn invalid_field_detail_follows_the_fixed_order() {
    assert_eq!(
        verdict(r#"{"event_id":"","member_id":1,"occurred_at":"x","currency":"EUR","total":"1"}"#),
        err("invalid_field", "event_id")
    );
    assert_eq!(verdict(&purchase(r#""channel":1,"member_id":1,"store_id":1"#)), err("invalid_field", "member_id"));
    assert_eq!(
        verdict(&purchase(r#""items":[{"amount":"1","quantity":0},{"amount":"1","sku":5}]"#)),
        err("invalid_field", "items.quantity")
    );
    assert_eq!(
        verdict(&purchase(r#""items":[{"amount":"1","quantity":0,"sku":5}]"#)),
        err("invalid_field", "items.sku")
    );
    // An invalid item field loses to a missing amount in a later item.
    assert_eq!(
        verdict(&purchase(r#""items":[{"amount":"1","quantity":0},{"sku":"x"}]"#)),
        err("missing_field", "items.amount")
    );
}

#[test]
fn anonymous_events() {
    let mut d = Decoder::default();
    let ps = programs();
    let e = d.decode(purchase("").as_bytes(), &ps).unwrap();
    assert_eq!(e.member_id, None);
    let e = d.decode(purchase(r#""member_id":null"#).as_bytes(), &ps).unwrap();
    assert_eq!(e.member_id, None);
    let m64 = "m".repeat(64);
    let json = purchase(&format!(r#""member_id":"{m64}""#));
    let e = d.decode(json.as_bytes(), &ps).unwrap();
    assert_eq!(e.member_id, Some(m64.as_str()));
}

#[test]
fn kinds_ignore_fields_they_do_not_use() {
    // Purchase: original_event_id and points are not read.
    assert_eq!(verdict(&purchase(r#""original_event_id":5,"points":"x""#)), OK);
    // Refund: items are not read.
    assert_eq!(
        verdict(&format!(
            r#"{{"kind":"refund","original_event_id":"E0","items":[1,{{"quantity":0}}],"points":-1,{P}}}"#
        )),
        OK
    );
    // Redeem: currency, total, items and original_event_id are not read.
    assert_eq!(
        verdict(
            r#"{"kind":"redeem","event_id":"E","occurred_at":"2026-11-02T08:15:00Z","points":5,"currency":"USD","total":-1,"items":"x","original_event_id":""}"#
        ),
        OK
    );
}

#[test]
fn huge_numbers_in_unknown_fields_are_ignored() {
    for v in ["1e400", "-1e400", "100000000000000000000", "-100000000000000000000", "[1e999,{\"a\":1E+400}]"] {
        assert_eq!(verdict(&purchase(&format!(r#""x":{v}"#))), OK, "{v}");
    }
    // Kinds that ignore a field ignore a huge number in it.
    assert_eq!(
        verdict(r#"{"kind":"redeem","event_id":"E","occurred_at":"2026-11-02T08:15:00Z","points":5,"total":1e400}"#),
        OK
    );
    // The strings around a replaced number keep their escapes.
    let mut d = Decoder::default();
    let ps = programs();
    let json = purchase(r#""member_id":"a\"b\\","x":1e400"#);
    let e = d.decode(json.as_bytes(), &ps).unwrap();
    assert_eq!(e.member_id, Some("a\"b\\"));
    // Still invalid JSON when something else is wrong too.
    assert_eq!(verdict(r#"{"x":1e400,}"#), err("invalid_json", ""));
}

#[test]
fn timestamps_in_events() {
    let at = |s: &str| verdict(&format!(r#"{{"event_id":"E","occurred_at":"{s}","currency":"EUR","total":"1"}}"#));
    assert_eq!(at("2024-02-29T12:00:00Z"), OK);
    assert_eq!(at("2023-02-29T12:00:00Z"), err("invalid_field", "occurred_at"));
    assert_eq!(at("2026-12-31T23:59:60Z"), err("invalid_field", "occurred_at"));
    assert_eq!(at("3000-01-01T00:00:00Z"), err("invalid_field", "occurred_at"));
    assert_eq!(at("1969-12-31T23:59:59Z"), err("invalid_field", "occurred_at"));
    assert_eq!(at("1970-01-01T00:00:00Z"), OK);
    assert_eq!(at("2026-11-02t08:15:00.1234567z"), OK);
    // Unescaped before parsing.
    assert_eq!(at(r"2026-11-02\u005408:15:00Z"), OK);
    let mut d = Decoder::default();
    let json = purchase("").replace("08:15:00Z", "08:15:00.9999999-01:30");
    let e = d.decode(json.as_bytes(), &programs()).unwrap();
    assert_eq!(e.occurred_at, Micros(parse_timestamp("2026-11-02T09:45:00Z").unwrap().0 + 999_999));
}

const OCCURRED: &str = r#""occurred_at":"2026-11-02T08:15:00Z""#;

/// A valid profile of member M1 with `extra` fields appended.
fn profile(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"event_id":"F1","kind":"profile","member_id":"M1",{OCCURRED}{sep}{extra}}}"#)
}

/// A valid adjustment of member M1 by `points`, with `extra` fields appended.
fn adjust(points: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"event_id":"A1","kind":"adjust","member_id":"M1",{OCCURRED},"points":{points}{sep}{extra}}}"#)
}

#[test]
fn decodes_a_profile_without_birth_date() {
    let mut d = Decoder::default();
    let ps = programs();
    let e = d.decode(profile("").as_bytes(), &ps).unwrap();
    assert_eq!(e.event_id, "F1");
    assert_eq!(e.kind, Kind::Profile);
    assert_eq!(e.member_id, Some("M1"));
    assert_eq!(e.program, 0);
    assert_eq!(e.occurred_at, parse_timestamp("2026-11-02T08:15:00Z").unwrap());
    assert_eq!(e.birth_date, None);
    assert_eq!(e.reason, None);
    assert_eq!(e.points, 0);
    assert_eq!(e.total, Decimal::ZERO);
    assert!(e.items.is_empty());
    // null is the same as absent.
    let e = d.decode(profile(r#""birth_date":null"#).as_bytes(), &ps).unwrap();
    assert_eq!(e.birth_date, None);
}

#[test]
fn decodes_a_profile_with_birth_date() {
    let mut d = Decoder::default();
    let ps = programs();
    let json =
        profile(r#""birth_date":"1990-02-10","program":"city","merchant_id":"grocer","store_id":"S","channel":"app""#);
    let e = d.decode(json.as_bytes(), &ps).unwrap();
    assert_eq!(e.kind, Kind::Profile);
    assert_eq!(e.birth_date, Some(Date { year: 1990, month: 2, day: 10 }));
    assert_eq!(e.program, 1);
    assert_eq!(e.merchant_id, Some("grocer"));
    assert_eq!(e.store_id, Some("S"));
    assert_eq!(e.channel, Some("app"));
    // Unescaped before parsing.
    let e = d.decode(profile(r#""birth_date":"1990\u002d02-10""#).as_bytes(), &ps).unwrap();
    assert_eq!(e.birth_date, Some(Date { year: 1990, month: 2, day: 10 }));
}

#[test]
fn birth_dates() {
    let birth = |b: &str| verdict(&profile(&format!(r#""birth_date":{b}"#)));
    let bad = err("invalid_field", "birth_date");
    // 29 February only in leap years.
    for b in ["2000-02-29", "2024-02-29", "1996-02-29", "0001-01-01", "9999-12-31", "1990-12-31", "1990-04-30"] {
        assert_eq!(birth(&format!("\"{b}\"")), OK, "{b}");
    }
    for b in ["2023-02-29", "1900-02-29", "2100-02-29", "1990-02-30", "1990-04-31", "1990-13-01", "1990-00-10"] {
        assert_eq!(birth(&format!("\"{b}\"")), bad, "{b}");
    }
    // Bad formats and types.
    for b in [
        r#""1990-2-10""#,
        r#""1990-02-1""#,
        r#""1990-02-10T00:00:00Z""#,
        r#""1990-02-10 ""#,
        r#""10.02.1990""#,
        r#""1990/02/10""#,
        r#""19900210""#,
        r#""0000-01-01""#,
        r#""""#,
        "19900210",
        "1990",
        "-1",
        "1.5",
        "1e400",
        "true",
        "[1990,2,10]",
        r#"{"year":1990}"#,
    ] {
        assert_eq!(birth(b), bad, "{b}");
    }
}

#[test]
fn birth_date_after_the_event_is_accepted() {
    // The CRM owns the birth date: only its form is judged.
    let mut d = Decoder::default();
    let e = d.decode(profile(r#""birth_date":"2030-06-01""#).as_bytes(), &programs()).unwrap();
    assert_eq!(e.birth_date, Some(Date { year: 2030, month: 6, day: 1 }));
}

#[test]
fn decodes_adjustments() {
    let mut d = Decoder::default();
    let ps = programs();
    for (p, want) in [
        ("-650", -650),
        ("25", 25),
        ("1", 1),
        ("-1", -1),
        ("1000000000", 1_000_000_000),
        ("-1000000000", -1_000_000_000),
    ] {
        let e = d.decode(adjust(p, "").as_bytes(), &ps).unwrap();
        assert_eq!(e.kind, Kind::Adjust);
        assert_eq!(e.member_id, Some("M1"));
        assert_eq!(e.points, want, "{p}");
        assert_eq!(e.reason, None);
        assert_eq!(e.birth_date, None);
        assert_eq!(e.total, Decimal::ZERO);
    }
    let e = d.decode(adjust("-5", r#""reason":"correction \"ticket\" 7","merchant_id":"m""#).as_bytes(), &ps).unwrap();
    assert_eq!(e.reason, Some("correction \"ticket\" 7"));
    assert_eq!(e.merchant_id, Some("m"));
    let e = d.decode(adjust("5", r#""reason":null"#).as_bytes(), &ps).unwrap();
    assert_eq!(e.reason, None);
    let e = d.decode(adjust("5", r#""reason":"""#).as_bytes(), &ps).unwrap();
    assert_eq!(e.reason, Some(""));
}

#[test]
fn adjustment_points() {
    let bad = err("invalid_field", "points");
    for p in [
        "0",
        "-0",
        "1000000001",
        "-1000000001",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "100000000000000000000",
        "-100000000000000000000",
        "1e400",
        "-1e400",
        "5.0",
        "-5.5",
        "1e3",
        "\"5\"",
        "true",
        "[5]",
        "{}",
    ] {
        assert_eq!(verdict(&adjust(p, "")), bad, "{p}");
    }
    assert_eq!(
        verdict(&format!(r#"{{"event_id":"A1","kind":"adjust","member_id":"M1",{OCCURRED}}}"#)),
        err("missing_field", "points")
    );
    assert_eq!(verdict(&adjust("null", "")), err("missing_field", "points"));
}

#[test]
fn adjustment_reasons() {
    let reason = |r: &str| verdict(&adjust("10", &format!(r#""reason":{r}"#)));
    let bad = err("invalid_field", "reason");
    assert_eq!(reason(&format!("\"{}\"", "r".repeat(64))), OK);
    assert_eq!(reason(&format!("\"{}\"", "r".repeat(65))), bad);
    // Bytes, not characters: 32 two-byte characters fit, 33 do not.
    assert_eq!(reason(&format!("\"{}\"", "é".repeat(32))), OK);
    assert_eq!(reason(&format!("\"{}\"", "é".repeat(33))), bad);
    // Counted after unescaping: 64 escapes of one byte each fit.
    assert_eq!(reason(&format!("\"{}\"", r"\n".repeat(64))), OK);
    assert_eq!(reason(&format!("\"{}\"", r"\n".repeat(65))), bad);
    for r in ["5", "true", "[\"x\"]", "{}", "1e400"] {
        assert_eq!(reason(r), bad, "{r}");
    }
}

#[test]
fn profile_and_adjust_need_a_member() {
    let missing = err("missing_field", "member_id");
    assert_eq!(verdict(&profile("").replace(r#""member_id":"M1","#, "")), missing);
    assert_eq!(verdict(&profile("").replace(r#""M1""#, "null")), missing);
    assert_eq!(verdict(&adjust("5", "").replace(r#""member_id":"M1","#, "")), missing);
    assert_eq!(verdict(&adjust("5", "").replace(r#""M1""#, "null")), missing);
    // A present but bad member_id is invalid, as for every kind.
    assert_eq!(verdict(&profile("").replace(r#""M1""#, "5")), err("invalid_field", "member_id"));
    assert_eq!(verdict(&adjust("5", "").replace(r#""M1""#, r#""""#)), err("invalid_field", "member_id"));
    // Whereas a redeem (or purchase, refund) without one is anonymous.
    let mut d = Decoder::default();
    let ps = programs();
    let redeem = format!(r#"{{"event_id":"D1","kind":"redeem",{OCCURRED},"points":5}}"#);
    let e = d.decode(redeem.as_bytes(), &ps).unwrap();
    assert_eq!((e.kind, e.member_id), (Kind::Redeem, None));
    let e = d.decode(redeem.replace(r#""points""#, r#""member_id":null,"points""#).as_bytes(), &ps).unwrap();
    assert_eq!((e.kind, e.member_id), (Kind::Redeem, None));
}

#[test]
fn profile_and_adjust_missing_fields_in_order() {
    assert_eq!(verdict(r#"{"kind":"profile"}"#), err("missing_field", "event_id"));
    assert_eq!(verdict(r#"{"kind":"profile","event_id":"E"}"#), err("missing_field", "member_id"));
    assert_eq!(verdict(r#"{"kind":"profile","event_id":"E","member_id":"M"}"#), err("missing_field", "occurred_at"));
    assert_eq!(verdict(r#"{"kind":"adjust","event_id":"E","points":0}"#), err("missing_field", "member_id"));
    assert_eq!(verdict(r#"{"kind":"adjust","event_id":"E","member_id":"M"}"#), err("missing_field", "occurred_at"));
    // A missing member beats every later reason.
    assert_eq!(
        verdict(&format!(r#"{{"kind":"profile","event_id":"E",{OCCURRED},"program":"nope","birth_date":"x"}}"#)),
        err("missing_field", "member_id")
    );
    assert_eq!(
        verdict(r#"{"kind":"adjust","event_id":"","occurred_at":"x","points":0,"reason":5}"#),
        err("missing_field", "member_id")
    );
}

#[test]
fn profile_and_adjust_reasons_in_order() {
    // unknown_program before invalid fields.
    assert_eq!(verdict(&profile(r#""program":"nope","birth_date":"x""#)), err("unknown_program", "nope"));
    assert_eq!(verdict(&adjust("0", r#""program":"nope""#)), err("unknown_program", "nope"));
    assert_eq!(verdict(&adjust("5", r#""program":5"#)), err("invalid_field", "program"));
    // The fixed detail order: ... occurred_at, ..., points, birth_date, reason.
    assert_eq!(
        verdict(r#"{"kind":"profile","event_id":"E","member_id":"M","occurred_at":"x","birth_date":"x"}"#),
        err("invalid_field", "occurred_at")
    );
    assert_eq!(verdict(&profile(r#""channel":1,"birth_date":"x""#)), err("invalid_field", "channel"));
    assert_eq!(verdict(&adjust("0", r#""reason":5"#)), err("invalid_field", "points"));
    assert_eq!(verdict(&adjust("5", r#""store_id":5,"reason":5"#)), err("invalid_field", "store_id"));
    // No currency: a foreign one is ignored.
    assert_eq!(verdict(&adjust("5", r#""currency":"USD","total":"-1""#)), OK);
}

#[test]
fn profile_and_adjust_ignore_fields_they_do_not_use() {
    let unused = r#""currency":"USD","total":-1,"items":"x","original_event_id":"","x":1e400"#;
    assert_eq!(verdict(&profile(&format!(r#"{unused},"points":0,"reason":5"#))), OK);
    assert_eq!(verdict(&adjust("5", &format!(r#"{unused},"birth_date":"x""#))), OK);
    // And the older kinds ignore the new fields.
    assert_eq!(verdict(&purchase(r#""birth_date":"x","reason":5"#)), OK);
    assert_eq!(
        verdict(&format!(r#"{{"event_id":"D1","kind":"redeem",{OCCURRED},"points":5,"birth_date":1,"reason":[]}}"#)),
        OK
    );
    // Repeated new keys are still invalid JSON.
    assert_eq!(verdict(&profile(r#""birth_date":"1990-01-01","birth_date":null"#)), err("invalid_json", ""));
    assert_eq!(verdict(&adjust("5", r#""reason":"a","reason":"a""#)), err("invalid_json", ""));
}

#[test]
fn new_kinds_are_known() {
    assert_eq!(verdict(r#"{"kind":"Profile"}"#), err("unknown_kind", "Profile"));
    assert_eq!(verdict(r#"{"kind":"adjustment"}"#), err("unknown_kind", "adjustment"));
}

/// Every limit of the decoder: at the limit the event passes, one over it
/// is a dead letter with the limit's reason and detail.
#[test]
fn limits_at_their_boundaries() {
    let s = |n: usize| "s".repeat(n);
    let refund = |id: &str| format!(r#"{{"kind":"refund","original_event_id":"{id}",{P}}}"#);
    let at_occurred = |t: &str| purchase("").replace("2026-11-02T08:15:00Z", t);
    let timestamp = |n: usize| format!("2026-11-02T08:15:00.{}Z", "0".repeat(n - 21));
    let items = |n: usize, item: &str| purchase(&format!(r#""items":[{}]"#, vec![item; n].join(",")));
    let item = r#"{"amount":"1"}"#;
    let quantity = |q: &str| purchase(&format!(r#""items":[{{"amount":"1","quantity":{q}}}]"#));
    let redeem = |p: &str| format!(r#"{{"kind":"redeem","event_id":"E",{OCCURRED},"points":{p}}}"#);
    let total = |t: &str| purchase("").replace(r#""1.00""#, t);
    let cases: Vec<(String, String, (&str, &str))> = vec![
        (
            purchase("").replace(r#""E1""#, &format!("\"{}\"", s(MAX_EVENT_ID_BYTES))),
            purchase("").replace(r#""E1""#, &format!("\"{}\"", s(MAX_EVENT_ID_BYTES + 1))),
            ("invalid_field", "event_id"),
        ),
        (refund(&s(MAX_EVENT_ID_BYTES)), refund(&s(MAX_EVENT_ID_BYTES + 1)), ("invalid_field", "original_event_id")),
        (
            purchase(&format!(r#""member_id":"{}""#, s(MAX_MEMBER_ID_BYTES))),
            purchase(&format!(r#""member_id":"{}""#, s(MAX_MEMBER_ID_BYTES + 1))),
            ("invalid_field", "member_id"),
        ),
        (
            at_occurred(&timestamp(MAX_TIMESTAMP_BYTES)),
            at_occurred(&timestamp(MAX_TIMESTAMP_BYTES + 1)),
            ("invalid_field", "occurred_at"),
        ),
        (items(MAX_ITEMS, item), items(MAX_ITEMS + 1, item), ("invalid_field", "items")),
        (quantity("1000000"), quantity("1000001"), ("invalid_field", "items.quantity")),
        (redeem("1000000000"), redeem("1000000001"), ("invalid_field", "points")),
        (adjust("-1000000000", ""), adjust("-1000000001", ""), ("invalid_field", "points")),
        (total(r#""1000000000000""#), total(r#""1000000000000.0001""#), ("invalid_amount", "total")),
        (total("1e12"), total("1.0000000000001e12"), ("invalid_amount", "total")),
    ];
    for (at, over, (reason, detail)) in cases {
        assert_eq!(verdict(&at), OK, "{at}");
        assert_eq!(verdict(&over), err(reason, detail), "{over}");
    }
    for field in ["merchant_id", "store_id", "channel"] {
        let at = purchase(&format!(r#""{field}":"{}""#, s(MAX_NAME_BYTES)));
        assert_eq!(verdict(&at), OK, "{field}");
        let over = purchase(&format!(r#""{field}":"{}""#, s(MAX_NAME_BYTES + 1)));
        assert_eq!(verdict(&over), err("invalid_field", field));
    }
    for field in ["sku", "category"] {
        let at = purchase(&format!(r#""items":[{{"amount":"1","{field}":"{}"}}]"#, s(MAX_NAME_BYTES)));
        assert_eq!(verdict(&at), OK, "{field}");
        let over = purchase(&format!(r#""items":[{{"amount":"1","{field}":"{}"}}]"#, s(MAX_NAME_BYTES + 1)));
        assert_eq!(verdict(&over), err("invalid_field", &format!("items.{field}")));
    }
    // Lengths are bytes after unescaping, as for every string.
    let merchant = |m: &str| verdict(&purchase(&format!(r#""merchant_id":"{m}""#)));
    assert_eq!(merchant(&"é".repeat(MAX_NAME_BYTES / 2)), OK);
    assert_eq!(merchant(&"é".repeat(MAX_NAME_BYTES / 2 + 1)), err("invalid_field", "merchant_id"));
    assert_eq!(merchant(&r"\u0041".repeat(MAX_NAME_BYTES)), OK);
    assert_eq!(merchant(&r"\u0041".repeat(MAX_NAME_BYTES + 1)), err("invalid_field", "merchant_id"));
    // The message size, to the byte.
    let json = purchase("");
    let mut d = Decoder::new(json.len());
    assert!(d.decode(json.as_bytes(), &programs()).is_ok());
    let mut d = Decoder::new(json.len() - 1);
    assert_eq!(d.decode(json.as_bytes(), &programs()).unwrap_err().reason, Reason::TooLarge);
}

#[test]
fn items_past_the_limit_are_still_read_for_earlier_reasons() {
    let basket = |last: &str| {
        let mut items = vec![r#"{"amount":"1"}"#; MAX_ITEMS];
        items.push(last);
        purchase(&format!(r#""items":[{}]"#, items.join(",")))
    };
    assert_eq!(verdict(&basket(r#"{"sku":"x"}"#)), err("missing_field", "items.amount"));
    assert_eq!(verdict(&basket(r#"{"amount":"-1"}"#)), err("invalid_amount", "items.amount"));
    assert_eq!(verdict(&basket(r#"{"amount":"1","amount":"1"}"#)), err("invalid_json", ""));
    // Among invalid fields, the count comes before the items' own.
    assert_eq!(verdict(&basket(r#"{"amount":"1","sku":5}"#)), err("invalid_field", "items"));
    // An earlier field still comes first.
    assert_eq!(verdict(&basket(r#"{"amount":"1"}"#).replace(r#""E1""#, "5")), err("invalid_field", "event_id"));
    // A decoder that saw too many items decodes the next event whole.
    let mut d = Decoder::default();
    let ps = programs();
    assert!(d.decode(basket(r#"{"amount":"1"}"#).as_bytes(), &ps).is_err());
    let e = d.decode(purchase(r#""items":[{"amount":"2"},{"amount":"3"}]"#).as_bytes(), &ps).unwrap();
    assert_eq!(e.items.iter().map(|i| i.amount).collect::<Vec<_>>(), [dec("2"), dec("3")]);
}

/// Bytes held by a decoder's message-sized buffers.
fn held(d: &Decoder) -> usize {
    d.buf.capacity() + d.scratch.capacity() + d.tape.0.capacity() * size_of::<Node<'static>>()
}

#[test]
fn a_large_message_does_not_pin_its_buffers() {
    let ps = programs();
    let mut d = Decoder::default();
    let small = purchase(r#""items":[{"amount":"1"}]"#);
    assert!(d.decode(small.as_bytes(), &ps).is_ok());
    let warm = held(&d);
    // As many values as fit: a node of the tape for each.
    let zeros = vec!["0"; 30_000].join(",");
    let large = purchase(&format!(r#""x":[{zeros}],"y":1e400"#));
    assert!(large.len() <= DEFAULT_MAX_MESSAGE_BYTES);
    assert!(d.decode(large.as_bytes(), &ps).is_ok());
    assert!(held(&d) > 500_000, "{}", held(&d));
    // A second large message reuses what the first one grew.
    assert!(d.decode(large.as_bytes(), &ps).is_ok());
    // The next small message gives it back.
    let e = d.decode(small.as_bytes(), &ps).unwrap();
    assert_eq!(e.items.len(), 1);
    assert_eq!(held(&d), warm);
}
