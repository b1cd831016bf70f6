//! `zip`, `zip_partitions` and `zip_with_index`.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::context::Context;
use crate::data::Data;
use crate::error::{EngineError, Result};
use crate::func::{Fun2, Shipped2};
use crate::task_context::{TaskContext, raise};
use crate::wire::{self, Encoded};

/// Two RDDs with the same number of partitions, combined partition by partition.
#[derive(Serialize, Deserialize)]
#[serde(bound = "A: Data, B: Data, F: ZipFn<A, B, U>")]
pub(crate) struct ZipPartitionsNode<A, B, U, F> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    left: Arc<dyn Compute<A>>,
    #[serde(with = "wire::node_ref")]
    right: Arc<dyn Compute<B>>,
    #[serde(with = "wire::arc")]
    f: Arc<F>,
    _out: PhantomData<fn() -> U>,
}

impl<A: Data, B: Data, U: Data, F: ZipFn<A, B, U>> RddNode for ZipPartitionsNode<A, B, U, F> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.left.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![
            Dependency::Narrow(self.left.clone()),
            Dependency::Narrow(self.right.clone()),
        ]
    }
    fn prepare(&self, _ctx: &Context) -> Result<()> {
        let (l, r) = (self.left.num_partitions(), self.right.num_partitions());
        if l != r {
            return Err(EngineError::invalid(
                &format!("{} partitions", self.meta.label()),
                format!("{l} and {r}"),
                "both RDDs must have the same number of partitions",
            ));
        }
        Ok(())
    }
}

impl<A: Data, B: Data, U: Data, F: ZipFn<A, B, U>> Compute<U> for ZipPartitionsNode<A, B, U, F> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<U>> {
        let a = iterator(&self.left, split, tc)?;
        let b = iterator(&self.right, split, tc)?;
        Ok(self.f.clone().apply(split, &self.meta.label(), a, b))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<U>>>> {
        wire::encode_node(self)
    }
}

pub(crate) trait ZipFn<A, B, U>: Serialize + DeserializeOwned + Send + Sync + 'static {
    fn apply(self: Arc<Self>, split: usize, label: &str, a: BoxIter<A>, b: BoxIter<B>) -> BoxIter<U>;
}

#[derive(Serialize, Deserialize)]
struct PairUp;
impl<A: Data, B: Data> ZipFn<A, B, (A, B)> for PairUp {
    fn apply(self: Arc<Self>, split: usize, label: &str, mut a: BoxIter<A>, mut b: BoxIter<B>) -> BoxIter<(A, B)> {
        let label = label.to_string();
        Box::new(std::iter::from_fn(move || match (a.next(), b.next()) {
            (Some(x), Some(y)) => Some((x, y)),
            (None, None) => None,
            _ => raise(EngineError::invalid(
                &format!("{label}, partition {split}"),
                "unequal element counts",
                "zip needs the same number of elements in each partition",
            )),
        }))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun2<BoxIter<A>, BoxIter<B>, I>")]
struct UserZip<F, A, B, I>(Shipped2<F, BoxIter<A>, BoxIter<B>, I>);
impl<A: Data, B: Data, U: Data, I, F> ZipFn<A, B, U> for UserZip<F, A, B, I>
where
    F: Fun2<BoxIter<A>, BoxIter<B>, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, _label: &str, a: BoxIter<A>, b: BoxIter<B>) -> BoxIter<U> {
        Box::new(self.0.f.call2(a, b).into_iter())
    }
}

/// Elements paired with their index in the whole RDD (partition order, then position). Ships
/// with the partition offsets counted on the driver (`prepare`).
#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct ZipWithIndexNode<T> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    parent: Arc<dyn Compute<T>>,
    #[serde(with = "wire::once_lock")]
    offsets: OnceLock<Vec<u64>>,
}

impl<T: Data> RddNode for ZipWithIndexNode<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(self.parent.clone())]
    }
    /// As Spark, counting the partitions takes a job (all partitions but the last).
    fn prepare(&self, ctx: &Context) -> Result<()> {
        if self.offsets.get().is_some() {
            return Ok(());
        }
        let parent = Rdd::from_node(ctx, self.parent.clone());
        let n = parent.num_partitions();
        let counts = if n > 1 {
            let counting = parent.map_partitions(|it: BoxIter<T>| std::iter::once(it.count() as u64));
            ctx.run_job(&counting, &(0..n - 1).collect::<Vec<_>>())?
        } else {
            Vec::new()
        };
        let mut offsets = Vec::with_capacity(n);
        let mut acc = 0u64;
        offsets.push(0);
        for c in counts.into_iter().flatten() {
            acc += c;
            offsets.push(acc);
        }
        let _ = self.offsets.set(offsets);
        Ok(())
    }
}

impl<T: Data> Compute<(T, u64)> for ZipWithIndexNode<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(T, u64)>> {
        let start = self
            .offsets
            .get()
            .and_then(|o| o.get(split).copied())
            .ok_or_else(|| EngineError::Internal("zip_with_index offsets not prepared".into()))?;
        let it = iterator(&self.parent, split, tc)?;
        Ok(Box::new(it.zip(start..)))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<(T, u64)>>>> {
        wire::encode_node(self)
    }
}

impl<T: Data> Rdd<T> {
    /// Pairs the i-th element of each partition of `self` with that of `other`. Both must have
    /// the same number of partitions and of elements per partition (else the action fails).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.range(0, 3, 2);
    /// let b = a.map(|x: i64| x * x);
    /// assert_eq!(a.zip(&b).collect().unwrap(), vec![(0, 0), (1, 1), (2, 4)]);
    /// ```
    #[track_caller]
    pub fn zip<U: Data>(&self, other: &Rdd<U>) -> Rdd<(T, U)> {
        let node = ZipPartitionsNode {
            meta: NodeMeta::new(&self.ctx, "zip", Location::caller()),
            left: self.node.clone(),
            right: other.node.clone(),
            f: Arc::new(PairUp),
            _out: PhantomData,
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }

    /// Combines partition `i` of `self` and of `other` with `f`.
    #[track_caller]
    pub fn zip_partitions<U: Data, V: Data, I, F>(&self, other: &Rdd<U>, f: F) -> Rdd<V>
    where
        F: Fun2<BoxIter<T>, BoxIter<U>, I>,
        I: IntoIterator<Item = V> + 'static,
        I::IntoIter: 'static,
    {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        let node = ZipPartitionsNode {
            meta: NodeMeta::new(&self.ctx, "zip_partitions", Location::caller()),
            left: self.node.clone(),
            right: other.node.clone(),
            f: Arc::new(UserZip(Shipped2::new(f))),
            _out: PhantomData,
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }

    /// Pairs each element with its global index. Like Spark, this runs a job to count the
    /// partitions (when the first action on the result runs).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let z = ctx.parallelize(vec!['a', 'b', 'c'], 2).zip_with_index();
    /// assert_eq!(z.collect().unwrap(), vec![('a', 0), ('b', 1), ('c', 2)]);
    /// ```
    #[track_caller]
    pub fn zip_with_index(&self) -> Rdd<(T, u64)> {
        let node = ZipWithIndexNode {
            meta: NodeMeta::new(&self.ctx, "zip_with_index", Location::caller()),
            parent: self.node.clone(),
            offsets: OnceLock::new(),
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }
}
