//! `union`: the partitions of several RDDs, one after another.

use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::data::Data;
use crate::error::{EngineError, Result};
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct UnionNode<T> {
    meta: NodeMeta,
    #[serde(with = "wire::node_refs")]
    parents: Vec<Arc<dyn Compute<T>>>,
}

impl<T: Data> RddNode for UnionNode<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.parents.iter().map(|p| p.num_partitions()).sum()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        self.parents
            .iter()
            .map(|p| Dependency::Narrow(p.clone() as Arc<dyn RddNode>))
            .collect()
    }
}

impl<T: Data> Compute<T> for UnionNode<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        let mut local = split;
        for parent in &self.parents {
            let n = parent.num_partitions();
            if local < n {
                return iterator(parent, local, tc);
            }
            local -= n;
        }
        Err(EngineError::Internal(format!("union has no partition {split}")))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<T>>>> {
        wire::encode_node(self)
    }
}

impl<T: Data> Rdd<T> {
    /// The elements of both RDDs (duplicates kept); partitions are concatenated.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let both = ctx.parallelize(vec![1, 2], 1).union(&ctx.parallelize(vec![2, 3], 1));
    /// assert_eq!(both.collect().unwrap(), vec![1, 2, 2, 3]);
    /// ```
    #[track_caller]
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        self.ctx.union(&[self.clone(), other.clone()])
    }
}

impl crate::context::Context {
    /// The union of several RDDs.
    #[track_caller]
    pub fn union<T: Data>(&self, rdds: &[Rdd<T>]) -> Rdd<T> {
        let node = UnionNode {
            meta: NodeMeta::new(self, "union", Location::caller()),
            parents: rdds.iter().map(|r| r.node.clone()).collect(),
        };
        Rdd::from_node(self, Arc::new(node))
    }
}
