//! RDDs made from driver memory: `parallelize`, `range`, `empty`.

use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, SharedVecIter};
use crate::broadcast::Broadcast;
use crate::context::Context;
use crate::data::Data;
use crate::env::ExecutorEnv;
use crate::error::Result;
use crate::ids::BroadcastId;
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

/// A driver-side vector cut into slices, as Spark's `ParallelCollectionRDD`: slice `i` holds
/// elements `[i*len/n, (i+1)*len/n)`.
///
/// Each slice is a broadcast ([`Slices`]): in process every task shares the driver's slices; a
/// shipped task carries only their ids, and an executor fetches (once, for every later job)
/// the slices its tasks compute. Spark ships a slice with each task of each job: an iterative
/// job over `parallelize`d rows would send them again every iteration, even cached.
#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct ParallelCollection<T> {
    meta: NodeMeta,
    slices: Slices<T>,
}

impl<T: Data> ParallelCollection<T> {
    pub(crate) fn new(ctx: &Context, op: &str, callsite: &Location<'_>, data: Vec<T>, num_slices: usize) -> Self {
        let n = num_slices.max(1);
        let len = data.len();
        let mut slices = Vec::with_capacity(n);
        let mut rest = data.into_iter();
        for i in 0..n {
            let start = i * len / n;
            let end = (i + 1) * len / n;
            slices.push(ctx.broadcast(rest.by_ref().take(end - start).collect()));
        }
        ParallelCollection {
            meta: NodeMeta::new(ctx, op, callsite),
            slices: Slices::Driver(slices),
        }
    }
}

/// The slices of a [`ParallelCollection`]: the driver's broadcasts, or, decoded in an executor,
/// their ids and the executor's broadcast cache, which fetches a slice when a task first
/// computes it (not every slice when a task is decoded).
enum Slices<T> {
    Driver(Vec<Broadcast<Vec<T>>>),
    Executor {
        ids: Vec<BroadcastId>,
        env: Arc<ExecutorEnv>,
    },
}

impl<T: Data> Slices<T> {
    fn len(&self) -> usize {
        match self {
            Slices::Driver(b) => b.len(),
            Slices::Executor { ids, .. } => ids.len(),
        }
    }

    fn get(&self, split: usize) -> Result<Arc<Vec<T>>> {
        match self {
            Slices::Driver(b) => Ok(b[split].shared()),
            Slices::Executor { ids, env } => env.broadcasts.value::<Vec<T>>(ids[split]),
        }
    }
}

/// Only the ids travel.
impl<T: Data> Serialize for Slices<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Slices::Driver(b) => s.collect_seq(b.iter().map(|b| b.id())),
            Slices::Executor { ids, .. } => ids.serialize(s),
        }
    }
}

impl<'de, T: Data> Deserialize<'de> for Slices<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let ids = Vec::<BroadcastId>::deserialize(d)?;
        let env = wire::decoding_env().ok_or_else(|| {
            serde::de::Error::custom(
                "parallelized slices can only be decoded with a task, where an executor's broadcast cache is available",
            )
        })?;
        Ok(Slices::Executor { ids, env })
    }
}

impl<T: Data> RddNode for ParallelCollection<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.slices.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl<T: Data> Compute<T> for ParallelCollection<T> {
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        Ok(Box::new(SharedVecIter::new(self.slices.get(split)?)))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<T>>>> {
        wire::encode_node(self)
    }
}

/// Integers `start, start+step, ...` below `end`, split evenly.
#[derive(Serialize, Deserialize)]
pub(crate) struct RangeNode {
    meta: NodeMeta,
    start: i64,
    end: i64,
    step: i64,
    slices: usize,
}

impl RangeNode {
    fn count(&self) -> u64 {
        if (self.step > 0 && self.start >= self.end) || (self.step < 0 && self.start <= self.end) {
            return 0;
        }
        let span = (self.end as i128 - self.start as i128).unsigned_abs();
        let step = (self.step as i128).unsigned_abs();
        span.div_ceil(step) as u64
    }
}

impl RddNode for RangeNode {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.slices
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl Compute<i64> for RangeNode {
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<i64>> {
        let n = self.count() as u128;
        let lo = (split as u128 * n / self.slices as u128) as i64;
        let hi = ((split as u128 + 1) * n / self.slices as u128) as i64;
        let (start, step) = (self.start, self.step);
        Ok(Box::new((lo..hi).map(move |i| start + i * step)))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<i64>>>> {
        wire::encode_node(self)
    }
}

impl Context {
    /// Distributes a local vector into `num_slices` partitions.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let rdd = ctx.parallelize(vec![1, 2, 3], 2);
    /// assert_eq!(rdd.num_partitions(), 2);
    /// ```
    #[track_caller]
    pub fn parallelize<T: Data>(&self, data: Vec<T>, num_slices: usize) -> Rdd<T> {
        let node = ParallelCollection::new(self, "parallelize", Location::caller(), data, num_slices);
        Rdd::from_node(self, Arc::new(node))
    }

    /// The integers `start..end` in `num_slices` partitions.
    #[track_caller]
    pub fn range(&self, start: i64, end: i64, num_slices: usize) -> Rdd<i64> {
        self.range_step(start, end, 1, num_slices)
    }

    /// `start, start+step, ...` up to (excluding) `end`; `step` may be negative, not zero.
    #[track_caller]
    pub fn range_step(&self, start: i64, end: i64, step: i64, num_slices: usize) -> Rdd<i64> {
        let step = if step == 0 { 1 } else { step };
        let node = RangeNode {
            meta: NodeMeta::new(self, "range", Location::caller()),
            start,
            end,
            step,
            slices: num_slices.max(1),
        };
        Rdd::from_node(self, Arc::new(node))
    }

    /// An RDD with no partitions and no elements.
    #[track_caller]
    pub fn empty<T: Data>(&self) -> Rdd<T> {
        let node = ParallelCollection::<T> {
            meta: NodeMeta::new(self, "empty", Location::caller()),
            slices: Slices::Driver(Vec::new()),
        };
        Rdd::from_node(self, Arc::new(node))
    }
}
