//! In-order offset tracking for at-least-once delivery.
//!
//! Frames of a partition finish out of order (deliveries of results complete independently), but the
//! committed offset may only advance past a frame once it *and every frame before it* are done. Each
//! partition keeps its pending offsets; the committable position is the lowest pending offset, or one past
//! the highest finished offset when nothing is pending.
//!
//! A partition's assignment carries a generation: a frame that finishes after its partition was revoked (and
//! perhaps re-assigned) belongs to an old generation and must not move the new owner's offsets.

use std::collections::{BTreeSet, HashMap};

/// Identifies one consumed message within an assignment generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub partition: i32,
    pub offset: i64,
    pub generation: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    pending: BTreeSet<i64>,
    /// One past the highest offset seen, i.e. the next offset to commit once nothing is pending.
    high: Option<i64>,
    /// The last position reported as committable, so callers only store on change.
    reported: Option<i64>,
}

/// Pending offsets of every assigned partition of one topic.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionState>,
    next_generation: u64,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new generation for `partition` (on assignment), forgetting anything pending from before.
    pub fn assign(&mut self, partition: i32) {
        self.next_generation += 1;
        self.partitions.insert(partition, PartitionState { generation: self.next_generation, ..Default::default() });
    }

    /// Forgets `partition` (on revocation). Frames still in flight for it will be ignored when they finish.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Records a consumed message. Returns `None` if the partition is not assigned (a message from before a
    /// revocation still buffered by the client).
    pub fn begin(&mut self, partition: i32, offset: i64) -> Option<Ticket> {
        let p = match self.partitions.get_mut(&partition) {
            Some(p) => p,
            None => {
                // Consumption can start before the rebalance callback is seen (e.g. static assignment): treat
                // the first message as the assignment.
                self.assign(partition);
                self.partitions.get_mut(&partition)?
            }
        };
        p.pending.insert(offset);
        // Nothing before the first consumed offset is ours to commit.
        p.reported.get_or_insert(offset);
        p.high = Some(p.high.map_or(offset + 1, |h| h.max(offset + 1)));
        Some(Ticket { partition, offset, generation: p.generation })
    }

    /// Whether `t` belongs to its partition's current assignment (not revoked since it was consumed).
    pub fn is_current(&self, t: &Ticket) -> bool {
        self.partitions.get(&t.partition).is_some_and(|p| p.generation == t.generation)
    }

    /// Marks a message done. Returns the new committable offset of its partition if it advanced.
    pub fn finish(&mut self, t: Ticket) -> Option<i64> {
        let p = self.partitions.get_mut(&t.partition)?;
        if p.generation != t.generation || !p.pending.remove(&t.offset) {
            return None;
        }
        let committable = p.pending.first().copied().or(p.high)?;
        if p.reported.is_some_and(|r| r >= committable) {
            return None;
        }
        p.reported = Some(committable);
        Some(committable)
    }

    /// Where this replica stands in `partition`: the first unfinished offset, or one past the last finished
    /// one. `None` until a message of the partition was consumed.
    pub fn position(&self, partition: i32) -> Option<i64> {
        let p = self.partitions.get(&partition)?;
        p.pending.first().copied().or(p.high)
    }

    /// Partitions currently tracked (assigned to this replica).
    pub fn partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Number of messages consumed but not yet finished, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_past_contiguous_finished_offsets() {
        let mut t = OffsetTracker::new();
        let a = t.begin(0, 10).unwrap();
        let b = t.begin(0, 11).unwrap();
        let c = t.begin(0, 12).unwrap();
        assert_eq!(t.finish(b), None, "10 still pending");
        assert_eq!(t.finish(a), Some(12), "10 and 11 done, 12 pending");
        assert_eq!(t.finish(c), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn position_is_the_first_unfinished_offset() {
        let mut t = OffsetTracker::new();
        t.assign(2);
        assert_eq!(t.position(2), None);
        let a = t.begin(2, 7).unwrap();
        t.begin(2, 8).unwrap();
        assert_eq!(t.position(2), Some(7));
        t.finish(a);
        assert_eq!(t.position(2), Some(8));
        assert_eq!(t.partitions(), vec![2]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        let a = t.begin(0, 5).unwrap();
        let b = t.begin(1, 100).unwrap();
        assert_eq!(t.finish(b), Some(101));
        assert_eq!(t.finish(a), Some(6));
    }

    #[test]
    fn finishing_twice_or_unknown_is_ignored() {
        let mut t = OffsetTracker::new();
        let a = t.begin(0, 1).unwrap();
        assert_eq!(t.finish(a), Some(2));
        assert_eq!(t.finish(a), None);
        assert_eq!(t.finish(Ticket { partition: 9, offset: 1, generation: 1 }), None);
    }

    #[test]
    fn stale_generation_does_not_move_the_new_owner() {
        let mut t = OffsetTracker::new();
        t.assign(0);
        let old = t.begin(0, 50).unwrap();
        t.revoke(0);
        t.assign(0);
        // Re-consumed from the committed position 40 after re-assignment.
        let new = t.begin(0, 40).unwrap();
        assert_eq!(t.finish(old), None, "old generation must be ignored");
        assert_eq!(t.finish(new), Some(41));
    }

    #[test]
    fn revoked_partition_reports_nothing() {
        let mut t = OffsetTracker::new();
        let a = t.begin(3, 7).unwrap();
        t.revoke(3);
        assert_eq!(t.finish(a), None);
        assert_eq!(t.in_flight(), 0);
    }
}
