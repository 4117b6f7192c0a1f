//! JSON-number amounts against the reference rule of the contract: the
//! shortest decimal that reads back as the same double, i.e. what
//! `str::parse::<f64>`, `format!("{}")` and `Decimal::from_str` give, with
//! the same `invalid_amount` verdict (negative, over 10^12, more than 4
//! decimal places). Over a million seeded random literals.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod decode_support;

use std::str::FromStr;

use loyalty_scorer::decode::{Decoder, Reason};
use loyalty_scorer::rules::ProgramSet;
use rust_decimal::Decimal;

/// splitmix64: small, seeded, good enough to spread literals around.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `n` random digits, the first non-zero.
    fn digits(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        s.push(char::from(b'1' + self.below(9) as u8));
        for _ in 1..n {
            s.push(char::from(b'0' + self.below(10) as u8));
        }
        s
    }
}

/// The contract's verdict for a JSON-number amount, computed the slow way.
fn reference(literal: &str) -> Option<Decimal> {
    let f: f64 = literal.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let d = Decimal::from_str(&format!("{f}")).ok()?;
    let max = Decimal::from(1_000_000_000_000u64);
    ((d.is_zero() || !d.is_sign_negative()) && d.scale() <= 4 && d <= max).then_some(d)
}

/// A literal and, when it has at most 15 significant digits, at most 4
/// decimal places and is in range, the decimal it must decode to exactly.
fn literal(rng: &mut Rng) -> (String, Option<Decimal>) {
    let sign = if rng.below(16) == 0 { "-" } else { "" };
    match rng.below(6) {
        // 4-decimal values near 10^12, on both sides: 16 or 17 significant
        // digits, so not always their own shortest form.
        0 => {
            let m = 10_000_000_000_000_000u64 + rng.below(2_000_001) - 1_000_000;
            (format!("{sign}{}.{:04}", m / 10_000, m % 10_000), None)
        }
        // Up to 17 significant digits with an exponent.
        1 => {
            let n = 1 + rng.below(17) as usize;
            let e = rng.below(40) as i64 - 24;
            let mark = ["e", "E", "e+", "E+"][rng.below(4) as usize];
            let mark = if e < 0 { &mark[..1] } else { mark };
            (format!("{sign}{}{mark}{e}", rng.digits(n)), None)
        }
        // Up to 17 significant digits with a decimal point somewhere.
        2 => {
            let n = 1 + rng.below(17) as usize;
            let digits = rng.digits(n);
            let point = rng.below(n as u64 + 1) as usize;
            let s = if point == 0 {
                format!("{sign}0.{digits}")
            } else if point == n {
                format!("{sign}{digits}.0")
            } else {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            };
            let decimals = s.len() - s.find('.').unwrap() - 1;
            let exact = (sign.is_empty() && n <= 15 && decimals <= 4)
                .then(|| dec(&s))
                .filter(|d| *d <= Decimal::from(1_000_000_000_000u64));
            (s, exact)
        }
        // Up to 15 significant digits, at most 4 decimals: always exact.
        3 => {
            let n = 1 + rng.below(15) as usize;
            let digits = rng.digits(n);
            let decimals = (rng.below(5) as usize).min(n);
            let s =
                if decimals == 0 { digits } else { format!("{}.{}", &digits[..n - decimals], &digits[n - decimals..]) };
            let s = if s.starts_with('.') { format!("0{s}") } else { s };
            let exact = Some(dec(&s)).filter(|d| *d <= Decimal::from(1_000_000_000_000u64));
            (s, exact)
        }
        // Any finite double, in Rust's shortest exponent form.
        4 => {
            let f = f64::from_bits(rng.next());
            let f = if f.is_finite() { f } else { 1.5 };
            (format!("{f:e}"), None)
        }
        // Integers, some beyond u64.
        _ => {
            let n = 1 + rng.below(22) as usize;
            (format!("{sign}{}", rng.digits(n)), None)
        }
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn message(total: &str) -> String {
    format!(r#"{{"event_id":"E","occurred_at":"2026-11-02T08:15:00Z","currency":"EUR","total":{total}}}"#)
}

fn decoded(decoder: &mut Decoder, programs: &ProgramSet, literal: &str) -> Option<Decimal> {
    match decoder.decode(message(literal).as_bytes(), programs) {
        Ok(e) => Some(e.total),
        Err(e) => {
            assert_eq!((e.reason, e.detail.as_str()), (Reason::InvalidAmount, "total"), "{literal}");
            None
        }
    }
}

#[test]
fn json_number_totals_match_the_reference() {
    let programs = decode_support::programs(vec![decode_support::program("acme", "EUR")]);
    let mut decoder = Decoder::default();
    let mut rng = Rng(0x5eed_1e55_c0ff_ee00);
    let (mut valid, mut exact) = (0u32, 0u32);
    for _ in 0..1_050_000 {
        let (lit, must_be) = literal(&mut rng);
        let got = decoded(&mut decoder, &programs, &lit);
        assert_eq!(got, reference(&lit), "{lit}");
        if let Some(d) = must_be {
            assert_eq!(got, Some(d), "{lit} must decode to itself");
            exact += 1;
        }
        valid += u32::from(got.is_some());
    }
    // The generator must exercise both verdicts and the exact cases.
    assert!(valid > 300_000, "{valid}");
    assert!(exact > 150_000, "{exact}");
}

#[test]
fn edges() {
    let programs = decode_support::programs(vec![decode_support::program("acme", "EUR")]);
    let mut decoder = Decoder::default();
    for lit in [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "0e10",
        "1e12",
        "1000000000000",
        "1000000000000.0001",
        "999999999999.9999",
        "0.0001",
        "0.00005",
        "1e-4",
        "1.5e-4",
        "12.99",
        "0.1",
        "0.3",
        "5e-324",
        "1.7976931348623157e308",
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551615",
        "18446744073709551616",
        "9007199254740993",
        "0.30000000000000004",
        "123456789012.3456",
    ] {
        assert_eq!(decoded(&mut decoder, &programs, lit), reference(lit), "{lit}");
    }
}
