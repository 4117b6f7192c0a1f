//! Table tests of the engine, one per rule kind, filter and edge of the
//! contract's section 4, on hand-built programs and events.

use chrono::DateTime;
use rust_decimal::Decimal;

use super::*;
use crate::event::{Item, Kind};
use crate::rules::model::*;
use crate::state::memory::BudgetLedger;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|_| panic!("bad decimal {s}"))
}

fn at(s: &str) -> Micros {
    Micros(DateTime::parse_from_rfc3339(s).unwrap_or_else(|_| panic!("bad time {s}")).timestamp_micros())
}

fn tier(name: &str, threshold: &str, multiplier: &str) -> Tier {
    Tier { name: name.into(), threshold: dec(threshold), multiplier: dec(multiplier), discount_percent: Decimal::ZERO }
}

fn program() -> Program {
    Program {
        id: "p".into(),
        currency: "EUR".into(),
        timezone: chrono_tz::UTC,
        points_per_unit: Decimal::ONE,
        rounding: Rounding::Floor,
        excluded_categories: vec!["tobacco".into()],
        point_value: dec("0.01"),
        tiers: vec![tier("basic", "0", "1"), tier("silver", "100", "1.5")],
        qualification: Qualification { basis: Basis::Lifetime, downgrade: Downgrade::Never },
        partners: vec![Partner { merchant_id: "fuel".into(), points_per_unit: dec("0.2") }],
        rules: vec![],
        caps: Caps::default(),
        expiry: Expiry::default(),
        pending_days: None,
        version: "test".into(),
    }
}

fn rule(id: &str, kind: RuleKind) -> Rule {
    Rule { id: id.into(), kind, filters: Filters::default(), budget_points: None }
}

fn purchase(id: &'static str, time: &'static str, total: &str, items: &'static [Item<'static>]) -> Event<'static> {
    Event {
        event_id: id,
        kind: Kind::Purchase,
        member_id: Some("m"),
        program: 0,
        merchant_id: None,
        store_id: None,
        channel: None,
        occurred_at: at(time),
        occurred_at_raw: time,
        total: dec(total),
        items,
        original_event_id: None,
        points: 0,
        birth_date: None,
        reason: None,
    }
}

fn refund(id: &'static str, time: &'static str, original: &'static str, total: &str) -> Event<'static> {
    Event { kind: Kind::Refund, original_event_id: Some(original), ..purchase(id, time, total, &[]) }
}

fn redeem(id: &'static str, time: &'static str, points: i64) -> Event<'static> {
    Event { kind: Kind::Redeem, points, ..purchase(id, time, "0", &[]) }
}

/// Runs events through the engine as the pipeline does (repeats skipped),
/// returning each new outcome.
struct Run {
    program: Program,
    settings: Settings,
    state: MemberState,
    budgets: BudgetLedger,
}

impl Run {
    fn new(program: Program) -> Self {
        Self { program, settings: Settings::default(), state: MemberState::default(), budgets: BudgetLedger::default() }
    }

    fn score(&mut self, event: Event<'_>) -> Outcome {
        let mut out = Outcome::default();
        apply(&self.program, &self.settings, &mut self.state, &mut self.budgets, &event, &mut out);
        let view = crate::outcome::RewardView::new(&self.program, &event, &out);
        let stored = crate::state::codec::StoredEvent::encode(event.occurred_at, &view, out.purchase.as_ref());
        self.state.events.insert(event.event_id.into(), stored);
        out
    }
}

fn lines(out: &Outcome) -> Vec<(Line, i64)> {
    out.lines.clone()
}

#[test]
fn base_points_use_eligible_spend_and_partner_rates() {
    static ITEMS: [Item<'static>; 2] = [
        Item { sku: None, category: Some("food"), quantity: 1, amount: Decimal::from_parts(1250, 0, 0, false, 2) },
        Item { sku: None, category: Some("tobacco"), quantity: 1, amount: Decimal::from_parts(30, 0, 0, false, 0) },
    ];
    let mut run = Run::new(program());
    let out = run.score(purchase("e1", "2026-01-01T10:00:00Z", "42.50", &ITEMS));
    assert_eq!(out.spend, dec("12.50"));
    assert_eq!(lines(&out), vec![(Line::Base, 12)]);
    let fuel = Event { merchant_id: Some("fuel"), ..purchase("e2", "2026-01-01T11:00:00Z", "50", &[]) };
    assert_eq!(lines(&run.score(fuel)), vec![(Line::Base, 10)], "partner rate 0.2");
}

#[test]
fn eligible_spend_never_goes_below_zero() {
    static ITEMS: [Item<'static>; 1] =
        [Item { sku: None, category: Some("tobacco"), quantity: 1, amount: Decimal::from_parts(50, 0, 0, false, 0) }];
    let mut run = Run::new(program());
    let out = run.score(purchase("e1", "2026-01-01T10:00:00Z", "20", &ITEMS));
    assert_eq!(out.spend, Decimal::ZERO);
    assert!(out.lines.is_empty());
}

#[test]
fn rounding_modes_apply_to_every_computation() {
    for (mode, want) in [(Rounding::Floor, 2), (Rounding::HalfUp, 3), (Rounding::HalfEven, 2)] {
        let mut p = program();
        p.rounding = mode;
        let mut run = Run::new(p);
        let out = run.score(purchase("e", "2026-01-01T10:00:00Z", "2.5", &[]));
        assert_eq!(out.points, want, "{mode:?}");
    }
}

#[test]
fn tier_moves_apply_from_the_next_event() {
    let mut run = Run::new(program());
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "100", &[]));
    assert_eq!((first.tier_before, first.tier_after), (0, 1));
    assert_eq!(lines(&first), vec![(Line::Base, 100)]);
    let second = run.score(purchase("e2", "2026-01-02T10:00:00Z", "10", &[]));
    assert_eq!(lines(&second), vec![(Line::Base, 10), (Line::Tier(1), 5)]);
}

#[test]
fn category_multiplier_counts_eligible_items_of_its_categories() {
    static ITEMS: [Item<'static>; 2] = [
        Item { sku: None, category: Some("coffee"), quantity: 2, amount: Decimal::from_parts(7, 0, 0, false, 0) },
        Item { sku: None, category: Some("bakery"), quantity: 1, amount: Decimal::from_parts(5, 0, 0, false, 0) },
    ];
    let mut p = program();
    p.rules.push(rule("x3", RuleKind::CategoryMultiplier { categories: vec!["coffee".into()], multiplier: dec("3") }));
    let mut run = Run::new(p);
    let out = run.score(purchase("e1", "2026-01-01T10:00:00Z", "12", &ITEMS));
    assert_eq!(lines(&out), vec![(Line::Base, 12), (Line::Rule(0), 14)]);
}

#[test]
fn filters_use_local_days_hours_and_lists() {
    let mut p = program();
    p.timezone = chrono_tz::Europe::Warsaw;
    let mut r = rule("morning", RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 7, gift: None });
    r.filters.days = Some(1 << 5); // Saturday
    r.filters.hours = Some((6 * 60, 11 * 60));
    r.filters.channels = Some(vec!["store".into()]);
    p.rules.push(r);
    let cases = [
        // Saturday 2026-01-10, Warsaw is UTC+1.
        ("2026-01-10T05:00:00Z", Some("store"), true), // 06:00 local: start inclusive
        ("2026-01-10T04:59:59Z", Some("store"), false), // 05:59 local
        ("2026-01-10T09:59:59Z", Some("store"), true), // 10:59:59 local
        ("2026-01-10T10:00:00Z", Some("store"), false), // 11:00 local: end exclusive
        ("2026-01-10T08:00:00Z", Some("online"), false),
        ("2026-01-10T08:00:00Z", None, false),
        ("2026-01-09T23:30:00Z", Some("store"), false), // Saturday 00:30 local, outside hours
        ("2026-01-11T08:00:00Z", Some("store"), false), // Sunday
    ];
    for (n, (time, channel, fires)) in cases.into_iter().enumerate() {
        let mut run = Run::new(p.clone());
        let id: &'static str = Box::leak(format!("e{n}").into_boxed_str());
        let out = run.score(Event { channel, ..purchase(id, time, "1", &[]) });
        assert_eq!(out.lines.contains(&(Line::Rule(0), 7)), fires, "{time} {channel:?}");
    }
}

#[test]
fn validity_window_is_half_open() {
    let mut p = program();
    let mut r = rule("promo", RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 5, gift: None });
    r.filters.valid_from = Some(at("2026-11-01T00:00:00Z"));
    r.filters.valid_to = Some(at("2026-12-01T00:00:00Z"));
    p.rules.push(r);
    for (time, fires) in [
        ("2026-10-31T23:59:59Z", false),
        ("2026-11-01T00:00:00Z", true),
        ("2026-11-30T23:59:59.999999Z", true),
        ("2026-12-01T00:00:00Z", false),
    ] {
        let mut run = Run::new(p.clone());
        assert_eq!(run.score(purchase("e", time, "1", &[])).lines.contains(&(Line::Rule(0), 5)), fires, "{time}");
    }
}

#[test]
fn stamp_cards_carry_over_and_complete() {
    static COFFEE3: [Item<'static>; 1] =
        [Item { sku: None, category: Some("coffee"), quantity: 3, amount: Decimal::from_parts(9, 0, 0, false, 0) }];
    let mut p = program();
    p.rules.push(rule(
        "card",
        RuleKind::StampCard {
            categories: Some(vec!["coffee".into()]),
            count: StampCount::Items,
            stamps_required: 5,
            bonus_points: 10,
            gift: Some("free".into()),
        },
    ));
    let mut run = Run::new(p);
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "9", &COFFEE3));
    assert_eq!(first.stamps, vec![StampTouch { rule: 0, stamps: 3, completed: 0 }]);
    let second = run.score(purchase("e2", "2026-01-02T10:00:00Z", "9", &COFFEE3));
    assert_eq!(second.stamps, vec![StampTouch { rule: 0, stamps: 1, completed: 1 }]);
    assert_eq!(second.gifts, vec![0]);
    assert!(second.lines.contains(&(Line::Rule(0), 10)));
    let none = run.score(purchase("e3", "2026-01-03T10:00:00Z", "9", &[]));
    assert!(none.stamps.is_empty(), "no coffee, card untouched");
}

#[test]
fn stamp_card_without_categories_counts_purchases_or_units() {
    static ITEMS: [Item<'static>; 2] = [
        Item { sku: None, category: Some("food"), quantity: 2, amount: Decimal::from_parts(1, 0, 0, false, 0) },
        Item { sku: None, category: Some("tobacco"), quantity: 4, amount: Decimal::from_parts(1, 0, 0, false, 0) },
    ];
    static ONLY_EXCLUDED: [Item<'static>; 1] =
        [Item { sku: None, category: Some("tobacco"), quantity: 1, amount: Decimal::from_parts(1, 0, 0, false, 0) }];
    for (count, items, want) in [
        (StampCount::Purchases, &ITEMS[..], Some(1)),
        (StampCount::Items, &ITEMS[..], Some(2)),
        (StampCount::Items, &[][..], Some(1)),
        (StampCount::Purchases, &[][..], Some(1)),
        (StampCount::Purchases, &ONLY_EXCLUDED[..], None),
        (StampCount::Items, &ONLY_EXCLUDED[..], None),
    ] {
        let mut p = program();
        p.rules.push(rule(
            "any",
            RuleKind::StampCard { categories: None, count, stamps_required: 10, bonus_points: 0, gift: None },
        ));
        let mut run = Run::new(p);
        let out = run.score(purchase("e", "2026-01-01T10:00:00Z", "2", items));
        assert_eq!(out.stamps.first().map(|s| s.stamps), want, "{count:?} {} items", items.len());
    }
}

#[test]
fn first_purchase_fires_once_and_never_after_failing_filters() {
    let mut p = program();
    let mut r = rule("welcome", RuleKind::FirstPurchase { bonus_points: 500 });
    r.filters.channels = Some(vec!["app".into()]);
    p.rules.push(r);
    let mut run = Run::new(p.clone());
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "1", &[]));
    assert!(!first.lines.contains(&(Line::Rule(0), 500)));
    let later = run.score(Event { channel: Some("app"), ..purchase("e2", "2026-01-02T10:00:00Z", "1", &[]) });
    assert!(!later.lines.contains(&(Line::Rule(0), 500)), "not the first purchase any more");
    let mut run = Run::new(p);
    let app = run.score(Event { channel: Some("app"), ..purchase("e1", "2026-01-01T10:00:00Z", "1", &[]) });
    assert!(app.lines.contains(&(Line::Rule(0), 500)));
}

#[test]
fn caps_cut_from_the_last_lines_first() {
    let mut p = program();
    p.rules.push(rule(
        "bonus",
        RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 200, gift: Some("bag".into()) },
    ));
    p.caps = Caps { max_points_per_event: Some(250), max_points_per_member_per_day: Some(300) };
    let mut run = Run::new(p);
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "100", &[]));
    assert_eq!(lines(&first), vec![(Line::Base, 100), (Line::Rule(0), 150)]);
    assert_eq!(first.gifts, vec![0], "caps never cut gifts");
    // Now silver (x1.5): base 100, tier 50, bonus 200 = 350 -> 250 per event -> 50 left today.
    let second = run.score(purchase("e2", "2026-01-01T11:00:00Z", "100", &[]));
    assert_eq!(lines(&second), vec![(Line::Base, 50)]);
    // A new local day resets the daily cap.
    let third = run.score(purchase("e3", "2026-01-02T00:00:00Z", "100", &[]));
    assert_eq!(third.points, 250);
}

#[test]
fn daily_cap_follows_the_local_day() {
    let mut p = program();
    p.timezone = chrono_tz::Europe::Berlin;
    p.caps.max_points_per_member_per_day = Some(100);
    p.tiers.truncate(1);
    let mut run = Run::new(p);
    assert_eq!(run.score(purchase("e1", "2026-01-01T22:30:00Z", "80", &[])).points, 80); // 23:30 local
    assert_eq!(run.score(purchase("e2", "2026-01-01T22:50:00Z", "80", &[])).points, 20); // same local day
    assert_eq!(run.score(purchase("e3", "2026-01-01T23:00:00Z", "80", &[])).points, 80); // 00:00 next day
}

#[test]
fn budgets_run_out_mid_event_and_are_charged_after_caps() {
    let mut p = program();
    let mut r = rule("promo", RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 60, gift: None });
    r.budget_points = Some(100);
    p.rules.push(r);
    p.caps.max_points_per_event = Some(30);
    let mut run = Run::new(p);
    // base 10 + promo 60 -> cap 30: promo keeps 20, the budget is charged 20.
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "10", &[]));
    assert_eq!(lines(&first), vec![(Line::Base, 10), (Line::Rule(0), 20)]);
    assert_eq!(run.budgets.spent("p", "promo"), 20);
    run.program.caps.max_points_per_event = None;
    let second = run.score(purchase("e2", "2026-01-02T10:00:00Z", "10", &[]));
    assert!(second.lines.contains(&(Line::Rule(0), 60)));
    let third = run.score(purchase("e3", "2026-01-03T10:00:00Z", "10", &[]));
    assert!(third.lines.contains(&(Line::Rule(0), 20)), "only 20 of the budget left: {:?}", third.lines);
    let fourth = run.score(purchase("e4", "2026-01-04T10:00:00Z", "10", &[]));
    assert!(!fourth.lines.iter().any(|(l, _)| *l == Line::Rule(0)));
    assert_eq!(run.budgets.spent("p", "promo"), 100);
}

#[test]
fn milestones_fire_once_per_threshold_after_other_gifts() {
    let mut p = program();
    p.rules.push(rule("miles", RuleKind::Milestone { thresholds: vec![50, 100], gift: Some("voucher".into()) }));
    p.rules.push(rule(
        "bag",
        RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 0, gift: Some("bag".into()) },
    ));
    let mut run = Run::new(p);
    let first = run.score(purchase("e1", "2026-01-01T10:00:00Z", "120", &[]));
    assert_eq!(first.gifts, vec![1, 0, 0]);
    let second = run.score(purchase("e2", "2026-01-02T10:00:00Z", "500", &[]));
    assert_eq!(second.gifts, vec![1]);
}

#[test]
fn expiry_removes_lots_older_than_the_ttl_exactly() {
    let mut p = program();
    p.expiry.mode = ExpiryMode::Rolling { ttl_days: 10 };
    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "30", &[]));
    let same = run.score(purchase("e2", "2026-01-11T10:00:00Z", "1", &[]));
    assert!(!same.lines.iter().any(|(l, _)| *l == Line::Expired), "exactly 10 x 24 h is not more than the ttl");
    let later = run.score(purchase("e3", "2026-01-11T10:00:00.000001Z", "1", &[]));
    assert_eq!(later.lines.first(), Some(&(Line::Expired, -30)));
    assert_eq!(later.balance, 2);
}

#[test]
fn debits_take_oldest_points_first_and_debt_is_paid_by_earnings() {
    let mut p = program();
    p.expiry.mode = ExpiryMode::Rolling { ttl_days: 10 };
    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "30", &[]));
    run.score(purchase("e2", "2026-01-05T10:00:00Z", "20", &[]));
    let r = run.score(redeem("r1", "2026-01-06T10:00:00Z", 40));
    assert_eq!(r.balance, 10);
    // The 10 left were earned on 01-05: they survive the expiry of 01-01's lot.
    let e = run.score(purchase("e3", "2026-01-12T10:00:00Z", "0", &[]));
    assert_eq!((e.points, e.balance), (0, 10));
    let over = run.score(refund("f1", "2026-01-12T11:00:00Z", "e2", "20"));
    assert_eq!(over.balance, -10, "refund larger than the balance leaves a debt");
    let pay = run.score(purchase("e4", "2026-01-12T12:00:00Z", "25", &[]));
    assert_eq!((pay.points, pay.balance), (25, 15));
    let earned_at = at("2026-01-12T12:00:00Z");
    assert_eq!(run.state.lots, vec![Lot { earned_at, month: 2026 * 12, release_at: earned_at, points: 15 }]);
}

#[test]
fn redemption_exactly_equal_to_the_balance_is_accepted() {
    let mut run = Run::new(program());
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "30", &[]));
    let over = run.score(redeem("r1", "2026-01-02T10:00:00Z", 31));
    assert_eq!((over.status, over.points, over.balance), (Status::Rejected, 0, 30));
    let exact = run.score(redeem("r2", "2026-01-02T10:00:00Z", 30));
    assert_eq!((exact.status, exact.points, exact.balance), (Status::Scored, -30, 0));
}

#[test]
fn partial_refunds_are_proportional_and_the_last_one_exact() {
    let mut run = Run::new(program());
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "100", &[])); // 100 points
    let a = run.score(refund("f1", "2026-01-02T10:00:00Z", "e1", "33.33"));
    assert_eq!(a.points, -33);
    let b = run.score(refund("f2", "2026-01-02T11:00:00Z", "e1", "33.33"));
    assert_eq!(b.points, -33);
    let c = run.score(refund("f3", "2026-01-02T12:00:00Z", "e1", "50"));
    assert_eq!(c.points, -34, "the completing refund reverses exactly what remains");
    assert_eq!(c.spend, dec("33.34"));
    assert_eq!(run.state.lifetime_spend, Decimal::ZERO);
    let again = run.score(refund("f4", "2026-01-03T12:00:00Z", "e1", "10"));
    assert_eq!((again.points, again.original_unknown), (0, false), "nothing left to reverse");
}

#[test]
fn unknown_originals_reverse_at_the_program_rate() {
    let mut p = program();
    p.points_per_unit = dec("0.5");
    let mut run = Run::new(p);
    run.score(Event { merchant_id: Some("fuel"), ..purchase("e1", "2026-01-01T10:00:00Z", "100", &[]) });
    let unknown = run.score(refund("f1", "2026-01-02T10:00:00Z", "nope", "10"));
    assert_eq!((unknown.points, unknown.original_unknown), (-5, true));
    let old = run.score(refund("f2", "2026-06-01T10:00:00Z", "e1", "10"));
    assert!(old.original_unknown, "original outside the 90-day retention window");
    let not_purchase = run.score(refund("f3", "2026-06-01T10:00:00Z", "f2", "10"));
    assert!(not_purchase.original_unknown, "a refund is not a purchase");
}

#[test]
fn immediate_downgrade_follows_refunds_and_never_keeps_the_tier() {
    for (downgrade, after) in [(Downgrade::Never, 1), (Downgrade::Immediate, 0)] {
        let mut p = program();
        p.qualification.downgrade = downgrade;
        let mut run = Run::new(p);
        run.score(purchase("e1", "2026-01-01T10:00:00Z", "150", &[]));
        let out = run.score(refund("f1", "2026-01-02T10:00:00Z", "e1", "100"));
        assert_eq!(out.tier_after, after, "{downgrade:?}");
        assert_eq!(out.qualifying_spend, dec("50"));
    }
}

#[test]
fn rolling_window_crosses_year_ends() {
    let mut p = program();
    p.qualification = Qualification { basis: Basis::Rolling { window_months: 3 }, downgrade: Downgrade::Immediate };
    let mut run = Run::new(p);
    run.score(purchase("e1", "2025-11-15T10:00:00Z", "100", &[]));
    let jan = run.score(purchase("e2", "2026-01-31T10:00:00Z", "1", &[]));
    assert_eq!((jan.qualifying_spend, jan.tier_after), (dec("101"), 1), "Nov, Dec, Jan");
    let feb = run.score(purchase("e3", "2026-02-01T10:00:00Z", "1", &[]));
    assert_eq!((feb.qualifying_spend, feb.tier_after), (dec("2"), 0), "November left the window");
}

#[test]
fn rolling_refunds_reduce_the_original_month() {
    let mut p = program();
    p.qualification = Qualification { basis: Basis::Rolling { window_months: 1 }, downgrade: Downgrade::Never };
    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-31T10:00:00Z", "100", &[]));
    run.score(purchase("e2", "2026-02-01T10:00:00Z", "40", &[]));
    let out = run.score(refund("f1", "2026-02-02T10:00:00Z", "e1", "100"));
    assert_eq!(out.qualifying_spend, dec("40"), "February's spend is untouched");
}

#[test]
fn hours_and_days_follow_daylight_saving_time() {
    let mut p = program();
    p.timezone = chrono_tz::Europe::Berlin;
    let mut r = rule("night", RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 3, gift: None });
    r.filters.hours = Some((2 * 60, 3 * 60));
    p.rules.push(r);
    let mut r = rule("thursday", RuleKind::BasketThreshold { min_spend: Decimal::ZERO, bonus_points: 4, gift: None });
    r.filters.days = Some(1 << 3);
    p.rules.push(r);
    let cases = [
        // 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:xx local happens twice.
        ("2026-10-25T00:30:00Z", true, false),  // 02:30 CEST
        ("2026-10-25T01:30:00Z", true, false),  // 02:30 CET
        ("2026-10-25T02:00:00Z", false, false), // 03:00 CET
        // 29 March 2026: 02:00 CET jumps to 03:00 CEST; no instant is 02:xx local.
        ("2026-03-29T00:59:59Z", false, false), // 01:59:59 CET
        ("2026-03-29T01:00:00Z", false, false), // 03:00 CEST
        // Summer: midnight local is 22:00 UTC; Thursday 2 July starts at 2026-07-01T22:00Z.
        ("2026-07-01T21:59:59Z", false, false), // Wednesday 23:59:59
        ("2026-07-01T22:00:00Z", false, true),  // Thursday 00:00
    ];
    for (time, night, thursday) in cases {
        let mut run = Run::new(p.clone());
        let out = run.score(purchase("e", time, "1", &[]));
        assert_eq!(out.lines.contains(&(Line::Rule(0), 3)), night, "hours at {time}");
        assert_eq!(out.lines.contains(&(Line::Rule(1), 4)), thursday, "days at {time}");
    }
}

// ---- The member lifecycle (part 2 of the contract) ----

fn profile(id: &'static str, time: &'static str, birth: Option<(i32, u8, u8)>) -> Event<'static> {
    Event {
        kind: Kind::Profile,
        birth_date: birth.map(|(year, month, day)| crate::event::Date { year, month, day }),
        ..purchase(id, time, "0", &[])
    }
}

fn adjust(id: &'static str, time: &'static str, points: i64) -> Event<'static> {
    Event { kind: Kind::Adjust, points, ..purchase(id, time, "0", &[]) }
}

fn pending_program(days: i64) -> Program {
    let mut p = program();
    p.tiers.truncate(1);
    p.pending_days = Some(days);
    p
}

#[test]
fn a_refund_inside_the_pending_window_takes_its_own_pending_lot() {
    let mut run = Run::new(pending_program(14));
    run.score(adjust("a1", "2026-01-01T10:00:00Z", 50));
    run.score(purchase("e1", "2026-01-02T10:00:00Z", "100", &[]));
    run.score(purchase("e2", "2026-01-03T10:00:00Z", "40", &[]));
    let out = run.score(refund("f1", "2026-01-05T10:00:00Z", "e1", "60"));
    assert_eq!((out.points, out.balance, out.pending), (-60, 50, 80), "60 from e1's own pending lot");
    // After the window: e1's lot is available, and a refund takes the oldest available points.
    let out = run.score(refund("f2", "2026-01-20T10:00:00Z", "e1", "40"));
    assert_eq!((out.points, out.balance, out.pending), (-40, 90, 0), "50 (a1) + 40 (e1) + 40 (e2) - 40 oldest");
    assert_eq!(run.state.lots.iter().map(|l| l.points).collect::<Vec<_>>(), vec![10, 40, 40]);
}

#[test]
fn a_redeem_waits_for_pending_points_to_be_released() {
    let mut run = Run::new(pending_program(14));
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "100", &[]));
    let early = run.score(redeem("r1", "2026-01-15T09:59:59Z", 50));
    assert_eq!((early.status, early.balance, early.pending), (Status::Rejected, 0, 100));
    let on_time = run.score(redeem("r2", "2026-01-15T10:00:00Z", 50));
    assert_eq!((on_time.status, on_time.balance, on_time.pending), (Status::Scored, 50, 0));
}

#[test]
fn balance_plus_pending_changes_by_points() {
    let mut p = pending_program(7);
    p.expiry.mode = ExpiryMode::Rolling { ttl_days: 30 };
    let mut run = Run::new(p);
    let mut total = 0;
    for event in [
        purchase("e1", "2026-01-01T10:00:00Z", "100", &[]),
        adjust("a1", "2026-01-02T10:00:00Z", -130),
        purchase("e2", "2026-01-03T10:00:00Z", "50", &[]),
        refund("f1", "2026-01-04T10:00:00Z", "e2", "50"),
        redeem("r1", "2026-01-20T10:00:00Z", 10),
        purchase("e3", "2026-03-01T10:00:00Z", "5", &[]),
    ] {
        let out = run.score(event);
        total += out.points;
        assert_eq!(out.balance + out.pending, total, "{:?}", out.lines);
    }
}

#[test]
fn inactivity_expires_everything_earned_before_the_member_went_quiet() {
    let mut p = program();
    p.tiers.truncate(1);
    p.expiry.inactivity_days = Some(30);
    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "100", &[]));
    run.score(adjust("a1", "2026-01-20T10:00:00Z", 5)); // not activity
    let at_boundary = run.score(profile("p1", "2026-01-31T10:00:00Z", None));
    assert_eq!(at_boundary.lines, vec![], "exactly 30 x 24 h is not more than the limit");
    let after = run.score(profile("p2", "2026-01-31T10:00:00.000001Z", None));
    assert_eq!(after.lines, vec![(Line::Expired, -105)], "every lot earned up to the moment of inactivity");
    assert_eq!(after.expired_inactive, 105);
    let fresh = run.score(purchase("e2", "2026-02-02T10:00:00Z", "7", &[]));
    assert_eq!((fresh.points, fresh.balance), (7, 7));
}

#[test]
fn end_of_period_expiry_follows_local_calendar_periods() {
    // Paris is UTC+1 in winter: local midnight of 1 January is 23:00 UTC.
    let cases = [
        (Period::Year, 1, "2026-06-01T10:00:00Z", "2027-12-31T22:59:59Z", false),
        (Period::Year, 1, "2026-06-01T10:00:00Z", "2027-12-31T23:00:00Z", true),
        // Earned at 2026-12-31T23:30 local (22:30 UTC): still 2026.
        (Period::Year, 0, "2026-12-31T22:30:00Z", "2026-12-31T22:59:59Z", false),
        (Period::Year, 0, "2026-12-31T22:30:00Z", "2026-12-31T23:00:00Z", true),
        // Summer: local midnight of 1 October is 22:00 UTC (CEST).
        (Period::Quarter, 0, "2026-07-01T10:00:00Z", "2026-09-30T21:59:59Z", false),
        (Period::Quarter, 0, "2026-07-01T10:00:00Z", "2026-09-30T22:00:00Z", true),
        (Period::Month, 2, "2026-01-15T10:00:00Z", "2026-03-31T21:59:59Z", false),
        (Period::Month, 2, "2026-01-15T10:00:00Z", "2026-03-31T22:00:00Z", true),
    ];
    for (period, periods, earned, later, expires) in cases {
        let mut p = program();
        p.tiers.truncate(1);
        p.timezone = chrono_tz::Europe::Paris;
        p.expiry.mode = ExpiryMode::EndOfPeriod { period, periods };
        let mut run = Run::new(p);
        run.score(purchase("e1", earned, "10", &[]));
        let out = run.score(profile("p1", later, None));
        assert_eq!(out.lines.contains(&(Line::Expired, -10)), expires, "{period:?} {periods} {earned} -> {later}");
    }
}

#[test]
fn grace_keeps_the_tier_until_it_ends_or_spend_recovers() {
    let mut p = program();
    p.qualification =
        Qualification { basis: Basis::Rolling { window_months: 1 }, downgrade: Downgrade::Grace { grace_days: 30 } };
    let mut run = Run::new(p.clone());
    assert_eq!(run.score(purchase("e1", "2026-01-10T10:00:00Z", "100", &[])).tier_after, 1);
    let fell = run.score(purchase("e2", "2026-02-01T10:00:00Z", "1", &[]));
    assert_eq!(fell.tier_after, 1, "grace starts");
    let inside = run.score(purchase("e3", "2026-03-03T09:59:59Z", "1", &[]));
    assert_eq!(inside.tier_after, 1, "29 days 23:59:59 later");
    let ended = run.score(purchase("e4", "2026-03-03T10:00:00Z", "1", &[]));
    assert_eq!(ended.tier_after, 0, "30 days after the first event below");

    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-10T10:00:00Z", "100", &[]));
    run.score(purchase("e2", "2026-02-01T10:00:00Z", "1", &[]));
    let recovered = run.score(purchase("e3", "2026-02-20T10:00:00Z", "120", &[]));
    assert_eq!(recovered.tier_after, 1);
    assert_eq!(run.state.grace_since, None, "a recovery ends the grace");
    let fell_again = run.score(purchase("e4", "2026-03-25T10:00:00Z", "1", &[]));
    assert_eq!(fell_again.tier_after, 1, "a new grace starts, counted from 25 March");
    assert_eq!(run.state.grace_since, Some(at("2026-03-25T10:00:00Z")));
}

fn birthday_program(window_days: u32) -> Program {
    let mut p = program();
    p.tiers.truncate(1);
    p.timezone = chrono_tz::Europe::Paris;
    p.rules.push(rule("bday", RuleKind::Birthday { bonus_points: 100, window_days, gift: Some("cake".into()) }));
    p
}

#[test]
fn birthday_windows_cross_new_year_and_fire_once_per_year() {
    let mut run = Run::new(birthday_program(7));
    run.score(profile("p1", "2026-01-01T10:00:00Z", Some((1990, 12, 28))));
    let before = run.score(purchase("e1", "2026-12-27T22:59:59Z", "1", &[])); // 23:59:59 local on the 27th
    assert!(before.birthdays.is_empty());
    let jan = run.score(purchase("e2", "2027-01-03T10:00:00Z", "1", &[])); // 28 Dec + 6 days
    assert_eq!((jan.birthdays.clone(), jan.gifts.clone()), (vec![0], vec![0]), "last year's window runs into January");
    let again = run.score(purchase("e3", "2027-01-03T11:00:00Z", "1", &[]));
    assert!(again.birthdays.is_empty(), "once per birthday year");
    let next = run.score(purchase("e4", "2027-12-28T10:00:00Z", "1", &[]));
    assert_eq!(next.birthdays, vec![0], "the next birthday year");
    let outside = Run::new(birthday_program(7)).score(purchase("e5", "2027-01-04T10:00:00Z", "1", &[]));
    assert!(outside.birthdays.is_empty(), "no birthday known");
}

#[test]
fn a_29_february_birthday_counts_as_28_february_in_other_years() {
    let mut run = Run::new(birthday_program(1));
    run.score(profile("p1", "2026-01-01T10:00:00Z", Some((2000, 2, 29))));
    assert!(run.score(purchase("e1", "2026-02-27T12:00:00Z", "1", &[])).birthdays.is_empty());
    assert_eq!(run.score(purchase("e2", "2026-02-28T12:00:00Z", "1", &[])).birthdays, vec![0]);
    let mut run = Run::new(birthday_program(1));
    run.score(profile("p1", "2028-01-01T10:00:00Z", Some((2000, 2, 29))));
    assert!(run.score(purchase("e1", "2028-02-28T12:00:00Z", "1", &[])).birthdays.is_empty(), "2028 has a 29th");
    assert_eq!(run.score(purchase("e2", "2028-02-29T12:00:00Z", "1", &[])).birthdays, vec![0]);
}

#[test]
fn a_birthday_cut_by_caps_still_uses_the_year() {
    let mut p = birthday_program(7);
    p.caps.max_points_per_event = Some(5);
    let mut run = Run::new(p);
    run.score(profile("p1", "2026-01-01T10:00:00Z", Some((1990, 3, 1))));
    let out = run.score(purchase("e1", "2026-03-01T10:00:00Z", "10", &[]));
    assert_eq!((out.points, out.birthdays.clone(), out.gifts.clone()), (5, vec![0], vec![0]));
    assert!(run.score(purchase("e2", "2026-03-02T10:00:00Z", "1", &[])).birthdays.is_empty());
}

#[test]
fn a_negative_adjustment_makes_debt_that_the_next_purchase_pays_off() {
    let mut p = program();
    p.tiers.truncate(1);
    let mut run = Run::new(p);
    run.score(purchase("e1", "2026-01-01T10:00:00Z", "30", &[]));
    let debit = run.score(adjust("a1", "2026-01-02T10:00:00Z", -50));
    assert_eq!((debit.lines.clone(), debit.balance), (vec![(Line::Adjust, -50)], -20));
    let pay = run.score(purchase("e2", "2026-01-03T10:00:00Z", "25", &[]));
    assert_eq!((pay.points, pay.balance), (25, 5));
    assert_eq!(run.state.lifetime_earned, 55, "adjustments are not earned");
    assert_eq!(run.state.lifetime_spend, dec("55"), "nor spend");
}

#[test]
fn extreme_rates_and_multipliers_saturate_instead_of_overflowing() {
    static ITEMS: [Item<'static>; 1] = [Item {
        sku: None,
        category: Some("c"),
        quantity: 1_000_000,
        amount: Decimal::from_parts(1_000_000_000, 1000, 0, false, 0), // > 10^12 is impossible in events; still safe
    }];
    let mut p = program();
    p.points_per_unit = dec("1000000000000000000000000");
    p.tiers = vec![tier("basic", "0", "100000000000000")];
    p.rules.push(rule("x", RuleKind::CategoryMultiplier { categories: vec!["c".into()], multiplier: dec("5000") }));
    p.rules.push(rule(
        "card",
        RuleKind::StampCard {
            categories: None,
            count: StampCount::Items,
            stamps_required: 1,
            bonus_points: 1_000_000_000_000_000,
            gift: Some("g".into()),
        },
    ));
    let mut run = Run::new(p);
    for n in 0..20 {
        let id: &'static str = Box::leak(format!("e{n}").into_boxed_str());
        let out = run.score(purchase(id, "2026-01-01T10:00:00Z", "1000000000000", &ITEMS));
        assert!(out.points > 0 && out.balance > 0, "{:?}", (out.points, out.balance));
        assert!(out.lines.iter().all(|(_, p)| *p <= crate::rules::round::MAX_LINE_POINTS));
        assert_eq!(out.gifts.len(), MAX_GIFTS_PER_RULE);
        assert_eq!(out.stamps[0].completed, 1_000_000);
    }
}
