//! Decoding a valid event allocates nothing once the decoder is warm: the
//! message copy, the tape, the parser's buffers and the items all reuse
//! memory the decoder kept from earlier calls.
//!
//! Its own test binary, because it installs a counting global allocator.

#![allow(unsafe_code, reason = "a global allocator is an unsafe impl; it only delegates to System")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod decode_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use loyalty_scorer::decode::Decoder;
use loyalty_scorer::event::Kind;

struct Counting;

thread_local! {
    /// Only the test's own thread is counted, not the harness's.
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = ENABLED.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    ENABLED.with(|on| on.set(true));
    f();
    ENABLED.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

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
    let n = allocations(|| {
        for _ in 0..100 {
            for message in EVENTS {
                let event = decoder.decode(message.as_bytes(), &programs).unwrap();
                std::hint::black_box(&event);
            }
        }
    });
    assert_eq!(n, 0, "allocations while decoding warm");
    // The counter does count: an error allocates its detail.
    let n = allocations(|| {
        let _ = std::hint::black_box(decoder.decode(br#"{"kind":"gift"}"#, &programs));
    });
    assert!(n > 0);
}
