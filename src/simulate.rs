//! The cost report of `simulate`: a [`Sink`] that aggregates every outcome
//! of a run, and the figures a loyalty manager asks for before launch.
//!
//! Counts only what the pipeline hands it; it never re-scores or re-reads
//! state, except for end-of-run balances and tiers taken from the store.

use std::collections::BTreeMap;
use std::io;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::event::Kind;
use crate::output::gift_name;
use crate::pipeline::{Disposition, Sink};
use crate::rules::engine::{Line, Status};
use crate::rules::round::product;
use crate::rules::{Program, ProgramSet};
use crate::state::memory::MemoryStore;

/// Events by what became of them.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct EventCounts {
    pub purchases: u64,
    pub refunds: u64,
    /// Refunds whose original purchase was not known.
    pub refunds_unknown_original: u64,
    pub redeems: u64,
    pub redeems_rejected: u64,
    /// Repeated `event_id`s: re-emitted, not re-scored.
    pub repeats: u64,
    /// Valid events without a member: counted, not scored.
    pub anonymous: u64,
}

/// Use of a rule's promotion budget.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BudgetUse {
    pub budget_points: i64,
    pub spent_points: i64,
    pub percent: Decimal,
}

/// The report of one program.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ProgramReport {
    pub program: String,
    pub currency: String,
    pub events: EventCounts,
    /// Members with at least one scored event.
    pub members: u64,
    /// Sum of purchase totals.
    pub spend: Decimal,
    /// Spend that earns points (totals minus excluded categories).
    pub eligible_spend: Decimal,
    /// Sum of refund totals.
    pub refunded: Decimal,
    /// Points credited by purchases, after caps and budgets.
    pub points_issued: i64,
    /// Points issued by breakdown line (`base`, `tier:<name>`, rule ids).
    pub points_by_rule: BTreeMap<String, i64>,
    /// Points issued by the member's tier at the time of the purchase.
    pub points_by_tier: BTreeMap<String, i64>,
    pub points_refunded: i64,
    pub points_redeemed: i64,
    pub points_expired: i64,
    /// Manual adjustments that credited points.
    pub points_adjusted_credit: i64,
    /// Manual adjustments that debited points.
    pub points_adjusted_debit: i64,
    /// Sum of positive balances at the end.
    pub points_outstanding: i64,
    /// Sum of negative balances at the end (points owed by members).
    pub points_owed: i64,
    pub point_value: Decimal,
    /// `points_outstanding x point_value`, in the program's currency.
    pub liability: Decimal,
    /// Money value of points issued as a percentage of eligible spend.
    pub reward_rate_percent: Decimal,
    pub gifts: BTreeMap<String, u64>,
    pub budgets: BTreeMap<String, BudgetUse>,
    /// Members per tier at the end.
    pub tiers: BTreeMap<String, u64>,
}

/// The whole report: one section per program, and dead letters by reason.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Report {
    pub programs: Vec<ProgramReport>,
    pub dead_letters: BTreeMap<String, u64>,
}

/// Aggregates dispositions as they stream by.
#[derive(Debug)]
pub struct Collector {
    report: Report,
}

impl Collector {
    pub fn new(programs: &ProgramSet) -> Self {
        let programs = programs
            .iter()
            .map(|p| ProgramReport {
                program: p.id.clone(),
                currency: p.currency.clone(),
                point_value: p.point_value,
                ..ProgramReport::default()
            })
            .collect();
        Self { report: Report { programs, dead_letters: BTreeMap::new() } }
    }

    fn section(&mut self, program: &Program) -> Option<&mut ProgramReport> {
        self.report.programs.iter_mut().find(|r| r.program == program.id)
    }

    /// Completes the report with end-of-run state.
    pub fn finish(mut self, programs: &ProgramSet, store: &MemoryStore) -> Report {
        for (program_id, _member, state) in store.iter() {
            let Some(program) = programs.iter().find(|p| p.id == program_id) else { continue };
            let Some(section) = self.report.programs.iter_mut().find(|r| r.program == program_id) else { continue };
            if state.events.is_empty() && state.purchases == 0 {
                continue;
            }
            section.members += 1;
            let balance = state.balance();
            if balance >= 0 {
                section.points_outstanding = section.points_outstanding.saturating_add(balance);
            } else {
                section.points_owed = section.points_owed.saturating_sub(balance);
            }
            let tier = program.tiers.iter().find(|t| t.name == state.tier).unwrap_or(&program.tiers[0]);
            *section.tiers.entry(tier.name.clone()).or_default() += 1;
        }
        for program in programs.iter() {
            let Some(section) = self.report.programs.iter_mut().find(|r| r.program == program.id) else { continue };
            for tier in &program.tiers {
                section.tiers.entry(tier.name.clone()).or_default();
            }
            section.liability = product(Decimal::from(section.points_outstanding), program.point_value);
            if !section.eligible_spend.is_zero() {
                let value = product(Decimal::from(section.points_issued), program.point_value);
                section.reward_rate_percent =
                    product(value.checked_div(section.eligible_spend).unwrap_or(Decimal::MAX), Decimal::ONE_HUNDRED)
                        .round_dp(4);
            }
            for rule in &program.rules {
                if let Some(budget) = rule.budget_points {
                    let spent =
                        store.budgets().find(|(p, r, _)| *p == program.id && *r == rule.id).map_or(0, |(_, _, v)| v);
                    let mut percent = (Decimal::from(spent) * Decimal::ONE_HUNDRED / Decimal::from(budget)).round_dp(2);
                    percent.rescale(2);
                    section
                        .budgets
                        .insert(rule.id.clone(), BudgetUse { budget_points: budget, spent_points: spent, percent });
                }
            }
        }
        self.report
    }
}

fn line_name(program: &Program, line: Line) -> String {
    match line {
        Line::Expired => "expired".into(),
        Line::Base => "base".into(),
        Line::Redeem => "redeem".into(),
        Line::Refund => "refund".into(),
        Line::Adjust => "adjust".into(),
        Line::Tier(i) => format!("tier:{}", program.tiers[i].name),
        Line::Rule(i) => program.rules[i].id.clone(),
    }
}

impl Sink for Collector {
    fn accept(&mut self, _position: u64, _message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        match disposition {
            Disposition::Dead(error) => {
                *self.report.dead_letters.entry(error.reason.as_str().to_owned()).or_default() += 1;
            }
            Disposition::Anonymous { program } => {
                if let Some(s) = self.section(program) {
                    s.events.anonymous += 1;
                }
            }
            Disposition::Repeat { program, .. } => {
                if let Some(s) = self.section(program) {
                    s.events.repeats += 1;
                }
            }
            Disposition::Scored { program, event, outcome, .. } => {
                let tier_name = program.tiers[outcome.tier_before].name.clone();
                let Some(s) = self.section(program) else { return Ok(()) };
                for &(line, points) in &outcome.lines {
                    match line {
                        Line::Expired => s.points_expired -= points,
                        Line::Redeem => s.points_redeemed -= points,
                        Line::Refund => s.points_refunded -= points,
                        Line::Adjust if points > 0 => s.points_adjusted_credit += points,
                        Line::Adjust => s.points_adjusted_debit -= points,
                        Line::Base | Line::Tier(_) | Line::Rule(_) => {
                            s.points_issued = s.points_issued.saturating_add(points);
                            let by_rule = s.points_by_rule.entry(line_name(program, line)).or_default();
                            *by_rule = by_rule.saturating_add(points);
                            let by_tier = s.points_by_tier.entry(tier_name.clone()).or_default();
                            *by_tier = by_tier.saturating_add(points);
                        }
                    }
                }
                for &rule in &outcome.gifts {
                    if let Some(name) = gift_name(program, rule) {
                        *s.gifts.entry(name.to_owned()).or_default() += 1;
                    }
                }
                match event.kind {
                    Kind::Purchase => {
                        s.events.purchases += 1;
                        s.spend += event.total;
                        s.eligible_spend += outcome.spend;
                    }
                    Kind::Refund => {
                        s.events.refunds += 1;
                        s.refunded += event.total;
                        s.events.refunds_unknown_original += u64::from(outcome.original_unknown);
                    }
                    Kind::Redeem => {
                        s.events.redeems += 1;
                        s.events.redeems_rejected += u64::from(outcome.status == Status::Rejected);
                    }
                    Kind::Profile | Kind::Adjust => {}
                }
            }
        }
        Ok(())
    }
}

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
            ("repeats", e.repeats.to_string()),
            ("anonymous", e.anonymous.to_string()),
            ("members", s.members.to_string()),
            ("spend", format!("{} {}", s.spend.round_dp(2), s.currency)),
            ("eligible spend", format!("{} {}", s.eligible_spend.round_dp(2), s.currency)),
            ("refunded", format!("{} {}", s.refunded.round_dp(2), s.currency)),
            ("points issued", s.points_issued.to_string()),
            ("points refunded", s.points_refunded.to_string()),
            ("points redeemed", s.points_redeemed.to_string()),
            ("points expired", s.points_expired.to_string()),
            ("points outstanding", s.points_outstanding.to_string()),
            ("points owed by members", s.points_owed.to_string()),
            ("liability", format!("{} {} (at {} per point)", s.liability.round_dp(2), s.currency, s.point_value)),
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

fn table(o: &mut String, header: &[&str], rows: &[(&str, String)]) {
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
