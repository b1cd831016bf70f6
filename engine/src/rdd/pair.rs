//! Operations on RDDs of pairs, `Rdd<(K, V)>`: aggregation by key, joins, sorting.
//!
//! Every by-key aggregation is a `combine_by_key` with map-side combine (as Spark), except
//! `group_by_key` and `cogroup`, where combining saves nothing. Joins are a `cogroup` followed
//! by a per-key product, as in Spark.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::narrow::PartitionFn;
use super::shuffled::{AggregatorSpec, FnAggregator, NaturalOrder, ShuffleSpec};
use super::{BoxIter, Rdd};
use crate::data::{Data, Key};
use crate::error::Result;
use crate::func::{Fun1, Fun2, Shipped1, Shipped2, with};
use crate::partitioner::{HashPartitioner, Partitioner, RangePartitioner};

/// `map_values`: `f` on each value, keys kept.
#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun1<V, U>")]
struct MapValuesFn<F, K, V, U>(Shipped1<F, V, U>, std::marker::PhantomData<fn() -> K>);

impl<K: Data, V: 'static, U: 'static, F: Fun1<V, U>> PartitionFn<(K, V), (K, U)> for MapValuesFn<F, K, V, U> {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<(K, V)>) -> BoxIter<(K, U)> {
        Box::new(input.map(move |(k, v)| (k, self.0.f.call1(v))))
    }
}

/// `flat_map_values`: the key paired with every result of `f` on its value.
#[derive(Serialize, Deserialize)]
#[serde(bound = "F: Fun1<V, I>")]
struct FlatMapValuesFn<F, K, V, I>(Shipped1<F, V, I>, std::marker::PhantomData<fn() -> K>);

impl<K: Data, V: 'static, U: 'static, I, F> PartitionFn<(K, V), (K, U)> for FlatMapValuesFn<F, K, V, I>
where
    F: Fun1<V, I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: 'static,
{
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<(K, V)>) -> BoxIter<(K, U)> {
        Box::new(input.flat_map(move |(k, v)| self.0.f.call1(v).into_iter().map(move |u| (k.clone(), u))))
    }
}

/// A value from the left or the right side of a `cogroup`.
#[derive(Clone, Serialize, Deserialize)]
enum Side<V, W> {
    Left(V),
    Right(W),
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// Number of partitions a shuffle of this RDD gets when the caller does not say (as Spark
    /// without `spark.default.parallelism`: the parent's count).
    pub(crate) fn default_shuffle_partitions(&self) -> usize {
        self.num_partitions().max(1)
    }

    /// Applies `f` to each value, keeping keys (and partitioning).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let v = ctx.parallelize(vec![(1, 2)], 1).map_values(|v: i32| v * 10).collect().unwrap();
    /// assert_eq!(v, vec![(1, 20)]);
    /// ```
    #[track_caller]
    pub fn map_values<U: Data, F: Fun1<V, U>>(&self, f: F) -> Rdd<(K, U)> {
        self.with_partition_fn("map_values", MapValuesFn(Shipped1::new(f), std::marker::PhantomData))
    }

    /// Applies `f` to each value and pairs the key with every result.
    #[track_caller]
    pub fn flat_map_values<U: Data, I, F>(&self, f: F) -> Rdd<(K, U)>
    where
        F: Fun1<V, I>,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        self.with_partition_fn(
            "flat_map_values",
            FlatMapValuesFn(Shipped1::new(f), std::marker::PhantomData),
        )
    }

    /// The keys.
    #[track_caller]
    pub fn keys(&self) -> Rdd<K> {
        self.map(|(k, _): (K, V)| k)
    }

    /// The values.
    #[track_caller]
    pub fn values(&self) -> Rdd<V> {
        self.map(|(_, v): (K, V)| v)
    }

    /// The general by-key aggregation: `create` makes a combiner from a key's first value,
    /// `merge_value` adds a value, `merge_combiners` merges two combiners. Combines map-side,
    /// spills past the memory limit.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// // Average per key: combiners are (sum, count).
    /// let avg = ctx.parallelize(vec![(1, 2.0), (1, 4.0), (2, 5.0)], 2)
    ///     .combine_by_key(|v: f64| (v, 1u32), |(s, n): (f64, u32), v: f64| (s + v, n + 1), |a: (f64, u32), b: (f64, u32)| (a.0 + b.0, a.1 + b.1), 2)
    ///     .map_values(|(s, n): (f64, u32)| s / n as f64);
    /// let mut out = avg.collect().unwrap();
    /// out.sort_by(|a, b| a.0.cmp(&b.0));
    /// assert_eq!(out, vec![(1, 3.0), (2, 5.0)]);
    /// ```
    #[track_caller]
    pub fn combine_by_key<C: Data, F1, F2, F3>(
        &self,
        create: F1,
        merge_value: F2,
        merge_combiners: F3,
        num_partitions: usize,
    ) -> Rdd<(K, C)>
    where
        F1: Fun1<V, C>,
        F2: Fun2<C, V, C>,
        F3: Fun2<C, C, C>,
    {
        let agg = FnAggregator::new(create, merge_value, merge_combiners);
        self.aggregate_with("combine_by_key", agg, true, num_partitions)
    }

    #[track_caller]
    fn aggregate_with<C: Data>(
        &self,
        op: &str,
        agg: impl AggregatorSpec<K, V, C>,
        map_side_combine: bool,
        num_partitions: usize,
    ) -> Rdd<(K, C)> {
        let spec = ShuffleSpec {
            partitioner: Arc::new(HashPartitioner::new(num_partitions)),
            aggregator: Some(Arc::new(agg)),
            map_side_combine,
            key_ordering: None,
        };
        self.shuffle_with(op, spec)
    }

    /// Merges the values of each key with `f` (associative, commutative), combining map-side.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let counts = ctx.parallelize(vec![('a', 1), ('b', 1), ('a', 1)], 2).reduce_by_key(|x, y| x + y);
    /// let mut out = counts.collect().unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 2), ('b', 1)]);
    /// ```
    #[track_caller]
    pub fn reduce_by_key<F: Fun2<V, V, V>>(&self, f: F) -> Rdd<(K, V)> {
        let n = self.default_shuffle_partitions();
        self.reduce_by_key_into(f, n)
    }

    /// `reduce_by_key` into `num_partitions` partitions.
    #[track_caller]
    pub fn reduce_by_key_into<F: Fun2<V, V, V>>(&self, f: F, num_partitions: usize) -> Rdd<(K, V)> {
        let f = Shipped2::new(f);
        let agg = FnAggregator::from_shipped(Shipped1::new(|v: V| v), f.clone(), f);
        self.aggregate_with("reduce_by_key", agg, true, num_partitions)
    }

    /// Like `reduce_by_key`, starting each key (per partition) from `zero`.
    #[track_caller]
    pub fn fold_by_key<F: Fun2<V, V, V>>(&self, zero: V, f: F) -> Rdd<(K, V)> {
        let f = Shipped2::new(f);
        let create = with((zero, f.clone()), |(zero, f): &(V, Shipped2<F, V, V, V>), v: V| {
            f.f.call2(zero.clone(), v)
        });
        let agg = FnAggregator::from_shipped(Shipped1::new(create), f.clone(), f);
        self.aggregate_with("fold_by_key", agg, true, self.default_shuffle_partitions())
    }

    /// Aggregates the values of each key into a `U`: `seq` adds a value, `comb` merges two `U`s.
    #[track_caller]
    pub fn aggregate_by_key<U: Data, F1: Fun2<U, V, U>, F2: Fun2<U, U, U>>(
        &self,
        zero: U,
        seq: F1,
        comb: F2,
    ) -> Rdd<(K, U)> {
        let seq = Shipped2::new(seq);
        let create = with((zero, seq.clone()), |(zero, seq): &(U, Shipped2<F1, U, V, U>), v: V| {
            seq.f.call2(zero.clone(), v)
        });
        let agg = FnAggregator::from_shipped(Shipped1::new(create), seq, Shipped2::new(comb));
        self.aggregate_with("aggregate_by_key", agg, true, self.default_shuffle_partitions())
    }

    /// All values of each key. Without map-side combine (it would save nothing); spills.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let mut g = ctx.parallelize(vec![(1, 'a'), (2, 'b'), (1, 'c')], 2).group_by_key().collect().unwrap();
    /// g.sort();
    /// for (_, vs) in &mut g { vs.sort(); }
    /// assert_eq!(g, vec![(1, vec!['a', 'c']), (2, vec!['b'])]);
    /// ```
    #[track_caller]
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        let n = self.default_shuffle_partitions();
        self.group_by_key_into(n)
    }

    /// `group_by_key` into `num_partitions` partitions.
    #[track_caller]
    pub fn group_by_key_into(&self, num_partitions: usize) -> Rdd<(K, Vec<V>)> {
        let agg = FnAggregator::new(
            |v: V| vec![v],
            |mut c: Vec<V>, v: V| {
                c.push(v);
                c
            },
            |mut a: Vec<V>, b: Vec<V>| {
                a.extend(b);
                a
            },
        );
        self.aggregate_with("group_by_key", agg, false, num_partitions)
    }

    /// Re-partitions by `partitioner` (a shuffle without combining).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let p = ctx.range(0, 100, 4).map(|x: i64| (x, ())).partition_by(flint_engine::HashPartitioner::new(3));
    /// assert_eq!(p.num_partitions(), 3);
    /// assert_eq!(p.count().unwrap(), 100);
    /// ```
    ///
    /// The partitioner ships to the tasks that write the shuffle, so it must be serialisable
    /// (see [`Partitioner`]).
    #[track_caller]
    pub fn partition_by<P: Partitioner<K> + Serialize + DeserializeOwned>(&self, partitioner: P) -> Rdd<(K, V)> {
        self.shuffle_plain("partition_by", Arc::new(partitioner), None)
    }

    /// Groups both RDDs' values by key: `(k, (values in self, values in other))`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![(1, 'a')], 1);
    /// let b = ctx.parallelize(vec![(1, 10), (2, 20)], 1);
    /// let mut c = a.cogroup(&b).collect().unwrap();
    /// c.sort();
    /// assert_eq!(c, vec![(1, (vec!['a'], vec![10])), (2, (vec![], vec![20]))]);
    /// ```
    #[track_caller]
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let n = self.default_shuffle_partitions().max(other.num_partitions());
        let left = self.map(|(k, v): (K, V)| (k, Side::<V, W>::Left(v)));
        let right = other.map(|(k, w): (K, W)| (k, Side::<V, W>::Right(w)));
        let tagged = left.union(&right);
        let agg = FnAggregator::new(
            |s: Side<V, W>| match s {
                Side::Left(v) => (vec![v], Vec::new()),
                Side::Right(w) => (Vec::new(), vec![w]),
            },
            |mut c: (Vec<V>, Vec<W>), s: Side<V, W>| {
                match s {
                    Side::Left(v) => c.0.push(v),
                    Side::Right(w) => c.1.push(w),
                }
                c
            },
            |mut a: (Vec<V>, Vec<W>), b: (Vec<V>, Vec<W>)| {
                a.0.extend(b.0);
                a.1.extend(b.1);
                a
            },
        );
        tagged.aggregate_with("cogroup", agg, false, n)
    }

    /// Inner join: `(k, (v, w))` for every pair of values with equal keys.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(1, 'x'), (1, 'y'), (3, 'z')], 2);
    /// let mut j = a.join(&b).collect().unwrap();
    /// j.sort();
    /// assert_eq!(j, vec![(1, ('a', 'x')), (1, ('a', 'y'))]);
    /// ```
    #[track_caller]
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        self.cogroup(other).flat_map(|(k, (vs, ws)): (K, (Vec<V>, Vec<W>))| {
            let mut out = Vec::with_capacity(vs.len() * ws.len());
            for v in &vs {
                for w in &ws {
                    out.push((k.clone(), (v.clone(), w.clone())));
                }
            }
            out
        })
    }

    /// Left outer join: every `(k, v)` of `self`, with each matching `w` or `None`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 1);
    /// let b = ctx.parallelize(vec![(1, 10)], 1);
    /// let mut j = a.left_outer_join(&b).collect().unwrap();
    /// j.sort();
    /// assert_eq!(j, vec![(1, ('a', Some(10))), (2, ('b', None))]);
    /// ```
    #[track_caller]
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        self.cogroup(other).flat_map(|(k, (vs, ws)): (K, (Vec<V>, Vec<W>))| {
            let mut out = Vec::new();
            for v in &vs {
                if ws.is_empty() {
                    out.push((k.clone(), (v.clone(), None)));
                }
                for w in &ws {
                    out.push((k.clone(), (v.clone(), Some(w.clone()))));
                }
            }
            out
        })
    }

    /// Right outer join: every `(k, w)` of `other`, with each matching `v` or `None`.
    #[track_caller]
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))> {
        self.cogroup(other).flat_map(|(k, (vs, ws)): (K, (Vec<V>, Vec<W>))| {
            let mut out = Vec::new();
            for w in &ws {
                if vs.is_empty() {
                    out.push((k.clone(), (None, w.clone())));
                }
                for v in &vs {
                    out.push((k.clone(), (Some(v.clone()), w.clone())));
                }
            }
            out
        })
    }

    /// Full outer join: matches, plus unmatched values of either side with `None` on the other.
    #[track_caller]
    pub fn full_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, Option<W>))> {
        self.cogroup(other).flat_map(|(k, (vs, ws)): (K, (Vec<V>, Vec<W>))| {
            let mut out = Vec::new();
            match (vs.is_empty(), ws.is_empty()) {
                (true, _) => out.extend(ws.iter().map(|w| (k.clone(), (None, Some(w.clone()))))),
                (_, true) => out.extend(vs.iter().map(|v| (k.clone(), (Some(v.clone()), None)))),
                _ => {
                    for v in &vs {
                        for w in &ws {
                            out.push((k.clone(), (Some(v.clone()), Some(w.clone()))));
                        }
                    }
                }
            }
            out
        })
    }

    /// The pairs of `self` whose key does not occur in `other`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 1);
    /// let b = ctx.parallelize(vec![(1, ())], 1);
    /// assert_eq!(a.subtract_by_key(&b).collect().unwrap(), vec![(2, 'b')]);
    /// ```
    #[track_caller]
    pub fn subtract_by_key<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, V)> {
        self.cogroup(other).flat_map(|(k, (vs, ws)): (K, (Vec<V>, Vec<W>))| {
            let keep = ws.is_empty();
            vs.into_iter().filter(move |_| keep).map(move |v| (k.clone(), v))
        })
    }

    /// Number of values per key (an action).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let c = ctx.parallelize(vec![(1, 'a'), (1, 'b'), (2, 'c')], 2).count_by_key().unwrap();
    /// assert_eq!((c[&1], c[&2]), (2, 1));
    /// ```
    #[track_caller]
    pub fn count_by_key(&self) -> Result<HashMap<K, u64>> {
        let counts = self.map_values(|_: V| 1u64).reduce_by_key(|a, b| a + b);
        Ok(counts.collect()?.into_iter().collect())
    }

    /// All values of `key` (an action).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let pairs = ctx.parallelize(vec![(1, 'a'), (2, 'b'), (1, 'c')], 2);
    /// assert_eq!(pairs.lookup(&1).unwrap(), vec!['a', 'c']);
    /// ```
    #[track_caller]
    pub fn lookup(&self, key: &K) -> Result<Vec<V>> {
        self.filter(crate::func::with(key.clone(), |key: &K, kv: &(K, V)| kv.0 == *key))
            .values()
            .collect()
    }
}

impl<K: Key + Ord, V: Data> Rdd<(K, V)> {
    /// Sorts by key into `num_partitions` range partitions (bounds sampled from the keys, as
    /// Spark: this runs a small sampling job); each partition is sorted, with spill.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let sorted = ctx.parallelize(vec![(3, 'c'), (1, 'a'), (2, 'b')], 2).sort_by_key(true, 2);
    /// assert_eq!(sorted.collect().unwrap(), vec![(1, 'a'), (2, 'b'), (3, 'c')]);
    /// ```
    #[track_caller]
    pub fn sort_by_key(&self, ascending: bool, num_partitions: usize) -> Rdd<(K, V)> {
        let partitioner = RangePartitioner::new(num_partitions, self.keys(), ascending);
        let _ = Location::caller();
        self.shuffle_plain(
            "sort_by_key",
            Arc::new(partitioner),
            Some(Arc::new(NaturalOrder::<K>::new(ascending))),
        )
    }
}
