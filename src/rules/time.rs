//! Local calendar time of an instant in a program's timezone: the weekday,
//! minute of day, day and month that filters, daily caps and rolling tiers use.

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;

use crate::event::Micros;

/// An instant seen on the program's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// 0 = Monday .. 6 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight, 0..1440.
    pub minute_of_day: u16,
    /// Local calendar day, as days since 1970-01-01.
    pub day: i32,
    /// Local calendar month, as `year * 12 + (month - 1)`.
    pub month: i32,
    pub year: i32,
    /// 1..=12
    pub month_of_year: u8,
    /// 1..=31
    pub day_of_month: u8,
}

impl Local {
    pub fn of(at: Micros, tz: Tz) -> Local {
        // Valid events lie in 1970..3000, which chrono always represents.
        let utc = DateTime::from_timestamp_micros(at.0).unwrap_or_default();
        let local = utc.with_timezone(&tz);
        let date = local.date_naive();
        Local {
            weekday: date.weekday().num_days_from_monday() as u8,
            minute_of_day: (local.hour() * 60 + local.minute()) as u16,
            day: date.num_days_from_ce() - 719_163,
            month: local.year() * 12 + local.month0() as i32,
            year: local.year(),
            month_of_year: local.month() as u8,
            day_of_month: local.day() as u8,
        }
    }
}

/// Days since 1970-01-01 of a date; 29 February in a year without one is
/// read as 28 February.
pub fn day_number(year: i32, month: u8, day: u8) -> Option<i32> {
    let date = chrono::NaiveDate::from_ymd_opt(year, u32::from(month), u32::from(day))
        .or_else(|| (month == 2 && day == 29).then(|| chrono::NaiveDate::from_ymd_opt(year, 2, 28)).flatten())?;
    Some(date.num_days_from_ce() - 719_163)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Micros {
        Micros(DateTime::parse_from_rfc3339(s).map(|d| d.timestamp_micros()).unwrap_or(0))
    }

    #[test]
    fn local_day_turns_at_local_midnight() {
        let tz: Tz = chrono_tz::Europe::Berlin;
        let before = Local::of(at("2026-11-01T22:59:59Z"), tz);
        let after = Local::of(at("2026-11-01T23:00:00Z"), tz);
        assert_eq!(after.day, before.day + 1);
        assert_eq!(before.weekday, 6, "Sunday in Berlin");
        assert_eq!(after.weekday, 0, "Monday in Berlin");
        assert_eq!(after.minute_of_day, 0);
    }

    #[test]
    fn dst_changes_the_offset() {
        let tz: Tz = chrono_tz::Europe::Berlin;
        // 29 March 2026: clocks go from 02:00 CET to 03:00 CEST.
        assert_eq!(Local::of(at("2026-03-29T00:59:00Z"), tz).minute_of_day, 119);
        assert_eq!(Local::of(at("2026-03-29T01:00:00Z"), tz).minute_of_day, 180);
    }

    #[test]
    fn leap_days_fall_back_to_28_february() {
        assert_eq!(day_number(2026, 2, 29), day_number(2026, 2, 28));
        assert_eq!(day_number(2028, 2, 29).map(|d| d - 1), day_number(2028, 2, 28));
        assert_eq!(day_number(1970, 1, 1), Some(0));
        assert_eq!(day_number(2026, 4, 31), None);
    }

    #[test]
    fn months_count_across_years() {
        let tz: Tz = chrono_tz::UTC;
        let dec = Local::of(at("2026-12-31T23:59:59Z"), tz);
        let jan = Local::of(at("2027-01-01T00:00:00Z"), tz);
        assert_eq!(jan.month, dec.month + 1);
        assert_eq!(Local::of(at("1970-01-01T00:00:00Z"), tz).day, 0);
    }
}
