//! Decoding a valid event allocates nothing once the decoder is warm: the
//! message copy, the tape, the parser's buffers and the items all reuse
//! memory the decoder kept from earlier calls.
//!
//! Its own test binary, because it installs a counting global allocator
//! (`tests/alloc_support`).

#![allow(unsafe_code, reason = "a global allocator is an unsafe impl; it only delegates to System")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod alloc_support;
mod decode_support;

use alloc_support::allocations;
use loyalty_scorer::decode::Decoder;
use loyalty_scorer::event::Kind;

const EVENTS: [&str; 5] = [
    r#"{"event_id":"pos-0042-2026-11-02-000731","kind":"purchase","member_id":"M-00017342","program":"acme","merchant_id":"acme","store_id":"S-Berlin-Mitte-\u00e4","channel":"store","occurred_at":"2026-11-02T09:15:00.123+01:00","currency":"EUR","total":"61.47","items":[{"sku":"COF-1\t\"espresso\"","category":"coffee","quantity":2,"amount":"7.00"},{"sku":"BRD-7","category":"bakery","amount":"5.50"},{"sku":"CIG-1","category":"tobacco","quantity":1,"amount":"30.00"},{"sku":"MLK-2","category":"dairy","quantity":3,"amount":"3.57"},{"sku":"APL-\u00d6ko","category":"produce","quantity":1,"amount":"15.40"}],"pos":{"till":4,"cashier":"C\/17"}}"#,
    r#"{"event_id":"web-\u0041-99","member_id":"M2","store_id":"web","channel":"online","occurred_at":"2026-12-24T23:59:59Z","currency":"EUR","total":12.99,"items":[{"sku":"A","category":"books","amount":1.5},{"sku":"B","category":"books","quantity":1000000,"amount":"0.0001"},{"sku":"C","category":"toys","amount":11},{"sku":"D","amount":"0"},{"sku":"E\\F","category":"toys","amount":"0.4899"},{"sku":"G","category":"toys","amount":"0"},{"sku":"H","category":"toys","amount":"0"},{"sku":"I","category":"toys","amount":"0"}]}"#,
    r#"{"event_id":"E9","kind":"refund","original_event_id":"pos-0042-2026-11-02-000731","member_id":"M-00017342","occurred_at":"2026-11-03T10:00:00Z","currency":"EUR","total":"30.735","items":[{"sku":"x","amount":"1"}],"note":"partial \ud83d\ude00 refund"}"#,
    r#"{"event_id":"P01","kind":"profile","member_id":"F1","program":"acme","channel":"app","occurred_at":"2026-01-05T10:00:00Z","birth_date":"2000-02-29","crm":{"source":"sign-up"}}"#,
    r#"{"event_id":"A01","kind":"adjust","member_id":"F1","merchant_id":"acme","occurred_at":"2026-02-20T08:00:00+01:00","points":-650,"reason":"correction \u00e9 #4711"}"#,
];

#[test]
fn warm_decoder_does_not_allocate() {
    let programs = decode_support::programs(vec![decode_support::program("acme", "EUR")]);
    assert!((500..=700).contains(&EVENTS[0].len()), "{}", EVENTS[0].len());
    let mut decoder = Decoder::default();
    let mut seen = Vec::new();
    for message in EVENTS {
        let event = decoder.decode(message.as_bytes(), &programs).unwrap();
        assert!(event.items.len() <= 8);
        match event.kind {
            Kind::Profile => assert!(event.birth_date.is_some()),
            Kind::Adjust => assert_eq!((event.points, event.reason), (-650, Some("correction \u{e9} #4711"))),
            _ => {}
        }
        seen.push(event.kind);
    }
    assert!(seen.contains(&Kind::Profile) && seen.contains(&Kind::Adjust), "{seen:?}");
    let (n, ()) = allocations(|| {
        for _ in 0..100 {
            for message in EVENTS {
                let event = decoder.decode(message.as_bytes(), &programs).unwrap();
                std::hint::black_box(&event);
            }
        }
    });
    assert_eq!(n, 0, "allocations while decoding warm");
    // The counter does count: an error allocates its detail.
    let (n, ()) = allocations(|| {
        let _ = std::hint::black_box(decoder.decode(br#"{"kind":"gift"}"#, &programs));
    });
    assert!(n > 0);
}
