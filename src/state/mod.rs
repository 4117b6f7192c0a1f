//! Member state: what the engine knows about one member of one program, and
//! the [`StateStore`] that keeps it between events.
//!
//! The engine mutates a [`MemberState`] in place; a store only loads and saves
//! whole states, so the embedded store ([`memory`]) and a remote one see the
//! same data. Invariants the engine keeps: `lots` and `pending` are ordered
//! by `earned_at` (ties in insertion order), every lot holds a positive number
//! of points, and `debt > 0` only when no available lot is left to pay it from.

pub mod codec;
mod lots;
pub mod memory;
pub mod redis;

use std::collections::VecDeque;

use hashbrown::HashMap;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::Micros;
use crate::outcome::RewardRecord;
use crate::state::codec::StoredEvent;

/// Points earned at one time, spent oldest first and expired together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub earned_at: Micros,
    /// Local month the lot was earned in (`year * 12 + month0`), for
    /// end-of-period expiry.
    pub month: i32,
    /// When a pending lot becomes available (`earned_at` for the others).
    pub release_at: Micros,
    pub points: i64,
}

/// What a refund needs to know of the purchase it reverses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRecord {
    pub total: Decimal,
    /// Points the purchase earned (its breakdown without `expired`).
    pub points: i64,
    pub eligible: Decimal,
    /// Local month of the purchase (rolling tier qualification).
    pub month: i32,
    pub refunded: Decimal,
    pub points_reversed: i64,
    pub spend_reversed: Decimal,
}

/// The first outcome of one event: re-emitted unchanged on every repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub occurred_at: Micros,
    /// Wall-clock second the record was first written; 0 when not stamped.
    pub written_at: u64,
    /// What the reward event is made of, as first emitted.
    pub reward: RewardRecord,
    /// Present for scored purchases.
    pub purchase: Option<PurchaseRecord>,
}

/// Everything the engine keeps about one member of one program.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    /// Name of the tier held (the lowest tier when empty).
    pub tier: String,
    #[serde(with = "codec::serde_decimal")]
    pub lifetime_spend: Decimal,
    /// Qualifying spend by local month (`year * 12 + month0`), ascending.
    #[serde(with = "codec::serde_monthly")]
    pub monthly_spend: Vec<(i32, Decimal)>,
    /// Available points. A deque: expiry drains the oldest lots from the
    /// front, where a vector would shift all the others.
    #[serde(with = "codec::serde_lots")]
    pub lots: VecDeque<Lot>,
    /// Points earned by purchases that wait for the return window to close.
    #[serde(with = "codec::serde_lots")]
    pub pending: VecDeque<Lot>,
    /// The points of `lots` and of `pending`, kept by every change to them
    /// (the only writers are in `lots.rs`) so the balance costs nothing for a
    /// member holding hundreds of lots.
    pub held: (i64, i64),
    pub debt: i64,
    /// Latest `occurred_at` of a scored purchase or accepted redemption.
    pub last_activity: Option<Micros>,
    /// Since when a lower computed tier has been held off by the grace period.
    pub grace_since: Option<Micros>,
    /// Month and day of the member's birthday.
    pub birthday: Option<(u8, u8)>,
    /// Birthday years already rewarded, by birthday rule id.
    pub birthdays_used: Vec<(String, i32)>,
    /// Points earned by purchases, after caps; never reduced.
    pub lifetime_earned: i64,
    pub purchases: u64,
    /// Points earned by purchases per local day, recent days only.
    pub daily_earned: Vec<(i32, i64)>,
    /// Stamps carried over, by stamp card rule id.
    pub stamps: Vec<(String, u32)>,
    /// Wall-clock second before which a shared store has removed this
    /// member's event records (the horizon of the last sweep); 0 before its
    /// first record. See [`Retention`].
    pub records_swept: u64,
    /// Outcomes by `event_id`, within the retention window, encoded. The
    /// embedded store keeps all of them here; a batch store loads only those
    /// its batch asks for and writes them apart from the rest of the state.
    #[serde(skip)]
    pub events: HashMap<Box<str>, StoredEvent>,
}

impl MemberState {
    /// A copy of everything but the event records.
    pub fn without_records(&self) -> MemberState {
        // Destructured so that a new field is a compile error here, not a
        // field silently left out of the copy.
        let MemberState {
            tier,
            lifetime_spend,
            monthly_spend,
            lots,
            pending,
            held,
            debt,
            last_activity,
            grace_since,
            birthday,
            birthdays_used,
            lifetime_earned,
            purchases,
            daily_earned,
            stamps,
            records_swept,
            events: _,
        } = self;
        MemberState {
            tier: tier.clone(),
            lifetime_spend: *lifetime_spend,
            monthly_spend: monthly_spend.clone(),
            lots: lots.clone(),
            pending: pending.clone(),
            held: *held,
            debt: *debt,
            last_activity: *last_activity,
            grace_since: *grace_since,
            birthday: *birthday,
            birthdays_used: birthdays_used.clone(),
            lifetime_earned: *lifetime_earned,
            purchases: *purchases,
            daily_earned: daily_earned.clone(),
            stamps: stamps.clone(),
            records_swept: *records_swept,
            events: HashMap::new(),
        }
    }
}

/// One member of one program: what a store files a state under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    pub program: String,
    pub member: String,
}

/// A member's state as loaded, with the version it was stored at (0: the
/// member is new, nothing is stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versioned {
    pub version: u64,
    pub state: MemberState,
}

/// One state to write: only if the stored version is still `expected`,
/// which makes the write `expected + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub key: &'a MemberKey,
    pub expected: u64,
    /// The state; its `events` are not written (see `records`).
    pub state: &'a MemberState,
    /// Let the store drop the state after this long without a write.
    pub ttl_ms: Option<u64>,
    /// The event records that are new or changed, written with the state
    /// (in the same atomic step); the others stay as stored.
    pub records: &'a [(&'a str, &'a StoredEvent)],
    /// Remove the member's records written before this wall-clock second.
    pub sweep_before: Option<u64>,
    /// Let the store drop all of the member's records this long after this
    /// write, unless a later write says so again.
    pub records_ttl_ms: Option<u64>,
}

/// How long a store keeps event records: at least `window_s` seconds of
/// wall-clock time after each was written, and at most two sweep periods
/// ([`Retention::sweep_s`]) longer.
///
/// Records are swept per member, by a write that comes at least a sweep
/// period after the member's last sweep ([`MemberState::records_swept`]):
/// a member's records are read in full at most once per period instead of
/// on every write. The same writes (and a member's first) set the records'
/// time to live to the window plus two periods, so a member with no write
/// for that long has only expired records, and a store may drop them all at
/// once (Redis: the records hash's TTL). A record written between two sweeps
/// is younger than the last sweep plus a period; the TTL set at that sweep
/// outlasts it by the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Wall-clock seconds of the write (and the written-at of its new records).
    pub now_s: u64,
    pub window_s: u64,
}

/// What one write does to the member's stored records, from [`Retention::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// The member's `records_swept` after the write.
    pub swept: u64,
    pub sweep_before: Option<u64>,
    pub records_ttl_ms: Option<u64>,
}

impl Retention {
    /// From the engine's retention window in days.
    pub fn days(now_s: u64, days: i64) -> Retention {
        Retention { now_s, window_s: u64::try_from(days).unwrap_or(0).saturating_mul(86_400) }
    }

    /// Records written before this second have expired.
    pub fn horizon_s(&self) -> u64 {
        self.now_s.saturating_sub(self.window_s)
    }

    /// An eighth of the window, at least an hour (90 days: 11 days and 6 hours).
    pub fn sweep_s(&self) -> u64 {
        (self.window_s / 8).max(3600)
    }

    /// The records' time to live, set by a member's first write and its sweeps.
    pub fn records_ttl_ms(&self) -> u64 {
        self.window_s.saturating_add(2 * self.sweep_s()).saturating_mul(1000)
    }

    /// What a write of new records does, for a member last swept at `swept`.
    pub fn plan(&self, swept: u64) -> Sweep {
        let horizon = self.horizon_s().max(1);
        if swept == 0 {
            // The member's first records: nothing older to remove.
            Sweep { swept: horizon, sweep_before: None, records_ttl_ms: Some(self.records_ttl_ms()) }
        } else if horizon >= swept.saturating_add(self.sweep_s()) {
            Sweep { swept: horizon, sweep_before: Some(horizon), records_ttl_ms: Some(self.records_ttl_ms()) }
        } else {
            Sweep { swept, sweep_before: None, records_ttl_ms: None }
        }
    }
}

/// Why a store could not serve a batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or answered with a transient error:
    /// retry the batch later, nothing was applied that a retry would repeat.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The store holds something this version cannot read, or answered
    /// something impossible: a broken invariant.
    #[error("state store corrupt: {0}")]
    Corrupt(String),
    /// The store's address, credentials or key prefix are wrong: waiting
    /// will not help, the operator must fix the configuration.
    #[error("state store misconfigured: {0}")]
    Config(String),
}

/// What the caller does about a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Retry the batch later, with backoff.
    Retry,
    /// Stop with a clear message.
    Fatal,
}

impl StoreError {
    pub fn disposition(&self) -> Disposition {
        match self {
            StoreError::Unavailable(_) => Disposition::Retry,
            StoreError::Corrupt(_) | StoreError::Config(_) => Disposition::Fatal,
        }
    }
}

/// Budget points asked for one event's award of one budgeted rule.
#[derive(Debug, Clone, Copy)]
pub struct Reservation<'a> {
    pub program: &'a str,
    pub rule: &'a str,
    /// The rule's `budget_points`.
    pub budget: i64,
    /// Who and what the points are for: a reservation is granted once per
    /// (program, rule, member, event); asking again returns the first grant.
    pub member: &'a str,
    pub event_id: &'a str,
    /// The event's day (UTC, days since 1970-01-01): grants are filed by
    /// day so that each day's file expires on its own.
    pub day: i64,
    /// Points the evaluation awarded the rule for this event.
    pub points: i64,
    /// Keep the grant at least this long (the retention window), so a
    /// replay within it is charged once.
    pub ttl_ms: u64,
}

impl Reservation<'_> {
    /// The grant's identity within its rule: unambiguous whatever the ids hold.
    pub fn grant_id(&self) -> String {
        format!("{}:{}:{}", self.member.len(), self.member, self.event_id)
    }
}

/// A store that serves whole batches: one round trip to load the members of
/// a batch, one to write them back (per cluster node), with optimistic
/// concurrency so two scorers touching one member never lose an update.
pub trait BatchStore {
    /// The states of `keys`, in order; new members come back empty at version 0.
    /// Of each member's event records, only those named in `records[i]`
    /// (the batch's own events and the originals its refunds name) are
    /// loaded, when stored; `records` may be shorter than `keys`.
    fn load(
        &mut self,
        keys: &[MemberKey],
        records: &[Vec<&str>],
    ) -> impl Future<Output = Result<Vec<Versioned>, StoreError>>;

    /// Writes each state whose stored version still equals its `expected`;
    /// `true` where written, `false` where another writer came first (the
    /// caller reloads that member and evaluates its events again).
    fn apply(&mut self, writes: &[Write<'_>]) -> impl Future<Output = Result<Vec<bool>, StoreError>>;

    /// Reserves budget points, one grant per reservation: at most what is
    /// left of the budget, charged to it at once, and the same grant again
    /// (charging nothing) when the same event asks again.
    fn reserve(&mut self, reservations: &[Reservation<'_>]) -> impl Future<Output = Result<Vec<i64>, StoreError>>;
}

/// Promotion budgets: one counter per budgeted rule, shared by all members.
pub trait Budgets {
    /// Points the rule has awarded so far.
    fn spent(&self, program: &str, rule: &str) -> i64;
    fn charge(&mut self, program: &str, rule: &str, points: i64);
}

/// Where member state lives between events.
pub trait StateStore {
    /// The state of a member, created empty on first sight, and the
    /// program-wide budgets the engine charges while it changes it.
    fn member(&mut self, program: &str, member_id: &str) -> (&mut MemberState, &mut dyn Budgets);

    /// Drops the event records of each member that are more than
    /// `retention_days` older than that member's newest record: each member's
    /// history keeps its own clock, so one member's late or far-future events
    /// never shorten another's.
    fn prune(&mut self, retention_days: i64);
}
