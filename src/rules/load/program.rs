//! The program-wide sections: `[program]`, `[[tiers]]`,
//! `[tier_qualification]`, `[[partners]]`, `[caps]`, `[expiry]`, `[pending]`.
//!
//! Each reader returns its part of the model with the contract's defaults
//! filled in, recording every problem in the report; a part read from a
//! section with problems is a placeholder the caller discards.

use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::fields::{Entry, Fields, IntRange, MAX_POINTS, item_path};
use super::report::Report;
use super::scalar::parse_timezone;
use crate::rules::model::{Basis, Caps, Downgrade, Expiry, ExpiryMode, Partner, Period, Qualification, Rounding, Tier};

/// `[program]`, without its tiers, partners and rules.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) id: String,
    pub(super) currency: String,
    pub(super) timezone: Tz,
    pub(super) points_per_unit: Decimal,
    pub(super) rounding: Rounding,
    pub(super) excluded_categories: Vec<String>,
    pub(super) point_value: Decimal,
}

const ROUNDINGS: &[(&str, Rounding)] =
    &[("floor", Rounding::Floor), ("half_up", Rounding::HalfUp), ("half_even", Rounding::HalfEven)];

pub(super) fn header(mut f: Fields<'_, '_>, r: &mut Report<'_>) -> Header {
    let id = f.require(r, "id", "\"acme\"").and_then(|e| e.name(r)).unwrap_or_default().to_owned();
    let currency = f.require(r, "currency", "\"EUR\"").and_then(|e| currency(&e, r)).unwrap_or_default();
    let timezone = f
        .get("timezone")
        .and_then(|e| {
            let name = e.string(r)?;
            let tz = parse_timezone(name);
            if tz.is_none() {
                e.complain(r, "not an IANA time zone name; write e.g. timezone = \"Europe/Berlin\" or \"UTC\"");
            }
            tz
        })
        .unwrap_or(Tz::UTC);
    let points_per_unit = f
        .get("points_per_unit")
        .map_or(Some(Decimal::ONE), |e| e.decimal(r, Decimal::ZERO, None))
        .unwrap_or(Decimal::ONE);
    let rounding = f.get("rounding").and_then(|e| e.choice(r, ROUNDINGS)).unwrap_or(Rounding::Floor);
    let excluded_categories = f.get("excluded_categories").and_then(|e| e.string_list(r, true, "")).unwrap_or_default();
    let point_value = f.get("point_value").and_then(|e| e.decimal(r, Decimal::ZERO, None)).unwrap_or(Decimal::ZERO);
    f.finish(r);
    Header { id, currency, timezone, points_per_unit, rounding, excluded_categories, point_value }
}

fn currency(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Option<String> {
    let code = e.string(r)?;
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(code.to_owned());
    }
    let mut reason = "not an ISO 4217 currency code; write three upper-case letters, e.g. \"EUR\"".to_owned();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        reason = format!("write currency codes in upper case: \"{}\"", code.to_ascii_uppercase());
    }
    e.complain(r, reason);
    None
}

/// The tiers when the file has no `[[tiers]]`: everyone in one tier.
pub(super) fn default_tiers() -> Vec<Tier> {
    vec![Tier {
        name: "basic".to_owned(),
        threshold: Decimal::ZERO,
        multiplier: Decimal::ONE,
        discount_percent: Decimal::ZERO,
    }]
}

pub(super) fn tiers(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Vec<Tier> {
    let Some(tables) = e.tables(r, "[[tiers]]") else {
        return default_tiers();
    };
    if tables.is_empty() {
        e.complain(r, "a program needs at least one tier; remove tiers for a single tier \"basic\"");
        return default_tiers();
    }
    let mut out = Vec::with_capacity(tables.len());
    // The last tier with a readable threshold, for the ordering check.
    let mut previous: Option<(Decimal, String)> = None;
    for (index, mut f) in tables.into_iter().enumerate() {
        let name_entry = f.require(r, "name", "\"silver\"");
        let name = name_entry.as_ref().and_then(|e| e.name(r));
        if let (Some(name), Some(e)) = (name, &name_entry) {
            // A repeated name keeps the positional path: the name alone
            // would point at the first tier of that name.
            if out.iter().any(|t: &Tier| t.name == name) {
                e.complain(r, "another tier has this name; tier names must be unique");
            } else {
                f.set_path(item_path("tiers", name));
            }
        }
        let threshold =
            f.require(r, "threshold", "\"3000\"").and_then(|e| Some((e.decimal(r, Decimal::ZERO, None)?, e)));
        if let Some((threshold, e)) = &threshold {
            if index == 0 && !threshold.is_zero() {
                e.complain(r, "the first tier must have threshold \"0\": every member starts in it");
            }
            if let Some((before, before_name)) = &previous {
                if threshold <= before {
                    e.complain(
                        r,
                        format!(
                            "must be above the previous tier's threshold (\"{before}\" of {before_name}); list tiers from the lowest threshold to the highest"
                        ),
                    );
                }
            }
        }
        let multiplier = f
            .get("multiplier")
            .map_or(Some(Decimal::ONE), |e| e.decimal(r, Decimal::ONE, None))
            .unwrap_or(Decimal::ONE);
        let discount_percent = f
            .get("discount_percent")
            .map_or(Some(Decimal::ZERO), |e| e.decimal(r, Decimal::ZERO, Some(Decimal::ONE_HUNDRED)))
            .unwrap_or(Decimal::ZERO);
        f.finish(r);
        let name = name.unwrap_or_default().to_owned();
        let threshold = threshold.map(|(t, _)| t);
        if let Some(t) = threshold {
            previous = Some((t, name.clone()));
        }
        out.push(Tier { name, threshold: threshold.unwrap_or_default(), multiplier, discount_percent });
    }
    out
}

const BASES: &[(&str, bool)] = &[("lifetime", false), ("rolling", true)];

/// `downgrade` as written; `grace` takes its days from `grace_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DowngradeName {
    Never,
    Immediate,
    Grace,
}

const DOWNGRADES: &[(&str, DowngradeName)] =
    &[("never", DowngradeName::Never), ("immediate", DowngradeName::Immediate), ("grace", DowngradeName::Grace)];

pub(super) const DEFAULT_QUALIFICATION: Qualification =
    Qualification { basis: Basis::Lifetime, downgrade: Downgrade::Never };

pub(super) fn qualification(mut f: Fields<'_, '_>, r: &mut Report<'_>) -> Qualification {
    let rolling = f.get("basis").and_then(|e| e.choice(r, BASES)).unwrap_or(false);
    // Read even for `lifetime`: the contract's own example states the default
    // window next to `basis = "lifetime"`, so it is allowed there, but a bad
    // value is still a mistake worth reporting.
    let window_months = f
        .get("window_months")
        .and_then(|e| e.int(r, IntRange::new(1, 120)))
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(12);
    let downgrade_entry = f.get("downgrade");
    // `None` for a value already reported: the grace checks then stay quiet.
    let name = match &downgrade_entry {
        Some(e) => e.choice(r, DOWNGRADES),
        None => Some(DowngradeName::Never),
    };
    let grace_entry = f.get("grace_days");
    let grace_days = grace_entry.as_ref().and_then(|e| e.int(r, IntRange::new(1, i64::MAX)));
    match (name, &downgrade_entry, &grace_entry) {
        (Some(DowngradeName::Grace), Some(e), None) => e.complain(
            r,
            "grace needs grace_days (how long a member keeps a tier they no longer qualify for); add e.g. grace_days = 30",
        ),
        (Some(DowngradeName::Never | DowngradeName::Immediate), _, Some(e)) => {
            let stated = match &downgrade_entry {
                Some(d) => format!("downgrade is {}", r.src(&d.value.span())),
                None => "downgrade is not set (never)".to_owned(),
            };
            let reason = format!(
                "grace_days is only used with downgrade = \"grace\" and {stated}; add downgrade = \"grace\" or remove grace_days"
            );
            e.complain(r, reason);
        }
        _ => {}
    }
    f.finish(r);
    let downgrade = match name {
        Some(DowngradeName::Immediate) => Downgrade::Immediate,
        Some(DowngradeName::Grace) => Downgrade::Grace { grace_days: grace_days.unwrap_or(1) },
        Some(DowngradeName::Never) | None => Downgrade::Never,
    };
    Qualification { basis: if rolling { Basis::Rolling { window_months } } else { Basis::Lifetime }, downgrade }
}

pub(super) fn partners(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Vec<Partner> {
    let Some(tables) = e.tables(r, "[[partners]]") else {
        return Vec::new();
    };
    let mut out: Vec<Partner> = Vec::with_capacity(tables.len());
    for mut f in tables {
        let id_entry = f.require(r, "merchant_id", "\"fuel-co\"");
        let merchant_id = id_entry.as_ref().and_then(|e| e.name(r));
        if let (Some(id), Some(e)) = (merchant_id, &id_entry) {
            if out.iter().any(|p| p.merchant_id == id) {
                e.complain(r, "another partner has this merchant_id; give each merchant one [[partners]] entry");
            } else {
                f.set_path(item_path("partners", id));
            }
        }
        let points_per_unit = f
            .require(r, "points_per_unit", "\"2\"")
            .and_then(|e| e.decimal(r, Decimal::ZERO, None))
            .unwrap_or_default();
        f.finish(r);
        out.push(Partner { merchant_id: merchant_id.unwrap_or_default().to_owned(), points_per_unit });
    }
    out
}

pub(super) fn caps(mut f: Fields<'_, '_>, r: &mut Report<'_>) -> Caps {
    let mut cap = |key| f.get(key).and_then(|e| e.int(r, IntRange::new(0, MAX_POINTS)));
    let max_points_per_event = cap("max_points_per_event");
    let max_points_per_member_per_day = cap("max_points_per_member_per_day");
    f.finish(r);
    Caps { max_points_per_event, max_points_per_member_per_day }
}

/// `expiry.mode` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModeName {
    Rolling,
    EndOfPeriod,
}

const MODES: &[(&str, ModeName)] = &[("rolling", ModeName::Rolling), ("end_of_period", ModeName::EndOfPeriod)];
const PERIODS: &[(&str, Period)] = &[("month", Period::Month), ("quarter", Period::Quarter), ("year", Period::Year)];

pub(super) fn expiry(mut f: Fields<'_, '_>, r: &mut Report<'_>) -> Expiry {
    let mode_entry = f.get("mode");
    // `None` for a value already reported: the checks between keys then stay quiet.
    let mode = match &mode_entry {
        Some(e) => e.choice(r, MODES),
        None => Some(ModeName::Rolling),
    };
    let ttl_entry = f.get("points_ttl_days");
    let points_ttl_days = ttl_entry.as_ref().and_then(|e| e.int(r, IntRange::new(1, i64::MAX)));
    let period_entry = f.get("period");
    let period = period_entry.as_ref().and_then(|e| e.choice(r, PERIODS));
    let periods_entry = f.get("periods");
    let periods = periods_entry
        .as_ref()
        .and_then(|e| e.int(r, IntRange::new(0, i64::from(u32::MAX))))
        .and_then(|n| u32::try_from(n).ok());
    let inactivity_days = f.get("inactivity_days").and_then(|e| e.int(r, IntRange::new(1, i64::MAX)));
    match (mode, &mode_entry) {
        (Some(ModeName::Rolling), _) => {
            let mode_is = if mode_entry.is_some() { "mode is \"rolling\"" } else { "mode is not set (rolling)" };
            for e in [&period_entry, &periods_entry].into_iter().flatten() {
                e.complain(
                    r,
                    format!(
                        "{} is only used with mode = \"end_of_period\" and {mode_is}; add mode = \"end_of_period\" or remove {}",
                        e.key, e.key
                    ),
                );
            }
        }
        (Some(ModeName::EndOfPeriod), Some(mode_e)) => {
            if period_entry.is_none() {
                mode_e.complain(
                    r,
                    "end_of_period needs period, the calendar period points are counted in; add e.g. period = \"year\" (month, quarter or year)",
                );
            }
            if periods_entry.is_none() {
                mode_e.complain(
                    r,
                    "end_of_period needs periods, how many periods after the one they were earned in points expire; add e.g. periods = 1 (0: at the end of the same period)",
                );
            }
            if let Some(e) = &ttl_entry {
                e.complain(
                    r,
                    "points_ttl_days is only used with mode = \"rolling\" (with end_of_period points expire when a period ends); remove points_ttl_days or write mode = \"rolling\"",
                );
            }
        }
        _ => {}
    }
    f.finish(r);
    let mode = match mode {
        Some(ModeName::EndOfPeriod) => {
            ExpiryMode::EndOfPeriod { period: period.unwrap_or(Period::Year), periods: periods.unwrap_or(0) }
        }
        Some(ModeName::Rolling) | None => {
            points_ttl_days.map_or(ExpiryMode::Never, |ttl_days| ExpiryMode::Rolling { ttl_days })
        }
    };
    Expiry { mode, inactivity_days }
}

/// `[pending]`: the days purchase points wait before they are available,
/// with the entry of `days` for checks against other sections.
pub(super) fn pending<'a, 'i>(mut f: Fields<'a, 'i>, r: &mut Report<'_>) -> Option<(i64, Entry<'a, 'i>)> {
    let days = f.require(r, "days", "14").and_then(|e| Some((e.int(r, IntRange::new(1, i64::MAX))?, e)));
    f.finish(r);
    days
}
