//! `[[rules]]`: bonus rules, their kinds and their filters.
//!
//! [`KINDS`] is the one list of rule kinds: a kind's name, its own keys and
//! its reader. A key belongs to a rule only through its kind or the common
//! keys (`id`, `kind`, the filters), so a key of another kind is unknown
//! here; adding a kind is adding an entry. Ids are checked unique and clear
//! of the breakdown names the engine writes itself.

use rust_decimal::Decimal;

use super::fields::{Entry, Fields, IntRange, item_path};
use super::report::{Report, closest};
use super::scalar::{DAYS, DaysError, HoursError, parse_days, parse_hours};
use crate::rules::model::{Filters, Rule, RuleKind, StampCount, Tier};

/// One rule kind: its name in the file, the keys only it takes, its reader.
struct KindSpec {
    name: &'static str,
    /// Must list exactly the keys `read` asks for (a unit test checks it).
    keys: &'static [&'static str],
    read: fn(&mut Fields<'_, '_>, &mut Report<'_>) -> RuleKind,
}

const KINDS: &[KindSpec] = &[
    KindSpec { name: "category_multiplier", keys: &["categories", "multiplier"], read: category_multiplier },
    KindSpec { name: "basket_threshold", keys: &["min_spend", "bonus_points", "gift"], read: basket_threshold },
    KindSpec {
        name: "stamp_card",
        keys: &["categories", "count", "stamps_required", "bonus_points", "gift"],
        read: stamp_card,
    },
    KindSpec { name: "first_purchase", keys: &["bonus_points"], read: first_purchase },
    KindSpec { name: "milestone", keys: &["thresholds", "gift"], read: milestone },
    KindSpec { name: "birthday", keys: &["bonus_points", "window_days", "gift"], read: birthday },
];

/// Breakdown lines the engine writes itself; a rule id equal to one would
/// make a reward event ambiguous.
const RESERVED_IDS: &[&str] = &["base", "expired", "redeem", "refund", "adjust"];
const RESERVED_PREFIX: &str = "tier:";

pub(super) fn rules(e: &Entry<'_, '_>, tiers: &[Tier], r: &mut Report<'_>) -> Vec<Rule> {
    let Some(tables) = e.tables(r, "[[rules]]") else {
        return Vec::new();
    };
    let mut out: Vec<Rule> = Vec::with_capacity(tables.len());
    // Every id read, including those of rules with other problems.
    let mut seen: Vec<&str> = Vec::new();
    for mut f in tables {
        let id_entry = f.require(r, "id", "\"coffee-x3\"");
        let id = id_entry.as_ref().and_then(|e| rule_id(e, &seen, r));
        if let Some(id) = id {
            // A repeated id keeps the positional path: the id alone would
            // point at the first rule of that id.
            if !seen.contains(&id) {
                f.set_path(item_path("rules", id));
            }
            seen.push(id);
        }
        let spec = f.require(r, "kind", "\"basket_threshold\"").and_then(|e| kind(&e, r));
        let kind = match spec {
            Some(spec) => {
                f.set_what(format!("a {} rule", spec.name));
                Some((spec.read)(&mut f, r))
            }
            None => {
                // Without a kind, a key any kind takes is given the benefit
                // of the doubt; only keys no kind takes are reported.
                for spec in KINDS {
                    f.allow(spec.keys);
                }
                None
            }
        };
        let (filters, budget_points) = filters(&mut f, tiers, r);
        let this_kind = spec.map(|s| s.name);
        f.finish_with(r, |key| {
            let owners: Vec<&str> =
                KINDS.iter().filter(|k| Some(k.name) != this_kind && k.keys.contains(&key)).map(|k| k.name).collect();
            (!owners.is_empty()).then(|| format!("{key} is for {} rules", owners.join(", ")))
        });
        if let (Some(id), Some(kind)) = (id, kind) {
            out.push(Rule { id: id.to_owned(), kind, filters, budget_points });
        }
    }
    out
}

fn rule_id<'a>(e: &Entry<'a, '_>, earlier: &[&str], r: &mut Report<'_>) -> Option<&'a str> {
    let id = e.name(r)?;
    if RESERVED_IDS.contains(&id) || id.starts_with(RESERVED_PREFIX) {
        e.complain(
            r,
            format!(
                "reserved: reward breakdowns use {} and tier:<name> for their own lines; choose another id",
                RESERVED_IDS.join(", ")
            ),
        );
        return Some(id);
    }
    if earlier.contains(&id) {
        e.complain(r, "another rule has this id; rule ids must be unique");
    }
    Some(id)
}

fn kind(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Option<&'static KindSpec> {
    let name = e.string(r)?;
    if let Some(spec) = KINDS.iter().find(|k| k.name == name) {
        return Some(spec);
    }
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let typo = closest(name, names.iter().copied()).map(|t| format!(" (did you mean \"{t}\"?)")).unwrap_or_default();
    e.complain(r, format!("unknown rule kind{typo}; write one of {}", names.join(", ")));
    None
}

fn category_multiplier(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    let categories = f
        .require(r, "categories", "[\"coffee\"]")
        .and_then(|e| e.string_list(r, false, "list the categories the multiplier applies to"))
        .unwrap_or_default();
    let multiplier =
        f.require(r, "multiplier", "\"2\"").and_then(|e| e.decimal(r, Decimal::ONE, None)).unwrap_or(Decimal::ONE);
    RuleKind::CategoryMultiplier { categories, multiplier }
}

fn basket_threshold(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    let min_spend =
        f.require(r, "min_spend", "\"100\"").and_then(|e| e.decimal(r, Decimal::ZERO, None)).unwrap_or_default();
    let bonus_points = bonus_points(f, r);
    let gift = gift(f, r);
    RuleKind::BasketThreshold { min_spend, bonus_points, gift }
}

const COUNTS: &[(&str, StampCount)] = &[("purchases", StampCount::Purchases), ("items", StampCount::Items)];

fn stamp_card(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    let categories = f
        .get("categories")
        .and_then(|e| e.string_list(r, false, "omit categories for a card that counts every purchase"));
    let count = f.get("count").and_then(|e| e.choice(r, COUNTS)).unwrap_or(StampCount::Purchases);
    let stamps_required = f
        .require(r, "stamps_required", "5")
        .and_then(|e| e.int(r, IntRange::new(1, i64::from(u32::MAX))))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let bonus_points = bonus_points(f, r);
    let gift = gift(f, r);
    RuleKind::StampCard { categories, count, stamps_required, bonus_points, gift }
}

fn first_purchase(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    RuleKind::FirstPurchase { bonus_points: bonus_points(f, r) }
}

fn milestone(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    let thresholds = f
        .require(r, "thresholds", "[10000, 25000]")
        .and_then(|e| {
            let (values, mut ok) = e.ints(r, IntRange::points_from(1))?;
            for pair in values.windows(2) {
                if let [(before, _), (after, span)] = pair {
                    if after <= before {
                        ok = false;
                        e.complain_at(r, span, format!("must be above {before}; list thresholds in increasing order"));
                    }
                }
            }
            ok.then(|| values.into_iter().map(|(v, _)| v).collect())
        })
        .unwrap_or_default();
    let gift = gift(f, r);
    RuleKind::Milestone { thresholds, gift }
}

fn birthday(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> RuleKind {
    let bonus_points = bonus_points(f, r);
    // The contract gives no default: the window is the rule's point, so it
    // is stated, never guessed.
    let window_days = f
        .require(r, "window_days", "7 (the birthday and the days after it, 1 to 31)")
        .and_then(|e| e.int(r, IntRange::new(1, 31)))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let gift = gift(f, r);
    RuleKind::Birthday { bonus_points, window_days, gift }
}

fn bonus_points(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> i64 {
    f.get("bonus_points").and_then(|e| e.int(r, IntRange::points_from(0))).unwrap_or(0)
}

fn gift(f: &mut Fields<'_, '_>, r: &mut Report<'_>) -> Option<String> {
    f.get("gift").and_then(|e| e.name(r)).map(str::to_owned)
}

/// The filters every kind takes, and the rule's budget.
fn filters(f: &mut Fields<'_, '_>, tiers: &[Tier], r: &mut Report<'_>) -> (Filters, Option<i64>) {
    let valid_from = f.get("valid_from").and_then(|e| e.timestamp(r));
    let valid_to_entry = f.get("valid_to");
    let valid_to = valid_to_entry.as_ref().and_then(|e| e.timestamp(r));
    if let (Some(from), Some(to), Some(e)) = (valid_from, valid_to, &valid_to_entry) {
        if to <= from {
            e.complain(r, "must be later than valid_from (the rule applies in [valid_from, valid_to))");
        }
    }
    let days = f.get("days").and_then(|e| days(&e, r));
    let hours = f.get("hours").and_then(|e| hours(&e, r));
    let mut list = |key, what| {
        f.get(key).and_then(|e| e.string_list(r, false, &format!("omit {key} to apply the rule to every {what}")))
    };
    let stores = list("stores", "store");
    let channels = list("channels", "channel");
    let merchants = list("merchants", "merchant");
    let tier_indexes = f.get("tiers").and_then(|e| tier_filter(&e, tiers, r));
    let budget_points = f.get("budget_points").and_then(|e| e.int(r, IntRange::points_from(1)));
    let filters = Filters { valid_from, valid_to, days, hours, stores, channels, merchants, tiers: tier_indexes };
    (filters, budget_points)
}

fn days(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Option<u8> {
    let names = e.strings(r, false, "omit days to apply the rule every day")?;
    let errors = match parse_days(names.iter().map(|(n, _)| *n)) {
        Ok(set) => return Some(set),
        Err(errors) => errors,
    };
    for error in errors {
        match error {
            DaysError::Unknown(i) => {
                let (name, span) = &names[i];
                let typo = closest(name, DAYS).map(|d| format!(" (did you mean \"{d}\"?)")).unwrap_or_default();
                e.complain_at(r, span, format!("is not a day{typo}; write mon, tue, wed, thu, fri, sat or sun"));
            }
            DaysError::Repeated(i) => {
                e.complain_at(r, &names[i].1, "is listed twice; list each day once");
            }
        }
    }
    None
}

fn hours(e: &Entry<'_, '_>, r: &mut Report<'_>) -> Option<(u16, u16)> {
    let text = e.string(r)?;
    match parse_hours(text) {
        Ok(range) => Some(range),
        Err(err) => {
            let reason = match err {
                HoursError::Format => "write a local time range as \"HH:MM-HH:MM\", e.g. hours = \"07:00-10:00\"",
                HoursError::OutOfRange => "times run from 00:00 to 24:00",
                HoursError::NotIncreasing => {
                    "the start must be before the end (the end is exclusive); for a range past midnight write two rules"
                }
            };
            e.complain(r, reason);
            None
        }
    }
}

fn tier_filter(e: &Entry<'_, '_>, tiers: &[Tier], r: &mut Report<'_>) -> Option<Vec<usize>> {
    let names = e.strings(r, false, "omit tiers to apply the rule to every tier")?;
    let mut out = Vec::with_capacity(names.len());
    let mut ok = true;
    for (name, span) in &names {
        match tiers.iter().position(|t| t.name == *name) {
            Some(i) if out.contains(&i) => {
                ok = false;
                e.complain_at(r, span, "is listed twice; list each tier once");
            }
            Some(i) => out.push(i),
            None => {
                ok = false;
                let known: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
                let typo = closest(name, known.iter().copied())
                    .map(|t| format!(" (did you mean \"{t}\"?)"))
                    .unwrap_or_default();
                e.complain_at(r, span, format!("is not a tier{typo}; the tiers are {}", known.join(", ")));
            }
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::KINDS;

    /// Each kind's `keys` are the keys its reader takes: a rule stating all
    /// of them (with valid values) loads.
    #[test]
    fn kind_keys_match_their_readers() {
        let value = |key: &str| match key {
            "categories" => r#"["coffee"]"#,
            "multiplier" => r#""2""#,
            "min_spend" => r#""10""#,
            "count" => r#""items""#,
            "thresholds" => "[1, 2]",
            "gift" => r#""mug""#,
            _ => "5",
        };
        for spec in KINDS {
            let mut text =
                format!("[program]\nid = \"p\"\ncurrency = \"EUR\"\n[[rules]]\nid = \"r\"\nkind = \"{}\"\n", spec.name);
            for key in spec.keys {
                text.push_str(&format!("{key} = {}\n", value(key)));
            }
            let loaded = load_str("t.toml", &text);
            assert!(loaded.is_ok(), "{}: {loaded:?}", spec.name);
            if let Ok(p) = loaded {
                assert_eq!(p.rules[0].kind.name(), spec.name);
            }
        }
    }
}
