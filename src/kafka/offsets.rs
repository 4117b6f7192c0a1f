//! Which offsets may be committed: per partition, the position after the
//! longest run of finished messages from the start, never past a message
//! that is still in flight.

use std::collections::{BTreeSet, HashMap};

/// Messages received and not yet finished, per partition.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// The offset after the highest one received.
    next: i64,
    /// The position last handed out to be stored.
    stored: i64,
}

impl Offsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was received: it holds back its partition's position until finished.
    pub fn received(&mut self, partition: i32, offset: i64) {
        // Nothing before the first message received is this scorer's to store.
        let p =
            self.partitions.entry(partition).or_insert_with(|| Partition { stored: offset, ..Partition::default() });
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// A message is finished (its state is applied and its output acknowledged).
    /// Returns the partition's new position to store (the offset of the first
    /// message not yet finished, or after the last one received) when it moved.
    pub fn finished(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        p.in_flight.remove(&offset);
        let position = p.in_flight.first().copied().unwrap_or(p.next);
        if position > p.stored {
            p.stored = position;
            Some(position)
        } else {
            None
        }
    }

    /// Messages received and not finished, in all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }

    /// Forgets a partition (revoked): its in-flight messages will be
    /// redelivered to its next owner.
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_advance_only_over_contiguous_finished_messages() {
        let mut o = Offsets::new();
        for offset in 10..15 {
            o.received(0, offset);
        }
        o.received(1, 3);
        assert_eq!(o.in_flight(), 6);
        // 11 and 12 finish first: 10 still holds the position back.
        assert_eq!(o.finished(0, 11), None);
        assert_eq!(o.finished(0, 12), None);
        assert_eq!(o.finished(0, 10), Some(13));
        assert_eq!(o.finished(1, 3), Some(4));
        assert_eq!(o.finished(0, 14), None);
        assert_eq!(o.finished(0, 13), Some(15));
        assert_eq!(o.in_flight(), 0);
        // A finished message of an unknown partition moves nothing.
        assert_eq!(o.finished(7, 1), None);
        o.forget(0);
        o.received(0, 20);
        assert_eq!(o.finished(0, 20), Some(21));
    }
}
