//! The data path for a batch of messages against a shared store: decode all
//! -> load their members in one round trip -> evaluate in order, in memory
//! -> write back in one round trip -> hand dispositions to the sink in input
//! order.
//!
//! Used with stores other scorers share (Redis). Two scorers may touch one
//! member at once (a consumer-group rebalance): every write is conditional
//! on the version the state was loaded at, and a member whose write lost the
//! race is loaded again and its events of the batch evaluated again, so no
//! update is lost and no event is credited twice. Nothing reaches the sink
//! before the batch's writes succeeded.

use std::collections::HashMap;
use std::io;

use crate::decode::{DecodeError, Decoder};
use crate::event::Event;
use crate::event::Micros;
use crate::outcome::{Outcome, RewardView};
use crate::output;
use crate::pipeline::{Disposition, Sink};
use crate::rules::ProgramSet;
use crate::rules::engine::{self, Settings};
use crate::state::codec::StoredEvent;
use crate::state::{BatchStore, Budgets, MemberKey, Reservation, Retention, StoreError, Sweep, Versioned, Write};

/// How often a batch re-evaluates members whose writes lost a race before
/// giving up (each round, another scorer made progress on those members).
const MAX_ROUNDS: usize = 16;

/// Why a batch failed. Nothing of it reached the sink; all of it can be
/// scored again (repeats are recognised).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("members kept changing under this batch for {MAX_ROUNDS} rounds")]
    Contended,
    #[error(transparent)]
    Sink(#[from] io::Error),
}

/// Budgets during a batch: a budgeted rule's award for an event is capped by
/// the grant already reserved for that event when there is one, else by the
/// budget alone; every award is noted, to be reserved before anything is
/// written (see docs/state.md, "Promotion budgets").
struct BatchBudgets<'b> {
    programs: &'b ProgramSet,
    grants: &'b HashMap<(usize, String), i64>,
    /// The message being evaluated.
    event: usize,
    /// (message, rule id, points awarded).
    charges: &'b mut Vec<(usize, String, i64)>,
}

impl Budgets for BatchBudgets<'_> {
    fn spent(&self, program: &str, rule: &str) -> i64 {
        let budget = self
            .programs
            .iter()
            .find(|p| p.id == program)
            .and_then(|p| p.rules.iter().find(|r| r.id == rule))
            .and_then(|r| r.budget_points)
            .unwrap_or(0);
        self.grants.get(&(self.event, rule.to_owned())).map_or(0, |grant| budget - grant)
    }

    fn charge(&mut self, _program: &str, rule: &str, points: i64) {
        self.charges.push((self.event, rule.to_owned(), points));
    }
}

/// What became of one message of the batch, before it is emitted.
enum Slot {
    Dead(DecodeError),
    Anonymous,
    /// Index into the batch's members.
    Member(usize),
}

/// Scores batches of messages against a [`BatchStore`], reusing its buffers
/// from batch to batch.
pub struct BatchScorer {
    programs: ProgramSet,
    settings: Settings,
    max_message_bytes: usize,
    /// One decoder, outcome and reward buffer per message of a batch.
    decoders: Vec<Decoder>,
    outcomes: Vec<Outcome>,
    rewards: Vec<Vec<u8>>,
    /// Whether a message's reward is a repeat (first outcome re-emitted).
    repeats: Vec<bool>,
    /// A repeat's `rules_version` (the first outcome's).
    versions: Vec<String>,
    /// Wall-clock seconds: records are stamped with it and expire a
    /// retention window after it, as keys with a TTL would.
    clock: Box<dyn Fn() -> u64 + Send>,
}

fn system_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for BatchScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchScorer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl BatchScorer {
    pub fn new(programs: ProgramSet, settings: Settings, max_message_bytes: usize) -> Result<Self, String> {
        Ok(Self {
            programs,
            settings,
            max_message_bytes,
            decoders: Vec::new(),
            outcomes: Vec::new(),
            rewards: Vec::new(),
            repeats: Vec::new(),
            versions: Vec::new(),
            clock: Box::new(system_seconds),
        })
    }

    /// Puts `programs` in force from the next batch on (a rules reload); the
    /// versions replaced stay known, to re-emit the outcomes scored under them.
    pub fn reload(&mut self, programs: ProgramSet) {
        self.programs = self.programs.reloaded(programs);
    }

    /// Puts `programs` in force as they are, with the history of earlier
    /// versions they carry (scorers that share one reloaded set).
    pub fn set_programs(&mut self, programs: ProgramSet) {
        self.programs = programs;
    }

    pub fn programs(&self) -> &ProgramSet {
        &self.programs
    }

    /// Reads wall-clock seconds from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Scores `batch` (position, message) and hands every disposition to
    /// `sink` in input order, once the store holds the batch's effects.
    pub async fn score_batch<S: BatchStore>(
        &mut self,
        store: &mut S,
        batch: &[(u64, &[u8])],
        sink: &mut (dyn Sink + Send),
    ) -> Result<(), BatchError> {
        while self.decoders.len() < batch.len() {
            self.decoders.push(Decoder::new(self.max_message_bytes));
            self.outcomes.push(Outcome::default());
            self.rewards.push(Vec::with_capacity(1024));
            self.repeats.push(false);
            self.versions.push(String::new());
        }
        // Split the borrows: events borrow the decoders while the rest is written.
        let now = (self.clock)();
        let Self { programs, settings, decoders, outcomes, rewards, repeats, versions, .. } = self;
        let mut grants: HashMap<(usize, String), i64> = HashMap::new();
        let mut charges: Vec<(usize, String, i64)> = Vec::new();
        let mut work = Work { programs, settings, outcomes, rewards, repeats, versions, now };
        let mut events: Vec<Option<Event<'_>>> = Vec::with_capacity(batch.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(batch.len());
        for (decoder, (_, message)) in decoders.iter_mut().zip(batch) {
            match decoder.decode(message, work.programs) {
                Ok(event) => {
                    events.push(Some(event));
                    slots.push(Slot::Anonymous);
                }
                Err(error) => {
                    events.push(None);
                    slots.push(Slot::Dead(error));
                }
            }
        }

        // The batch's members, in order of first appearance.
        let mut keys: Vec<MemberKey> = Vec::new();
        let mut index: HashMap<(usize, &str), usize> = HashMap::new();
        for (slot, event) in slots.iter_mut().zip(&events) {
            let Some(event) = event else { continue };
            let Some(member) = event.member_id else { continue };
            let next = keys.len();
            let k = *index.entry((event.program, member)).or_insert(next);
            if k == next {
                let program = work.programs.get(event.program).map_or("", |p| p.id.as_str());
                keys.push(MemberKey { program: program.to_owned(), member: member.to_owned() });
            }
            *slot = Slot::Member(k);
        }

        // The records each member's events need: their own (a repeat is
        // re-emitted from it) and the originals their refunds name.
        let mut wanted: Vec<Vec<&str>> = vec![Vec::new(); keys.len()];
        // Each member's messages, in input order.
        let mut messages: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (i, (slot, event)) in slots.iter().zip(&events).enumerate() {
            let (Slot::Member(k), Some(event)) = (slot, event) else { continue };
            messages[*k].push(i);
            wanted[*k].push(event.event_id);
            wanted[*k].extend(event.original_event_id);
        }
        for ids in &mut wanted {
            ids.sort_unstable();
            ids.dedup();
        }

        let budgeted = work.programs.iter().any(|p| p.rules.iter().any(|r| r.budget_points.is_some()));
        let retention = Retention::days(now, work.settings.retention_days);
        let mut states = store.load(&keys, &wanted).await?;
        // Records as loaded: a write carries only those that changed.
        let mut loaded_records: Vec<_> = states.iter().map(|s| s.state.events.clone()).collect();
        // Members evaluated again after a short grant start over from here.
        let mut loaded_states: Vec<Versioned> = if budgeted { states.clone() } else { Vec::new() };
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for _round in 0..MAX_ROUNDS {
            let loaded: Vec<u64> = states.iter().map(|s| s.version).collect();
            let mut changed: Vec<usize> = Vec::new();
            for &k in &pending {
                charges.retain(|(i, _, _)| !matches!(slots[*i], Slot::Member(m) if m == k));
                if work.evaluate_member(&messages[k], &events, &mut states[k], &grants, &mut charges) {
                    changed.push(k);
                }
            }
            if budgeted {
                Self::reserve_budgets(
                    store,
                    &mut work,
                    &slots,
                    &messages,
                    &events,
                    &mut states,
                    &loaded_states,
                    &mut grants,
                    &mut charges,
                )
                .await?;
            }
            let sweeps: Vec<Sweep> = changed
                .iter()
                .map(|&k| {
                    let sweep = retention.plan(states[k].state.records_swept);
                    states[k].state.records_swept = sweep.swept;
                    sweep
                })
                .collect();
            let records: Vec<Vec<(&str, &StoredEvent)>> = changed
                .iter()
                .map(|&k| {
                    let before = &loaded_records[k];
                    let after = &states[k].state.events;
                    after.iter().filter(|(id, r)| before.get(*id) != Some(*r)).map(|(id, r)| (&**id, r)).collect()
                })
                .collect();
            let writes: Vec<Write<'_>> = changed
                .iter()
                .zip(&records)
                .zip(&sweeps)
                .map(|((&k, records), sweep)| Write {
                    key: &keys[k],
                    expected: loaded[k],
                    state: &states[k].state,
                    ttl_ms: None,
                    records,
                    sweep_before: sweep.sweep_before,
                    records_ttl_ms: sweep.records_ttl_ms,
                })
                .collect();
            let written = store.apply(&writes).await?;
            let lost: Vec<usize> = changed.iter().zip(&written).filter(|(_, ok)| !**ok).map(|(&k, _)| k).collect();
            if lost.is_empty() {
                return work.emit(batch, &slots, &events, sink);
            }
            let reload: Vec<MemberKey> = lost.iter().map(|&k| keys[k].clone()).collect();
            let reload_records: Vec<Vec<&str>> = lost.iter().map(|&k| wanted[k].clone()).collect();
            for (&k, state) in lost.iter().zip(store.load(&reload, &reload_records).await?) {
                if budgeted {
                    loaded_states[k] = state.clone();
                }
                loaded_records[k] = state.state.events.clone();
                states[k] = state;
            }
            pending = lost;
        }
        Err(BatchError::Contended)
    }

    /// Reserves what the batch's evaluation awarded budgeted rules, for the
    /// events that have no grant yet; members with an event granted less
    /// are evaluated again from their loaded state with the grants as caps,
    /// until every award is covered by a grant (each event is reserved once,
    /// so this ends).
    #[expect(clippy::too_many_arguments, reason = "the batch's parts, borrowed apart")]
    async fn reserve_budgets<S: BatchStore>(
        store: &mut S,
        work: &mut Work<'_>,
        slots: &[Slot],
        messages: &[Vec<usize>],
        events: &[Option<Event<'_>>],
        states: &mut [Versioned],
        loaded: &[Versioned],
        grants: &mut HashMap<(usize, String), i64>,
        charges: &mut Vec<(usize, String, i64)>,
    ) -> Result<(), BatchError> {
        let ttl_ms = u64::try_from(work.settings.retention_days.saturating_add(1))
            .unwrap_or(u64::MAX / 2)
            .saturating_mul(86_400_000);
        loop {
            let mut asks: Vec<(usize, String, i64)> =
                charges.iter().filter(|(i, rule, _)| !grants.contains_key(&(*i, rule.clone()))).cloned().collect();
            // Charges come member by member; a budget that runs out must go
            // to the earlier events, as when events are scored one at a time.
            asks.sort_by_key(|(i, _, _)| *i);
            if asks.is_empty() {
                return Ok(());
            }
            let mut reservations = Vec::with_capacity(asks.len());
            for (i, rule, points) in &asks {
                let Some(event) = &events[*i] else { continue };
                let Some(program) = work.programs.get(event.program) else { continue };
                let budget = program.rules.iter().find(|r| r.id == *rule).and_then(|r| r.budget_points).unwrap_or(0);
                reservations.push(Reservation {
                    program: &program.id,
                    rule,
                    budget,
                    member: event.member_id.unwrap_or_default(),
                    event_id: event.event_id,
                    day: event.occurred_at.0.div_euclid(Micros::PER_DAY),
                    points: *points,
                    ttl_ms,
                });
            }
            let granted = store.reserve(&reservations).await?;
            let mut short: Vec<usize> = Vec::new();
            for ((i, rule, points), grant) in asks.into_iter().zip(granted) {
                if grant < points {
                    if let Slot::Member(k) = slots[i] {
                        short.push(k);
                    }
                }
                grants.insert((i, rule), grant);
            }
            short.sort_unstable();
            short.dedup();
            for k in short {
                states[k] = loaded[k].clone();
                charges.retain(|(i, _, _)| !matches!(slots[*i], Slot::Member(m) if m == k));
                work.evaluate_member(&messages[k], events, &mut states[k], grants, charges);
            }
        }
    }
}

/// The per-message buffers of a batch, borrowed apart from its decoders.
struct Work<'s> {
    programs: &'s ProgramSet,
    settings: &'s Settings,
    outcomes: &'s mut [Outcome],
    rewards: &'s mut [Vec<u8>],
    repeats: &'s mut [bool],
    versions: &'s mut [String],
    /// Wall-clock seconds of this batch.
    now: u64,
}

impl Work<'_> {
    /// Evaluates the member's `messages` (indices into the batch, in input order) against `state`
    /// (as loaded), rendering each one's reward into its slot. Whether any
    /// event was new (the state must be written).
    fn evaluate_member(
        &mut self,
        messages: &[usize],
        events: &[Option<Event<'_>>],
        state: &mut Versioned,
        grants: &HashMap<(usize, String), i64>,
        charges: &mut Vec<(usize, String, i64)>,
    ) -> bool {
        let mut changed = false;
        for &i in messages {
            let Some(event) = &events[i] else { continue };
            let Some(program) = self.programs.get(event.program) else { continue };
            let member_id = event.member_id.unwrap_or_default();
            let reward = &mut self.rewards[i];
            reward.clear();
            if let Some(stored) = state.state.events.get(event.event_id) {
                // A record this scorer cannot read is a broken store; the
                // batch fails at emission (the reward stays empty).
                if let Ok(record) = stored.decode() {
                    let scored_under =
                        self.programs.version(&program.id, &record.reward.rules_version).unwrap_or(program);
                    output::write_reward(reward, scored_under, event.event_id, member_id, &record.reward.view());
                    self.versions[i].clear();
                    self.versions[i].push_str(&record.reward.rules_version);
                }
                self.repeats[i] = true;
                continue;
            }
            changed = true;
            self.repeats[i] = false;
            let outcome = &mut self.outcomes[i];
            let mut budgets = BatchBudgets { programs: self.programs, grants, event: i, charges };
            engine::apply(program, self.settings, &mut state.state, &mut budgets, event, outcome);
            let view = RewardView::new(program, event, outcome);
            output::write_reward(reward, program, event.event_id, member_id, &view);
            let stored = StoredEvent::encode(event.occurred_at, &view, outcome.purchase.as_ref()).stamped(self.now);
            state.state.events.insert(event.event_id.into(), stored);
        }
        changed
    }

    fn emit(
        &self,
        batch: &[(u64, &[u8])],
        slots: &[Slot],
        events: &[Option<Event<'_>>],
        sink: &mut dyn Sink,
    ) -> Result<(), BatchError> {
        for (i, ((position, message), slot)) in batch.iter().zip(slots).enumerate() {
            let event = events[i].as_ref();
            let program = event.and_then(|e| self.programs.get(e.program));
            let disposition = match (slot, program, event) {
                (Slot::Dead(error), _, _) => Disposition::Dead(error.clone()),
                (Slot::Anonymous, Some(program), _) => Disposition::Anonymous { program },
                (Slot::Member(_), Some(program), Some(event)) => {
                    if self.rewards[i].is_empty() {
                        return Err(StoreError::Corrupt(format!(
                            "the record of event {:?} of member {:?} does not decode",
                            event.event_id,
                            event.member_id.unwrap_or_default()
                        ))
                        .into());
                    }
                    if self.repeats[i] {
                        Disposition::Repeat {
                            program,
                            event,
                            rules_version: &self.versions[i],
                            reward: &self.rewards[i],
                        }
                    } else {
                        Disposition::Scored { program, event, outcome: &self.outcomes[i], reward: &self.rewards[i] }
                    }
                }
                _ => return Err(io::Error::other("a decoded event lost its program").into()),
            };
            sink.accept(*position, message, disposition)?;
        }
        Ok(())
    }
}
