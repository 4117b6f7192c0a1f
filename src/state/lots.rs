//! A member's points as lots: crediting, debiting, releasing and expiring.
//!
//! Keeps the invariants of [`MemberState`]: both lot lists ordered by
//! `earned_at`, no empty lot, and debt only once the available lots are
//! spent. Expiry and release never touch the debt.

use std::collections::VecDeque;

use crate::event::Micros;
use crate::state::{Lot, MemberState};

/// The points of `lots`, for checking the running totals.
#[cfg(debug_assertions)]
fn total(lots: &VecDeque<Lot>) -> i64 {
    lots.iter().fold(0i64, |sum, l| sum.saturating_add(l.points))
}

/// Inserts `lot` after every lot earned at or before it.
fn insert_ordered(lots: &mut VecDeque<Lot>, lot: Lot) {
    // Events mostly arrive in time order: the new lot is usually the newest.
    if lots.back().is_none_or(|last| last.earned_at <= lot.earned_at) {
        lots.push_back(lot);
        return;
    }
    let pos = lots.partition_point(|l| l.earned_at <= lot.earned_at);
    lots.insert(pos, lot);
}

/// Takes up to `wanted` points from `lot`; returns what it took.
fn take(lot: &mut Lot, wanted: i64) -> i64 {
    let taken = wanted.min(lot.points);
    lot.points -= taken;
    taken
}

impl MemberState {
    /// Available points minus the debt.
    pub fn balance(&self) -> i64 {
        #[cfg(debug_assertions)]
        debug_assert_eq!(self.held.0, total(&self.lots), "running total of available lots");
        self.held.0.saturating_sub(self.debt)
    }

    /// Points waiting for their release.
    pub fn pending_points(&self) -> i64 {
        #[cfg(debug_assertions)]
        debug_assert_eq!(self.held.1, total(&self.pending), "running total of pending lots");
        self.held.1
    }

    /// Makes the pending lots due at or before `now` available, for good.
    pub fn release(&mut self, now: Micros) {
        // With one pending period for all lots, release order is earning
        // order: the due lots are a prefix.
        while self.pending.front().is_some_and(|l| l.release_at <= now) {
            let Some(lot) = self.pending.pop_front() else { break };
            self.held.1 = self.held.1.saturating_sub(lot.points);
            self.held.0 = self.held.0.saturating_add(lot.points);
            insert_ordered(&mut self.lots, lot);
        }
        // A lot earned under a shorter pending period (the rules changed)
        // can be due behind one that is not.
        if self.pending.iter().all(|l| l.release_at > now) {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].release_at <= now {
                let Some(lot) = self.pending.remove(i) else { break };
                self.held.1 = self.held.1.saturating_sub(lot.points);
                self.held.0 = self.held.0.saturating_add(lot.points);
                insert_ordered(&mut self.lots, lot);
            } else {
                i += 1;
            }
        }
    }

    /// Removes, from both lists, the lots for which `expired` holds; they are
    /// a prefix of each list since `expired` is monotonic in `earned_at`.
    /// Returns the points removed.
    pub fn expire_where(&mut self, expired: impl Fn(&Lot) -> bool) -> i64 {
        let mut removed: i64 = 0;
        for (lots, held) in [(&mut self.lots, &mut self.held.0), (&mut self.pending, &mut self.held.1)] {
            // Walked from the front rather than bisected: usually no lot or
            // one is due, and draining them is linear in their number anyway.
            let count = lots.iter().take_while(|lot| expired(lot)).count();
            if count == 0 {
                continue;
            }
            let points = lots.drain(..count).fold(0i64, |sum, l| sum.saturating_add(l.points));
            *held = held.saturating_sub(points);
            removed = removed.saturating_add(points);
        }
        removed
    }

    /// Adds `points` (> 0): they pay off the debt first, the rest becomes
    /// `lot` (pending when its `release_at` is after its `earned_at`).
    pub fn credit(&mut self, points: i64, lot: Lot) {
        let paid = points.min(self.debt);
        self.debt -= paid;
        let rest = points - paid;
        if rest <= 0 {
            return;
        }
        let lot = Lot { points: rest, ..lot };
        if lot.release_at > lot.earned_at {
            self.held.1 = self.held.1.saturating_add(rest);
            insert_ordered(&mut self.pending, lot);
        } else {
            self.held.0 = self.held.0.saturating_add(rest);
            insert_ordered(&mut self.lots, lot);
        }
    }

    /// Takes `points` (>= 0): first from the pending lot earned at
    /// `own_pending` (a refund's own purchase, while it waits), then from the
    /// available lots, oldest first; what they cannot cover becomes debt.
    /// Other pending lots are never spent.
    pub fn debit(&mut self, points: i64, own_pending: Option<Micros>) {
        let mut left = points;
        if let Some(at) = own_pending {
            if let Some(i) = self.pending.iter().position(|l| l.earned_at == at) {
                let taken = take(&mut self.pending[i], left);
                left -= taken;
                self.held.1 -= taken;
                if self.pending[i].points == 0 {
                    self.pending.remove(i);
                }
            }
        }
        let mut spent = 0;
        for lot in &mut self.lots {
            if left == 0 {
                break;
            }
            let taken = take(lot, left);
            left -= taken;
            self.held.0 -= taken;
            if lot.points == 0 {
                spent += 1;
            }
        }
        self.lots.drain(..spent);
        self.debt = self.debt.saturating_add(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(at: i64, points: i64, pending: bool) -> Lot {
        Lot { earned_at: Micros(at), month: 0, release_at: Micros(if pending { at + 100 } else { at }), points }
    }

    #[test]
    fn credits_pay_debt_then_form_lots() {
        let mut s = MemberState { debt: 30, ..MemberState::default() };
        s.credit(20, lot(1, 0, false));
        assert_eq!((s.debt, s.lots.len()), (10, 0));
        s.credit(25, lot(2, 0, true));
        assert_eq!((s.debt, s.pending_points(), s.balance()), (0, 15, 0));
    }

    #[test]
    fn debits_take_own_pending_then_oldest_available() {
        let mut s = MemberState::default();
        s.credit(10, lot(5, 0, false));
        s.credit(10, lot(1, 0, false));
        s.credit(10, lot(3, 0, true));
        s.credit(10, lot(4, 0, true));
        s.debit(25, Some(Micros(3)));
        // 10 from its own pending lot, then 10 from the lot earned at 1, 5 from the one at 5.
        assert_eq!(s.pending.iter().map(|l| l.earned_at.0).collect::<Vec<_>>(), vec![4]);
        assert_eq!(s.lots, vec![Lot { points: 5, ..lot(5, 0, false) }]);
        s.debit(8, None);
        assert_eq!((s.balance(), s.debt, s.pending_points()), (-3, 3, 10), "other pending lots are never spent");
    }

    #[test]
    fn release_keeps_lots_ordered() {
        let mut s = MemberState::default();
        s.credit(1, lot(10, 0, false));
        s.credit(2, lot(5, 0, true));
        s.release(Micros(104));
        assert_eq!(s.pending.len(), 1);
        s.release(Micros(105));
        assert_eq!(s.lots.iter().map(|l| l.earned_at.0).collect::<Vec<_>>(), vec![5, 10]);
    }
}
