//! RFC 3339 timestamps, as the contract restricts them, to UTC microseconds;
//! and the plain calendar dates of `birth_date`.
//!
//! Owns the one timestamp grammar of the crate: the decoder uses it for
//! `occurred_at` and the rules loader for `valid_from`/`valid_to`, so both
//! accept exactly the same strings. It allocates nothing and never consults a
//! time-zone database (offsets are numeric). Invariant: every `Some` is an
//! instant in [1970-01-01T00:00:00Z, 3000-01-01T00:00:00Z).

use crate::event::{Date, Micros};

/// 3000-01-01T00:00:00Z in seconds since the epoch: the first instant out of range.
const END_SECONDS: i64 = 32_503_680_000;

/// The longest timestamp accepted, in bytes: room for 38 fraction digits
/// and an offset (nanoseconds take 9).
///
/// Fraction digits past the sixth change nothing, but the event's
/// `occurred_at` is echoed as written in its reward event and kept with its
/// outcome for the retention window: without a bound, one message could
/// carry a timestamp of nearly its whole size into both.
pub const MAX_TIMESTAMP_BYTES: usize = 64;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T`/`t`, `Z`/`z`).
///
/// The fraction may have any number of digits up to [`MAX_TIMESTAMP_BYTES`]
/// in all; digits past the sixth are truncated, since the contract compares
/// to the microsecond. A leap second
/// (`:60`), a date that is not on the calendar, an offset beyond `23:59`, or
/// an instant outside [1970-01-01T00:00:00Z, 3000-01-01T00:00:00Z) is `None`.
pub fn parse_timestamp(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if !(20..=MAX_TIMESTAMP_BYTES).contains(&b.len()) {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut pos = 19;
    let mut micros: i64 = 0;
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let written = pos - start;
        if written == 0 {
            return None;
        }
        for _ in written..6 {
            micros *= 10;
        }
    }

    let offset_seconds = match b.get(pos..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = digits(rest, 0, 2)?;
            let om = digits(rest, 3, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };

    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    if !(0..END_SECONDS).contains(&seconds) {
        return None;
    }
    Some(Micros(seconds * Micros::PER_SECOND + micros))
}

/// Parses a calendar date written exactly `YYYY-MM-DD` (10 bytes, ASCII
/// digits, no sign, time or offset), years 0001..=9999 of the proleptic
/// Gregorian calendar. A date that is not on the calendar (`1990-02-30`,
/// 29 February of a common year) is `None`. Allocates nothing.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(Date { year: i32::try_from(year).ok()?, month: u8::try_from(month).ok()?, day: u8::try_from(day).ok()? })
}

/// `n` ASCII digits at `at` as a number; `None` if any is not a digit.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), exact for every year we accept.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_timestamp(s).map(|m| m.0)
    }

    #[test]
    fn utc_and_offsets() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(ts("1970-01-01t00:00:01z"), Some(1_000_000));
        assert_eq!(ts("2026-11-02T08:15:00Z"), Some(1_793_607_300_000_000));
        assert_eq!(ts("2026-12-24T09:00:00+01:00"), ts("2026-12-24T08:00:00Z"));
        assert_eq!(ts("2026-12-24T09:00:00-05:30"), ts("2026-12-24T14:30:00Z"));
        assert_eq!(ts("2026-12-24T09:00:00+23:59"), ts("2026-12-23T09:01:00Z"));
        assert_eq!(ts("2026-12-24T09:00:00-00:00"), ts("2026-12-24T09:00:00Z"));
    }

    #[test]
    fn bad_offsets() {
        assert_eq!(ts("2026-12-24T09:00:00+24:00"), None);
        assert_eq!(ts("2026-12-24T09:00:00+01:60"), None);
        assert_eq!(ts("2026-12-24T09:00:00+0100"), None);
        assert_eq!(ts("2026-12-24T09:00:00+01"), None);
        assert_eq!(ts("2026-12-24T09:00:00"), None);
        assert_eq!(ts("2026-12-24T09:00:00ZZ"), None);
        assert_eq!(ts("2026-12-24T09:00:00 Z"), None);
    }

    #[test]
    fn leap_days() {
        assert!(ts("2024-02-29T00:00:00Z").is_some());
        assert!(ts("2000-02-29T00:00:00Z").is_some());
        assert_eq!(ts("2026-02-29T00:00:00Z"), None);
        assert_eq!(ts("2100-02-29T00:00:00Z"), None);
        assert_eq!(
            ts("2024-03-01T00:00:00Z").zip(ts("2024-02-28T00:00:00Z")).map(|(a, b)| a - b),
            Some(2 * Micros::PER_DAY)
        );
    }

    #[test]
    fn bad_dates_and_times() {
        for s in [
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-12-31T23:59:60Z",
            "2026-01-01 00:00:00Z",
            "2026-1-01T00:00:00Z",
            "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026/01/01T00:00:00Z",
            "yesterday",
            "",
        ] {
            assert_eq!(ts(s), None, "{s}");
        }
    }

    #[test]
    fn range_edges() {
        assert_eq!(ts("1969-12-31T23:59:59.999999Z"), None);
        assert_eq!(ts("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(ts("1970-01-01T00:59:59+01:00"), None);
        assert_eq!(ts("2999-12-31T23:59:59.999999Z"), Some(END_SECONDS * 1_000_000 - 1));
        assert_eq!(ts("3000-01-01T00:00:00Z"), None);
        assert_eq!(ts("3000-01-01T00:30:00+01:00"), Some((END_SECONDS - 1800) * 1_000_000));
        assert_eq!(ts("2999-12-31T23:30:00-01:00"), None);
        assert_eq!(ts("0000-01-01T00:00:00Z"), None);
        assert_eq!(ts("9999-12-31T23:59:59Z"), None);
    }

    fn date(s: &str) -> Option<(i32, u8, u8)> {
        parse_date(s).map(|d| (d.year, d.month, d.day))
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(date("1990-02-10"), Some((1990, 2, 10)));
        assert_eq!(date("0001-01-01"), Some((1, 1, 1)));
        assert_eq!(date("9999-12-31"), Some((9999, 12, 31)));
        assert_eq!(date("2000-02-29"), Some((2000, 2, 29)));
        assert_eq!(date("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(date("2026-04-30"), Some((2026, 4, 30)));
        for s in [
            "2026-02-29",
            "1900-02-29",
            "1990-02-30",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-01-32",
            "0000-01-01",
            "1990-2-10",
            "1990-02-1",
            "90-02-10",
            "1990-02-10T00:00:00Z",
            "1990-02-10 ",
            " 1990-02-10",
            "1990/02/10",
            "1990-02-1a",
            "+990-02-10",
            "-990-02-10",
            "19900-02-10",
            "1990-0２-10",
            "",
        ] {
            assert_eq!(date(s), None, "{s}");
        }
    }

    #[test]
    fn fraction_truncates_to_micros() {
        assert_eq!(ts("1970-01-01T00:00:00.5Z"), Some(500_000));
        assert_eq!(ts("1970-01-01T00:00:00.123456Z"), Some(123_456));
        assert_eq!(ts("1970-01-01T00:00:00.1234569Z"), Some(123_456));
        assert_eq!(ts("1970-01-01T00:00:00.999999999999999999999Z"), Some(999_999));
        assert_eq!(ts("1970-01-01T00:00:00.000001+00:00"), Some(1));
    }

    #[test]
    fn length_limit() {
        // 20 bytes before the fraction, 6 after it with an offset.
        let with_digits = |n: usize| format!("1970-01-01T00:00:00.{}+00:00", "9".repeat(n));
        assert_eq!(with_digits(38).len(), MAX_TIMESTAMP_BYTES);
        assert_eq!(ts(&with_digits(38)), Some(999_999));
        assert_eq!(ts(&with_digits(39)), None);
        let utc = |n: usize| format!("1970-01-01T00:00:00.{}Z", "0".repeat(n));
        assert_eq!(utc(43).len(), MAX_TIMESTAMP_BYTES);
        assert_eq!(ts(&utc(43)), Some(0));
        assert_eq!(ts(&utc(44)), None);
    }
}
