//! `coalesce` without a shuffle: each new partition reads a contiguous range of parent partitions.

use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::data::Data;
use crate::error::Result;
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct CoalescedNode<T> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    parent: Arc<dyn Compute<T>>,
    target: usize,
}

impl<T> CoalescedNode<T> {
    /// Parent partitions of new partition `split`: `[split*n/t, (split+1)*n/t)`.
    fn parents_of(&self, split: usize, parent_partitions: usize) -> std::ops::Range<usize> {
        let t = self.target.min(parent_partitions).max(1);
        (split * parent_partitions / t)..((split + 1) * parent_partitions / t)
    }
}

impl<T: Data> RddNode for CoalescedNode<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.target.min(self.parent.num_partitions())
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(self.parent.clone())]
    }
}

impl<T: Data> Compute<T> for CoalescedNode<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        let range = self.parents_of(split, self.parent.num_partitions());
        let mut parts = Vec::with_capacity(range.len());
        for p in range {
            parts.push(iterator(&self.parent, p, tc)?);
        }
        Ok(Box::new(parts.into_iter().flatten()))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<T>>>> {
        wire::encode_node(self)
    }
}

impl<T: Data> Rdd<T> {
    /// Fewer partitions, without a shuffle: each new partition concatenates neighbouring ones.
    /// Asking for more partitions than there are changes nothing (use `repartition`).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let rdd = ctx.range(0, 10, 5).coalesce(2);
    /// assert_eq!(rdd.num_partitions(), 2);
    /// assert_eq!(rdd.count().unwrap(), 10);
    /// ```
    #[track_caller]
    pub fn coalesce(&self, num_partitions: usize) -> Rdd<T> {
        let node = CoalescedNode {
            meta: NodeMeta::new(&self.ctx, "coalesce", Location::caller()),
            parent: self.node.clone(),
            target: num_partitions.max(1),
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }
}
