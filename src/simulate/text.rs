//! `simulate`'s reports as tables for a terminal.

use std::fmt::Display;

use crate::rules::ProgramSet;
use crate::simulate::Report;
use crate::simulate::compare::{Comparison, Delta};

/// The report as tables for a terminal.
pub fn render_text(report: &Report, programs: &ProgramSet) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for s in &report.programs {
        let program = programs.iter().find(|p| p.id == s.program);
        let _ = writeln!(o, "Program {} ({})", s.program, s.currency);
        let e = &s.events;
        let rows: Vec<(&str, String)> = vec![
            ("purchases", e.purchases.to_string()),
            ("refunds", format!("{} ({} with unknown original)", e.refunds, e.refunds_unknown_original)),
            ("redeems", format!("{} ({} rejected)", e.redeems, e.redeems_rejected)),
            ("profiles", e.profiles.to_string()),
            ("adjustments", e.adjustments.to_string()),
            ("repeats", e.repeats.to_string()),
            ("anonymous", e.anonymous.to_string()),
            ("members", s.members.to_string()),
            ("spend", format!("{} {}", s.spend.round_dp(2), s.currency)),
            ("eligible spend", format!("{} {}", s.eligible_spend.round_dp(2), s.currency)),
            ("refunded", format!("{} {}", s.refunded.round_dp(2), s.currency)),
            ("points issued", s.points_issued.to_string()),
            ("points refunded", s.points_refunded.to_string()),
            ("points redeemed", s.points_redeemed.to_string()),
            (
                "points expired",
                format!(
                    "{} ({} by age, {} at period end, {} after inactivity)",
                    s.points_expired,
                    s.points_expired_rolling,
                    s.points_expired_end_of_period,
                    s.points_expired_inactivity
                ),
            ),
            ("adjusted", format!("+{} / -{}", s.points_adjusted_credit, s.points_adjusted_debit)),
            ("birthday bonuses", s.birthday_bonuses.to_string()),
            ("points outstanding", s.points_outstanding.to_string()),
            ("points pending", s.points_pending.to_string()),
            ("points owed by members", s.points_owed.to_string()),
            (
                "liability",
                format!(
                    "{} {} (outstanding and pending, at {} per point)",
                    s.liability.round_dp(2),
                    s.currency,
                    s.point_value
                ),
            ),
            ("reward rate", format!("{}% of eligible spend", s.reward_rate_percent.round_dp(2))),
        ];
        table(&mut o, &[], &rows);
        let _ = writeln!(o, "\n  Points issued by rule");
        let rows: Vec<(&str, String)> = s.points_by_rule.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        table(&mut o, &["rule", "points"], &rows);
        let _ = writeln!(o, "\n  Points issued by tier");
        let rows: Vec<(&str, String)> = s.points_by_tier.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        table(&mut o, &["tier", "points"], &rows);
        if !s.gifts.is_empty() {
            let _ = writeln!(o, "\n  Gifts");
            let rows: Vec<(&str, String)> = s.gifts.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
            table(&mut o, &["gift", "count"], &rows);
        }
        if !s.budgets.is_empty() {
            let _ = writeln!(o, "\n  Budgets");
            let rows: Vec<(&str, String)> = s
                .budgets
                .iter()
                .map(|(k, b)| (k.as_str(), format!("{} of {} ({}%)", b.spent_points, b.budget_points, b.percent)))
                .collect();
            table(&mut o, &["rule", "spent"], &rows);
        }
        let _ = writeln!(o, "\n  Tiers at the end");
        // Tiers in program order, not alphabetical.
        let order: Vec<&str> = program.map(|p| p.tiers.iter().map(|t| t.name.as_str()).collect()).unwrap_or_default();
        let rows: Vec<(&str, String)> =
            order.iter().map(|t| (*t, s.tiers.get(*t).copied().unwrap_or(0).to_string())).collect();
        table(&mut o, &["tier", "members"], &rows);
        let _ = writeln!(o);
    }
    if !report.dead_letters.is_empty() {
        let _ = writeln!(o, "Dead letters");
        let rows: Vec<(&str, String)> = report.dead_letters.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        table(&mut o, &["reason", "count"], &rows);
    }
    o
}

/// Two-column rows under an optional header, keys left-aligned.
pub(crate) fn table(o: &mut String, header: &[&str], rows: &[(&str, String)]) {
    use std::fmt::Write;
    let width = rows.iter().map(|(k, _)| k.len()).chain(header.first().map(|h| h.len())).max().unwrap_or(0);
    if let [a, b] = header {
        let _ = writeln!(o, "  {a:<width$}  {b:>12}");
    }
    for (k, v) in rows {
        if header.is_empty() {
            let _ = writeln!(o, "  {k:<width$}  {v}");
        } else {
            let _ = writeln!(o, "  {k:<width$}  {v:>12}");
        }
    }
}

/// `+12` / `-3` / `0`.
fn signed<T: Display + PartialOrd + Default>(v: T) -> String {
    if v > T::default() { format!("+{v}") } else { v.to_string() }
}

/// Rows of current, candidate and difference, under a header when given,
/// keys at least `width` wide.
fn delta_table<T: Display + PartialOrd + Default + Copy>(
    o: &mut String,
    header: Option<[&str; 4]>,
    width: usize,
    rows: &[(String, Delta<T>)],
) {
    use std::fmt::Write;
    let width = rows.iter().map(|(k, _)| k.len()).chain(header.map(|h| h[0].len())).chain([width]).max().unwrap_or(0);
    if let Some(h) = header {
        let _ = writeln!(o, "  {:<width$}  {:>14}  {:>14}  {:>14}", h[0], h[1], h[2], h[3]);
    }
    for (k, d) in rows {
        let _ = writeln!(o, "  {k:<width$}  {:>14}  {:>14}  {:>14}", d.current, d.candidate, signed(d.difference));
    }
}

/// The what-if report as tables for a terminal.
pub fn render_comparison(comparison: &Comparison) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for c in &comparison.programs {
        let _ = writeln!(
            o,
            "Program {} ({}): current rules {} vs candidate {}",
            c.program, c.currency, c.rules_version.current, c.rules_version.candidate
        );
        let mut liability = c.liability;
        liability.current = liability.current.round_dp(2);
        liability.candidate = liability.candidate.round_dp(2);
        liability.difference = liability.difference.round_dp(2);
        let liability_label = format!("liability ({})", c.currency);
        let width = liability_label.len().max("points outstanding".len());
        delta_table(
            &mut o,
            Some(["", "current", "candidate", "difference"]),
            width,
            &[
                ("points issued".into(), c.points_issued),
                ("points outstanding".into(), c.points_outstanding),
                ("points pending".into(), c.points_pending),
            ],
        );
        delta_table(&mut o, None, width, &[(liability_label, liability)]);
        let _ = writeln!(o, "\n  Points issued by rule");
        let rows: Vec<(String, Delta<i64>)> = c.by_rule.iter().map(|(k, d)| (k.clone(), *d)).collect();
        delta_table(&mut o, Some(["rule", "current", "candidate", "difference"]), 0, &rows);
        let _ = writeln!(o, "\n  Points issued by tier");
        let rows: Vec<(String, Delta<i64>)> = c.by_tier.iter().map(|(k, d)| (k.clone(), *d)).collect();
        delta_table(&mut o, Some(["tier", "current", "candidate", "difference"]), 0, &rows);
        let _ = writeln!(o, "\n  Members per tier at the end");
        let rows: Vec<(String, Delta<i64>)> = c.tiers_at_end.iter().map(|(k, d)| (k.clone(), *d)).collect();
        delta_table(&mut o, Some(["tier", "current", "candidate", "difference"]), 0, &rows);
        let _ = writeln!(o, "\n  Members ending in another tier: {}", c.members_changing_tier);
        for (moved, n) in &c.tier_moves {
            let _ = writeln!(o, "    {moved}: {n}");
        }
        if !c.top_members.is_empty() {
            let _ = writeln!(o, "\n  Largest differences in points issued (top {})", c.top_members.len());
            let rows: Vec<(String, Delta<i64>)> = c
                .top_members
                .iter()
                .map(|m| {
                    let tiers = if m.tier_current == m.tier_candidate {
                        m.tier_current.clone()
                    } else {
                        format!("{} -> {}", m.tier_current, m.tier_candidate)
                    };
                    (format!("{} ({tiers})", m.member_id), m.points_issued)
                })
                .collect();
            delta_table(&mut o, Some(["member (tier)", "current", "candidate", "difference"]), 0, &rows);
        }
        let _ = writeln!(o);
    }
    o
}
