//! Operations on any RDD that go through a shuffle: `distinct`, `subtract`, `intersection`,
//! `repartition`, `sort_by`, `group_by`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, PartitionWith, Rdd};
use crate::data::{Data, Key};
use crate::func::Fun1;
use crate::partitioner::Partitioner;

/// Sends key `k` to partition `k mod n` (for `repartition`'s round-robin keys).
#[derive(Serialize, Deserialize)]
struct ModPartitioner(usize);

impl Partitioner<usize> for ModPartitioner {
    fn num_partitions(&self) -> usize {
        self.0
    }
    fn partition(&self, key: &usize) -> usize {
        key % self.0
    }
}

impl<T: Key> Rdd<T> {
    /// The distinct elements.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let mut d = ctx.parallelize(vec![1, 2, 2, 3, 3, 3], 3).distinct().collect().unwrap();
    /// d.sort();
    /// assert_eq!(d, vec![1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn distinct(&self) -> Rdd<T> {
        self.map(|x: T| (x, ())).reduce_by_key(|_: (), _: ()| ()).keys()
    }

    /// The elements of `self` that are not in `other` (duplicates in `self` kept).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![1, 2, 3], 2);
    /// assert_eq!(a.subtract(&ctx.parallelize(vec![2], 1)).collect().unwrap().len(), 2);
    /// ```
    #[track_caller]
    pub fn subtract(&self, other: &Rdd<T>) -> Rdd<T> {
        self.map(|x: T| (x, ()))
            .subtract_by_key(&other.map(|x: T| (x, ())))
            .keys()
    }

    /// The distinct elements present in both RDDs.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let a = ctx.parallelize(vec![1, 2, 3], 2);
    /// assert_eq!(a.intersection(&ctx.parallelize(vec![3, 4], 1)).collect().unwrap(), vec![3]);
    /// ```
    #[track_caller]
    pub fn intersection(&self, other: &Rdd<T>) -> Rdd<T> {
        self.map(|x: T| (x, ()))
            .cogroup(&other.map(|x: T| (x, ())))
            .flat_map(|(k, (a, b)): (T, (Vec<()>, Vec<()>))| (!a.is_empty() && !b.is_empty()).then_some(k))
    }
}

impl<T: Data> Rdd<T> {
    /// Exactly `num_partitions` partitions of about equal size, through a shuffle (as Spark:
    /// each input partition deals its elements round-robin from a position of its own).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let r = ctx.range(0, 100, 2).repartition(5);
    /// assert_eq!(r.num_partitions(), 5);
    /// assert_eq!(r.count().unwrap(), 100);
    /// ```
    #[track_caller]
    pub fn repartition(&self, num_partitions: usize) -> Rdd<T> {
        let n = num_partitions.max(1);
        let keyed = self.with_partition_fn(
            "repartition",
            PartitionWith::new(n, |n: &usize, split: usize, it: BoxIter<T>| {
                let n = *n;
                let start = crate::partitioner::stable_hash(&split) as usize % n;
                Box::new(it.enumerate().map(move |(i, x)| ((start + i) % n, x))) as BoxIter<(usize, T)>
            }),
        );
        keyed
            .shuffle_plain("repartition", Arc::new(ModPartitioner(n)), None)
            .values()
    }

    /// Sorts by the key `f` computes, into `num_partitions` partitions.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let s = ctx.parallelize(vec!["ccc".to_string(), "a".to_string(), "bb".to_string()], 2).sort_by(|w: &String| w.len(), true, 2);
    /// assert_eq!(s.collect().unwrap(), vec!["a", "bb", "ccc"]);
    /// ```
    #[track_caller]
    pub fn sort_by<K: Key + Ord, F: for<'a> Fun1<&'a T, K>>(
        &self,
        f: F,
        ascending: bool,
        num_partitions: usize,
    ) -> Rdd<T> {
        self.key_by(f).sort_by_key(ascending, num_partitions).values()
    }

    /// Groups elements by the key `f` computes.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let mut g = ctx.range(0, 6, 2).group_by(|x: &i64| x % 2).collect().unwrap();
    /// g.sort();
    /// for (_, v) in &mut g { v.sort(); }
    /// assert_eq!(g, vec![(0, vec![0, 2, 4]), (1, vec![1, 3, 5])]);
    /// ```
    #[track_caller]
    pub fn group_by<K: Key, F: for<'a> Fun1<&'a T, K>>(&self, f: F) -> Rdd<(K, Vec<T>)> {
        self.key_by(f).group_by_key()
    }
}
