//! `cartesian`: every pair of elements; partition (i, j) pairs left partition i with right partition j.

use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::data::Data;
use crate::error::Result;
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

#[derive(Serialize, Deserialize)]
#[serde(bound = "A: Data, B: Data")]
pub(crate) struct CartesianNode<A, B> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    left: Arc<dyn Compute<A>>,
    #[serde(with = "wire::node_ref")]
    right: Arc<dyn Compute<B>>,
}

impl<A: Data, B: Data> RddNode for CartesianNode<A, B> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.left.num_partitions() * self.right.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![
            Dependency::Narrow(self.left.clone()),
            Dependency::Narrow(self.right.clone()),
        ]
    }
}

impl<A: Data, B: Data> Compute<(A, B)> for CartesianNode<A, B> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(A, B)>> {
        let n = self.right.num_partitions();
        let (i, j) = (split / n, split % n);
        // The right partition is held in memory and replayed for each left element.
        let right: Arc<Vec<B>> = Arc::new(iterator(&self.right, j, tc)?.collect());
        let left = iterator(&self.left, i, tc)?;
        Ok(Box::new(left.flat_map(move |a| {
            let right = right.clone();
            (0..right.len()).map(move |k| (a.clone(), right[k].clone()))
        })))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<(A, B)>>>> {
        wire::encode_node(self)
    }
}

impl<T: Data> Rdd<T> {
    /// All pairs `(a, b)` with `a` from `self` and `b` from `other`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let c = ctx.range(0, 2, 1).cartesian(&ctx.parallelize(vec!['x', 'y'], 1));
    /// assert_eq!(c.collect().unwrap(), vec![(0, 'x'), (0, 'y'), (1, 'x'), (1, 'y')]);
    /// ```
    #[track_caller]
    pub fn cartesian<U: Data>(&self, other: &Rdd<U>) -> Rdd<(T, U)> {
        let node = CartesianNode {
            meta: NodeMeta::new(&self.ctx, "cartesian", Location::caller()),
            left: self.node.clone(),
            right: other.node.clone(),
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }
}
