//! Reduce-side aggregation under the memory budget: a hash map of combiners that spills
//! runs sorted by key hash, merged at the end (Spark's ExternalAppendOnlyMap).

use std::collections::hash_map::Entry;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ShuffleEnv;
use crate::aggregator::{Aggregator, COMBINER_PRESENT, CombinerMap, key_hash};
use crate::error::Result;
use crate::memory_budget::{MemoryReservation, SizeTracker};
use crate::merge::{CombiningMerge, Hashed, merge_fan_in, reduce_runs, with_hash};
use crate::spill::{RunReader, RunWriter, SpillRun, write_sorted_run};

/// Boxed stream of results, as returned by the external aggregator and sorter.
pub type RecordIter<K, X> = Box<dyn Iterator<Item = Result<(K, X)>> + Send>;

/// Reduce-side aggregation with spill: feed values ([`insert_value`]) or combiners from
/// map-side combine ([`insert_combiner`]); iterate the combined results.
///
/// ```
/// # fn main() -> flint_shuffle::Result<()> {
/// use flint_shuffle::*;
/// let tmp = tempfile::tempdir().unwrap();
/// let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path())?, MemoryBudget::new(1 << 20), false);
/// let mut agg = ExternalAggregator::new(Aggregator::new(|v: u64| v, |c, v| c + v, |a, b| a + b), env);
/// agg.insert_value("x".to_string(), 1)?;
/// agg.insert_combiner("x".to_string(), 10)?;
/// agg.insert_value("y".to_string(), 5)?;
/// let mut out: Vec<(String, u64)> = agg.into_iter()?.collect::<Result<_>>()?;
/// out.sort();
/// assert_eq!(out, [("x".into(), 11), ("y".into(), 5)]);
/// # Ok(()) }
/// ```
///
/// [`insert_value`]: ExternalAggregator::insert_value
/// [`insert_combiner`]: ExternalAggregator::insert_combiner
pub struct ExternalAggregator<K, V, C> {
    agg: Aggregator<K, V, C>,
    env: ShuffleEnv,
    map: CombinerMap<K, C>,
    tracker: SizeTracker,
    reservation: MemoryReservation,
    runs: Vec<SpillRun>,
    spill_count: u32,
    fan_in: usize,
}

impl<K, V, C> ExternalAggregator<K, V, C>
where
    K: Hash + Eq + Serialize + DeserializeOwned + Send + 'static,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    /// An empty aggregator drawing memory from `env.budget` and spilling under `env.dirs`.
    pub fn new(agg: Aggregator<K, V, C>, env: ShuffleEnv) -> Self {
        let fan_in = merge_fan_in(&env.budget);
        ExternalAggregator {
            reservation: MemoryReservation::new(env.budget.clone()),
            agg,
            env,
            map: CombinerMap::default(),
            tracker: SizeTracker::for_entry::<(K, Option<C>)>().with_spill_copy::<Hashed<K, C>>(),
            runs: Vec::new(),
            spill_count: 0,
            fan_in,
        }
    }

    /// Limits how many runs are merged at once (default: what 1/4 of the budget buffers, 4 to 64): more spills are
    /// first merged in groups, so at most this many spill files are open.
    pub fn with_merge_fan_in(mut self, fan_in: usize) -> Self {
        self.fan_in = fan_in.max(2);
        self
    }

    /// Adds a value: `merge_value` into the key's combiner, or `create_combiner`.
    pub fn insert_value(&mut self, k: K, v: V) -> Result<()> {
        self.make_room_for(&k)?;
        let check = match self.map.entry(k) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut().take().expect(COMBINER_PRESENT);
                let c = (self.agg.merge_value)(c, v);
                let check = self.tracker.on_update(&(e.key(), &c));
                *e.get_mut() = Some(c);
                check
            }
            Entry::Vacant(e) => {
                let c = (self.agg.create_combiner)(v);
                let check = self.tracker.on_update(&(e.key(), &c));
                e.insert(Some(c));
                check
            }
        };
        self.maybe_spill(check)
    }

    /// Adds a combiner: `merge_combiners` with the key's combiner, or it becomes one.
    pub fn insert_combiner(&mut self, k: K, c: C) -> Result<()> {
        self.make_room_for(&k)?;
        let check = match self.map.entry(k) {
            Entry::Occupied(mut e) => {
                let acc = e.get_mut().take().expect(COMBINER_PRESENT);
                let c = (self.agg.merge_combiners)(acc, c);
                let check = self.tracker.on_update(&(e.key(), &c));
                *e.get_mut() = Some(c);
                check
            }
            Entry::Vacant(e) => {
                let check = self.tracker.on_update(&(e.key(), &c));
                e.insert(Some(c));
                check
            }
        };
        self.maybe_spill(check)
    }

    /// How many times the map was spilled to disk.
    pub fn spill_count(&self) -> u32 {
        self.spill_count
    }

    /// A full map doubles its table when a new key arrives, and both tables coexist for a
    /// moment: spill first if the budget cannot cover that peak.
    #[inline]
    fn make_room_for(&mut self, k: &K) -> Result<()> {
        if self.map.len() == self.map.capacity()
            && !self.map.contains_key(k)
            && !self
                .reservation
                .try_cover(self.tracker.estimate_growth(self.map.len(), self.map.capacity()))
        {
            self.spill()?;
        }
        Ok(())
    }

    #[inline]
    fn maybe_spill(&mut self, check: bool) -> Result<()> {
        if check
            && !self
                .reservation
                .try_cover(self.tracker.estimate(self.map.len(), self.map.capacity()))
        {
            self.spill()?;
        }
        Ok(())
    }

    #[cold]
    fn spill(&mut self) -> Result<()> {
        let estimate = self.tracker.estimate(self.map.len(), self.map.capacity());
        let sorted = sorted_by_hash(std::mem::take(&mut self.map));
        let run = write_sorted_run(&self.env, sorted.iter().map(|(_, k, c)| (k, c)))?;
        tracing::debug!(
            bytes = run.len_bytes(),
            memory = estimate,
            records = sorted.len(),
            "spilled aggregation"
        );
        self.runs.push(run);
        self.spill_count += 1;
        self.reservation.release_all();
        Ok(())
    }

    /// All `(key, combiner)` pairs, each key exactly once, in no particular order. The
    /// memory reservation and spill files are released when the iterator is exhausted or
    /// dropped.
    #[expect(
        clippy::should_implement_trait,
        reason = "fallible (it opens spill files), so it cannot be IntoIterator"
    )]
    pub fn into_iter(self) -> Result<RecordIter<K, C>> {
        let ExternalAggregator {
            agg,
            env,
            map,
            reservation,
            runs,
            fan_in,
            ..
        } = self;
        if runs.is_empty() {
            let records = map.into_iter().map(|(k, c)| Ok((k, c.expect(COMBINER_PRESENT))));
            return Ok(Box::new(Holding {
                inner: records,
                _reservation: reservation,
            }));
        }
        let memory = sorted_by_hash(map);
        let merge_combiners = agg.merge_combiners.clone();
        let runs = reduce_runs(runs, fan_in - 1, fan_in, |group| {
            let mut merged = RunWriter::create(&env.dirs, env.compress)?;
            for record in CombiningMerge::new(hashed_sources::<K, C>(group)?, merge_combiners.clone())? {
                let record = record?;
                merged.write_record(&record)?;
            }
            merged.end_segment()?;
            merged.finish()
        })?;
        let mut sources = hashed_sources(runs)?;
        sources.push(Box::new(memory.into_iter().map(Ok)));
        Ok(Box::new(Holding {
            inner: CombiningMerge::new(sources, merge_combiners)?,
            _reservation: reservation,
        }))
    }
}

type HashedSource<K, C> = Box<dyn Iterator<Item = Result<Hashed<K, C>>> + Send>;

fn hashed_sources<K, C>(runs: Vec<SpillRun>) -> Result<Vec<HashedSource<K, C>>>
where
    K: Hash + DeserializeOwned + Send + 'static,
    C: DeserializeOwned + Send + 'static,
{
    let mut sources: Vec<HashedSource<K, C>> = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        sources.push(Box::new(with_hash(RunReader::<(K, C)>::open(run)?)));
    }
    Ok(sources)
}

fn sorted_by_hash<K: Hash, C>(map: CombinerMap<K, C>) -> Vec<Hashed<K, C>> {
    let mut entries: Vec<Hashed<K, C>> = map
        .into_iter()
        .map(|(k, c)| (key_hash(&k), k, c.expect(COMBINER_PRESENT)))
        .collect();
    entries.sort_unstable_by_key(|e| e.0);
    entries
}

/// An iterator that keeps a memory reservation (and whatever else) until it is dropped.
pub(crate) struct Holding<I> {
    pub(crate) inner: I,
    pub(crate) _reservation: MemoryReservation,
}

impl<I: Iterator> Iterator for Holding<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
