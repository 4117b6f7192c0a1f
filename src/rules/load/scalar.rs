//! Parsers of the rules file's scalar notations: decimals, hour ranges, day
//! lists, timestamps.
//!
//! Pure functions over strings, with no knowledge of TOML or positions: each
//! says exactly what is wrong so the caller can locate and phrase it. They
//! accept only the contract's written forms (plain decimals, `HH:MM-HH:MM`,
//! `mon`..`sun`, RFC 3339 with an offset), never a looser variant, so a file
//! that loads here means the same thing everywhere else it is read.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::event::Micros;

/// Why a string is not a decimal of the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalError {
    /// Not digits with an optional fraction (a sign, exponent, space, `_`,
    /// a bare `.5` or `1.` all land here).
    NotDecimal,
    /// A well-formed decimal with a leading `-`.
    Negative,
    /// More digits than 28 significant ones can hold exactly.
    TooPrecise,
}

/// Parses a plain decimal (`"12.50"`). A leading `-` is recognised only so
/// the caller can say "negative" rather than "not a decimal".
pub(super) fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(DecimalError::NotDecimal);
    }
    if negative {
        return Err(DecimalError::Negative);
    }
    // `from_str_exact` refuses to round, so "0.1" x 30 digits is an error
    // instead of silently becoming another number.
    Decimal::from_str_exact(digits).map_err(|_| DecimalError::TooPrecise)
}

/// Why a string is not an hour range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoursError {
    /// Not `HH:MM-HH:MM` with two-digit fields.
    Format,
    /// An hour above 24, minutes above 59, or a time after 24:00.
    OutOfRange,
    /// The start is not before the end (the range is empty or wraps midnight).
    NotIncreasing,
}

/// Parses `"HH:MM-HH:MM"` into local minutes since midnight, `[start, end)`
/// with `start < end <= 1440`.
pub(super) fn parse_hours(text: &str) -> Result<(u16, u16), HoursError> {
    let (start, end) = text.split_once('-').ok_or(HoursError::Format)?;
    let start = parse_clock(start)?;
    let end = parse_clock(end)?;
    if start >= end {
        return Err(HoursError::NotIncreasing);
    }
    Ok((start, end))
}

/// `HH:MM` into minutes since midnight, 00:00..=24:00.
fn parse_clock(text: &str) -> Result<u16, HoursError> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 5 && b[2] == b':' && [b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit);
    if !shape_ok {
        return Err(HoursError::Format);
    }
    let two = |hi: u8, lo: u8| u16::from(hi - b'0') * 10 + u16::from(lo - b'0');
    let (hours, minutes) = (two(b[0], b[1]), two(b[3], b[4]));
    if hours > 24 || minutes > 59 || (hours == 24 && minutes > 0) {
        return Err(HoursError::OutOfRange);
    }
    Ok(hours * 60 + minutes)
}

/// Day names in the model's bit order (bit 0 = Monday).
pub(super) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a list is not a set of days; each carries the offending element's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DaysError {
    Unknown(usize),
    Repeated(usize),
}

/// Parses day names into the model's bit set, or names every bad element.
/// An empty list is the caller's concern (it is "no days", which a filter
/// must not mean).
pub(super) fn parse_days<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<u8, Vec<DaysError>> {
    let mut set = 0u8;
    let mut errors = Vec::new();
    for (index, name) in names.into_iter().enumerate() {
        match DAYS.iter().position(|d| *d == name) {
            None => errors.push(DaysError::Unknown(index)),
            Some(day) if set & (1 << day) != 0 => errors.push(DaysError::Repeated(index)),
            Some(day) => set |= 1 << day,
        }
    }
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

/// Parses an RFC 3339 timestamp with an offset into UTC microseconds.
pub(super) fn parse_timestamp(text: &str) -> Option<Micros> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| Micros(t.timestamp_micros()))
}

/// Whether `text` names an IANA time zone the engine can compute local time in.
pub(super) fn parse_timezone(text: &str) -> Option<chrono_tz::Tz> {
    chrono_tz::Tz::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_in_plain_form_parse_exactly() {
        assert_eq!(parse_decimal("1.25"), Ok(Decimal::new(125, 2)));
        assert_eq!(parse_decimal("0"), Ok(Decimal::ZERO));
        assert_eq!(parse_decimal("007.50"), Ok(Decimal::new(750, 2)));
        assert_eq!(parse_decimal("10000"), Ok(Decimal::new(10000, 0)));
    }

    #[test]
    fn decimals_in_other_forms_are_refused() {
        for bad in ["", "abc", "1.", ".5", "+1", "1e3", "1_000", " 1", "1 ", "1,5", "--1", "-", "1.2.3", "0x10", "NaN"]
        {
            assert_eq!(parse_decimal(bad), Err(DecimalError::NotDecimal), "{bad:?}");
        }
    }

    #[test]
    fn negative_decimals_are_named_as_such() {
        assert_eq!(parse_decimal("-1"), Err(DecimalError::Negative));
        assert_eq!(parse_decimal("-0.5"), Err(DecimalError::Negative));
        assert_eq!(parse_decimal("-x"), Err(DecimalError::NotDecimal));
    }

    #[test]
    fn decimals_beyond_28_digits_are_refused_not_rounded() {
        assert_eq!(parse_decimal("0.12345678901234567890123456789"), Err(DecimalError::TooPrecise));
        assert_eq!(parse_decimal("123456789012345678901234567890"), Err(DecimalError::TooPrecise));
    }

    #[test]
    fn hours_become_minutes_since_midnight() {
        assert_eq!(parse_hours("07:00-10:00"), Ok((420, 600)));
        assert_eq!(parse_hours("00:00-24:00"), Ok((0, 1440)));
        assert_eq!(parse_hours("23:59-24:00"), Ok((1439, 1440)));
        assert_eq!(parse_hours("06:30-06:31"), Ok((390, 391)));
    }

    #[test]
    fn hours_in_other_shapes_are_refused() {
        for bad in [
            "",
            "7:00-10:00",
            "07:00",
            "07:00 - 10:00",
            "0700-1000",
            "07:00-10:00-11:00",
            "07.00-10.00",
            "aa:bb-cc:dd",
            "07:00-",
        ] {
            assert_eq!(parse_hours(bad), Err(HoursError::Format), "{bad:?}");
        }
    }

    #[test]
    fn hours_out_of_the_day_are_refused() {
        assert_eq!(parse_hours("25:00-26:00"), Err(HoursError::OutOfRange));
        assert_eq!(parse_hours("10:60-11:00"), Err(HoursError::OutOfRange));
        assert_eq!(parse_hours("10:00-24:01"), Err(HoursError::OutOfRange));
    }

    #[test]
    fn hours_must_increase() {
        assert_eq!(parse_hours("10:00-10:00"), Err(HoursError::NotIncreasing));
        assert_eq!(parse_hours("22:00-02:00"), Err(HoursError::NotIncreasing));
        assert_eq!(parse_hours("24:00-24:00"), Err(HoursError::NotIncreasing));
    }

    #[test]
    fn days_become_a_bit_set_from_monday() {
        assert_eq!(parse_days(["mon"]), Ok(0b000_0001));
        assert_eq!(parse_days(["sat", "sun"]), Ok(0b110_0000));
        assert_eq!(parse_days(DAYS), Ok(0b111_1111));
        assert_eq!(parse_days([]), Ok(0));
    }

    #[test]
    fn days_name_the_bad_element() {
        assert_eq!(parse_days(["mon", "Tue"]), Err(vec![DaysError::Unknown(1)]));
        assert_eq!(parse_days(["monday"]), Err(vec![DaysError::Unknown(0)]));
        assert_eq!(parse_days(["sat", "sun", "sat"]), Err(vec![DaysError::Repeated(2)]));
        assert_eq!(
            parse_days(["sat", "Sun", "sat", "xyz"]),
            Err(vec![DaysError::Unknown(1), DaysError::Repeated(2), DaysError::Unknown(3)])
        );
    }

    #[test]
    fn timestamps_need_an_offset() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(Micros(1_000_000)));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00.5+01:00"), Some(Micros(500_000)));
        assert_eq!(parse_timestamp("2026-11-01T00:00:00"), None);
        assert_eq!(parse_timestamp("2026-11-01"), None);
    }
}
