//! The typed RDD handle and the type-erased lineage graph behind it.
//!
//! Users hold [`Rdd<T>`]: a cheap handle (an `Arc` to a node plus the context). The scheduler
//! sees nodes through [`RddNode`] (id, partitions, dependencies) and computes them through
//! [`Compute<T>`]. Every node type is a plain struct with one file in this module; every node
//! holds its parents as `Arc<dyn Compute<_>>`, so narrow transformations pipeline: computing
//! partition `p` of a node pulls partition `p` (or the partitions it depends on) through its
//! parents' iterators, and nothing in between is materialised unless persisted.
//!
//! Every node can be shipped to another process of the same build: it is a serde struct (its
//! functions are serialisable partition functions, its parents go through `wire::node_ref`)
//! and `Compute::encode` names its monomorphised decoder (see `wire` and `ship`).

mod actions;
mod cartesian;
mod checkpoint;
mod coalesce;
mod narrow;
mod numeric;
mod pair;
mod pipe;
mod sample;
mod shared;
mod shuffle_ops;
mod shuffled;
mod source;
mod text;
mod union;
mod zip;

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context::Context;
use crate::data::Data;
use crate::error::Result;
use crate::ids::RddId;
use crate::storage::StorageLevel;
use crate::task_context::{TaskContext, raise};
use crate::wire::Encoded;

pub use actions::LocalIterator;
pub(crate) use checkpoint::CheckpointState;
pub(crate) use narrow::{PartitionWith, PerPartition};
pub use numeric::{Numeric, StatCounter};
pub(crate) use sample::partition_rng;
pub(crate) use shuffled::{ShuffleDep, ShuffleSpec};

/// An iterator over one partition's elements.
pub type BoxIter<T> = Box<dyn Iterator<Item = T>>;

/// What every node has: identity, the operation and call site that made it, and its
/// persistence and checkpoint state (shared by all handles to the node).
///
/// Shipped with its node: id (executors cache partitions by it), op, call site, storage level,
/// and the checkpoint directory once the checkpoint is written (a marked, unwritten checkpoint
/// stays on the driver).
pub(crate) struct NodeMeta {
    pub(crate) id: RddId,
    pub(crate) op: String,
    pub(crate) callsite: String,
    storage: AtomicU8,
    pub(crate) checkpoint: Mutex<CheckpointState>,
}

#[derive(Serialize)]
struct NodeMetaOut<'a> {
    id: RddId,
    op: &'a str,
    callsite: &'a str,
    storage: u8,
    checkpoint: Option<PathBuf>,
}

#[derive(Deserialize)]
struct NodeMetaIn {
    id: RddId,
    op: String,
    callsite: String,
    storage: u8,
    checkpoint: Option<PathBuf>,
}

impl Serialize for NodeMeta {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let checkpoint = match &*self.checkpoint.lock().expect("checkpoint state lock") {
            CheckpointState::Done { dir } => Some(dir.clone()),
            _ => None,
        };
        NodeMetaOut {
            id: self.id,
            op: &self.op,
            callsite: &self.callsite,
            storage: self.storage.load(Ordering::Relaxed),
            checkpoint,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let m = NodeMetaIn::deserialize(d)?;
        Ok(NodeMeta {
            id: m.id,
            op: m.op,
            callsite: m.callsite,
            storage: AtomicU8::new(m.storage),
            checkpoint: Mutex::new(match m.checkpoint {
                Some(dir) => CheckpointState::Done { dir },
                None => CheckpointState::None,
            }),
        })
    }
}

impl NodeMeta {
    pub(crate) fn new(ctx: &Context, op: &str, callsite: &Location<'_>) -> Self {
        NodeMeta {
            id: ctx.new_rdd_id(),
            op: op.to_string(),
            callsite: format!("{}:{}", short_file(callsite.file()), callsite.line()),
            storage: AtomicU8::new(0),
            checkpoint: Mutex::new(CheckpointState::None),
        }
    }

    pub(crate) fn storage_level(&self) -> Option<StorageLevel> {
        match self.storage.load(Ordering::Relaxed) {
            1 => Some(StorageLevel::MemoryOnly),
            2 => Some(StorageLevel::MemoryAndDisk),
            3 => Some(StorageLevel::DiskOnly),
            _ => None,
        }
    }

    fn set_storage_level(&self, level: Option<StorageLevel>) {
        let code = match level {
            None => 0,
            Some(StorageLevel::MemoryOnly) => 1,
            Some(StorageLevel::MemoryAndDisk) => 2,
            Some(StorageLevel::DiskOnly) => 3,
        };
        self.storage.store(code, Ordering::Relaxed);
    }

    /// "map at wordcount.rs:12"
    pub(crate) fn label(&self) -> String {
        format!("{} at {}", self.op, self.callsite)
    }
}

fn short_file(file: &str) -> &str {
    file.rsplit(['/', '\\']).next().unwrap_or(file)
}

/// A dependency of a node on a parent.
#[derive(Clone)]
pub(crate) enum Dependency {
    /// Each partition needs a few parent partitions, computed in the same task.
    Narrow(Arc<dyn RddNode>),
    /// Each partition needs a piece of every parent partition: a stage boundary.
    Shuffle(Arc<dyn ShuffleDep>),
}

/// What the scheduler needs to know about a node, whatever its element type.
pub(crate) trait RddNode: Send + Sync + 'static {
    fn meta(&self) -> &NodeMeta;
    fn num_partitions(&self) -> usize;
    fn dependencies(&self) -> Vec<Dependency>;
    /// Driver-side work needed before a job can use this node (listing input files, sampling
    /// keys for a range partitioner, counting partitions). Runs before stages are built.
    fn prepare(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
}

/// Computes one partition of a node as an iterator of `T`.
pub(crate) trait Compute<T>: RddNode {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>>;
    /// Encodes this node for another process of this build: its decoder and its bytes,
    /// parents included (`wire::encode_node(self)` in every implementation). Use
    /// [`encode_lineage_node`], which encodes a checkpointed node as a reader of its files.
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<T>>>>;
}

/// Encodes `node` and its lineage; a node whose checkpoint is written travels as a reader of
/// its checkpoint files, without its parents.
pub(crate) fn encode_lineage_node<T: Data>(node: &Arc<dyn Compute<T>>) -> Result<Encoded<Arc<dyn Compute<T>>>> {
    if node.meta().checkpoint.lock().expect("checkpoint state lock").is_done() {
        return checkpoint::encode_checkpointed(&**node);
    }
    node.encode()
}

/// The lineage as the scheduler sees it: a checkpointed node has no parents.
pub(crate) fn lineage_deps(node: &dyn RddNode) -> Vec<Dependency> {
    if node.meta().checkpoint.lock().expect("checkpoint state lock").is_done() {
        Vec::new()
    } else {
        node.dependencies()
    }
}

/// Computes partition `split` of `node`, through the cache or checkpoint when there is one.
/// Every node computes its parents through this function.
pub(crate) fn iterator<T: Data>(node: &Arc<dyn Compute<T>>, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
    let meta = node.meta();
    if let Some(path) = checkpoint::done_path(meta, split) {
        return checkpoint::read_partition::<T>(&path);
    }
    match meta.storage_level() {
        None => node.compute(split, tc),
        Some(level) => {
            let blocks = &tc.env().blocks;
            if let Some(items) = blocks.get::<T>(meta.id, split)? {
                return Ok(Box::new(SharedVecIter::new(items)));
            }
            let items: Vec<T> = node.compute(split, tc)?.collect();
            let items = Arc::new(items);
            blocks.put(meta.id, split, level, items.clone());
            Ok(Box::new(SharedVecIter::new(items)))
        }
    }
}

/// Partition `split` of `node` as one shared vector: the cached vector itself when `node` is
/// cached (no element is cloned; computed and cached first if it is not there yet), else the
/// partition computed (or read from its checkpoint) and collected.
pub(crate) fn shared_partition<T: Data>(
    node: &Arc<dyn Compute<T>>,
    split: usize,
    tc: &TaskContext,
) -> Result<Arc<Vec<T>>> {
    let meta = node.meta();
    if let Some(path) = checkpoint::done_path(meta, split) {
        return Ok(Arc::new(checkpoint::read_partition::<T>(&path)?.collect()));
    }
    let items = match meta.storage_level() {
        None => Arc::new(node.compute(split, tc)?.collect()),
        Some(level) => {
            let blocks = &tc.env().blocks;
            if let Some(items) = blocks.get::<T>(meta.id, split)? {
                return Ok(items);
            }
            let items: Arc<Vec<T>> = Arc::new(node.compute(split, tc)?.collect());
            blocks.put(meta.id, split, level, items.clone());
            items
        }
    };
    Ok(items)
}

/// Iterates a shared (cached) vector by cloning its elements.
pub(crate) struct SharedVecIter<T> {
    items: Arc<Vec<T>>,
    next: usize,
}

impl<T> SharedVecIter<T> {
    pub(crate) fn new(items: Arc<Vec<T>>) -> Self {
        SharedVecIter { items, next: 0 }
    }
}

impl<T: Clone> Iterator for SharedVecIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let item = self.items.get(self.next)?.clone();
        self.next += 1;
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.items.len() - self.next;
        (left, Some(left))
    }
}

/// A resilient distributed dataset of `T`: an immutable, partitioned collection defined by its
/// lineage. Transformations are lazy and return new RDDs; actions run jobs and return results.
///
/// ```
/// use flint_engine::Context;
/// let ctx = Context::local(2).unwrap();
/// let squares = ctx.parallelize(vec![1, 2, 3, 4], 2).map(|x: i32| x * x);
/// assert_eq!(squares.collect().unwrap(), vec![1, 4, 9, 16]);
/// ```
pub struct Rdd<T> {
    pub(crate) node: Arc<dyn Compute<T>>,
    pub(crate) ctx: Context,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd {
            node: self.node.clone(),
            ctx: self.ctx.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: 'static> fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rdd[{}] ({})", self.node.meta().id, self.node.meta().label())
    }
}

impl<T: Data> Rdd<T> {
    pub(crate) fn from_node(ctx: &Context, node: Arc<dyn Compute<T>>) -> Self {
        Rdd {
            node,
            ctx: ctx.clone(),
            _item: PhantomData,
        }
    }

    pub(crate) fn erased(&self) -> Arc<dyn RddNode> {
        self.node.clone()
    }

    /// This RDD's id.
    pub fn id(&self) -> RddId {
        self.node.meta().id
    }

    /// The context this RDD belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.node.num_partitions()
    }

    /// Keeps computed partitions at `level` so that later jobs reuse them.
    pub fn persist(&self, level: StorageLevel) -> Rdd<T> {
        self.node.meta().set_storage_level(Some(level));
        self.clone()
    }

    /// `persist(StorageLevel::MemoryOnly)`.
    pub fn cache(&self) -> Rdd<T> {
        self.persist(StorageLevel::MemoryOnly)
    }

    /// Stops caching this RDD and drops its cached partitions.
    pub fn unpersist(&self) -> Rdd<T> {
        self.node.meta().set_storage_level(None);
        self.ctx.env().blocks.remove_rdd(self.id());
        self.clone()
    }

    /// The storage level set by `persist`, if any.
    pub fn storage_level(&self) -> Option<StorageLevel> {
        self.node.meta().storage_level()
    }

    /// Marks this RDD for checkpointing: after the next job that computes it, its partitions
    /// are saved under the context's checkpoint directory and its lineage is cut. Persist it
    /// first, or it is computed twice.
    pub fn checkpoint(&self) -> Result<()> {
        checkpoint::mark_rdd(self)
    }

    /// Whether this RDD has been checkpointed (its lineage cut).
    pub fn is_checkpointed(&self) -> bool {
        self.node
            .meta()
            .checkpoint
            .lock()
            .expect("checkpoint state lock")
            .is_done()
    }

    /// The lineage, one node per line, indented at shuffle boundaries (as Spark's
    /// `toDebugString`): `(2) reduce_by_key at wc.rs:11 [3]`.
    pub fn to_debug_string(&self) -> String {
        let mut out = String::new();
        let mut seen = HashSet::new();
        describe(&*self.node, 0, &mut out, &mut seen);
        out
    }
}

fn describe(node: &dyn RddNode, depth: usize, out: &mut String, seen: &mut HashSet<RddId>) {
    let meta = node.meta();
    let indent = "  ".repeat(depth);
    let mut flags = Vec::new();
    if let Some(level) = meta.storage_level() {
        flags.push(format!("{level:?}"));
    }
    if meta.checkpoint.lock().expect("checkpoint state lock").is_done() {
        flags.push("checkpointed".to_string());
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    out.push_str(&format!(
        "{indent}({}) {}[{}] at {}{flags}\n",
        node.num_partitions(),
        meta.op,
        meta.id,
        meta.callsite
    ));
    if !seen.insert(meta.id) {
        return;
    }
    for dep in lineage_deps(node) {
        match dep {
            Dependency::Narrow(parent) => describe(&*parent, depth, out, seen),
            Dependency::Shuffle(shuffle) => {
                out.push_str(&format!("{indent}+- shuffle {}\n", shuffle.shuffle_id()));
                describe(&*shuffle.map_side(), depth + 1, out, seen);
            }
        }
    }
}

/// Every node reachable from `root` (through narrow and shuffle dependencies), each once.
pub(crate) fn walk_lineage(
    root: &Arc<dyn RddNode>,
    mut visit: impl FnMut(&Arc<dyn RddNode>) -> Result<()>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        if !seen.insert(node.meta().id) {
            continue;
        }
        visit(&node)?;
        for dep in lineage_deps(&*node) {
            match dep {
                Dependency::Narrow(parent) => stack.push(parent),
                Dependency::Shuffle(s) => stack.push(s.map_side()),
            }
        }
    }
    Ok(())
}

/// Unwraps a result inside a task pipeline, leaving the task on error.
pub(crate) fn or_raise<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| raise(e))
}

/// After a job: writes the checkpoints marked in its lineage.
pub(crate) fn write_marked_checkpoints(ctx: &Context, root: &Arc<dyn RddNode>) -> Result<()> {
    checkpoint::write_marked(ctx, root)
}
