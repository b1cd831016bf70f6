//! Element-wise and partition-wise transformations: one node type, many functions.
//!
//! `map`, `filter`, `flat_map`, `map_partitions`, `glom`, `key_by`... all build a
//! [`MapPartitionsNode`] whose function turns the parent partition's iterator into this
//! partition's iterator, so a chain of them runs as one loop in one task.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::data::Data;
use crate::error::Result;
use crate::func::{Fun1, Fun2};
use crate::task_context::TaskContext;

/// Turns one partition's input iterator into its output iterator.
pub(crate) trait PartitionFn<T, U>: Send + Sync + 'static {
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U>;
}

pub(crate) struct MapPartitionsNode<T, U, P> {
    meta: NodeMeta,
    parent: Arc<dyn Compute<T>>,
    f: Arc<P>,
    _types: PhantomData<fn(T) -> U>,
}

impl<T: Data, U: Data, P: PartitionFn<T, U>> RddNode for MapPartitionsNode<T, U, P> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(self.parent.clone())]
    }
}

impl<T: Data, U: Data, P: PartitionFn<T, U>> Compute<U> for MapPartitionsNode<T, U, P> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<U>> {
        let input = iterator(&self.parent, split, tc)?;
        Ok(self.f.clone().apply(split, input))
    }
}

pub(crate) struct MapFn<F>(F);
impl<T: 'static, U: 'static, F: Fun1<T, U>> PartitionFn<T, U> for MapFn<F> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(input.map(move |x| self.0.call1(x)))
    }
}

pub(crate) struct FilterFn<F>(F);
impl<T: 'static, F: for<'a> Fun1<&'a T, bool>> PartitionFn<T, T> for FilterFn<F> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<T> {
        Box::new(input.filter(move |x| self.0.call1(x)))
    }
}

pub(crate) struct FlatMapFn<F, I>(F, PhantomData<fn() -> I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for FlatMapFn<F, I>
where
    F: Fun1<T, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(input.flat_map(move |x| self.0.call1(x)))
    }
}

pub(crate) struct PartitionsFn<F, I>(F, PhantomData<fn() -> I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for PartitionsFn<F, I>
where
    F: Fun1<BoxIter<T>, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(self.0.call1(input).into_iter())
    }
}

pub(crate) struct PartitionsWithIndexFn<F, I>(F, PhantomData<fn() -> I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for PartitionsWithIndexFn<F, I>
where
    F: Fun2<usize, BoxIter<T>, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(self.0.call2(split, input).into_iter())
    }
}

impl<T: Data> Rdd<T> {
    #[track_caller]
    pub(crate) fn with_partition_fn<U: Data, P: PartitionFn<T, U>>(&self, op: &str, f: P) -> Rdd<U> {
        let node = MapPartitionsNode {
            meta: NodeMeta::new(&self.ctx, op, Location::caller()),
            parent: self.node.clone(),
            f: Arc::new(f),
            _types: PhantomData,
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let lens = ctx.parallelize(vec!["a".to_string(), "bcd".to_string()], 2).map(|s: String| s.len());
    /// assert_eq!(lens.collect().unwrap(), vec![1, 3]);
    /// ```
    #[track_caller]
    pub fn map<U: Data, F: Fun1<T, U>>(&self, f: F) -> Rdd<U> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.with_partition_fn("map", MapFn(f))
    }

    /// Keeps the elements for which `f` is true. Write the argument's type: `|x: &i64| *x > 0`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let even = ctx.range(0, 10, 3).filter(|x: &i64| x % 2 == 0);
    /// assert_eq!(even.collect().unwrap(), vec![0, 2, 4, 6, 8]);
    /// ```
    #[track_caller]
    pub fn filter<F: for<'a> Fun1<&'a T, bool>>(&self, f: F) -> Rdd<T> {
        #[allow(clippy::let_unit_value)]
        let () = <F as Fun1<&T, bool>>::SHIPPABLE;
        self.with_partition_fn("filter", FilterFn(f))
    }

    /// Applies `f` to every element and flattens the results.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let words = ctx.parallelize(vec!["a b".to_string(), "c".to_string()], 2)
    ///     .flat_map(|line: String| line.split(' ').map(String::from).collect::<Vec<_>>());
    /// assert_eq!(words.collect().unwrap(), vec!["a", "b", "c"]);
    /// ```
    #[track_caller]
    pub fn flat_map<U: Data, I, F>(&self, f: F) -> Rdd<U>
    where
        F: Fun1<T, I>,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.with_partition_fn("flat_map", FlatMapFn(f, PhantomData))
    }

    /// Applies `f` to each partition's iterator.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let sums = ctx.range(0, 4, 2).map_partitions(|it: flint_engine::BoxIter<i64>| std::iter::once(it.sum::<i64>()));
    /// assert_eq!(sums.collect().unwrap(), vec![1, 5]);
    /// ```
    #[track_caller]
    pub fn map_partitions<U: Data, I, F>(&self, f: F) -> Rdd<U>
    where
        F: Fun1<BoxIter<T>, I>,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.with_partition_fn("map_partitions", PartitionsFn(f, PhantomData))
    }

    /// Applies `f` to each partition's index and iterator.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let tagged = ctx.range(0, 4, 2).map_partitions_with_index(|i: usize, it: flint_engine::BoxIter<i64>| it.map(move |x| (i, x)));
    /// assert_eq!(tagged.collect().unwrap(), vec![(0, 0), (0, 1), (1, 2), (1, 3)]);
    /// ```
    #[track_caller]
    pub fn map_partitions_with_index<U: Data, I, F>(&self, f: F) -> Rdd<U>
    where
        F: Fun2<usize, BoxIter<T>, I>,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.with_partition_fn("map_partitions_with_index", PartitionsWithIndexFn(f, PhantomData))
    }

    /// Turns each partition into one vector.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(0, 4, 2).glom().collect().unwrap(), vec![vec![0, 1], vec![2, 3]]);
    /// ```
    #[track_caller]
    pub fn glom(&self) -> Rdd<Vec<T>> {
        self.with_partition_fn(
            "glom",
            PartitionsFn(|it: BoxIter<T>| std::iter::once(it.collect::<Vec<T>>()), PhantomData),
        )
    }

    /// Pairs each element with the key `f` computes: `(f(&x), x)`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let k = ctx.parallelize(vec!["apple".to_string()], 1).key_by(|s: &String| s.len());
    /// assert_eq!(k.collect().unwrap(), vec![(5, "apple".to_string())]);
    /// ```
    #[track_caller]
    pub fn key_by<K: Data, F: for<'a> Fun1<&'a T, K>>(&self, f: F) -> Rdd<(K, T)> {
        #[allow(clippy::let_unit_value)]
        let () = <F as Fun1<&T, K>>::SHIPPABLE;
        self.with_partition_fn("key_by", KeyByFn(f))
    }
}

/// A partition function made of a driver-side closure (used by actions; local mode only until
/// actions ship their functions as serialisable structs).
pub(crate) struct ClosurePartitionFn<G>(pub(crate) G);
impl<T: 'static, U: 'static, G> PartitionFn<T, U> for ClosurePartitionFn<G>
where
    G: Fn(usize, BoxIter<T>) -> BoxIter<U> + Send + Sync + 'static,
{
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U> {
        (self.0)(split, input)
    }
}

pub(crate) struct KeyByFn<F>(F);
impl<T: 'static, K: 'static, F: for<'a> Fun1<&'a T, K>> PartitionFn<T, (K, T)> for KeyByFn<F> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<(K, T)> {
        Box::new(input.map(move |x| (self.0.call1(&x), x)))
    }
}
