//! Sorting under the memory budget: a buffer of records that spills sorted runs, merged
//! k-way at the end (for `sort_by_key`).

use std::cmp::Ordering;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ShuffleEnv;
use crate::error::Result;
use crate::external_aggregator::{Holding, RecordIter};
use crate::memory_budget::{MemoryReservation, SizeTracker};
use crate::merge::{SortedMerge, merge_fan_in, reduce_runs};
use crate::spill::{RunReader, RunWriter, SpillRun, write_sorted_run};

/// Key comparator of an [`ExternalSorter`].
pub type KeyOrdering<K> = Arc<dyn Fn(&K, &K) -> Ordering + Send + Sync>;

/// Sort with spill: records come out ordered by `cmp` on their keys (not stably).
///
/// ```
/// # fn main() -> flint_shuffle::Result<()> {
/// use flint_shuffle::*;
/// use std::sync::Arc;
/// let tmp = tempfile::tempdir().unwrap();
/// let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path())?, MemoryBudget::new(1 << 20), true);
/// let mut sorter = ExternalSorter::new(Arc::new(|a: &i32, b: &i32| b.cmp(a)), env);
/// for k in [3, 1, 2] {
///     sorter.insert(k, k.to_string())?;
/// }
/// let keys: Vec<i32> = sorter.into_sorted_iter()?.map(|r| r.map(|(k, _)| k)).collect::<Result<_>>()?;
/// assert_eq!(keys, [3, 2, 1]);
/// # Ok(()) }
/// ```
pub struct ExternalSorter<K, V> {
    cmp: KeyOrdering<K>,
    env: ShuffleEnv,
    buffer: Vec<(K, V)>,
    tracker: SizeTracker,
    reservation: MemoryReservation,
    runs: Vec<SpillRun>,
    spill_count: u32,
    fan_in: usize,
}

impl<K, V> ExternalSorter<K, V>
where
    K: Serialize + DeserializeOwned + Send + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// An empty sorter ordering keys by `cmp`.
    pub fn new(cmp: KeyOrdering<K>, env: ShuffleEnv) -> Self {
        let fan_in = merge_fan_in(&env.budget);
        ExternalSorter {
            cmp,
            reservation: MemoryReservation::new(env.budget.clone()),
            env,
            buffer: Vec::new(),
            tracker: SizeTracker::for_entry::<(K, V)>(),
            runs: Vec::new(),
            spill_count: 0,
            fan_in,
        }
    }

    /// Limits how many runs are merged at once (default: what 1/4 of the budget buffers, 4 to 64).
    pub fn with_merge_fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = fan_in.max(2);
        self
    }

    /// Adds a record.
    #[inline]
    pub fn insert(&mut self, k: K, v: V) -> Result<()> {
        let record = (k, v);
        let check = self.tracker.on_update(&record);
        self.buffer.push(record);
        if check
            && !self
                .reservation
                .try_cover(self.tracker.estimate(self.buffer.len(), self.buffer.capacity()))
        {
            self.spill()?;
        }
        Ok(())
    }

    /// How many times the buffer was spilled to disk.
    pub fn spill_count(&self) -> u32 {
        self.spill_count
    }

    #[cold]
    fn spill(&mut self) -> Result<()> {
        let estimate = self.tracker.estimate(self.buffer.len(), self.buffer.capacity());
        let mut records = std::mem::take(&mut self.buffer);
        let cmp = &self.cmp;
        records.sort_unstable_by(|a, b| cmp(&a.0, &b.0));
        let run = write_sorted_run(&self.env, records.iter())?;
        tracing::debug!(
            bytes = run.len_bytes(),
            memory = estimate,
            records = records.len(),
            "spilled sort buffer"
        );
        self.runs.push(run);
        self.spill_count += 1;
        self.reservation.release_all();
        Ok(())
    }

    /// All records, ordered by key: the sorted buffer merged with the spilled runs.
    /// Spill files are deleted and memory released when the iterator is exhausted or dropped.
    pub fn into_sorted_iter(self) -> Result<RecordIter<K, V>> {
        let ExternalSorter {
            cmp,
            env,
            mut buffer,
            reservation,
            runs,
            fan_in,
            ..
        } = self;
        buffer.sort_unstable_by(|a, b| cmp(&a.0, &b.0));
        if runs.is_empty() {
            return Ok(Box::new(Holding {
                inner: buffer.into_iter().map(Ok),
                _reservation: reservation,
            }));
        }
        let by_key = move |a: &(K, V), b: &(K, V)| cmp(&a.0, &b.0);
        let runs = reduce_runs(runs, fan_in - 1, fan_in, |group| {
            let mut merged = RunWriter::create(&env.dirs, env.compress)?;
            for record in SortedMerge::new(sources(group)?, &by_key)? {
                merged.write_record(&record?)?;
            }
            merged.end_segment()?;
            merged.finish()
        })?;
        let mut sources = sources(runs)?;
        sources.push(Box::new(buffer.into_iter().map(Ok)));
        Ok(Box::new(Holding {
            inner: SortedMerge::new(sources, by_key)?,
            _reservation: reservation,
        }))
    }
}

fn sources<K, V>(runs: Vec<SpillRun>) -> Result<Vec<RecordIter<K, V>>>
where
    K: DeserializeOwned + Send + 'static,
    V: DeserializeOwned + Send + 'static,
{
    let mut out: Vec<RecordIter<K, V>> = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        out.push(Box::new(RunReader::<(K, V)>::open(run)?));
    }
    Ok(out)
}
