//! The program model: a rules file after validation, immutable.
//!
//! Everything here has been checked once by [`crate::rules::load`]; the
//! engine relies on it (tiers ordered with a first threshold of 0, rule ids
//! unique, filters well formed) and never re-checks.

use std::sync::Arc;

use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::event::Micros;

/// Rounding of every points computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Floor,
    HalfUp,
    HalfEven,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub threshold: Decimal,
    /// >= 1; applies to base points.
    pub multiplier: Decimal,
    /// Informative only: reported, never applied.
    pub discount_percent: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Lifetime,
    /// Spend of the event's local month and the `window_months - 1` before it.
    Rolling {
        window_months: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    Never,
    Immediate,
    /// A lower computed tier replaces the held one only after `grace_days`
    /// x 24 h below it.
    Grace {
        grace_days: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qualification {
    pub basis: Basis,
    pub downgrade: Downgrade,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Partner {
    pub merchant_id: String,
    pub points_per_unit: Decimal,
}

/// How a stamp card counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampCount {
    /// One stamp per matching purchase.
    Purchases,
    /// One stamp per unit bought in the card's categories.
    Items,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    CategoryMultiplier {
        categories: Vec<String>,
        multiplier: Decimal,
    },
    BasketThreshold {
        min_spend: Decimal,
        bonus_points: i64,
        gift: Option<String>,
    },
    StampCard {
        /// `None`: the card matches every purchase.
        categories: Option<Vec<String>>,
        count: StampCount,
        stamps_required: u32,
        bonus_points: i64,
        gift: Option<String>,
    },
    FirstPurchase {
        bonus_points: i64,
    },
    Milestone {
        /// Strictly increasing, >= 1.
        thresholds: Vec<i64>,
        gift: Option<String>,
    },
    /// A bonus on the first purchase in the birthday window, once a year.
    Birthday {
        bonus_points: i64,
        /// 1..=31: the birthday and the days after it.
        window_days: u32,
        gift: Option<String>,
    },
}

impl RuleKind {
    pub const fn name(&self) -> &'static str {
        match self {
            RuleKind::CategoryMultiplier { .. } => "category_multiplier",
            RuleKind::BasketThreshold { .. } => "basket_threshold",
            RuleKind::StampCard { .. } => "stamp_card",
            RuleKind::FirstPurchase { .. } => "first_purchase",
            RuleKind::Milestone { .. } => "milestone",
            RuleKind::Birthday { .. } => "birthday",
        }
    }
}

/// Conditions that must all hold for a bonus rule to apply. `None` means
/// "no condition"; lists are never empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// `occurred_at` in [valid_from, valid_to).
    pub valid_from: Option<Micros>,
    pub valid_to: Option<Micros>,
    /// Bit `n` set: local weekday `n` allowed (0 = Monday .. 6 = Sunday).
    pub days: Option<u8>,
    /// Local minutes since midnight, [start, end), start < end <= 1440.
    pub hours: Option<(u16, u16)>,
    pub stores: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub merchants: Option<Vec<String>>,
    /// Indexes into `Program::tiers` (the member's tier before the event).
    pub tiers: Option<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    pub filters: Filters,
    /// Points this rule may award across all members, in total.
    pub budget_points: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub max_points_per_event: Option<i64>,
    /// Per local calendar day, points earned by purchases.
    pub max_points_per_member_per_day: Option<i64>,
}

/// Local calendar periods of `end_of_period` expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month,
    Quarter,
    Year,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpiryMode {
    /// Points never expire by age.
    #[default]
    Never,
    /// Points older than `ttl_days` x 24 h expire.
    Rolling { ttl_days: i64 },
    /// Points earned in a local period expire when the period `periods`
    /// after it ends (0: at the end of the same period).
    EndOfPeriod { period: Period, periods: u32 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expiry {
    pub mode: ExpiryMode,
    /// Every lot expires once the member has been inactive this many days x 24 h.
    pub inactivity_days: Option<i64>,
}

/// One loyalty program: a validated rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub id: String,
    /// ISO 4217 code (three upper-case letters).
    pub currency: String,
    pub timezone: Tz,
    pub points_per_unit: Decimal,
    pub rounding: Rounding,
    pub excluded_categories: Vec<String>,
    pub point_value: Decimal,
    /// At least one; thresholds strictly increasing from 0.
    pub tiers: Vec<Tier>,
    pub qualification: Qualification,
    pub partners: Vec<Partner>,
    pub rules: Vec<Rule>,
    pub caps: Caps,
    pub expiry: Expiry,
    /// Points earned by a purchase are pending for this many days x 24 h.
    pub pending_days: Option<i64>,
    /// Hex digest of the rules file's bytes: `rules_version` in reward events.
    pub version: String,
}

impl Program {
    /// The earn rate for a merchant: its partner rate, else the program's.
    pub fn earn_rate(&self, merchant_id: Option<&str>) -> Decimal {
        merchant_id
            .and_then(|m| self.partners.iter().find(|p| p.merchant_id == m))
            .map_or(self.points_per_unit, |p| p.points_per_unit)
    }

    pub fn is_excluded(&self, category: Option<&str>) -> bool {
        category.is_some_and(|c| self.excluded_categories.iter().any(|e| e == c))
    }
}

/// The programs a scorer serves; the first is the default for events that
/// name none.
#[derive(Debug, Clone)]
pub struct ProgramSet {
    programs: Vec<Arc<Program>>,
    /// Programs replaced by a reload, newest first: repeats of events scored
    /// under them are rendered with them, byte for byte.
    previous: Vec<Arc<Program>>,
}

/// How many replaced versions a set keeps for re-emitting old outcomes.
const PREVIOUS_VERSIONS: usize = 16;

impl ProgramSet {
    /// `None` when `programs` is empty or two programs share an id.
    pub fn new(programs: Vec<Arc<Program>>) -> Option<Self> {
        if programs.is_empty() {
            return None;
        }
        for (i, p) in programs.iter().enumerate() {
            if programs[..i].iter().any(|q| q.id == p.id) {
                return None;
            }
        }
        Some(Self { programs, previous: Vec::new() })
    }

    /// `programs` in force, keeping the versions this set served (and those
    /// it kept) to re-emit the outcomes scored under them.
    pub fn reloaded(&self, programs: ProgramSet) -> ProgramSet {
        let mut previous: Vec<Arc<Program>> = Vec::new();
        for p in self.programs.iter().chain(&self.previous) {
            let current = programs.programs.iter().any(|q| q.id == p.id && q.version == p.version);
            let known = previous.iter().any(|q| q.id == p.id && q.version == p.version);
            if !current && !known && previous.len() < PREVIOUS_VERSIONS {
                previous.push(p.clone());
            }
        }
        ProgramSet { programs: programs.programs, previous }
    }

    /// Index of the program an event names, or of the default when it names none.
    pub fn resolve(&self, id: Option<&str>) -> Option<usize> {
        match id {
            None => Some(0),
            Some(id) => self.programs.iter().position(|p| p.id == id),
        }
    }

    pub fn get(&self, index: usize) -> Option<&Arc<Program>> {
        self.programs.get(index)
    }

    /// The program `id` at `rules_version`, if this set serves it.
    pub fn version(&self, id: &str, rules_version: &str) -> Option<&Program> {
        self.programs
            .iter()
            .chain(&self.previous)
            .find(|p| p.id == id && p.version == rules_version)
            .map(|p| p.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Program>> {
        self.programs.iter()
    }

    pub fn len(&self) -> usize {
        self.programs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }
}
