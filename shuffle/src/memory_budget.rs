//! Memory accounting: the shared limit for aggregation and sort buffers, the per-consumer
//! reservation that spills when the limit refuses it more, and the sampling estimate of
//! how much buffered records occupy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::codec;

/// Bytes a consumer may always keep in memory without a reservation, so that every
/// consumer makes progress even when the budget is exhausted (or tiny): the budget can
/// be exceeded by at most this much per live consumer.
pub const MIN_CONSUMER_BYTES: u64 = 64 * 1024;

/// Shared memory limit for all aggregation / sort buffers of one process (or executor).
///
/// Consumers ask with [`MemoryBudget::try_reserve`], which never lets the sum of grants
/// exceed the limit, and give back with [`MemoryBudget::release`].
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: u64,
    used_bytes: AtomicU64,
    /// Live [`MemoryReservation`]s: each may hold at most `limit / consumers`.
    consumers: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit_bytes`.
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit_bytes,
            used_bytes: AtomicU64::new(0),
            consumers: AtomicU64::new(0),
        })
    }

    /// The limit.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The most one consumer may hold now: an equal share among the live consumers (as
    /// Spark's execution memory: a task gets at most 1/N of the pool while N tasks run), so
    /// one consumer that grew first cannot starve the others into spilling constantly.
    pub fn fair_share_bytes(&self) -> u64 {
        self.limit_bytes / self.consumers.load(Ordering::Acquire).max(1)
    }

    /// Bytes currently granted.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// Grants up to `bytes`; returns how much was granted (less, or 0, when the budget is
    /// short). Callers spill when refused.
    pub fn try_reserve(&self, bytes: u64) -> u64 {
        let mut used = self.used_bytes.load(Ordering::Acquire);
        loop {
            let grant = bytes.min(self.limit_bytes.saturating_sub(used));
            if grant == 0 {
                return 0;
            }
            match self
                .used_bytes
                .compare_exchange_weak(used, used + grant, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return grant,
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` previously granted. Giving back more than was granted is a bug
    /// in the caller (caught in debug builds); the count then stops at 0 rather than wrapping.
    pub fn release(&self, bytes: u64) {
        let before = self
            .used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            })
            .expect("the update always succeeds");
        debug_assert!(before >= bytes, "released {bytes} bytes but only {before} were granted");
    }
}

/// One consumer's share of a [`MemoryBudget`]; releases it on drop.
#[derive(Debug)]
pub struct MemoryReservation {
    budget: Arc<MemoryBudget>,
    held_bytes: u64,
}

impl MemoryReservation {
    /// A reservation holding nothing yet.
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        budget.consumers.fetch_add(1, Ordering::AcqRel);
        MemoryReservation { budget, held_bytes: 0 }
    }

    /// Bytes granted to this consumer.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Makes sure `needed` bytes are covered, by the grant or by [`MIN_CONSUMER_BYTES`].
    /// Asks for twice what is needed, so that a growing buffer asks rarely. Returns
    /// `false` when the budget refuses: the caller must spill, then [`release_all`].
    ///
    /// [`release_all`]: MemoryReservation::release_all
    pub fn try_cover(&mut self, needed: u64) -> bool {
        if needed <= self.held_bytes.max(MIN_CONSUMER_BYTES) {
            return true;
        }
        let share = self.budget.fair_share_bytes();
        if needed > share {
            return false;
        }
        let want = needed.saturating_mul(2).min(share).saturating_sub(self.held_bytes);
        self.held_bytes += self.budget.try_reserve(want);
        needed <= self.held_bytes
    }

    /// Gives everything back (after a spill).
    pub fn release_all(&mut self) {
        self.budget.release(self.held_bytes);
        self.held_bytes = 0;
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.release_all();
        self.budget.consumers.fetch_sub(1, Ordering::AcqRel);
    }
}

// Estimating buffered sizes, as Spark's SizeTracker.

/// Samples are dense at first, then every `MAX_SAMPLE_INTERVAL` updates at most.
const MAX_SAMPLE_INTERVAL: u64 = 32;
/// After this many samples the average becomes a moving one (weight 1/16 for the newest),
/// so that it follows records whose size drifts (combiners that grow, longer lines).
const SAMPLE_WINDOW: u64 = 16;

/// Allocator slack and pointers per entry that the encoded size does not see.
const ENTRY_SLACK_BYTES: f64 = 16.0;

/// Estimates the memory of a buffer (a vector or hash map) of entries of type `E`: every
/// allocated slot costs `size_of::<E>()`, and every entry in use also its out-of-line
/// data, estimated from the encoded size of sampled entries plus some slack.
#[derive(Debug)]
pub(crate) struct SizeTracker {
    slot_bytes: u64,
    /// Bytes per entry of the copy a spill makes (entries are moved into a sorted vector while
    /// the map's table is still allocated); 0 when spilling copies nothing.
    spill_copy_bytes: u64,
    updates: u64,
    next_sample: u64,
    samples: u64,
    /// Average encoded bytes of an entry plus slack.
    heap_bytes_per_entry: f64,
}

impl SizeTracker {
    /// A tracker for entries of in-memory type `E` (the vector element or map slot).
    pub(crate) fn for_entry<E>() -> Self {
        SizeTracker {
            slot_bytes: std::mem::size_of::<E>() as u64,
            spill_copy_bytes: 0,
            updates: 0,
            next_sample: 1,
            samples: 0,
            heap_bytes_per_entry: ENTRY_SLACK_BYTES,
        }
    }

    /// Counts, per entry, the `S` a spill copies it into (so the budget covers the moment both
    /// the table and the sorted copy exist).
    pub(crate) fn with_spill_copy<S>(mut self) -> Self {
        self.spill_copy_bytes = std::mem::size_of::<S>() as u64;
        self
    }

    /// Records an update (an insert or a merge) of `entry`, sampling its size when due.
    /// Returns whether the caller should check its memory now (every 32 updates).
    #[inline]
    pub(crate) fn on_update<T: Serialize + ?Sized>(&mut self, entry: &T) -> bool {
        self.updates += 1;
        if self.updates >= self.next_sample {
            self.sample(codec::encoded_size(entry));
        }
        self.updates.is_multiple_of(32)
    }

    #[cold]
    fn sample(&mut self, encoded: u64) {
        let size = encoded as f64 + ENTRY_SLACK_BYTES;
        self.samples += 1;
        let weight = self.samples.min(SAMPLE_WINDOW) as f64;
        self.heap_bytes_per_entry += (size - self.heap_bytes_per_entry) / weight;
        // Exponentially spaced (x1.1), capped: cheap for long runs, yet follows drift.
        let interval = (self.updates / 10).clamp(1, MAX_SAMPLE_INTERVAL);
        self.next_sample = self.updates + interval;
    }

    /// Estimated bytes of a buffer holding `entries` entries in `slots` allocated slots
    /// (its capacity).
    pub(crate) fn estimate(&self, entries: usize, slots: usize) -> u64 {
        slots as u64 * self.slot_bytes
            + entries as u64 * self.spill_copy_bytes
            + (entries as f64 * self.heap_bytes_per_entry) as u64
    }

    /// Peak memory while a full map of `slots` slots grows: the new table (about twice as
    /// many slots) and the old one coexist until the entries are moved over.
    pub(crate) fn estimate_growth(&self, entries: usize, slots: usize) -> u64 {
        self.estimate(entries, slots * 3 + 1)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn live_consumers_share_the_budget_equally() {
        let b = MemoryBudget::new(1_000_000);
        let mut first = MemoryReservation::new(b.clone());
        assert!(first.try_cover(900_000), "alone, a consumer may use nearly everything");
        first.release_all();
        let mut second = MemoryReservation::new(b.clone());
        assert_eq!(b.fair_share_bytes(), 500_000);
        assert!(
            !first.try_cover(600_000),
            "with two consumers, more than half is refused"
        );
        assert!(first.try_cover(400_000));
        assert!(second.try_cover(450_000), "the second still gets its share");
        assert!(b.used_bytes() <= 1_000_000);
        drop(second);
        assert_eq!(b.fair_share_bytes(), 1_000_000);
    }

    use super::*;
    use std::thread;

    #[test]
    fn grants_are_partial_and_never_exceed_the_limit() {
        let b = MemoryBudget::new(100);
        assert_eq!(b.try_reserve(60), 60);
        assert_eq!(b.try_reserve(60), 40);
        assert_eq!(b.try_reserve(1), 0);
        assert_eq!(b.used_bytes(), 100);
        b.release(70);
        assert_eq!(b.used_bytes(), 30);
        assert_eq!(b.limit_bytes(), 100);
    }

    #[test]
    fn concurrent_reserve_and_release_stay_within_the_limit() {
        const LIMIT: u64 = 10_000;
        let b = MemoryBudget::new(LIMIT);
        // What the threads believe they hold; it must never exceed the limit.
        let outstanding = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (b, outstanding) = (b.clone(), outstanding.clone());
                thread::spawn(move || {
                    let mut x = t + 1;
                    let mut held = Vec::new();
                    for _ in 0..20_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        if x >> 63 == 0 || held.is_empty() {
                            let g = b.try_reserve((x >> 40) % 3000);
                            let now = outstanding.fetch_add(g, Ordering::SeqCst) + g;
                            assert!(now <= LIMIT, "{now} bytes held, limit {LIMIT}");
                            assert!(b.used_bytes() <= LIMIT);
                            held.push(g);
                        } else {
                            let g = held.pop().expect("non-empty");
                            outstanding.fetch_sub(g, Ordering::SeqCst);
                            b.release(g);
                        }
                    }
                    for g in held {
                        outstanding.fetch_sub(g, Ordering::SeqCst);
                        b.release(g);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread ran");
        }
        assert_eq!(b.used_bytes(), 0);
    }

    #[test]
    fn reservations_cover_the_minimum_for_free_and_release_on_drop() {
        let b = MemoryBudget::new(1);
        let mut r = MemoryReservation::new(b.clone());
        assert!(r.try_cover(MIN_CONSUMER_BYTES), "the minimum needs no grant");
        assert!(!r.try_cover(MIN_CONSUMER_BYTES + 1));
        assert_eq!(r.held_bytes(), 0, "more than its share is refused outright");
        r.release_all();
        assert_eq!(b.used_bytes(), 0);

        let b = MemoryBudget::new(1 << 20);
        let mut r = MemoryReservation::new(b.clone());
        assert!(r.try_cover(200_000));
        assert_eq!(r.held_bytes(), 400_000, "asks for double");
        assert!(r.try_cover(400_000), "already covered");
        drop(r);
        assert_eq!(b.used_bytes(), 0);
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::*;

    #[test]
    fn estimates_follow_the_records() {
        let mut t = SizeTracker::for_entry::<(u64, u64)>();
        let mut checks = 0;
        for i in 0..10_000u64 {
            checks += usize::from(t.on_update(&(i, i)));
        }
        assert_eq!(checks, 10_000 / 32);
        // 16 bytes a slot, plus 16 encoded bytes and 16 of slack an entry.
        assert_eq!(t.estimate(1000, 1000), 48_000);
        assert_eq!(t.estimate(1000, 2048), 1000 * 32 + 2048 * 16);

        // Records grow tenfold: the estimate follows within a few hundred updates.
        let big = (0u64, vec![0u64; 100]);
        for _ in 0..2000 {
            t.on_update(&big);
        }
        let per = t.estimate(1000, 0) / 1000;
        assert!(
            (800..=850).contains(&per),
            "{per} bytes per entry (816 encoded, 16 slack)"
        );
    }
}
