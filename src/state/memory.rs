//! The embedded state store: member states in a hash map, for `score`,
//! `simulate`, `demo` and tests. Nothing survives the process.

use hashbrown::HashMap;

use crate::event::Micros;
use crate::state::{
    BatchStore, Budgets, MemberKey, MemberState, Reservation, StateStore, StoreError, Versioned, Write,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Versions of the states written through [`BatchStore`].
    versions: HashMap<(String, String), u64>,
    /// program id -> member id -> state.
    members: HashMap<String, HashMap<String, MemberState>>,
    budgets: BudgetLedger,
    /// Grants of [`BatchStore::reserve`]: (program, rule, grant id) -> points.
    grants: HashMap<(String, String, String), i64>,
}

/// Points awarded per budgeted rule: (program id, rule id) -> points.
#[derive(Debug, Default)]
pub struct BudgetLedger(HashMap<(String, String), i64>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// All members of all programs, for reports.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &MemberState)> {
        self.members.iter().flat_map(|(p, m)| m.iter().map(move |(id, s)| (p.as_str(), id.as_str(), s)))
    }

    pub fn budgets(&self) -> impl Iterator<Item = (&str, &str, i64)> {
        self.budgets.0.iter().map(|((p, r), v)| (p.as_str(), r.as_str(), *v))
    }
}

impl Budgets for BudgetLedger {
    fn spent(&self, program: &str, rule: &str) -> i64 {
        // Budgets are few; a linear scan avoids allocating a key per lookup.
        self.0.iter().find(|((p, r), _)| p == program && r == rule).map_or(0, |(_, v)| *v)
    }

    fn charge(&mut self, program: &str, rule: &str, points: i64) {
        if let Some((_, v)) = self.0.iter_mut().find(|((p, r), _)| p == program && r == rule) {
            *v += points;
        } else {
            self.0.insert((program.to_owned(), rule.to_owned()), points);
        }
    }
}

impl StateStore for MemoryStore {
    fn member(&mut self, program: &str, member_id: &str) -> (&mut MemberState, &mut dyn Budgets) {
        // `entry_ref` copies the key only when the member is new.
        let state = self.members.entry_ref(program).or_default().entry_ref(member_id).or_default();
        (state, &mut self.budgets)
    }

    fn prune(&mut self, retention_days: i64) {
        for members in self.members.values_mut() {
            for state in members.values_mut() {
                // A record this store wrote always decodes; one that does not
                // is kept rather than silently dropped.
                let at = |r: &crate::state::codec::StoredEvent| r.occurred_at().unwrap_or(Micros(i64::MAX));
                let Some(newest) = state.events.values().map(at).max() else { continue };
                let horizon = Micros(newest.0.saturating_sub(retention_days.saturating_mul(Micros::PER_DAY)));
                state.events.retain(|_, r| at(r) >= horizon);
            }
        }
    }
}

/// The embedded store also serves batches, with the same versioned writes
/// as a shared store: the batch path is tested without a server.
impl BatchStore for MemoryStore {
    async fn load(&mut self, keys: &[MemberKey], records: &[Vec<&str>]) -> Result<Vec<Versioned>, StoreError> {
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let version = self.versions.get(&(k.program.clone(), k.member.clone())).copied().unwrap_or(0);
                let Some(stored) = self.members.get(&k.program).and_then(|m| m.get(&k.member)) else {
                    return Versioned { version, state: MemberState::default() };
                };
                let mut state = stored.without_records();
                for &id in records.get(i).map_or(&[][..], Vec::as_slice) {
                    if let Some(record) = stored.events.get(id) {
                        state.events.insert(id.into(), record.clone());
                    }
                }
                Versioned { version, state }
            })
            .collect())
    }

    async fn apply(&mut self, writes: &[Write<'_>]) -> Result<Vec<bool>, StoreError> {
        Ok(writes
            .iter()
            .map(|w| {
                let id = (w.key.program.clone(), w.key.member.clone());
                let version = self.versions.entry(id).or_insert(0);
                if *version != w.expected {
                    return false;
                }
                *version += 1;
                let stored = self
                    .members
                    .entry_ref(w.key.program.as_str())
                    .or_default()
                    .entry_ref(w.key.member.as_str())
                    .or_default();
                let events = std::mem::take(&mut stored.events);
                *stored = w.state.without_records();
                stored.events = events;
                for &(event_id, record) in w.records {
                    stored.events.insert(event_id.into(), record.clone());
                }
                if let Some(horizon) = w.sweep_before {
                    // A record this store wrote always decodes; one that
                    // does not is kept rather than silently dropped.
                    stored.events.retain(|_, r| r.written_at().map_or(true, |at| at >= horizon));
                }
                true
            })
            .collect())
    }

    async fn reserve(&mut self, reservations: &[Reservation<'_>]) -> Result<Vec<i64>, StoreError> {
        Ok(reservations
            .iter()
            .map(|r| {
                let id = (r.program.to_owned(), r.rule.to_owned(), r.grant_id());
                if let Some(grant) = self.grants.get(&id) {
                    return *grant;
                }
                let grant = r.points.min((r.budget - self.budgets.spent(r.program, r.rule)).max(0)).max(0);
                self.budgets.charge(r.program, r.rule, grant);
                self.grants.insert(id, grant);
                grant
            })
            .collect())
    }
}
