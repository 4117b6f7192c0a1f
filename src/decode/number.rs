//! Amounts (`total`, item `amount`) and the cold-path repair of numbers that
//! simd-json cannot represent.
//!
//! Owns the contract's amount rule: 0 <= amount <= 10^12 with at most 4
//! decimal places, from a decimal string as written or from a JSON number as
//! its shortest round-trip decimal. Nothing here allocates on the valid path:
//! digits go straight into a [`Decimal`] mantissa, and a float is formatted
//! into a stack buffer. Invariant: every `Some` returned is an amount the
//! contract accepts.

use std::fmt::Write as _;

use rust_decimal::Decimal;

/// The largest amount the contract accepts, 10^12, in whole units.
const MAX_UNITS: u64 = 1_000_000_000_000;
/// The most decimal places an amount may have.
const MAX_SCALE: u32 = 4;

/// An amount written as a decimal string: ASCII digits, optionally a `.`
/// followed by at least one digit. Leading zeros are allowed; a sign,
/// exponent, space or `_` is not.
pub fn amount_from_str(s: &str) -> Option<Decimal> {
    // One pass: integer digits up to the first other byte, which must be
    // the dot of a fraction of 1..=4 digits.
    let b = s.as_bytes();
    let mut units: u64 = 0;
    let mut at = 0;
    while let Some(digit) = b.get(at).and_then(|c| digit(*c)) {
        // Past 10^12 the value is out of range whatever follows; stopping here
        // also keeps `units` far from overflow.
        units = units * 10 + digit;
        if units > MAX_UNITS {
            return None;
        }
        at += 1;
    }
    if at == 0 {
        return None;
    }
    let mut mantissa = units;
    let mut scale = 0;
    if at < b.len() {
        let frac = match &b[at..] {
            [b'.', frac @ ..] if (1..=MAX_SCALE as usize).contains(&frac.len()) => frac,
            _ => return None,
        };
        for &c in frac {
            mantissa = mantissa * 10 + digit(c)?;
        }
        scale = frac.len() as u32;
    }
    if units == MAX_UNITS && mantissa != units * 10u64.pow(scale) {
        return None;
    }
    Some(Decimal::from_i128_with_scale(i128::from(mantissa), scale))
}

/// The value of an ASCII digit.
fn digit(c: u8) -> Option<u64> {
    let d = c.wrapping_sub(b'0');
    (d <= 9).then_some(u64::from(d))
}

/// An amount from a JSON integer (simd-json's `U64`).
pub fn amount_from_u64(v: u64) -> Option<Decimal> {
    (v <= MAX_UNITS).then(|| Decimal::from(v))
}

/// An amount from a JSON integer (simd-json's `I64`; `-0` is 0).
pub fn amount_from_i64(v: i64) -> Option<Decimal> {
    u64::try_from(v).ok().and_then(amount_from_u64)
}

/// An amount from a JSON float: the shortest decimal that reads back as `v`.
///
/// Rust's `Display` for `f64` prints exactly those digits, without exponent;
/// any accepted amount fits in 13 integer digits, a dot and 4 fraction
/// digits, so a value whose text overflows the stack buffer is rejected
/// anyway.
pub fn amount_from_f64(v: f64) -> Option<Decimal> {
    if v == 0.0 {
        // Also -0.0, which `Display` would print with a sign.
        return Some(Decimal::ZERO);
    }
    if !(v > 0.0 && v <= MAX_UNITS as f64) {
        return None;
    }
    short_amount(v).or_else(|| amount_from_display(v))
}

/// [`amount_from_f64`] through the text `Display` prints.
fn amount_from_display(v: f64) -> Option<Decimal> {
    let mut buf = StackBuf::<40>::new();
    write!(buf, "{v}").ok()?;
    amount_from_str(buf.as_str())
}

/// Below 2^33 a float and its neighbours are less than 10^-6 apart.
const SHORT_BELOW: f64 = 8_589_934_592.0;

/// [`amount_from_f64`] without formatting, for the common case: a `v` under
/// [`SHORT_BELOW`] that is the float nearest to a decimal `m / 10^k` of at
/// most 4 places, `k` the fewest. `None` when it finds none (the caller then
/// formats `v`).
///
/// Why this is the decimal `Display` prints: `m < 2^47` and `10^k` are exact
/// floats, so `m / 10^k` rounds once, to the float nearest `m / 10^k`; if that
/// is `v`, the decimal reads back as `v`. Every decimal that reads back as `v`
/// lies within `v`'s rounding interval, narrower than 10^-6 here, which holds
/// no other decimal of up to 4 places; the shortest such decimal, which
/// `Display` prints, has no more places (it could not be shorter with more),
/// so it is this one. The fewest places is the scale `amount_from_str` reads
/// from that text: `v x 10^(k-1)` is within 10^-2 of `m / 10`, so a trailing
/// zero would have been found at `k - 1`.
fn short_amount(v: f64) -> Option<Decimal> {
    if v >= SHORT_BELOW {
        return None;
    }
    for (scale, unit) in [1.0, 10.0, 100.0, 1_000.0, 10_000.0].into_iter().enumerate() {
        let m = (v * unit).round();
        if m / unit == v {
            return Some(Decimal::from_i128_with_scale(m as i128, scale as u32));
        }
    }
    None
}

/// A fixed-size text buffer; writing past its end is an error, not a panic
/// or an allocation.
struct StackBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    fn new() -> Self {
        Self { bytes: [0; N], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Copies `src` into `out`, replacing every number token outside strings
/// that is valid JSON but out of simd-json's range (an integer beyond
/// `i64`/`u64`, a float overflowing `f64`) by `1e300` or `-1e300`. Returns
/// whether anything was replaced.
///
/// The sentinel parses, and is out of every range the contract accepts (not
/// an amount, not an integer quantity or points), so the value keeps the
/// verdict it has as written; in an unknown field it is ignored like the
/// field. Only ever called after simd-json rejected `src`.
pub fn replace_huge_numbers(src: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut replaced = false;
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c == b'"' {
            let start = i;
            i += 1;
            while i < src.len() && src[i] != b'"' {
                i += if src[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(src.len());
            out.extend_from_slice(&src[start..i]);
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < src.len() && matches!(src[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let token = &src[start..i];
            if is_out_of_range(token) {
                replaced = true;
                out.extend_from_slice(if c == b'-' { b"-1e300" } else { b"1e300" });
            } else {
                out.extend_from_slice(token);
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    replaced
}

/// Whether `token` has JSON number syntax but no `i64`/`u64`/finite `f64` value.
fn is_out_of_range(token: &[u8]) -> bool {
    if !is_json_number(token) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(token) else {
        return false;
    };
    if token.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        text.parse::<f64>().is_ok_and(f64::is_infinite)
    } else if token[0] == b'-' {
        text.parse::<i64>().is_err()
    } else {
        text.parse::<u64>().is_err()
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn is_json_number(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && t[int_start] == b'0') {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == t.len()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Option<Decimal> {
        Decimal::from_str(s).ok()
    }

    #[test]
    fn decimal_strings() {
        for (s, v) in [
            ("12", "12"),
            ("12.50", "12.50"),
            ("0", "0"),
            ("0.0001", "0.0001"),
            ("000000000000000000000012.5", "12.5"),
            ("1000000000000", "1000000000000"),
            ("1000000000000.0000", "1000000000000"),
            ("999999999999.9999", "999999999999.9999"),
        ] {
            assert_eq!(amount_from_str(s), dec(v), "{s}");
            assert!(amount_from_str(s).is_some(), "{s}");
        }
        for s in [
            "",
            ".",
            "12.",
            ".5",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "1_000",
            "1.00001",
            "1.2.3",
            "1000000000000.0001",
            "1000000000001",
            "99999999999999999999999",
            "１",
        ] {
            assert_eq!(amount_from_str(s), None, "{s}");
        }
    }

    #[test]
    fn json_numbers() {
        assert_eq!(amount_from_f64(12.99), dec("12.99"));
        assert_eq!(amount_from_f64(-0.0), Some(Decimal::ZERO));
        assert_eq!(amount_from_f64(1e12), dec("1000000000000"));
        assert_eq!(amount_from_f64(0.0001), dec("0.0001"));
        assert_eq!(amount_from_f64(1e-5), None);
        assert_eq!(amount_from_f64(1.00001), None);
        assert_eq!(amount_from_f64(1e300), None);
        assert_eq!(amount_from_f64(-1.0), None);
        assert_eq!(amount_from_f64(1e-300), None);
        assert_eq!(amount_from_i64(-0), Some(Decimal::ZERO));
        assert_eq!(amount_from_i64(-1), None);
        assert_eq!(amount_from_u64(1_000_000_000_001), None);
        assert_eq!(amount_from_u64(7), dec("7"));
        // The common floats skip formatting, with the scale of their text.
        let pair = |d: Decimal| (d.mantissa(), d.scale());
        assert_eq!(short_amount(12.99).map(pair), Some((1299, 2)));
        assert_eq!(short_amount(12.5).map(pair), Some((125, 1)));
        assert_eq!(short_amount(11.0).map(pair), Some((11, 0)));
        assert_eq!(short_amount(0.1 + 0.2), None);
        assert_eq!(short_amount(8_589_934_592.5), None);
    }

    proptest::proptest! {
        #[test]
        fn floats_of_few_places_read_as_their_text(units in 0u64..=1_000_000_000_000, fraction in 0u64..100_000_000, places in 0usize..=8) {
            // Decimals as producers write them, through the float JSON gives.
            let text = if places == 0 {
                units.to_string()
            } else {
                format!("{units}.{:0places$}", fraction % 10u64.pow(places as u32))
            };
            let v: f64 = text.parse().unwrap_or_default();
            proptest::prop_assert_eq!(short_amount(v).or_else(|| amount_from_display(v)).map(|d| (d.mantissa(), d.scale())),
                amount_from_display(v).map(|d| (d.mantissa(), d.scale())), "{} {}", text, v);
        }

        #[test]
        fn any_float_reads_as_its_text(bits in proptest::num::u64::ANY, near in 0.0f64..1e10) {
            for v in [f64::from_bits(bits), near, (near * 1e4).round() / 1e4] {
                let text = if v == 0.0 {
                    Some(Decimal::ZERO)
                } else if v > 0.0 && v <= MAX_UNITS as f64 {
                    amount_from_display(v)
                } else {
                    None
                };
                let pair = |d: Decimal| (d.mantissa(), d.scale());
                proptest::prop_assert_eq!(amount_from_f64(v).map(pair), text.map(pair), "{}", v);
            }
        }
    }

    #[test]
    fn huge_numbers_are_replaced_outside_strings_only() {
        let mut out = Vec::new();
        let src =
            br#"{"a":1e400,"b":"1e400","c":-100000000000000000000,"d":[18446744073709551616],"e":1.5,"f":"\"9e999"}"#;
        assert!(replace_huge_numbers(src, &mut out));
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"a":1e300,"b":"1e400","c":-1e300,"d":[1e300],"e":1.5,"f":"\"9e999"}"#
        );
        assert!(!replace_huge_numbers(
            br#"{"a":18446744073709551615,"b":-9223372036854775808,"c":1e308,"d":01}"#,
            &mut out
        ));
    }
}
