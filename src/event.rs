//! The decoded input event: a view over the message bytes, never a copy of them.
//!
//! An [`Event`] borrows its strings from the decoder's reused buffer (simd-json
//! unescapes strings in place), so decoding allocates nothing per field. It is
//! valid by construction: every check of the contract's section 5 has passed
//! before one exists, so the engine never re-validates.

use rust_decimal::Decimal;

/// What happened at the till.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Purchase,
    Refund,
    Redeem,
    /// Member data from the CRM: an optional birth date.
    Profile,
    /// A manual correction of the balance by customer service.
    Adjust,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Refund => "refund",
            Kind::Redeem => "redeem",
            Kind::Profile => "profile",
            Kind::Adjust => "adjust",
        }
    }
}

/// An instant, in microseconds since the Unix epoch (UTC). The contract
/// compares timestamps to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    pub const PER_SECOND: i64 = 1_000_000;
    pub const PER_DAY: i64 = 86_400 * Self::PER_SECOND;

    /// `days` x 24 h later (exact time, not calendar days).
    pub const fn plus_days(self, days: i64) -> Micros {
        Micros(self.0.saturating_add(days.saturating_mul(Self::PER_DAY)))
    }
}

/// A calendar date (a real one: validated when decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Date {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
}

/// One basket line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item<'a> {
    pub sku: Option<&'a str>,
    pub category: Option<&'a str>,
    /// 1..=1,000,000; 1 when absent.
    pub quantity: u32,
    /// The line's paid amount: 0..=10^12, at most 4 decimal places.
    pub amount: Decimal,
}

/// A valid event of a configured program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    pub event_id: &'a str,
    pub kind: Kind,
    /// `None`: an anonymous sale (counted, never scored).
    pub member_id: Option<&'a str>,
    /// Index of the program in the [`crate::rules::ProgramSet`].
    pub program: usize,
    pub merchant_id: Option<&'a str>,
    pub store_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub occurred_at: Micros,
    /// `occurred_at` as written (after JSON unescaping): echoed in the reward event.
    pub occurred_at_raw: &'a str,
    /// Purchase and refund: the amount paid or refunded. Zero for redeem.
    pub total: Decimal,
    /// Purchase only (a refund reverses by `total`); empty when absent.
    pub items: &'a [Item<'a>],
    /// Refund only.
    pub original_event_id: Option<&'a str>,
    /// Redeem: 1..=10^9. Adjust: non-zero, -10^9..=10^9.
    pub points: i64,
    /// Profile only: the member's birth date, when given.
    pub birth_date: Option<Date>,
    /// Adjust only: why (at most 64 bytes).
    pub reason: Option<&'a str>,
}
