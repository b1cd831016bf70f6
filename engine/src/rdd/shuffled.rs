//! Shuffle dependencies and the RDD on their reduce side.
//!
//! A [`ShuffleDependency`] is a stage boundary: its map side runs the parent's partitions and
//! writes one sorted-by-partition data file plus index per map task (`flint-shuffle`), combining
//! values map-side when the operation allows. [`ShuffledNode`] is the reduce side: partition `r`
//! reads block `r` of every map output (checksummed; a bad or missing block is a fetch
//! failure, which makes the scheduler recompute that map output) and aggregates or sorts it with
//! spill past the memory limit.

use std::cmp::Ordering;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use flint_shuffle::{self as shuffle, Aggregator, ExternalAggregator, ExternalSorter, MapOutputFiles};
use serde::de::DeserializeOwned;

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::context::Context;
use crate::data::{Data, Key};
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result};
use crate::ids::ShuffleId;
use crate::partitioner::Partitioner;
use crate::shuffle_map::MapOutput;
use crate::task_context::{Interruptible, TaskContext, raise, raise_fetch_failed};

/// What the scheduler needs from a shuffle dependency, whatever its types.
pub(crate) trait ShuffleDep: Send + Sync + 'static {
    fn shuffle_id(&self) -> ShuffleId;
    /// The RDD whose partitions the map tasks compute.
    fn map_side(&self) -> Arc<dyn RddNode>;
    /// Runs map task `map_id`: computes the parent partition and writes its shuffle files.
    fn run_map_task(&self, map_id: usize, tc: &TaskContext) -> Result<MapOutput>;
    /// Driver-side preparation (range partitioner sampling).
    fn prepare(&self, ctx: &Context) -> Result<()>;
    /// "reduce_by_key at wc.rs:11": names the stage that writes this shuffle.
    fn label(&self) -> String;
}

/// How the reduce side treats the records of one shuffle.
pub(crate) struct ShuffleSpec<K, V, C> {
    pub(crate) partitioner: Arc<dyn Partitioner<K>>,
    /// Combine values with equal keys (reduce side, and map side when `map_side_combine`).
    pub(crate) aggregator: Option<Aggregator<K, V, C>>,
    pub(crate) map_side_combine: bool,
    /// Sort each reduce partition by key.
    pub(crate) key_ordering: Option<Arc<dyn Fn(&K, &K) -> Ordering + Send + Sync>>,
}

/// A shuffle of `(K, V)` records into partitions of `(K, C)`.
pub(crate) struct ShuffleDependency<K, V, C> {
    id: ShuffleId,
    label: String,
    parent: Arc<dyn Compute<(K, V)>>,
    spec: ShuffleSpec<K, V, C>,
    /// Where this shuffle's outputs are kept, to delete them when no RDD can read them again
    /// (as Spark's `ContextCleaner`): iterative jobs would otherwise fill the disk.
    env: Weak<ExecutorEnv>,
}

impl<K, V, C> Drop for ShuffleDependency<K, V, C> {
    fn drop(&mut self) {
        if let Some(env) = self.env.upgrade() {
            env.map_outputs.remove_shuffle(self.id);
            if let Err(e) = env.shuffle.dirs.remove_shuffle(self.id.0) {
                tracing::warn!(shuffle = %self.id, error = %crate::error::report(&e), "cannot delete shuffle files");
            }
        }
    }
}

impl<K: Key, V: Data, C: Data> ShuffleDep for ShuffleDependency<K, V, C> {
    fn shuffle_id(&self) -> ShuffleId {
        self.id
    }

    fn map_side(&self) -> Arc<dyn RddNode> {
        self.parent.clone()
    }

    fn run_map_task(&self, map_id: usize, tc: &TaskContext) -> Result<MapOutput> {
        tc.env().failpoints.hit("shuffle::before_map_output")?;
        // Checked every few thousand records, so cancelling a job stops its map tasks too.
        let records = Interruptible::new(iterator(&self.parent, map_id, tc)?, tc.killed.clone());
        let env = &tc.env().shuffle;
        let base = env.dirs.map_output(self.id.0, map_id);
        // Every attempt writes its own files, so two attempts of one map task (a retry, or two
        // jobs sharing a shuffle) never mix a data file with another attempt's index.
        let attempt = tc.env().next_attempt_file_id();
        let files = MapOutputFiles {
            data: base.data.with_extension(format!("{attempt}.data")),
            index: base.index.with_extension(format!("{attempt}.index")),
        };
        let partitioner = self.spec.partitioner.clone();
        let partition_of = move |k: &K| partitioner.partition(k);
        let n = self.spec.partitioner.num_partitions();
        let status = match (&self.spec.aggregator, self.spec.map_side_combine) {
            (Some(agg), true) => shuffle::write_combined(records, &partition_of, n, agg, &files, env),
            _ => shuffle::write_plain(records, &partition_of, n, &files, env),
        }
        .map_err(|source| EngineError::Shuffle {
            shuffle: self.id,
            source,
        })?;
        tc.env().failpoints.hit("shuffle::after_map_output")?;
        Ok(MapOutput {
            files,
            status,
            location: None,
        })
    }

    fn prepare(&self, ctx: &Context) -> Result<()> {
        self.spec.partitioner.prepare(ctx)
    }

    fn label(&self) -> String {
        self.label.clone()
    }
}

/// The reduce side of a shuffle: `(K, C)` records.
pub(crate) struct ShuffledNode<K, V, C> {
    meta: NodeMeta,
    dep: Arc<ShuffleDependency<K, V, C>>,
}

impl<K: Key, V: Data, C: Data> RddNode for ShuffledNode<K, V, C> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.dep.spec.partitioner.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Shuffle(self.dep.clone())]
    }
}

/// The records of one block: streamed from a local file, or decoded from fetched bytes.
enum BlockRecords<K, X> {
    Local(shuffle::StreamedBlock<K, X>),
    Fetched(shuffle::BlockRecords<K, X>),
}

impl<K: DeserializeOwned, X: DeserializeOwned> Iterator for BlockRecords<K, X> {
    type Item = shuffle::Result<(K, X)>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            BlockRecords::Local(b) => b.next(),
            BlockRecords::Fetched(b) => b.next(),
        }
    }
}

/// Streams the records of block `reduce_id` of every map output of one shuffle.
struct BlockStream<K, X> {
    shuffle: ShuffleId,
    reduce_id: usize,
    outputs: std::vec::IntoIter<(usize, MapOutput)>,
    env: Arc<crate::env::ExecutorEnv>,
    /// The map output being read: map partition, data file, records.
    current: Option<(usize, PathBuf, BlockRecords<K, X>)>,
}

impl<K: DeserializeOwned, X: DeserializeOwned> BlockStream<K, X> {
    /// Opens one map output's block: a local file, or (in an executor) fetched from the
    /// executor that holds it. Fetched blocks are verified (frame checksums) before use.
    fn open(&self, output: &MapOutput) -> shuffle::Result<BlockRecords<K, X>> {
        if let (Some(remote), Some(loc)) = (&self.env.remote, &output.location)
            && loc.executor != remote.me
        {
            let raw = remote
                .fetcher
                .fetch_block(&loc.address, &output.files, self.reduce_id)
                .map_err(|detail| shuffle::ShuffleError::Remote {
                    address: loc.address.clone(),
                    path: output.files.data.clone(),
                    detail,
                })?;
            let origin = shuffle::BlockOrigin {
                path: output.files.data.clone(),
                reduce_id: self.reduce_id,
            };
            return shuffle::decode_block::<K, X>(&raw, &origin).map(BlockRecords::Fetched);
        }
        shuffle::open_block::<K, X>(&output.files, self.reduce_id).map(BlockRecords::Local)
    }
}

impl<K: DeserializeOwned, X: DeserializeOwned> Iterator for BlockStream<K, X> {
    type Item = (K, X);

    fn next(&mut self) -> Option<(K, X)> {
        loop {
            if let Some((map_id, data, records)) = &mut self.current {
                match records.next() {
                    Some(Ok(record)) => return Some(record),
                    Some(Err(e)) => {
                        let detail = crate::error::report(&e);
                        raise_fetch_failed(self.shuffle, *map_id, self.reduce_id, Some(data.clone()), detail)
                    }
                    None => self.current = None,
                }
            }
            let (map_id, output) = self.outputs.next()?;
            if let Err(e) = self.env.failpoints.hit("shuffle::before_fetch") {
                raise(e);
            }
            // Local blocks stream frame by frame: a reader holds one frame, not the whole
            // block. A corrupt frame fails the task, so the records read before it are
            // discarded with its output.
            let records = self.open(&output).unwrap_or_else(|e| {
                let detail = crate::error::report(&e);
                raise_fetch_failed(self.shuffle, map_id, self.reduce_id, Some(output.files.data.clone()), detail)
            });
            self.current = Some((map_id, output.files.data, records));
        }
    }
}

fn block_stream<K: DeserializeOwned, X: DeserializeOwned>(
    shuffle: ShuffleId,
    reduce_id: usize,
    tc: &TaskContext,
) -> BlockStream<K, X> {
    let outputs = match tc.env().map_outputs.outputs(shuffle) {
        Ok(outputs) => outputs,
        Err(missing) => raise_fetch_failed(shuffle, missing, reduce_id, None, "no map output registered".into()),
    };
    let outputs: Vec<(usize, MapOutput)> = outputs
        .into_iter()
        .enumerate()
        .filter(|(_, o)| o.status.partition_lengths.get(reduce_id).copied().unwrap_or(1) > 0)
        .collect();
    BlockStream {
        shuffle,
        reduce_id,
        outputs: outputs.into_iter(),
        env: tc.env().clone(),
        current: None,
    }
}

fn unwrap_results<T: 'static>(
    shuffle: ShuffleId,
    it: Box<dyn Iterator<Item = shuffle::Result<T>> + Send>,
) -> BoxIter<T> {
    Box::new(it.map(move |r| r.unwrap_or_else(|source| raise(EngineError::Shuffle { shuffle, source }))))
}

impl<K: Key, V: Data, C: Data> Compute<(K, C)> for ShuffledNode<K, V, C> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(K, C)>> {
        let spec = &self.dep.spec;
        let id = self.dep.id;
        let env = tc.env().shuffle.clone();
        let shuffle_err = |source| EngineError::Shuffle { shuffle: id, source };
        match &spec.aggregator {
            Some(agg) => {
                let mut table = ExternalAggregator::new(agg.clone(), env.clone());
                if spec.map_side_combine {
                    for (k, c) in block_stream::<K, C>(id, split, tc) {
                        table.insert_combiner(k, c).map_err(shuffle_err)?;
                    }
                } else {
                    for (k, v) in block_stream::<K, V>(id, split, tc) {
                        table.insert_value(k, v).map_err(shuffle_err)?;
                    }
                }
                let combined = unwrap_results(id, table.into_iter().map_err(shuffle_err)?);
                match &spec.key_ordering {
                    None => Ok(combined),
                    Some(cmp) => sort_stream(id, combined, cmp.clone(), env),
                }
            }
            // Without an aggregator the map side wrote `(K, V)` records and `C` is `V` (see
            // `Rdd::shuffle_plain`, the only way to build one), so the blocks decode as `(K, C)`.
            None => {
                let records: BoxIter<(K, C)> = Box::new(block_stream::<K, C>(id, split, tc));
                match &spec.key_ordering {
                    None => Ok(records),
                    Some(cmp) => sort_stream(id, records, cmp.clone(), env),
                }
            }
        }
    }
}

fn sort_stream<K: Key, C: Data>(
    id: ShuffleId,
    records: BoxIter<(K, C)>,
    cmp: Arc<dyn Fn(&K, &K) -> Ordering + Send + Sync>,
    env: shuffle::ShuffleEnv,
) -> Result<BoxIter<(K, C)>> {
    let shuffle_err = |source| EngineError::Shuffle { shuffle: id, source };
    let mut sorter = ExternalSorter::new(cmp, env);
    for (k, c) in records {
        sorter.insert(k, c).map_err(shuffle_err)?;
    }
    Ok(unwrap_results(id, sorter.into_sorted_iter().map_err(shuffle_err)?))
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// Shuffles into `(K, C)` partitions as `spec` says. The one place shuffles are made.
    #[track_caller]
    pub(crate) fn shuffle_with<C: Data>(&self, op: &str, spec: ShuffleSpec<K, V, C>) -> Rdd<(K, C)> {
        let meta = NodeMeta::new(&self.ctx, op, Location::caller());
        let dep = Arc::new(ShuffleDependency {
            id: self.ctx.new_shuffle_id(),
            label: meta.label(),
            parent: self.node.clone(),
            spec,
            env: Arc::downgrade(self.ctx.env()),
        });
        let node = ShuffledNode { meta, dep };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }

    /// Shuffles without combining: `(K, V)` records land in `partitioner`'s partitions,
    /// sorted by key when `key_ordering` is given.
    #[track_caller]
    pub(crate) fn shuffle_plain(
        &self,
        op: &str,
        partitioner: Arc<dyn Partitioner<K>>,
        key_ordering: Option<Arc<dyn Fn(&K, &K) -> Ordering + Send + Sync>>,
    ) -> Rdd<(K, V)> {
        self.shuffle_with::<V>(
            op,
            ShuffleSpec {
                partitioner,
                aggregator: None,
                map_side_combine: false,
                key_ordering,
            },
        )
    }
}
