//! Element-wise and partition-wise transformations: one node type, many functions.
//!
//! `map`, `filter`, `flat_map`, `map_partitions`, `glom`, `key_by`... all build a
//! [`MapPartitionsNode`] whose function turns the parent partition's iterator into this
//! partition's iterator, so a chain of them runs as one loop in one task.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, iterator};
use crate::code_identity::conjure_stateless;
use crate::data::Data;
use crate::error::Result;
use crate::func::{Fun1, Fun2, Shipped1, Shipped2};
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

/// Turns one partition's input iterator into its output iterator. Serialisable: it ships with
/// its node (user functions inside through `Shipped1`/`Shipped2`).
pub(crate) trait PartitionFn<T, U>: Serialize + DeserializeOwned + Send + Sync + 'static {
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U>;
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data, P: PartitionFn<T, U>")]
pub(crate) struct MapPartitionsNode<T, U, P> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    parent: Arc<dyn Compute<T>>,
    #[serde(with = "wire::arc")]
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
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<U>>>> {
        wire::encode_node(self)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun1<T, U>")]
pub(crate) struct MapFn<F, T, U>(Shipped1<F, T, U>);
impl<T: 'static, U: 'static, F: Fun1<T, U>> PartitionFn<T, U> for MapFn<F, T, U> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(input.map(move |x| self.0.f.call1(x)))
    }
}

/// Functions of a reference (`filter`, `key_by`) ship as their `&'static T` instance: the
/// encoding of a function does not depend on its argument type.
#[derive(Serialize, Deserialize)]
#[serde(bound = "T: 'static, F: for<'a> Fun1<&'a T, bool>")]
pub(crate) struct FilterFn<F, T: 'static>(Shipped1<F, &'static T, bool>);
impl<T: 'static, F: for<'a> Fun1<&'a T, bool>> PartitionFn<T, T> for FilterFn<F, T> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<T> {
        Box::new(input.filter(move |x| self.0.f.call1(x)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun1<T, I>")]
pub(crate) struct FlatMapFn<F, T, I>(Shipped1<F, T, I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for FlatMapFn<F, T, I>
where
    F: Fun1<T, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(input.flat_map(move |x| self.0.f.call1(x)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun1<BoxIter<T>, I>")]
pub(crate) struct PartitionsFn<F, T, I>(Shipped1<F, BoxIter<T>, I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for PartitionsFn<F, T, I>
where
    F: Fun1<BoxIter<T>, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(self.0.f.call1(input).into_iter())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun2<usize, BoxIter<T>, I>")]
pub(crate) struct PartitionsWithIndexFn<F, T, I>(Shipped2<F, usize, BoxIter<T>, I>);
impl<T: 'static, U: 'static, I, F> PartitionFn<T, U> for PartitionsWithIndexFn<F, T, I>
where
    F: Fun2<usize, BoxIter<T>, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(self.0.f.call2(split, input).into_iter())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "T: 'static, F: for<'a> Fun1<&'a T, K>")]
pub(crate) struct KeyByFn<F, T: 'static, K>(Shipped1<F, &'static T, K>);
impl<T: 'static, K: 'static, F: for<'a> Fun1<&'a T, K>> PartitionFn<T, (K, T)> for KeyByFn<F, T, K> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<(K, T)> {
        Box::new(input.map(move |x| (self.0.f.call1(&x), x)))
    }
}

const STATELESS_MESSAGE: &str = "an engine partition function must capture nothing: pass its state explicitly";

/// The engine's own partition functions (actions, `repartition`, tree aggregation): explicit
/// serialisable state plus a function that captures nothing (checked at compile time), rebuilt
/// on the receiving side with `conjure_stateless`. `g(&state, split, input)` returns the output
/// iterator.
pub(crate) struct PartitionWith<S, G> {
    state: S,
    g: G,
}

impl<S, G> PartitionWith<S, G> {
    pub(crate) fn new(state: S, g: G) -> Self {
        const { assert!(std::mem::size_of::<G>() == 0, "{}", STATELESS_MESSAGE) };
        PartitionWith { state, g }
    }
}

impl<S: Serialize, G> Serialize for PartitionWith<S, G> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        self.state.serialize(s)
    }
}

impl<'de, S: Deserialize<'de>, G> Deserialize<'de> for PartitionWith<S, G> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(PartitionWith {
            state: S::deserialize(d)?,
            g: conjure_stateless::<G>(),
        })
    }
}

impl<T: 'static, U: 'static, S, G> PartitionFn<T, U> for PartitionWith<S, G>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    G: Fn(&S, usize, BoxIter<T>) -> BoxIter<U> + Send + Sync + 'static,
{
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U> {
        (self.g)(&self.state, split, input)
    }
}

/// As [`PartitionWith`], for a function that reduces a partition to one value (actions):
/// `g(&state, split, input)` is the partition's only element.
pub(crate) struct PerPartition<S, G> {
    state: S,
    g: G,
}

impl<S, G> PerPartition<S, G> {
    pub(crate) fn new(state: S, g: G) -> Self {
        const { assert!(std::mem::size_of::<G>() == 0, "{}", STATELESS_MESSAGE) };
        PerPartition { state, g }
    }
}

impl<S: Serialize, G> Serialize for PerPartition<S, G> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        self.state.serialize(s)
    }
}

impl<'de, S: Deserialize<'de>, G> Deserialize<'de> for PerPartition<S, G> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(PerPartition {
            state: S::deserialize(d)?,
            g: conjure_stateless::<G>(),
        })
    }
}

impl<T: 'static, U: 'static, S, G> PartitionFn<T, U> for PerPartition<S, G>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    G: Fn(&S, usize, BoxIter<T>) -> U + Send + Sync + 'static,
{
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<U> {
        Box::new(std::iter::once((self.g)(&self.state, split, input)))
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
        self.with_partition_fn("map", MapFn(Shipped1::new(f)))
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
        self.with_partition_fn("filter", FilterFn(Shipped1::new(f)))
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
        self.with_partition_fn("flat_map", FlatMapFn(Shipped1::new(f)))
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
        self.with_partition_fn("map_partitions", PartitionsFn(Shipped1::new(f)))
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
        self.with_partition_fn("map_partitions_with_index", PartitionsWithIndexFn(Shipped2::new(f)))
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
            PartitionsFn(Shipped1::new(|it: BoxIter<T>| std::iter::once(it.collect::<Vec<T>>()))),
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
        self.with_partition_fn("key_by", KeyByFn(Shipped1::new(f)))
    }
}
