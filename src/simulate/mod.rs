//! The cost report of `simulate`: a [`Sink`] that aggregates every outcome
//! of a run, and the figures a loyalty manager asks for before launch.
//!
//! Counts only what the pipeline hands it; it never re-scores or re-reads
//! state, except for end-of-run balances and tiers taken from the store.
//! [`compare`] runs two collectors side by side for a what-if report;
//! [`text`] renders reports for a terminal.

pub mod compare;
pub mod text;

pub use text::render_text;

use std::collections::BTreeMap;
use std::io;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::event::Kind;
use crate::output::gift_name;
use crate::pipeline::{Disposition, Sink};
use crate::rules::engine::{Line, Status};
use crate::rules::model::ExpiryMode;
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
    pub profiles: u64,
    pub adjustments: u64,
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
    /// Of `points_expired`: by age (`points_ttl_days`).
    pub points_expired_rolling: i64,
    /// Of `points_expired`: at the end of a calendar period.
    pub points_expired_end_of_period: i64,
    /// Of `points_expired`: after the member's inactivity.
    pub points_expired_inactivity: i64,
    /// Birthday bonuses awarded (their points are in `points_by_rule`).
    pub birthday_bonuses: u64,
    /// Manual adjustments that credited points.
    pub points_adjusted_credit: i64,
    /// Manual adjustments that debited points.
    pub points_adjusted_debit: i64,
    /// Sum of positive balances at the end.
    pub points_outstanding: i64,
    /// Points still pending (waiting for the return window) at the end.
    pub points_pending: i64,
    /// Sum of negative balances at the end (points owed by members).
    pub points_owed: i64,
    pub point_value: Decimal,
    /// `(points_outstanding + points_pending) x point_value`, in the
    /// program's currency.
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
    /// Points issued per member (program id -> member id -> points), kept
    /// only for comparisons.
    members: Option<hashbrown::HashMap<String, hashbrown::HashMap<String, i64>>>,
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
        Self { report: Report { programs, dead_letters: BTreeMap::new() }, members: None }
    }

    /// Also keeps the points issued to each member, for [`compare`].
    pub fn with_members(mut self) -> Self {
        self.members = Some(hashbrown::HashMap::new());
        self
    }

    fn section(&mut self, program: &Program) -> Option<&mut ProgramReport> {
        self.report.programs.iter_mut().find(|r| r.program == program.id)
    }

    /// Completes the report with end-of-run state.
    pub fn finish(self, programs: &ProgramSet, store: &MemoryStore) -> Report {
        self.finish_with_members(programs, store).0
    }

    /// Completes the report, and hands over the points issued per member.
    pub fn finish_with_members(
        mut self,
        programs: &ProgramSet,
        store: &MemoryStore,
    ) -> (Report, hashbrown::HashMap<String, hashbrown::HashMap<String, i64>>) {
        for (program_id, _member, state) in store.iter() {
            let Some(program) = programs.iter().find(|p| p.id == program_id) else { continue };
            let Some(section) = self.report.programs.iter_mut().find(|r| r.program == program_id) else { continue };
            if state.events.is_empty() && state.purchases == 0 {
                continue;
            }
            section.members += 1;
            section.points_pending = section.points_pending.saturating_add(state.pending_points());
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
            let owed_to_members = section.points_outstanding.saturating_add(section.points_pending);
            section.liability = product(Decimal::from(owed_to_members), program.point_value);
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
        (self.report, self.members.unwrap_or_default())
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
                if let (Some(members), Some(member)) = (&mut self.members, event.member_id) {
                    let issued = members.entry_ref(program.id.as_str()).or_default().entry_ref(member).or_default();
                    *issued = issued.saturating_add(outcome.issued());
                }
                let tier_name = program.tiers[outcome.tier_before].name.clone();
                let Some(s) = self.section(program) else { return Ok(()) };
                s.birthday_bonuses += outcome.birthdays.len() as u64;
                for &(line, points) in &outcome.lines {
                    match line {
                        Line::Expired => {
                            let by_age = -points - outcome.expired_inactive;
                            s.points_expired = s.points_expired.saturating_sub(points);
                            s.points_expired_inactivity =
                                s.points_expired_inactivity.saturating_add(outcome.expired_inactive);
                            let cause = match program.expiry.mode {
                                ExpiryMode::EndOfPeriod { .. } => &mut s.points_expired_end_of_period,
                                ExpiryMode::Rolling { .. } | ExpiryMode::Never => &mut s.points_expired_rolling,
                            };
                            *cause = cause.saturating_add(by_age);
                        }
                        Line::Redeem => s.points_redeemed = s.points_redeemed.saturating_sub(points),
                        Line::Refund => s.points_refunded = s.points_refunded.saturating_sub(points),
                        Line::Adjust if points > 0 => {
                            s.points_adjusted_credit = s.points_adjusted_credit.saturating_add(points);
                        }
                        Line::Adjust => s.points_adjusted_debit = s.points_adjusted_debit.saturating_sub(points),
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
                    Kind::Profile => s.events.profiles += 1,
                    Kind::Adjust => s.events.adjustments += 1,
                }
            }
        }
        Ok(())
    }
}
