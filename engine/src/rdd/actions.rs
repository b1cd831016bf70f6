//! Actions: operations that run a job and bring a result to the driver (or write output).
//!
//! Every action is "compute a small value per partition, then combine on the driver": it builds
//! a partition function, runs one job over it and folds the per-partition results. Actions are
//! `#[track_caller]`, so the stage a job runs is named after the user's call of the action
//! ("count at wc.rs:12"), not after this file.

use std::collections::HashMap;
use std::fmt::Display;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::shuffled::FnAggregator;
use super::{BoxIter, PartitionWith, PerPartition, Rdd};
use crate::data::{Data, Key};
use crate::error::{EngineError, Result};
use crate::func::{Fun1, Fun2, Shipped1, Shipped2, with};

impl<T: Data> Rdd<T> {
    /// Runs `g(&state, split, partition)` on every partition and returns one value per
    /// partition. `g` captures nothing (checked at compile time): what it needs is in `state`,
    /// which ships with the tasks.
    #[track_caller]
    pub(crate) fn per_partition<U: Data, S, G>(&self, op: &str, state: S, g: G) -> Result<Vec<U>>
    where
        S: Serialize + DeserializeOwned + Send + Sync + 'static,
        G: Fn(&S, usize, BoxIter<T>) -> U + Send + Sync + 'static,
    {
        let rdd = self.with_partition_fn(op, PerPartition::new(state, g));
        let n = rdd.num_partitions();
        Ok(self
            .ctx
            .run_job(&rdd, &(0..n).collect::<Vec<_>>())?
            .into_iter()
            .flatten()
            .collect())
    }

    /// All elements, in partition order.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let v = ctx.parallelize(vec![3, 1, 2], 2).collect().unwrap();
    /// assert_eq!(v, vec![3, 1, 2]);
    /// ```
    pub fn collect(&self) -> Result<Vec<T>> {
        let n = self.num_partitions();
        let parts = self.ctx.run_job(self, &(0..n).collect::<Vec<_>>())?;
        let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for p in parts {
            out.extend(p);
        }
        Ok(out)
    }

    /// Number of elements.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(0, 10, 3).count().unwrap(), 10);
    /// ```
    #[track_caller]
    pub fn count(&self) -> Result<u64> {
        Ok(self
            .per_partition("count", (), |_: &(), _, it: BoxIter<T>| it.count() as u64)?
            .into_iter()
            .sum())
    }

    /// Whether the RDD has no elements.
    #[track_caller]
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.take(1)?.is_empty())
    }

    /// The first `n` elements, scanning as few partitions as possible (as Spark: one partition,
    /// then four times as many per round).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(0, 100, 4).take(3).unwrap(), vec![0, 1, 2]);
    /// ```
    #[track_caller]
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let total = self.num_partitions();
        let mut out = Vec::new();
        let mut scanned = 0;
        let mut batch = 1;
        while out.len() < n && scanned < total {
            let parts: Vec<usize> = (scanned..(scanned + batch).min(total)).collect();
            let left = n - out.len();
            let limited = self.with_partition_fn(
                "take",
                PartitionWith::new(left, |left: &usize, _, it: BoxIter<T>| {
                    Box::new(it.take(*left)) as BoxIter<T>
                }),
            );
            for p in self.ctx.run_job(&limited, &parts)? {
                out.extend(p.into_iter().take(n - out.len()));
            }
            scanned += parts.len();
            batch *= 4;
        }
        Ok(out)
    }

    /// The first element; an error on an empty RDD.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.parallelize(vec![7, 8], 2).first().unwrap(), 7);
    /// assert!(ctx.empty::<i32>().first().is_err());
    /// ```
    #[track_caller]
    pub fn first(&self) -> Result<T> {
        self.take(1)?
            .into_iter()
            .next()
            .ok_or(EngineError::EmptyRdd { action: "first" })
    }

    /// Merges all elements with `f` (associative, commutative); an error on an empty RDD.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(1, 5, 2).reduce(|a, b| a * b).unwrap(), 24);
    /// ```
    #[track_caller]
    pub fn reduce<F: Fun2<T, T, T>>(&self, f: F) -> Result<T> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        let f = Shipped2::new(f);
        let partials = self.per_partition("reduce", f.clone(), |f: &Shipped2<F, T, T, T>, _, it: BoxIter<T>| {
            it.reduce(|a, b| f.f.call2(a, b))
        })?;
        partials
            .into_iter()
            .flatten()
            .reduce(|a, b| f.f.call2(a, b))
            .ok_or(EngineError::EmptyRdd { action: "reduce" })
    }

    /// Folds each partition from `zero`, then the partition results from `zero` again.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(1, 5, 2).fold(0, |a, b| a + b).unwrap(), 10);
    /// ```
    #[track_caller]
    pub fn fold<F: Fun2<T, T, T>>(&self, zero: T, f: F) -> Result<T> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        let f = Shipped2::new(f);
        let partials = self.per_partition(
            "fold",
            (zero.clone(), f.clone()),
            |(zero, f): &(T, Shipped2<F, T, T, T>), _, it: BoxIter<T>| it.fold(zero.clone(), |a, b| f.f.call2(a, b)),
        )?;
        Ok(partials.into_iter().fold(zero, |a, b| f.f.call2(a, b)))
    }

    /// Aggregates each partition into a `U` with `seq`, then merges the `U`s with `comb`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// // (sum, count) in one pass
    /// let (s, n) = ctx.range(1, 5, 2)
    ///     .aggregate((0i64, 0u64), |(s, n): (i64, u64), x: i64| (s + x, n + 1), |a: (i64, u64), b: (i64, u64)| (a.0 + b.0, a.1 + b.1))
    ///     .unwrap();
    /// assert_eq!((s, n), (10, 4));
    /// ```
    #[track_caller]
    pub fn aggregate<U: Data, F1: Fun2<U, T, U>, F2: Fun2<U, U, U>>(&self, zero: U, seq: F1, comb: F2) -> Result<U> {
        #[allow(clippy::let_unit_value)]
        let ((), ()) = (F1::SHIPPABLE, F2::SHIPPABLE);
        let partials = self.per_partition(
            "aggregate",
            (zero.clone(), Shipped2::new(seq)),
            |(zero, seq): &(U, Shipped2<F1, U, T, U>), _, it: BoxIter<T>| {
                it.fold(zero.clone(), |u, x| seq.f.call2(u, x))
            },
        )?;
        Ok(partials.into_iter().fold(zero, |a, b| comb.call2(a, b)))
    }

    /// `aggregate` with the partition results merged in a tree of `depth` levels on the
    /// cluster (as Spark's `treeAggregate`), so the driver receives few results.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let total = ctx.range(0, 1000, 16).tree_aggregate(0i64, |a: i64, x: i64| a + x, |a: i64, b: i64| a + b, 2).unwrap();
    /// assert_eq!(total, 499_500);
    /// ```
    #[track_caller]
    pub fn tree_aggregate<U: Data, F1: Fun2<U, T, U>, F2: Fun2<U, U, U>>(
        &self,
        zero: U,
        seq: F1,
        comb: F2,
        depth: u32,
    ) -> Result<U> {
        #[allow(clippy::let_unit_value)]
        let ((), ()) = (F1::SHIPPABLE, F2::SHIPPABLE);
        let comb = Shipped2::new(comb);
        let mut partials: Rdd<U> = self.with_partition_fn(
            "tree_aggregate",
            PerPartition::new(
                (zero.clone(), Shipped2::new(seq)),
                |(zero, seq): &(U, Shipped2<F1, U, T, U>), _, it: BoxIter<T>| {
                    it.fold(zero.clone(), |u, x| seq.f.call2(u, x))
                },
            ),
        );
        let mut n = partials.num_partitions();
        let scale = ((n as f64).powf(1.0 / depth.max(1) as f64).ceil() as usize).max(2);
        while n > scale + (n as f64 / scale as f64).ceil() as usize {
            n /= scale;
            let target = n.max(1);
            let keyed = partials.with_partition_fn(
                "tree_aggregate",
                PartitionWith::new(target, |target: &usize, split: usize, it: BoxIter<U>| {
                    let key = split % *target;
                    Box::new(it.map(move |u| (key, u))) as BoxIter<(usize, U)>
                }),
            );
            let agg = FnAggregator::from_shipped(Shipped1::new(|u: U| u), comb.clone(), comb.clone());
            partials = keyed
                .shuffle_with(
                    "tree_aggregate",
                    crate::rdd::ShuffleSpec {
                        partitioner: Arc::new(crate::partitioner::HashPartitioner::new(target)),
                        aggregator: Some(Arc::new(agg)),
                        map_side_combine: true,
                        key_ordering: None,
                    },
                )
                .values();
        }
        let results = partials.collect()?;
        Ok(results.into_iter().fold(zero, |a, b| comb.f.call2(a, b)))
    }

    /// `reduce` with a tree of `depth` levels; an error on an empty RDD.
    #[track_caller]
    pub fn tree_reduce<F: Fun2<T, T, T>>(&self, f: F, depth: u32) -> Result<T> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        let f = Shipped2::new(f);
        let reduced: Rdd<Option<T>> = self.with_partition_fn(
            "tree_reduce",
            PerPartition::new(f.clone(), |f: &Shipped2<F, T, T, T>, _, it: BoxIter<T>| {
                it.reduce(|a, b| f.f.call2(a, b))
            }),
        );
        let merge = with(f, |f: &Shipped2<F, T, T, T>, a: Option<T>, b: Option<T>| match (a, b) {
            (Some(x), Some(y)) => Some(f.f.call2(x, y)),
            (x, None) => x,
            (None, y) => y,
        });
        let merged = reduced.tree_aggregate(None, merge.clone(), merge, depth)?;
        merged.ok_or(EngineError::EmptyRdd { action: "tree_reduce" })
    }

    /// Runs `f` on every element (for its side effects, e.g. accumulators).
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let seen = ctx.accumulator(0u64);
    /// ctx.range(0, 10, 2).foreach(flint_engine::with(seen.clone(), |s: &flint_engine::Accumulator<u64>, _x: i64| s.add(1))).unwrap();
    /// assert_eq!(seen.value(), 10);
    /// ```
    #[track_caller]
    pub fn foreach<F: Fun1<T, ()>>(&self, f: F) -> Result<()> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.per_partition(
            "foreach",
            Shipped1::new(f),
            |f: &Shipped1<F, T, ()>, _, it: BoxIter<T>| it.for_each(|x| f.f.call1(x)),
        )
        .map(|_| ())
    }

    /// Runs `f` on every partition's iterator.
    #[track_caller]
    pub fn foreach_partition<F: Fun1<BoxIter<T>, ()>>(&self, f: F) -> Result<()> {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        self.per_partition(
            "foreach_partition",
            Shipped1::new(f),
            |f: &Shipped1<F, BoxIter<T>, ()>, _, it: BoxIter<T>| f.f.call1(it),
        )
        .map(|_| ())
    }

    /// Iterates the elements on the driver, running one job per partition as needed.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let it = ctx.range(0, 5, 2).to_local_iterator();
    /// assert_eq!(it.collect::<Result<Vec<_>, _>>().unwrap(), vec![0, 1, 2, 3, 4]);
    /// ```
    pub fn to_local_iterator(&self) -> LocalIterator<T> {
        LocalIterator {
            rdd: self.clone(),
            next_partition: 0,
            buffer: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Writes one text file per partition (`part-00000`, ...) into the new directory `path`,
    /// each element on its own line; files appear atomically (temporary file, then rename) and
    /// `_SUCCESS` marks a complete output. An existing `path` is an error (nothing is overwritten);
    /// a failed save removes the directory it created.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().join("out");
    /// ctx.range(0, 3, 2).save_as_text_file(&out).unwrap();
    /// assert!(out.join("_SUCCESS").exists());
    /// assert!(ctx.range(0, 3, 2).save_as_text_file(&out).is_err(), "never overwrites");
    /// ```
    #[track_caller]
    pub fn save_as_text_file(&self, path: impl AsRef<Path>) -> Result<()>
    where
        T: Display,
    {
        let dir = path.as_ref().to_path_buf();
        if dir.exists() {
            return Err(EngineError::OutputExists { path: dir });
        }
        let staging = dir.join("_temporary");
        fs::create_dir_all(&staging).map_err(|e| EngineError::write(&staging, e))?;
        let written = self.per_partition("save_as_text_file", (staging, dir.clone()), save_partition::<T>);
        if let Err(e) = written {
            // The directory did not exist before this call: remove it whole, so that a failed
            // save leaves nothing behind and can simply be run again.
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let _ = fs::remove_dir_all(dir.join("_temporary"));
        let marker = dir.join("_SUCCESS");
        fs::write(&marker, b"").map_err(|e| EngineError::write(&marker, e))
    }
}

/// Writes one partition of `save_as_text_file`: a temporary file in `staging`, renamed into
/// `out` when complete. Returns the number of lines.
fn save_partition<T: Display>((staging, out): &(PathBuf, PathBuf), split: usize, it: BoxIter<T>) -> u64 {
    let name = format!("part-{split:05}");
    let tmp = staging.join(format!("{name}.{}", std::process::id()));
    let write = || -> std::io::Result<u64> {
        let mut w = BufWriter::new(fs::File::create(&tmp)?);
        let mut n = 0;
        for x in it {
            writeln!(w, "{x}")?;
            n += 1;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(n)
    };
    let n = write().unwrap_or_else(|e| crate::task_context::raise(EngineError::write(&tmp, e)));
    let target = out.join(&name);
    fs::rename(&tmp, &target).unwrap_or_else(|e| crate::task_context::raise(EngineError::write(&target, e)));
    n
}

impl<T: Data + Ord> Rdd<T> {
    /// The `n` smallest elements, ascending.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.parallelize(vec![5, 1, 4, 2], 2).take_ordered(2).unwrap(), vec![1, 2]);
    /// ```
    #[track_caller]
    pub fn take_ordered(&self, n: usize) -> Result<Vec<T>> {
        let partials = self.per_partition("take_ordered", n, |n: &usize, _, it: BoxIter<T>| smallest(it, *n))?;
        Ok(smallest(partials.into_iter().flatten(), n))
    }

    /// The `n` largest elements, descending.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.parallelize(vec![5, 1, 4, 2], 2).top(2).unwrap(), vec![5, 4]);
    /// ```
    #[track_caller]
    pub fn top(&self, n: usize) -> Result<Vec<T>> {
        let partials = self.per_partition("top", n, |n: &usize, _, it: BoxIter<T>| largest(it, *n))?;
        Ok(largest(partials.into_iter().flatten(), n))
    }

    /// The largest element; an error on an empty RDD.
    #[track_caller]
    pub fn max(&self) -> Result<T> {
        self.reduce(|a: T, b: T| if b > a { b } else { a })
    }

    /// The smallest element; an error on an empty RDD.
    #[track_caller]
    pub fn min(&self) -> Result<T> {
        self.reduce(|a: T, b: T| if b < a { b } else { a })
    }
}

fn smallest<T: Ord>(it: impl Iterator<Item = T>, n: usize) -> Vec<T> {
    let mut heap = std::collections::BinaryHeap::with_capacity(n + 1);
    for x in it {
        if heap.len() < n {
            heap.push(x);
        } else if let Some(top) = heap.peek()
            && x < *top
        {
            heap.pop();
            heap.push(x);
        }
    }
    heap.into_sorted_vec()
}

fn largest<T: Ord>(it: impl Iterator<Item = T>, n: usize) -> Vec<T> {
    let mut v: Vec<T> = smallest(it.map(std::cmp::Reverse), n)
        .into_iter()
        .map(|r| r.0)
        .collect();
    v.truncate(n);
    v
}

impl<T: Key> Rdd<T> {
    /// How often each distinct element occurs.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let c = ctx.parallelize(vec!['a', 'b', 'a'], 2).count_by_value().unwrap();
    /// assert_eq!(c[&'a'], 2);
    /// ```
    #[track_caller]
    pub fn count_by_value(&self) -> Result<HashMap<T, u64>> {
        self.map(|x: T| (x, 1u64)).count_by_key_summed()
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    #[track_caller]
    fn count_by_key_summed(&self) -> Result<HashMap<K, u64>>
    where
        V: Into<u64>,
    {
        let sums = self.map_values(|v: V| v.into()).reduce_by_key(|a: u64, b: u64| a + b);
        Ok(sums.collect()?.into_iter().collect())
    }
}

/// Iterates an RDD on the driver, one partition (one job) at a time.
pub struct LocalIterator<T> {
    rdd: Rdd<T>,
    next_partition: usize,
    buffer: std::vec::IntoIter<T>,
    failed: bool,
}

impl<T: Data> Iterator for LocalIterator<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(x) = self.buffer.next() {
                return Some(Ok(x));
            }
            if self.failed || self.next_partition >= self.rdd.num_partitions() {
                return None;
            }
            let p = self.next_partition;
            self.next_partition += 1;
            match self.rdd.ctx.run_job(&self.rdd, &[p]) {
                Ok(mut parts) => self.buffer = parts.pop().unwrap_or_default().into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
