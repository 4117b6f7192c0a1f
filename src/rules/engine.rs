//! The engine: applies a program to one event of one member.
//!
//! Pure and synchronous: it reads the program, the event and the member's
//! state, and writes the new state and an [`Outcome`]; no I/O, no clock, no
//! randomness, so the same inputs always give the same outputs. The steps
//! follow the contract's section 4 in order (expiry, then the kind's own
//! steps); each is a small function below.
//!
//! Scratch space lives in [`Outcome`] and is reused from one event to the
//! next, so a warm engine allocates nothing per event; the one exception is
//! a birthday bonus, whose record may need a string for its rule id
//! (`tests/hot_path_alloc.rs` pins the bound).

use rust_decimal::Decimal;

use crate::decode::MAX_ITEMS;
use crate::event::{Event, Item, Kind, Micros};
pub use crate::outcome::{Line, Outcome, StampTouch, Status};
use crate::rules::model::{Basis, Downgrade, ExpiryMode, Filters, Period, Program, Rule, RuleKind, StampCount};
use crate::rules::round::{MAX_LINE_POINTS, product, scaled};
use crate::rules::time::{Local, day_number};
use crate::state::codec::StoredEvent;
use crate::state::{Budgets, Lot, MemberState, PurchaseRecord};

/// A reward event lists at most this many copies of one rule's gift (a
/// stamp card of one stamp counting items can complete millions of times in
/// one basket); `completed` and the points stay exact.
pub const MAX_GIFTS_PER_RULE: usize = 1_000;

/// Settings of the scorer that are not part of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long (days of event time) outcomes are kept for refunds and repeats.
    pub retention_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// Applies `event` (which belongs to `program` and names a member) to the
/// member's `state`, writing what happened to `out`. The caller has checked
/// that the event is not a repeat.
pub fn apply(
    program: &Program,
    settings: &Settings,
    state: &mut MemberState,
    budgets: &mut dyn Budgets,
    event: &Event<'_>,
    out: &mut Outcome,
) {
    out.clear();
    let now = event.occurred_at;
    let local = Local::of(now, program.timezone);
    out.tier_before = tier_index(program, &state.tier);

    // Release, then inactivity, then expiry by age: the contract's order.
    state.release(now);
    out.expired_inactive = expire_inactive(program, state, now);
    let expired = out.expired_inactive + expire_by_age(program, state, &local, now);
    push_line(out, Line::Expired, -expired);

    match event.kind {
        Kind::Purchase => purchase(program, settings, state, budgets, event, &local, out),
        Kind::Refund => refund(program, settings, state, event, &local, out),
        Kind::Redeem => {
            if state.balance() >= event.points {
                state.debit(event.points, None);
                push_line(out, Line::Redeem, -event.points);
                touch(state, now);
            } else {
                out.status = Status::Rejected;
            }
        }
        Kind::Profile => {
            if let Some(date) = event.birth_date {
                state.birthday = Some((date.month, date.day));
            }
        }
        Kind::Adjust => {
            if event.points > 0 {
                state.credit(event.points, Lot { earned_at: now, month: local.month, release_at: now, points: 0 });
            } else {
                state.debit(-event.points, None);
            }
            push_line(out, Line::Adjust, event.points);
        }
    }

    out.points = out.lines.iter().map(|(_, p)| p).sum();
    out.balance = state.balance();
    out.pending = state.pending_points();
    out.tier_after = tier_index(program, &state.tier);
    out.qualifying_spend = qualifying_spend(program, state, local.month);
}

/// Records activity (purchases and accepted redemptions) for inactivity expiry.
fn touch(state: &mut MemberState, now: Micros) {
    state.last_activity = Some(state.last_activity.map_or(now, |last| last.max(now)));
}

fn push_line(out: &mut Outcome, line: Line, points: i64) {
    if points != 0 {
        out.lines.push((line, points));
    }
}

/// Index of a tier by name; a name the program no longer has (its rules
/// changed) reads as the lowest tier.
fn tier_index(program: &Program, name: &str) -> usize {
    program.tiers.iter().position(|t| t.name == name).unwrap_or(0)
}

/// When the member has been inactive for more than `inactivity_days`,
/// removes every lot earned up to the moment it became inactive.
fn expire_inactive(program: &Program, state: &mut MemberState, now: Micros) -> i64 {
    let (Some(days), Some(last)) = (program.expiry.inactivity_days, state.last_activity) else {
        return 0;
    };
    let inactive_from = last.plus_days(days);
    if now <= inactive_from {
        return 0;
    }
    state.expire_where(|lot| lot.earned_at <= inactive_from)
}

/// Removes the lots that have reached their age limit at `now`.
fn expire_by_age(program: &Program, state: &mut MemberState, local: &Local, now: Micros) -> i64 {
    match program.expiry.mode {
        ExpiryMode::Never => 0,
        ExpiryMode::Rolling { ttl_days } => {
            let cutoff = Micros(now.0.saturating_sub(ttl_days.saturating_mul(Micros::PER_DAY)));
            state.expire_where(|lot| lot.earned_at < cutoff)
        }
        ExpiryMode::EndOfPeriod { period, periods } => {
            // A lot is gone from the local midnight that ends the period
            // `periods` after its own: compare local period numbers.
            let index = |month: i32| match period {
                Period::Month => month,
                Period::Quarter => month.div_euclid(3),
                Period::Year => month.div_euclid(12),
            };
            let current = index(local.month);
            let periods = i32::try_from(periods).unwrap_or(i32::MAX);
            state.expire_where(|lot| index(lot.month).saturating_add(periods) < current)
        }
    }
}

fn filters_hold(filters: &Filters, event: &Event<'_>, local: &Local, tier: usize) -> bool {
    fn listed(list: &Option<Vec<String>>, value: Option<&str>) -> bool {
        match list {
            None => true,
            Some(list) => value.is_some_and(|v| list.iter().any(|x| x == v)),
        }
    }
    filters.valid_from.is_none_or(|from| event.occurred_at >= from)
        && filters.valid_to.is_none_or(|to| event.occurred_at < to)
        && filters.days.is_none_or(|days| days & (1 << local.weekday) != 0)
        && filters.hours.is_none_or(|(start, end)| (start..end).contains(&local.minute_of_day))
        && listed(&filters.stores, event.store_id)
        && listed(&filters.channels, event.channel)
        && listed(&filters.merchants, event.merchant_id)
        && filters.tiers.as_ref().is_none_or(|tiers| tiers.contains(&tier))
}

fn in_categories(categories: &[String], category: Option<&str>) -> bool {
    category.is_some_and(|c| categories.iter().any(|x| x == c))
}

/// Items a basket can hold in [`Basket`]'s bitset: every basket the decoder
/// accepts.
const BASKET_BITS: usize = 1024;
const _: () = assert!(MAX_ITEMS <= BASKET_BITS);

/// A purchase's items with, worked out once, which of them count (their
/// category is not excluded): the base points and every rule that walks the
/// basket ask, and each answer is string comparisons.
struct Basket<'e, 'a> {
    items: &'e [Item<'a>],
    /// Bit `i % 64` of word `i / 64`: item `i` counts. An item past the
    /// bitset (only an event built by hand can have one) is asked each time.
    counted: [u64; BASKET_BITS / 64],
    /// The amounts of the excluded items.
    excluded: Decimal,
}

impl<'e, 'a> Basket<'e, 'a> {
    fn new(program: &Program, items: &'e [Item<'a>]) -> Self {
        let mut basket = Basket { items, counted: [0; BASKET_BITS / 64], excluded: Decimal::ZERO };
        for (i, item) in items.iter().enumerate() {
            if program.is_excluded(item.category) {
                basket.excluded += item.amount;
            } else if let Some(word) = basket.counted.get_mut(i / 64) {
                *word |= 1 << (i % 64);
            }
        }
        basket
    }

    /// The items that count, in basket order.
    fn counted<'b>(&'b self, program: &'b Program) -> impl Iterator<Item = &'e Item<'a>> + 'b {
        self.items.iter().enumerate().filter_map(move |(i, item)| {
            let counts = match self.counted.get(i / 64) {
                Some(word) => word >> (i % 64) & 1 == 1,
                None => !program.is_excluded(item.category),
            };
            counts.then_some(item)
        })
    }
}

fn purchase(
    program: &Program,
    settings: &Settings,
    state: &mut MemberState,
    budgets: &mut dyn Budgets,
    event: &Event<'_>,
    local: &Local,
    out: &mut Outcome,
) {
    let rounding = program.rounding;
    let rate = program.earn_rate(event.merchant_id);
    let basket = Basket::new(program, event.items);
    let eligible = (event.total - basket.excluded).max(Decimal::ZERO);
    out.spend = eligible;

    // Earning lines are kept even at 0 until caps have cut, so the cut walks
    // the real evaluation order; zeros are dropped at the end.
    let first_earning = out.lines.len();
    let base = rounding.product_points(eligible, rate);
    out.lines.push((Line::Base, base));
    let tier = &program.tiers[out.tier_before];
    if tier.multiplier != Decimal::ONE {
        out.lines.push((
            Line::Tier(out.tier_before),
            rounding.product_points(Decimal::from(base), tier.multiplier - Decimal::ONE),
        ));
    }

    for (index, rule) in program.rules.iter().enumerate() {
        if matches!(rule.kind, RuleKind::Milestone { .. })
            || !filters_hold(&rule.filters, event, local, out.tier_before)
        {
            continue;
        }
        let points =
            bonus(program, rule, index, state, event, &basket, local, rate, eligible, out).clamp(0, MAX_LINE_POINTS);
        let points = match rule.budget_points {
            Some(budget) => points.min((budget - budgets.spent(&program.id, &rule.id)).max(0)),
            None => points,
        };
        out.lines.push((Line::Rule(index), points));
    }

    let mut earned: i64 = out.lines[first_earning..].iter().map(|(_, p)| p).sum();
    if let Some(max) = program.caps.max_points_per_event {
        earned -= cut(&mut out.lines[first_earning..], earned - max);
    }
    // Day counters matter only to a daily cap; without one they would be
    // bytes in every member's stored state for nothing.
    let daily_cap = program.caps.max_points_per_member_per_day;
    let days = daily_cap.map(|_| Days::scan(&state.daily_earned, local.day));
    if let (Some(max), Some(days)) = (daily_cap, days) {
        let today = days.today.map_or(0, |i| state.daily_earned[i].1);
        earned -= cut(&mut out.lines[first_earning..], earned - (max - today).max(0));
    }
    for &(line, points) in &out.lines[first_earning..] {
        if let Line::Rule(index) = line {
            let rule = &program.rules[index];
            if rule.budget_points.is_some() && points > 0 {
                budgets.charge(&program.id, &rule.id, points);
            }
        }
    }
    out.lines.retain(|(_, p)| *p != 0);

    if let Some(days) = days {
        add_daily(state, settings, days, local.day, earned);
    }
    let lifetime_before = state.lifetime_earned;
    state.lifetime_earned = state.lifetime_earned.saturating_add(earned);
    for (index, rule) in program.rules.iter().enumerate() {
        if let RuleKind::Milestone { thresholds, gift } = &rule.kind {
            if gift.is_some() && filters_hold(&rule.filters, event, local, out.tier_before) {
                let crossed = thresholds.iter().filter(|&&t| lifetime_before < t && t <= state.lifetime_earned).count();
                out.gifts.extend(std::iter::repeat_n(index, crossed.min(MAX_GIFTS_PER_RULE)));
            }
        }
    }

    let now = event.occurred_at;
    let release_at = program.pending_days.map_or(now, |days| now.plus_days(days));
    state.credit(earned, Lot { earned_at: now, month: local.month, release_at, points: 0 });
    touch(state, now);
    add_spend(program, settings, state, local.month, eligible);
    move_tier(program, state, local.month, now);
    state.purchases += 1;
    out.purchase = Some(PurchaseRecord {
        total: event.total,
        points: earned,
        eligible,
        month: local.month,
        refunded: Decimal::ZERO,
        points_reversed: 0,
        spend_reversed: Decimal::ZERO,
    });
}

/// Points of one bonus rule whose filters hold (before budget and caps);
/// records its stamps and gifts.
#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn bonus(
    program: &Program,
    rule: &Rule,
    index: usize,
    state: &mut MemberState,
    event: &Event<'_>,
    basket: &Basket<'_, '_>,
    local: &Local,
    rate: Decimal,
    eligible: Decimal,
    out: &mut Outcome,
) -> i64 {
    let counted = || basket.counted(program);
    match &rule.kind {
        RuleKind::CategoryMultiplier { categories, multiplier } => {
            let amount: Decimal = counted().filter(|i| in_categories(categories, i.category)).map(|i| i.amount).sum();
            program.rounding.product_points(product(amount, rate), *multiplier - Decimal::ONE)
        }
        RuleKind::BasketThreshold { min_spend, bonus_points, gift } => {
            if eligible < *min_spend {
                return 0;
            }
            if gift.is_some() {
                out.gifts.push(index);
            }
            *bonus_points
        }
        RuleKind::StampCard { categories, count, stamps_required, bonus_points, gift } => {
            let stamps: u64 = match (categories, count) {
                (Some(c), StampCount::Items) => {
                    counted().filter(|i| in_categories(c, i.category)).map(|i| u64::from(i.quantity)).sum()
                }
                (Some(c), StampCount::Purchases) => u64::from(counted().any(|i| in_categories(c, i.category))),
                (None, StampCount::Items) if event.items.is_empty() => 1,
                (None, StampCount::Items) => counted().map(|i| u64::from(i.quantity)).sum(),
                (None, StampCount::Purchases) => u64::from(event.items.is_empty() || counted().next().is_some()),
            };
            if stamps == 0 {
                return 0;
            }
            let slot = match state.stamps.iter().position(|(id, _)| *id == rule.id) {
                Some(slot) => slot,
                None => {
                    state.stamps.push((rule.id.clone(), 0));
                    state.stamps.len() - 1
                }
            };
            let total = u64::from(state.stamps[slot].1) + stamps;
            let required = u64::from(*stamps_required);
            let completed = total / required;
            let left = (total % required) as u32;
            state.stamps[slot].1 = left;
            let completed = u32::try_from(completed).unwrap_or(u32::MAX);
            out.stamps.push(StampTouch { rule: index, stamps: left, completed });
            if gift.is_some() {
                out.gifts.extend(std::iter::repeat_n(index, (completed as usize).min(MAX_GIFTS_PER_RULE)));
            }
            bonus_points.saturating_mul(i64::from(completed))
        }
        RuleKind::FirstPurchase { bonus_points } => {
            if state.purchases == 0 {
                *bonus_points
            } else {
                0
            }
        }
        RuleKind::Birthday { bonus_points, window_days, gift } => {
            let Some(year) = birthday_year(state, rule, local, *window_days) else {
                return 0;
            };
            // An entry of this rule that drops out of the kept years lends
            // its id's allocation to the new one: a yearly birthday bonus
            // allocates only when the member's number of entries grows.
            let kept_from = local.year - 2;
            let id = state
                .birthdays_used
                .iter_mut()
                .find(|(id, y)| *y < kept_from && *id == rule.id)
                .map_or_else(|| rule.id.clone(), |(id, _)| std::mem::take(id));
            state.birthdays_used.retain(|(_, y)| *y >= kept_from);
            state.birthdays_used.push((id, year));
            out.birthdays.push(index);
            if gift.is_some() {
                out.gifts.push(index);
            }
            *bonus_points
        }
        RuleKind::Milestone { .. } => 0,
    }
}

/// The birthday year whose window holds the purchase's local date and that
/// the rule has not rewarded yet: this year's, or last year's for a window
/// that runs into the new year.
fn birthday_year(state: &MemberState, rule: &Rule, local: &Local, window_days: u32) -> Option<i32> {
    let (month, day) = state.birthday?;
    [local.year, local.year - 1].into_iter().find(|&year| {
        day_number(year, month, day).is_some_and(|start| (start..start + window_days as i32).contains(&local.day))
            && !state.birthdays_used.iter().any(|(id, y)| *y == year && *id == rule.id)
    })
}

/// Takes `excess` points (when positive) from the last lines first; returns
/// what it took.
fn cut(lines: &mut [(Line, i64)], excess: i64) -> i64 {
    let mut left = excess.max(0);
    for (_, points) in lines.iter_mut().rev() {
        if left == 0 {
            break;
        }
        let take = left.min(*points);
        *points -= take;
        left -= take;
    }
    excess.max(0) - left
}

/// What a daily cap needs from the day counters, found in one pass: today's
/// counter, and the oldest and newest day held (counting today).
#[derive(Clone, Copy)]
struct Days {
    today: Option<usize>,
    oldest: i32,
    newest: i32,
}

impl Days {
    fn scan(daily: &[(i32, i64)], day: i32) -> Days {
        let mut days = Days { today: None, oldest: day, newest: day };
        for (i, &(d, _)) in daily.iter().enumerate() {
            if d == day {
                days.today = Some(i);
            }
            days.oldest = days.oldest.min(d);
            days.newest = days.newest.max(d);
        }
        days
    }
}

/// Adds `points` to the counter of `day`; `days` is the scan of the counters
/// as they are.
fn add_daily(state: &mut MemberState, settings: &Settings, days: Days, day: i32, points: i64) {
    match days.today {
        Some(i) => state.daily_earned[i].1 = state.daily_earned[i].1.saturating_add(points),
        None => {
            state.daily_earned.push((day, points));
            // Days within the retention window can still see late events;
            // older counters are dropped (the list is rewritten only when
            // one is due to go).
            let kept = i32::try_from(settings.retention_days).unwrap_or(i32::MAX);
            let from = days.newest.saturating_sub(kept);
            if days.oldest < from {
                state.daily_earned.retain(|(d, _)| *d >= from);
            }
        }
    }
}

/// Months of spend a rolling program still needs: its window and the months
/// a refund within the retention window may reach back to.
fn months_kept(window_months: u32, settings: &Settings) -> i32 {
    window_months as i32 + (settings.retention_days / 28) as i32 + 1
}

fn add_spend(program: &Program, settings: &Settings, state: &mut MemberState, month: i32, amount: Decimal) {
    state.lifetime_spend += amount;
    if let Basis::Rolling { window_months } = program.qualification.basis {
        match state.monthly_spend.binary_search_by_key(&month, |(m, _)| *m) {
            Ok(i) => state.monthly_spend[i].1 += amount,
            Err(i) => state.monthly_spend.insert(i, (month, amount)),
        }
        let newest = state.monthly_spend.last().map_or(month, |(m, _)| *m);
        let oldest = newest - months_kept(window_months, settings);
        state.monthly_spend.retain(|(m, _)| *m > oldest);
    }
}

/// Qualifying spend as of the local `month`.
fn qualifying_spend(program: &Program, state: &MemberState, month: i32) -> Decimal {
    match program.qualification.basis {
        Basis::Lifetime => state.lifetime_spend,
        Basis::Rolling { window_months } => {
            let first = month - window_months as i32;
            state.monthly_spend.iter().filter(|(m, _)| *m > first && *m <= month).map(|(_, s)| *s).sum()
        }
    }
}

fn computed_tier(program: &Program, state: &MemberState, month: i32) -> usize {
    let spend = qualifying_spend(program, state, month);
    program.tiers.iter().rposition(|t| spend >= t.threshold).unwrap_or(0)
}

/// Moves the tier where the contract does (after a purchase, and after a
/// refund of a known purchase unless downgrade is `never`): a higher or equal
/// computed tier at once; a lower one at once (`immediate`), never (`never`),
/// or once it has stayed lower for `grace_days` (`grace`).
fn move_tier(program: &Program, state: &mut MemberState, month: i32, now: Micros) {
    let computed = computed_tier(program, state, month);
    let held = tier_index(program, &state.tier);
    let tier = if computed >= held {
        state.grace_since = None;
        computed
    } else {
        match program.qualification.downgrade {
            Downgrade::Never => held,
            Downgrade::Immediate => computed,
            Downgrade::Grace { grace_days } => match state.grace_since {
                None => {
                    state.grace_since = Some(now);
                    held
                }
                Some(since) if now >= since.plus_days(grace_days) => {
                    state.grace_since = None;
                    computed
                }
                Some(_) => held,
            },
        }
    };
    set_tier(program, state, tier);
}

fn set_tier(program: &Program, state: &mut MemberState, tier: usize) {
    let name = &program.tiers[tier].name;
    if state.tier != *name {
        state.tier.clone_from(name);
    }
}

fn refund(
    program: &Program,
    settings: &Settings,
    state: &mut MemberState,
    event: &Event<'_>,
    local: &Local,
    out: &mut Outcome,
) {
    let horizon = Micros(event.occurred_at.0.saturating_sub(settings.retention_days.saturating_mul(Micros::PER_DAY)));
    // A record that does not decode is treated as an unknown original
    // rather than failing the event: the refund is still reversed at the
    // program's rate.
    let known = event
        .original_event_id
        .and_then(|id| state.events.get(id))
        .and_then(|r| r.decode().ok())
        .filter(|r| r.occurred_at >= horizon)
        .and_then(|r| r.purchase.map(|p| (r, p)));
    let Some((mut known, mut record)) = known else {
        out.original_unknown = true;
        let points = program.rounding.product_points(event.total, program.points_per_unit);
        state.debit(points, None);
        push_line(out, Line::Refund, -points);
        return;
    };
    let original_at = known.occurred_at;
    let remaining_total = record.total - record.refunded;
    let amount = event.total.min(remaining_total);
    let (points, spend) = if amount >= remaining_total {
        (record.points - record.points_reversed, record.eligible - record.spend_reversed)
    } else {
        // amount < remaining_total <= total, so total > 0 here. Amounts have at
        // most 4 decimal places, so the ratio is computed exactly in integers.
        let points = match (scaled(amount, 4), scaled(record.total, 4)) {
            (Some(a), Some(t)) if t > 0 => program
                .rounding
                .ratio(i128::from(record.points) * a, t)
                .min(i128::from(record.points - record.points_reversed)),
            _ => 0,
        };
        (points as i64, record.eligible * amount / record.total)
    };
    record.refunded += amount;
    record.points_reversed += points;
    record.spend_reversed += spend;
    known.purchase = Some(record);
    if let Some(r) = event.original_event_id.and_then(|id| state.events.get_mut(id)) {
        *r = StoredEvent::from_record(&known);
    }

    state.debit(points, Some(original_at));
    push_line(out, Line::Refund, -points);
    out.spend = spend;
    add_spend(program, settings, state, record.month, -spend);
    if program.qualification.downgrade != Downgrade::Never {
        move_tier(program, state, local.month, event.occurred_at);
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
