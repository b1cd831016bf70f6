//! Shuffle dependencies and the RDD on their reduce side.
//!
//! A [`ShuffleDependency`] is a stage boundary: its map side runs the parent's partitions and
//! writes one sorted-by-partition data file plus index per map task (`flint-shuffle`), combining
//! values map-side when the operation allows. [`ShuffledNode`] is the reduce side: partition `r`
//! reads block `r` of every map output (checksummed; a bad or missing block is a fetch
//! failure, which makes the scheduler recompute that map output) and aggregates or sorts it with
//! spill past the memory limit.
//!
//! Both ship to executors. A map task carries its [`ShuffleDependency`] with the parent lineage
//! (up to the previous shuffle boundaries); a reduce task's [`ShuffledNode`] carries only what
//! reading needs: the shuffle id and the [`ShuffleSpec`] (partitioner, aggregator spec, key
//! ordering), never the map side's lineage. Aggregators and key orderings travel as data
//! ([`AggregatorSpec`], [`KeyOrderSpec`]) and build their `flint_shuffle` closures where the
//! task runs.

use std::marker::PhantomData;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use flint_shuffle::{self as shuffle, Aggregator, ExternalAggregator, ExternalSorter, KeyOrdering, MapOutputFiles};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::context::Context;
use crate::data::{Data, Key};
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result};
use crate::func::{Fun1, Fun2, Shipped1, Shipped2};
use crate::ids::ShuffleId;
use crate::partitioner::PartitionerRef;
use crate::shuffle_map::MapOutput;
use crate::task_context::{Interruptible, TaskContext, raise, raise_fetch_failed};
use crate::wire::{self, EncodeArc, Encoded};

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
    /// Encodes the dependency with its map side's lineage, for a map task in another process.
    fn encode(&self) -> Result<Encoded<Arc<dyn ShuffleDep>>>;
}

fn decode_shuffle_dep<D: DeserializeOwned + ShuffleDep>(bytes: &[u8]) -> Result<Arc<dyn ShuffleDep>> {
    Ok(Arc::new(wire::decode_value::<D>("shuffle dependency", bytes)?))
}

/// The combine functions of a shuffle as data: it ships with the shuffle and builds the
/// `flint_shuffle::Aggregator` (closures) where the task runs.
pub(crate) trait AggregatorSpec<K, V, C>: Send + Sync + 'static {
    fn build(&self) -> Aggregator<K, V, C>;
    fn encode(&self) -> Result<Encoded<Arc<dyn AggregatorSpec<K, V, C>>>>;
}

impl<K: 'static, V: 'static, C: 'static> EncodeArc for dyn AggregatorSpec<K, V, C> {
    fn encode_arc(&self) -> Result<Encoded<Arc<Self>>> {
        self.encode()
    }
}

fn decode_aggregator<A: DeserializeOwned + AggregatorSpec<K, V, C>, K, V, C>(
    bytes: &[u8],
) -> Result<Arc<dyn AggregatorSpec<K, V, C>>> {
    Ok(Arc::new(wire::decode_value::<A>("aggregator", bytes)?))
}

/// An aggregator made of three shippable user functions (every by-key aggregation is one).
#[derive(Serialize, Deserialize)]
#[serde(bound = "F1: Fun1<V, C>, F2: Fun2<C, V, C>, F3: Fun2<C, C, C>")]
pub(crate) struct FnAggregator<F1, F2, F3, V, C> {
    create: Shipped1<F1, V, C>,
    merge_value: Shipped2<F2, C, V, C>,
    merge_combiners: Shipped2<F3, C, C, C>,
}

impl<F1: Fun1<V, C>, F2: Fun2<C, V, C>, F3: Fun2<C, C, C>, V, C> FnAggregator<F1, F2, F3, V, C> {
    pub(crate) fn new(create: F1, merge_value: F2, merge_combiners: F3) -> Self {
        Self::from_shipped(
            Shipped1::new(create),
            Shipped2::new(merge_value),
            Shipped2::new(merge_combiners),
        )
    }

    /// From functions shared with the driver (or with each other).
    pub(crate) fn from_shipped(
        create: Shipped1<F1, V, C>,
        merge_value: Shipped2<F2, C, V, C>,
        merge_combiners: Shipped2<F3, C, C, C>,
    ) -> Self {
        FnAggregator {
            create,
            merge_value,
            merge_combiners,
        }
    }
}

impl<K, V, C, F1, F2, F3> AggregatorSpec<K, V, C> for FnAggregator<F1, F2, F3, V, C>
where
    K: 'static,
    V: 'static,
    C: 'static,
    F1: Fun1<V, C>,
    F2: Fun2<C, V, C>,
    F3: Fun2<C, C, C>,
{
    fn build(&self) -> Aggregator<K, V, C> {
        Aggregator::from_arcs(
            self.create.f.clone().into_dyn(),
            self.merge_value.f.clone().into_dyn(),
            self.merge_combiners.f.clone().into_dyn(),
        )
    }

    fn encode(&self) -> Result<Encoded<Arc<dyn AggregatorSpec<K, V, C>>>> {
        Encoded::new(self, decode_aggregator::<Self, K, V, C>)
    }
}

/// How a shuffle's reduce partitions are sorted, as data (built into a comparator where the
/// task runs).
pub(crate) trait KeyOrderSpec<K>: Send + Sync + 'static {
    fn build(&self) -> KeyOrdering<K>;
    fn encode(&self) -> Result<Encoded<Arc<dyn KeyOrderSpec<K>>>>;
}

impl<K: 'static> EncodeArc for dyn KeyOrderSpec<K> {
    fn encode_arc(&self) -> Result<Encoded<Arc<Self>>> {
        self.encode()
    }
}

fn decode_key_order<O: DeserializeOwned + KeyOrderSpec<K>, K>(bytes: &[u8]) -> Result<Arc<dyn KeyOrderSpec<K>>> {
    Ok(Arc::new(wire::decode_value::<O>("key ordering", bytes)?))
}

/// `K`'s own order, ascending or descending (`sort_by_key`).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct NaturalOrder<K> {
    ascending: bool,
    _key: PhantomData<fn() -> K>,
}

impl<K> NaturalOrder<K> {
    pub(crate) fn new(ascending: bool) -> Self {
        NaturalOrder {
            ascending,
            _key: PhantomData,
        }
    }
}

impl<K: Ord + 'static> KeyOrderSpec<K> for NaturalOrder<K> {
    fn build(&self) -> KeyOrdering<K> {
        crate::partitioner::key_order::<K>(self.ascending)
    }

    fn encode(&self) -> Result<Encoded<Arc<dyn KeyOrderSpec<K>>>> {
        Encoded::new(self, decode_key_order::<Self, K>)
    }
}

/// How the reduce side treats the records of one shuffle.
#[derive(Serialize, Deserialize)]
#[serde(bound = "K: 'static, V: 'static, C: 'static")]
pub(crate) struct ShuffleSpec<K, V, C> {
    #[serde(with = "wire::erased")]
    pub(crate) partitioner: PartitionerRef<K>,
    /// Combine values with equal keys (reduce side, and map side when `map_side_combine`).
    #[serde(with = "wire::erased_opt")]
    pub(crate) aggregator: Option<Arc<dyn AggregatorSpec<K, V, C>>>,
    pub(crate) map_side_combine: bool,
    /// Sort each reduce partition by key.
    #[serde(with = "wire::erased_opt")]
    pub(crate) key_ordering: Option<Arc<dyn KeyOrderSpec<K>>>,
}

/// A shuffle of `(K, V)` records into partitions of `(K, C)`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "K: Key, V: Data, C: Data")]
pub(crate) struct ShuffleDependency<K, V, C> {
    id: ShuffleId,
    label: String,
    #[serde(with = "wire::node_ref")]
    parent: Arc<dyn Compute<(K, V)>>,
    #[serde(with = "wire::arc")]
    spec: Arc<ShuffleSpec<K, V, C>>,
    /// Where this shuffle's outputs are kept, to delete them when no RDD can read them again
    /// (as Spark's `ContextCleaner`): iterative jobs would otherwise fill the disk. Not
    /// shipped: a decoded dependency deletes nothing when dropped.
    #[serde(skip)]
    env: Weak<ExecutorEnv>,
}

impl<K, V, C> Drop for ShuffleDependency<K, V, C> {
    fn drop(&mut self) {
        if let Some(env) = self.env.upgrade() {
            env.map_outputs.remove_shuffle(self.id);
            if let Err(e) = env.shuffle.dirs.remove_shuffle(self.id.0) {
                tracing::warn!(shuffle = %self.id, error = %crate::error::report(&e), "cannot delete shuffle files");
            }
            // Executors (distributed mode) delete their files of it too.
            env.shuffle_removed(self.id);
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
            (Some(agg), true) => shuffle::write_combined(records, &partition_of, n, &agg.build(), &files, env),
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

    fn encode(&self) -> Result<Encoded<Arc<dyn ShuffleDep>>> {
        Encoded::new(self, decode_shuffle_dep::<Self>)
    }
}

/// The reduce side of a shuffle: `(K, C)` records.
#[derive(Serialize, Deserialize)]
#[serde(bound = "K: Key, V: Data, C: Data")]
pub(crate) struct ShuffledNode<K, V, C> {
    meta: NodeMeta,
    shuffle: ShuffleId,
    #[serde(with = "wire::arc")]
    spec: Arc<ShuffleSpec<K, V, C>>,
    /// The map side, on the driver only: a reduce task reads shuffle blocks and needs no
    /// lineage beyond this node (a decoded node has no dependencies).
    #[serde(skip)]
    dep: Option<Arc<ShuffleDependency<K, V, C>>>,
}

impl<K: Key, V: Data, C: Data> RddNode for ShuffledNode<K, V, C> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.spec.partitioner.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        self.dep
            .iter()
            .map(|d| Dependency::Shuffle(d.clone() as Arc<dyn ShuffleDep>))
            .collect()
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
                raise_fetch_failed(
                    self.shuffle,
                    map_id,
                    self.reduce_id,
                    Some(output.files.data.clone()),
                    detail,
                )
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
        let spec = &self.spec;
        let id = self.shuffle;
        let env = tc.env().shuffle.clone();
        let shuffle_err = |source| EngineError::Shuffle { shuffle: id, source };
        match &spec.aggregator {
            Some(agg) => {
                let mut table = ExternalAggregator::new(agg.build(), env.clone());
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
                    Some(order) => sort_stream(id, combined, order.build(), env),
                }
            }
            // Without an aggregator the map side wrote `(K, V)` records and `C` is `V` (see
            // `Rdd::shuffle_plain`, the only way to build one), so the blocks decode as `(K, C)`.
            None => {
                let records: BoxIter<(K, C)> = Box::new(block_stream::<K, C>(id, split, tc));
                match &spec.key_ordering {
                    None => Ok(records),
                    Some(order) => sort_stream(id, records, order.build(), env),
                }
            }
        }
    }

    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<(K, C)>>>> {
        wire::encode_node(self)
    }
}

fn sort_stream<K: Key, C: Data>(
    id: ShuffleId,
    records: BoxIter<(K, C)>,
    cmp: KeyOrdering<K>,
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
        let spec = Arc::new(spec);
        let dep = Arc::new(ShuffleDependency {
            id: self.ctx.new_shuffle_id(),
            label: meta.label(),
            parent: self.node.clone(),
            spec: spec.clone(),
            env: Arc::downgrade(self.ctx.env()),
        });
        let node = ShuffledNode {
            meta,
            shuffle: dep.id,
            spec,
            dep: Some(dep),
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }

    /// Shuffles without combining: `(K, V)` records land in `partitioner`'s partitions,
    /// sorted by key when `key_ordering` is given.
    #[track_caller]
    pub(crate) fn shuffle_plain(
        &self,
        op: &str,
        partitioner: PartitionerRef<K>,
        key_ordering: Option<Arc<dyn KeyOrderSpec<K>>>,
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
