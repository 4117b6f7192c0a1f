//! What one event did: the engine's [`Outcome`] (scratch, reused from event
//! to event), the [`RewardView`] a reward event is rendered from, and the
//! [`RewardRecord`] kept to re-emit it exactly on a repeated `event_id`.
//!
//! Views and records name rules and tiers by their index in the program
//! whose `rules_version` they carry; `output::write_reward` renders a view,
//! whether it comes from a new outcome or from a record, so a first emission
//! and its repeats cannot differ.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Kind};
use crate::rules::Program;
use crate::state::PurchaseRecord;

/// One line of the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Line {
    Expired,
    Base,
    /// The tier bonus of `Program::tiers[i]`.
    Tier(usize),
    /// The bonus rule `Program::rules[i]`.
    Rule(usize),
    Redeem,
    Refund,
    /// A manual adjustment.
    Adjust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Status {
    #[default]
    Scored,
    /// A redeem the balance does not cover.
    Rejected,
}

/// A stamp card this event touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampTouch {
    /// Index of the stamp card rule.
    pub rule: usize,
    /// Stamps on the card after the event.
    pub stamps: u32,
    /// Cards completed by this event.
    pub completed: u32,
}

/// What one event did: the content of its reward event, and the figures
/// reports aggregate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// A refund whose original purchase is not known.
    pub original_unknown: bool,
    /// Breakdown in evaluation order; lines with 0 points are kept here and
    /// left out of the reward event.
    pub lines: Vec<(Line, i64)>,
    /// Gifts unlocked, as indexes of the rules that award them, in order.
    pub gifts: Vec<usize>,
    pub stamps: Vec<StampTouch>,
    pub tier_before: usize,
    pub tier_after: usize,
    pub qualifying_spend: Decimal,
    /// Net change of `balance + pending`: the sum of `lines`.
    pub points: i64,
    pub balance: i64,
    /// Pending points after the event.
    pub pending: i64,
    /// Points expired because the member was inactive (part of `expired`).
    pub expired_inactive: i64,
    /// Birthday bonuses awarded (rule indexes).
    pub birthdays: Vec<usize>,
    /// Purchase: its eligible spend. Refund: the qualifying spend it removed.
    pub spend: Decimal,
    /// Set for a scored purchase: what its refunds will need.
    pub purchase: Option<PurchaseRecord>,
}

impl Outcome {
    pub(crate) fn clear(&mut self) {
        self.status = Status::Scored;
        self.original_unknown = false;
        self.lines.clear();
        self.gifts.clear();
        self.stamps.clear();
        self.birthdays.clear();
        self.spend = Decimal::ZERO;
        self.expired_inactive = 0;
        self.purchase = None;
    }

    /// Points issued by earning lines (base, tier bonus, bonus rules).
    pub fn issued(&self) -> i64 {
        self.lines
            .iter()
            .filter(|(l, _)| matches!(l, Line::Base | Line::Tier(_) | Line::Rule(_)))
            .fold(0i64, |sum, (_, p)| sum.saturating_add(*p))
    }
}

/// The content of a reward event, borrowed: every field but those the event
/// is filed under (`event_id`, `member_id`, `program`). Built from a new
/// outcome or from a stored [`RewardRecord`]; the reward event is rendered
/// from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardView<'a> {
    pub kind: Kind,
    pub status: Status,
    pub original_unknown: bool,
    /// `occurred_at` as written.
    pub occurred_at: &'a str,
    pub merchant_id: Option<&'a str>,
    pub points: i64,
    pub balance: i64,
    /// Present when the program has pending points.
    pub pending: Option<i64>,
    pub lines: &'a [(Line, i64)],
    pub tier_before: usize,
    pub tier_after: usize,
    pub qualifying_spend: Decimal,
    pub stamps: &'a [StampTouch],
    /// Rules whose gift the event unlocked, in order.
    pub gifts: &'a [usize],
    /// The `rules_version` of the program the indexes refer to.
    pub rules_version: &'a str,
}

impl<'a> RewardView<'a> {
    pub fn new(program: &'a Program, event: &Event<'a>, outcome: &'a Outcome) -> Self {
        Self {
            kind: event.kind,
            status: outcome.status,
            original_unknown: outcome.original_unknown,
            occurred_at: event.occurred_at_raw,
            merchant_id: event.merchant_id,
            points: outcome.points,
            balance: outcome.balance,
            pending: program.pending_days.map(|_| outcome.pending),
            lines: &outcome.lines,
            tier_before: outcome.tier_before,
            tier_after: outcome.tier_after,
            qualifying_spend: outcome.qualifying_spend,
            stamps: &outcome.stamps,
            gifts: &outcome.gifts,
            rules_version: &program.version,
        }
    }
}

/// A [`RewardView`], owned: kept to re-emit the reward event of a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRecord {
    pub kind: Kind,
    pub status: Status,
    pub original_unknown: bool,
    pub occurred_at: Box<str>,
    pub merchant_id: Option<Box<str>>,
    pub points: i64,
    pub balance: i64,
    pub pending: Option<i64>,
    pub lines: Box<[(Line, i64)]>,
    pub tier_before: usize,
    pub tier_after: usize,
    pub qualifying_spend: Decimal,
    pub stamps: Box<[StampTouch]>,
    pub gifts: Box<[usize]>,
    pub rules_version: Box<str>,
}

impl RewardRecord {
    pub fn view(&self) -> RewardView<'_> {
        RewardView {
            kind: self.kind,
            status: self.status,
            original_unknown: self.original_unknown,
            occurred_at: &self.occurred_at,
            merchant_id: self.merchant_id.as_deref(),
            points: self.points,
            balance: self.balance,
            pending: self.pending,
            lines: &self.lines,
            tier_before: self.tier_before,
            tier_after: self.tier_after,
            qualifying_spend: self.qualifying_spend,
            stamps: &self.stamps,
            gifts: &self.gifts,
            rules_version: &self.rules_version,
        }
    }
}

impl From<RewardView<'_>> for RewardRecord {
    fn from(v: RewardView<'_>) -> Self {
        Self {
            kind: v.kind,
            status: v.status,
            original_unknown: v.original_unknown,
            occurred_at: v.occurred_at.into(),
            merchant_id: v.merchant_id.map(Into::into),
            points: v.points,
            balance: v.balance,
            pending: v.pending,
            lines: v.lines.into(),
            tier_before: v.tier_before,
            tier_after: v.tier_after,
            qualifying_spend: v.qualifying_spend,
            stamps: v.stamps.into(),
            gifts: v.gifts.into(),
            rules_version: v.rules_version.into(),
        }
    }
}
