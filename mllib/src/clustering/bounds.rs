//! The k-means bounds each process keeps between Lloyd passes: soft state, not lineage.
//!
//! A pass over a block leaves its rows' [`Bounds`] here, in the process that ran the task,
//! keyed by fit, partition and block; the next pass over that block, if it runs in the same
//! process, takes them back, skips the rows whose center cannot have changed and updates the
//! bounds in place (no memory is allocated, or page-faulted, per pass). Anything else (a task
//! that runs on another executor, an executor that restarted, a block recomputed from lineage,
//! bounds over the memory budget) finds nothing, or stale bounds, and assigns every row with
//! the full kernel. Both ways give the same assignments and statistics, bit for bit (see
//! [`super::distance`]), so the bounds never need to be recovered, and a fit's lineage stays
//! one job deep however many iterations it runs.
//!
//! This is one of the two process-wide states of the crate (with the GPU device): a
//! `Mutex<HashMap>`, held only to take or put back one block's bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde::{Deserialize, Serialize};

use super::distance::Bounds;

/// Most bytes of bounds one process keeps (about 50 million rows); past that, the blocks that
/// find no room run full passes.
pub(crate) const BUDGET_BYTES: usize = 1 << 30;

/// Which fit's bounds: unique per driver process and fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct FitId(u64);

impl FitId {
    /// A new id: the driver's process id and a counter.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        FitId((u64::from(std::process::id()) << 32) | (NEXT.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF))
    }
}

/// One block of one fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey {
    pub fit: FitId,
    pub partition: usize,
    /// The block's position in its partition.
    pub block: usize,
}

/// A block's bounds and the pass that computed them.
struct Slot {
    pass: usize,
    bounds: Bounds,
}

/// Every block's bounds a process keeps, within a budget.
#[derive(Default)]
struct Store {
    slots: HashMap<BlockKey, Slot>,
    bytes: usize,
    budget: usize,
}

impl Store {
    fn with_budget(budget: usize) -> Self {
        Store {
            budget,
            ..Store::default()
        }
    }

    fn take(&mut self, key: BlockKey, pass: usize) -> (Bounds, bool) {
        match self.slots.remove(&key) {
            Some(slot) => {
                self.bytes -= slot.bounds.bytes();
                (slot.bounds, slot.pass + 1 == pass)
            }
            None => (Bounds::default(), false),
        }
    }

    fn keep(&mut self, key: BlockKey, pass: usize, bounds: Bounds) {
        let need = bounds.bytes();
        if self.bytes + need > self.budget {
            let before = self.bytes;
            self.retain(|k| k.fit == key.fit);
            if self.bytes != before {
                tracing::debug!(
                    freed = before - self.bytes,
                    "k-means bounds: dropped other fits' bounds"
                );
            }
            if self.bytes + need > self.budget {
                return;
            }
        }
        self.bytes += need;
        if let Some(old) = self.slots.insert(key, Slot { pass, bounds }) {
            self.bytes -= old.bounds.bytes();
        }
    }

    fn retain(&mut self, keep: impl Fn(&BlockKey) -> bool) {
        self.slots.retain(|k, _| keep(k));
        self.bytes = self.slots.values().map(|slot| slot.bounds.bytes()).sum();
    }

    #[cfg(test)]
    fn held(&self, fit: FitId) -> usize {
        self.slots.keys().filter(|k| k.fit == fit).count()
    }
}

fn store() -> MutexGuard<'static, Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    // A panic while the lock was held cannot leave the map inconsistent with itself (only
    // whole slots go in and out), and every slot is only a hint: keep going.
    STORE
        .get_or_init(|| Mutex::new(Store::with_budget(BUDGET_BYTES)))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bounds pass `pass` of `key` should start from: `(bounds, true)` when pass `pass − 1`
/// left them here; else `(buffers to reuse, false)`: stale bounds (another pass's) or empty.
pub(crate) fn take(key: BlockKey, pass: usize) -> (Bounds, bool) {
    let taken = store().take(key, pass);
    #[cfg(test)]
    if taken.1 {
        test_hooks::USED.fetch_add(1, Ordering::Relaxed);
    }
    taken
}

/// Leaves the bounds pass `pass` computed for `key`, for the next pass. Makes room by dropping
/// other fits' bounds (a fit whose clean-up missed this process); keeps nothing past
/// [`BUDGET_BYTES`].
pub(crate) fn keep(key: BlockKey, pass: usize, bounds: Bounds) {
    #[cfg(test)]
    if test_hooks::OFF.load(Ordering::Relaxed) {
        return;
    }
    store().keep(key, pass, bounds);
}

/// Drops every bound of `fit` this process holds.
pub(crate) fn forget(fit: FitId) {
    store().retain(|k| k.fit != fit);
}

/// Blocks of `fit` whose bounds this process holds.
#[cfg(test)]
pub(crate) fn held(fit: FitId) -> usize {
    store().held(fit)
}

/// Switches for tests. Turning the bounds off only slows concurrent tests down: it changes
/// no result (what the tests that use it check).
#[cfg(test)]
pub(crate) mod test_hooks {
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// When set, [`super::keep`] keeps nothing: every pass is a full one.
    pub static OFF: AtomicBool = AtomicBool::new(false);
    /// Blocks that started from the previous pass's bounds.
    pub static USED: AtomicU64 = AtomicU64::new(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(rows: usize) -> Bounds {
        Bounds {
            assign: vec![1; rows],
            upper: vec![2.0; rows],
            lower: vec![3.0; rows],
            ..Bounds::default()
        }
    }

    #[test]
    fn bounds_come_back_only_to_the_next_pass_of_the_same_block() {
        let mut s = Store::with_budget(1 << 20);
        let fit = FitId::new();
        let key = BlockKey {
            fit,
            partition: 3,
            block: 1,
        };
        s.keep(key, 4, bounds(10));
        let (b, valid) = s.take(key, 5);
        assert!(valid);
        assert_eq!(b, bounds(10));
        // Taken: gone.
        assert_eq!(s.take(key, 5), (Bounds::default(), false));
        // Stale (pass 4 for pass 7): the buffers come back to be reused, not trusted.
        s.keep(key, 4, bounds(10));
        let (b, valid) = s.take(key, 7);
        assert!(!valid);
        assert_eq!(b.assign.len(), 10);
        // Another block, another fit: nothing.
        s.keep(key, 4, bounds(10));
        assert!(!s.take(BlockKey { block: 2, ..key }, 5).1);
        assert!(
            !s.take(
                BlockKey {
                    fit: FitId::new(),
                    ..key
                },
                5
            )
            .1
        );
        assert_eq!(s.held(fit), 1);
        assert_eq!(s.bytes, bounds(10).bytes());
        s.retain(|k| k.fit != fit);
        assert_eq!((s.held(fit), s.bytes), (0, 0));
    }

    #[test]
    fn past_the_budget_other_fits_go_first_then_nothing_is_kept() {
        let size = bounds(100).bytes();
        let mut s = Store::with_budget(2 * size + size / 2);
        let (mine, other) = (FitId::new(), FitId::new());
        let key = |fit, block| BlockKey {
            fit,
            partition: 0,
            block,
        };
        s.keep(key(other, 0), 1, bounds(100));
        s.keep(key(mine, 0), 1, bounds(100));
        assert_eq!((s.held(other), s.held(mine)), (1, 1));
        // No room: the other fit's bounds go.
        s.keep(key(mine, 1), 1, bounds(100));
        assert_eq!((s.held(other), s.held(mine)), (0, 2));
        // Still no room: this block's are not kept.
        s.keep(key(mine, 2), 1, bounds(100));
        assert_eq!(s.held(mine), 2);
        assert!(!s.take(key(mine, 2), 2).1);
        assert!(s.take(key(mine, 1), 2).1);
        assert_eq!(s.bytes, size);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(FitId::new(), FitId::new());
    }
}
