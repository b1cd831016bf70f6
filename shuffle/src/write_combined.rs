//! The map side with combine: values of equal keys are combined in a hash map, which
//! spills as runs sorted by (partition, key hash); the end merges runs and memory
//! partition by partition, combining equal keys across runs.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregator::{Aggregator, COMBINER_PRESENT, CombinerMap, key_hash};
use crate::error::{Result, ShuffleError};
use crate::map_output::{MapOutputWriter, MapStatus};
use crate::memory_budget::{MemoryReservation, SizeTracker};
use crate::merge::{CombiningMerge, Hashed, merge_fan_in, reduce_runs, with_hash};
use crate::spill::{RunReader, RunWriter, SpillRun};
use crate::write_plain::PartitionBuffers;
use crate::{MapOutputFiles, ShuffleEnv};

/// Map side with combine: values with equal keys (within this task) are combined with
/// `agg` before writing, so the output records are `(K, C)`, each key once per map
/// output. The in-memory map spills past the memory budget (sorted by partition and key
/// hash); spills and memory are merged at the end. Files are written and committed as by
/// [`write_plain`](crate::write_plain).
///
/// ```
/// # fn main() -> flint_shuffle::Result<()> {
/// use flint_shuffle::*;
/// let tmp = tempfile::tempdir().unwrap();
/// let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path())?, MemoryBudget::new(1 << 20), true);
/// let out = env.dirs.map_output(0, 0);
/// let words = "a b a c a b".split(' ').map(|w| (w.to_string(), 1u64));
/// let sum = Aggregator::new(|v| v, |c, v| c + v, |a, b| a + b);
/// let status = write_combined(words, &|_: &String| 0, 1, &sum, &out, &env)?;
/// assert_eq!(status.records_written, 3);
/// let origin = BlockOrigin { path: out.data.clone(), reduce_id: 0 };
/// let mut counts: Vec<(String, u64)> = decode_block(&read_block(&out, 0)?, &origin)?.collect::<Result<_>>()?;
/// counts.sort();
/// assert_eq!(counts, [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]);
/// # Ok(()) }
/// ```
pub fn write_combined<K, V, C>(
    records: impl Iterator<Item = (K, V)>,
    partition_of: &dyn Fn(&K) -> usize,
    num_partitions: usize,
    agg: &Aggregator<K, V, C>,
    out: &MapOutputFiles,
    env: &ShuffleEnv,
) -> Result<MapStatus>
where
    K: Hash + Eq + Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
{
    write_combined_with(
        records,
        partition_of,
        num_partitions,
        agg,
        out,
        env,
        merge_fan_in(&env.budget),
    )
}

pub(crate) fn write_combined_with<K, V, C>(
    records: impl Iterator<Item = (K, V)>,
    partition_of: &dyn Fn(&K) -> usize,
    num_partitions: usize,
    agg: &Aggregator<K, V, C>,
    out: &MapOutputFiles,
    env: &ShuffleEnv,
    fan_in: usize,
) -> Result<MapStatus>
where
    K: Hash + Eq + Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
{
    let mut map: CombinerMap<K, C> = CombinerMap::default();
    let mut tracker = SizeTracker::for_entry::<(K, Option<C>)>().with_spill_copy::<Hashed<K, C>>();
    let mut reservation = MemoryReservation::new(env.budget.clone());
    let mut runs = Vec::new();
    let part = Partitioner {
        partition_of,
        num_partitions,
    };
    for (k, v) in records {
        // A full map doubles its table when a new key arrives, and both tables coexist for a
        // moment: spill first if the budget cannot cover that peak.
        if map.len() == map.capacity()
            && !map.contains_key(&k)
            && !reservation.try_cover(tracker.estimate_growth(map.len(), map.capacity()))
        {
            runs.push(spill_map(&part, &mut map, &tracker, env)?);
            reservation.release_all();
        }
        let check = match map.entry(k) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut().take().expect(COMBINER_PRESENT);
                let c = (agg.merge_value)(c, v);
                let check = tracker.on_update(&(e.key(), &c));
                *e.get_mut() = Some(c);
                check
            }
            Entry::Vacant(e) => {
                let c = (agg.create_combiner)(v);
                let check = tracker.on_update(&(e.key(), &c));
                e.insert(Some(c));
                check
            }
        };
        if check && !reservation.try_cover(tracker.estimate(map.len(), map.capacity())) {
            runs.push(spill_map(&part, &mut map, &tracker, env)?);
            reservation.release_all();
        }
    }

    let mut writer = MapOutputWriter::create(out, env)?;
    let spill_count = runs.len() as u32;
    if runs.is_empty() {
        // Nothing on disk: encode straight into per-partition frames, no sorting.
        let mut buffers = PartitionBuffers::new(num_partitions, env.compress);
        writer.add_records(map.len() as u64);
        for (k, c) in map {
            let p = part.partition(&k)?;
            buffers.push(p, &(k, c.expect(COMBINER_PRESENT)))?;
        }
        buffers.write_blocks(&mut [], &mut writer)?;
        return writer.commit(spill_count);
    }
    let buckets = part.sorted_buckets(map)?;
    let merge_combiners = &agg.merge_combiners;
    let runs = reduce_runs(runs, fan_in - 1, fan_in, |group| {
        let mut readers = open_all::<K, C>(group)?;
        let mut merged = RunWriter::create(&env.dirs, env.compress)?;
        for p in 0..num_partitions {
            merge_segment(&mut readers, p, Vec::new(), merge_combiners, |r| merged.write_record(r))?;
            merged.end_segment()?;
        }
        merged.finish()
    })?;
    let mut readers = open_all::<K, C>(runs)?;
    for (p, bucket) in buckets.into_iter().enumerate() {
        merge_segment(&mut readers, p, bucket, merge_combiners, |r| writer.write_record(r))?;
        writer.end_block()?;
    }
    drop(readers);
    writer.commit(spill_count)
}

/// Writes the map's contents as a sorted run and empties it.
#[cold]
fn spill_map<K: Hash + Serialize, C: Serialize>(
    part: &Partitioner<'_, K>,
    map: &mut CombinerMap<K, C>,
    tracker: &SizeTracker,
    env: &ShuffleEnv,
) -> Result<SpillRun> {
    let estimate = tracker.estimate(map.len(), map.capacity());
    let buckets = part.sorted_buckets(std::mem::take(map))?;
    let run = write_run(buckets, env)?;
    tracing::debug!(bytes = run.len_bytes(), memory = estimate, "spilled map-side combine");
    Ok(run)
}

struct Partitioner<'a, K> {
    partition_of: &'a dyn Fn(&K) -> usize,
    num_partitions: usize,
}

impl<K: Hash> Partitioner<'_, K> {
    fn partition(&self, k: &K) -> Result<usize> {
        let p = (self.partition_of)(k);
        if p < self.num_partitions {
            Ok(p)
        } else {
            Err(ShuffleError::BadPartition {
                partition: p,
                num_partitions: self.num_partitions,
            })
        }
    }

    /// Moves the map's entries into one bucket per partition, sorted by key hash: the
    /// order of runs.
    fn sorted_buckets<C>(&self, map: CombinerMap<K, C>) -> Result<Vec<Vec<Hashed<K, C>>>> {
        let mut buckets: Vec<Vec<Hashed<K, C>>> = (0..self.num_partitions).map(|_| Vec::new()).collect();
        for (k, c) in map {
            let p = self.partition(&k)?;
            buckets[p].push((key_hash(&k), k, c.expect(COMBINER_PRESENT)));
        }
        for b in &mut buckets {
            b.sort_unstable_by_key(|e| e.0);
        }
        Ok(buckets)
    }
}

fn write_run<K: Serialize, C: Serialize>(buckets: Vec<Vec<Hashed<K, C>>>, env: &ShuffleEnv) -> Result<SpillRun> {
    let mut run = RunWriter::create(&env.dirs, env.compress)?;
    for bucket in buckets {
        for (_, k, c) in &bucket {
            run.write_record(&(k, c))?;
        }
        run.end_segment()?;
    }
    run.finish()
}

fn open_all<K: DeserializeOwned, C: DeserializeOwned>(runs: Vec<SpillRun>) -> Result<Vec<RunReader<(K, C)>>> {
    runs.into_iter().map(RunReader::open).collect()
}

type Source<'a, K, C> = Box<dyn Iterator<Item = Result<Hashed<K, C>>> + 'a>;

/// Merges segment `p` of every run with `memory` (sorted by hash), combining equal keys,
/// and hands each result to `sink`.
fn merge_segment<K, C>(
    readers: &mut [RunReader<(K, C)>],
    p: usize,
    memory: Vec<Hashed<K, C>>,
    merge_combiners: &Arc<dyn Fn(C, C) -> C + Send + Sync>,
    mut sink: impl FnMut(&(K, C)) -> Result<()>,
) -> Result<()>
where
    K: Hash + Eq + DeserializeOwned,
    C: DeserializeOwned,
{
    let mut sources: Vec<Source<'_, K, C>> = Vec::with_capacity(readers.len() + 1);
    for r in readers.iter_mut() {
        r.begin_segment(p)?;
        sources.push(Box::new(with_hash(r)));
    }
    sources.push(Box::new(memory.into_iter().map(Ok)));
    for record in CombiningMerge::new(sources, merge_combiners.clone())? {
        sink(&record?)?;
    }
    Ok(())
}
