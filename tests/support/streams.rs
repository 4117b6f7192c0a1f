//! Generated programs and event streams for property tests: programs with
//! tiers, rules of every kind, caps, budgets and expiry, and streams of
//! purchases, refunds, redemptions, repeated event ids, profiles and
//! adjustments over a few members.

#![allow(clippy::expect_used, reason = "constants that always parse")]

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use loyalty_scorer::rules::Program;
use loyalty_scorer::rules::model::*;

pub fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

prop_compose! {
    pub fn tiers()(n in 1usize..4, mults in prop::collection::vec(prop::sample::select(vec!["1", "1.25", "1.5", "2"]), 3))
        -> Vec<Tier> {
        (0..n).map(|i| Tier {
            name: format!("t{i}"),
            threshold: Decimal::from(i as i64 * 150),
            multiplier: dec(mults[i]),
            discount_percent: Decimal::ZERO,
        }).collect()
    }
}

pub fn rule_kind() -> impl Strategy<Value = RuleKind> {
    prop_oneof![
        prop::sample::select(vec!["1.5", "2", "3"])
            .prop_map(|m| RuleKind::CategoryMultiplier { categories: vec!["coffee".into()], multiplier: dec(m) }),
        (0i64..200, 0i64..300, any::<bool>()).prop_map(|(min, bonus, gift)| RuleKind::BasketThreshold {
            min_spend: Decimal::from(min),
            bonus_points: bonus,
            gift: gift.then(|| "bag".into()),
        }),
        (1u32..6, 0i64..50, any::<bool>(), any::<bool>()).prop_map(|(req, bonus, items, coffee)| RuleKind::StampCard {
            categories: coffee.then(|| vec!["coffee".into()]),
            count: if items { StampCount::Items } else { StampCount::Purchases },
            stamps_required: req,
            bonus_points: bonus,
            gift: Some("free".into()),
        }),
        (0i64..500).prop_map(|bonus| RuleKind::FirstPurchase { bonus_points: bonus }),
        Just(RuleKind::Milestone { thresholds: vec![100, 500, 2000], gift: Some("voucher".into()) }),
    ]
}

prop_compose! {
    pub fn program()(
        tiers in tiers(),
        rounding in prop::sample::select(vec![Rounding::Floor, Rounding::HalfUp, Rounding::HalfEven]),
        rate in prop::sample::select(vec!["0.5", "1", "2", "0.2"]),
        rolling in prop::option::of(1u32..13),
        immediate in any::<bool>(),
        kinds in prop::collection::vec((rule_kind(), prop::option::of(1i64..400)), 0..5),
        per_event in prop::option::of(0i64..400),
        per_day in prop::option::of(0i64..800),
        ttl in prop::option::of(1i64..60),
    ) -> Program {
        Program {
            id: "p".into(),
            currency: "EUR".into(),
            timezone: chrono_tz::Europe::Berlin,
            points_per_unit: dec(rate),
            rounding,
            excluded_categories: vec!["tobacco".into()],
            point_value: dec("0.01"),
            tiers,
            qualification: Qualification {
                basis: rolling.map_or(Basis::Lifetime, |w| Basis::Rolling { window_months: w }),
                downgrade: if immediate { Downgrade::Immediate } else { Downgrade::Never },
            },
            partners: vec![Partner { merchant_id: "fuel".into(), points_per_unit: dec("0.1") }],
            rules: kinds.into_iter().enumerate().map(|(i, (kind, budget))| Rule {
                id: format!("r{i}"),
                kind,
                filters: Filters::default(),
                budget_points: budget,
            }).collect(),
            caps: Caps { max_points_per_event: per_event, max_points_per_member_per_day: per_day },
            expiry: Expiry { mode: ttl.map_or(ExpiryMode::Never, |ttl_days| ExpiryMode::Rolling { ttl_days }), inactivity_days: None },
            pending_days: None,
            version: "0123456789abcdef".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    Purchase {
        member: u8,
        total: u32,
        items: Vec<(u8, u32, u32)>,
        fuel: bool,
    },
    Refund {
        member: u8,
        of: usize,
        total: u32,
    },
    Redeem {
        member: u8,
        points: u32,
    },
    /// Repeats an earlier step's event id verbatim.
    Repeat(usize),
    Profile {
        member: u8,
        month: u8,
        day: u8,
    },
    Adjust {
        member: u8,
        points: i32,
    },
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0u8..4, 0u32..40_000, prop::collection::vec((0u8..3, 1u32..4, 0u32..5_000), 0..4), any::<bool>())
            .prop_map(|(member, total, items, fuel)| Step::Purchase { member, total, items, fuel }),
        2 => (0u8..4, any::<prop::sample::Index>(), 0u32..40_000)
            .prop_map(|(member, of, total)| Step::Refund { member, of: of.index(1000), total }),
        1 => (0u8..4, 1u32..2_000).prop_map(|(member, points)| Step::Redeem { member, points }),
        1 => any::<prop::sample::Index>().prop_map(|i| Step::Repeat(i.index(1000))),
    ]
}

/// Steps of the member lifecycle too: profiles with birthdays, adjustments.
pub fn lifecycle_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => step(),
        1 => (0u8..4, 1u8..13, 1u8..29).prop_map(|(member, month, day)| Step::Profile { member, month, day }),
        1 => (0u8..4, -3000i32..3000).prop_filter("non-zero", |(_, p)| *p != 0)
            .prop_map(|(member, points)| Step::Adjust { member, points }),
    ]
}

prop_compose! {
    /// A program using the lifecycle keys: pending points, calendar or
    /// rolling expiry, inactivity, grace, a birthday rule.
    pub fn lifecycle_program()(
        base in program(),
        pending in prop::option::of(1i64..20),
        mode in prop_oneof![
            Just(ExpiryMode::Never),
            (20i64..90).prop_map(|ttl_days| ExpiryMode::Rolling { ttl_days }),
            (prop::sample::select(vec![Period::Month, Period::Quarter, Period::Year]), 0u32..2)
                .prop_map(|(period, periods)| ExpiryMode::EndOfPeriod { period, periods }),
        ],
        inactivity in prop::option::of(3i64..40),
        grace in prop::option::of(1i64..40),
        birthday in prop::option::of((0i64..200, 1u32..31)),
    ) -> Program {
        let mut p = base;
        p.pending_days = pending;
        p.expiry = Expiry { mode, inactivity_days: inactivity };
        if let Some(grace_days) = grace {
            p.qualification.downgrade = Downgrade::Grace { grace_days };
        }
        if let Some((bonus_points, window_days)) = birthday {
            p.rules.push(Rule {
                id: "bday".into(),
                kind: RuleKind::Birthday { bonus_points, window_days, gift: Some("cake".into()) },
                filters: Filters::default(),
                budget_points: None,
            });
        }
        p
    }
}

/// JSON lines of a stream; events an hour apart (out of order now and then).
pub fn render(steps: &[Step]) -> Vec<String> {
    render_with(steps, false)
}

/// Event `n` of a stream spread over a year: 5 days and 7 hours apart.
pub fn spread_time(n: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T08:00:00+01:00").expect("start");
    (start + chrono::Duration::hours(127 * n as i64)).to_rfc3339()
}

/// JSON lines of a stream, spread over a year when `spread`.
pub fn render_with(steps: &[Step], spread: bool) -> Vec<String> {
    let categories = ["coffee", "food", "tobacco"];
    let mut lines: Vec<String> = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        let hour = if n % 7 == 3 { n.saturating_sub(5) } else { n };
        let at = format!("2026-03-{:02}T{:02}:17:00+01:00", 1 + hour / 24, hour % 24);
        let at = if spread { spread_time(hour) } else { at };
        let cents = |c: u32| format!("{}.{:02}", c / 100, c % 100);
        let v: Value = match s {
            Step::Purchase { member, total, items, fuel } => {
                let items: Vec<Value> = items
                    .iter()
                    .map(|(c, q, a)| json!({"sku": "S", "category": categories[*c as usize], "quantity": q, "amount": cents(*a)}))
                    .collect();
                let mut v = json!({"event_id": format!("E{n}"), "member_id": format!("M{member}"), "occurred_at": at,
                    "currency": "EUR", "total": cents(*total), "items": items, "channel": "store"});
                if *fuel {
                    v["merchant_id"] = json!("fuel");
                }
                v
            }
            Step::Refund { member, of, total } => json!({"event_id": format!("E{n}"), "kind": "refund",
                "original_event_id": format!("E{}", of % n.max(1)), "member_id": format!("M{member}"),
                "occurred_at": at, "currency": "EUR", "total": cents(*total)}),
            Step::Redeem { member, points } => json!({"event_id": format!("E{n}"), "kind": "redeem",
                "member_id": format!("M{member}"), "occurred_at": at, "points": points}),
            Step::Profile { member, month, day } => json!({"event_id": format!("E{n}"), "kind": "profile",
                "member_id": format!("M{member}"), "occurred_at": at, "birth_date": format!("1990-{month:02}-{day:02}")}),
            Step::Adjust { member, points } => json!({"event_id": format!("E{n}"), "kind": "adjust",
                "member_id": format!("M{member}"), "occurred_at": at, "points": points, "reason": "goodwill"}),
            Step::Repeat(i) => {
                if lines.is_empty() {
                    continue;
                }
                lines.push(lines[i % lines.len()].clone());
                continue;
            }
        };
        lines.push(v.to_string());
    }
    lines
}
