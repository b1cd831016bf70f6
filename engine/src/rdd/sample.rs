//! Seeded sampling: `sample` (with or without replacement) and `random_split`.
//!
//! Each partition draws from its own generator seeded by (seed, partition index), so a sample
//! is the same whenever (and wherever) the partition is recomputed.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};

use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use super::narrow::PartitionFn;
use super::{BoxIter, Rdd};
use crate::data::Data;
use crate::error::{EngineError, Result};

/// A generator for partition `split` of a sample seeded with `seed`.
pub(crate) fn partition_rng(seed: u64, split: usize) -> Pcg64Mcg {
    // splitmix64 of (seed, split) so that neighbouring partitions get unrelated streams.
    let mut z = seed ^ (split as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

/// A sampling fraction that yields at least `num` of `total` elements with probability
/// about 99.99% (Spark's `SamplingUtils.computeFractionForSampleSize`).
fn sample_fraction(num: u64, total: u64, with_replacement: bool) -> f64 {
    let n = num as f64;
    let t = total as f64;
    let fraction = n / t;
    if with_replacement {
        // Poisson: num + 5 standard deviations (more for small samples).
        let sd = if num < 12 {
            9.0
        } else if num < 60 {
            6.0
        } else {
            5.0
        };
        (n + sd * n.sqrt()).max(1e-10) / t
    } else {
        // Binomial: a bound from Chernoff-style inequalities, as Spark.
        let delta: f64 = 1e-4;
        let gamma = -delta.ln() / t;
        (fraction + gamma + (gamma * gamma + 2.0 * gamma * fraction).sqrt()).min(1.0)
    }
}

/// Draws from Poisson(lambda) (Knuth's method; lambda is a sampling fraction, small).
fn poisson(rng: &mut Pcg64Mcg, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

#[derive(Serialize, Deserialize)]
struct SampleFn {
    with_replacement: bool,
    fraction: f64,
    seed: u64,
}

impl<T: Data> PartitionFn<T, T> for SampleFn {
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<T> {
        let mut rng = partition_rng(self.seed, split);
        if self.with_replacement {
            let fraction = self.fraction;
            Box::new(input.flat_map(move |x| {
                let copies = poisson(&mut rng, fraction) as usize;
                std::iter::repeat_n(x, copies)
            }))
        } else {
            let fraction = self.fraction;
            Box::new(input.filter(move |_| rng.random::<f64>() < fraction))
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RangeSplitFn {
    lo: f64,
    hi: f64,
    seed: u64,
}

impl<T: Data> PartitionFn<T, T> for RangeSplitFn {
    fn apply(self: Arc<Self>, split: usize, input: BoxIter<T>) -> BoxIter<T> {
        let mut rng = partition_rng(self.seed, split);
        let (lo, hi) = (self.lo, self.hi);
        Box::new(input.filter(move |_| {
            let x: f64 = rng.random();
            x >= lo && x < hi
        }))
    }
}

impl<T: Data> Rdd<T> {
    /// A random sample: without replacement each element is kept with probability `fraction`
    /// (0..=1); with replacement each element appears Poisson(`fraction`) times. Seeded, so the
    /// same seed gives the same sample.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let s = ctx.range(0, 10_000, 4).sample(false, 0.1, 42);
    /// let n = s.count().unwrap();
    /// assert!((800..1200).contains(&n), "{n}");
    /// assert_eq!(n, ctx.range(0, 10_000, 4).sample(false, 0.1, 42).count().unwrap(), "seeded");
    /// ```
    #[track_caller]
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> Rdd<T> {
        let fraction = if fraction.is_finite() { fraction.max(0.0) } else { 0.0 };
        let fraction = if with_replacement { fraction } else { fraction.min(1.0) };
        self.with_partition_fn(
            "sample",
            SampleFn {
                with_replacement,
                fraction,
                seed,
            },
        )
    }

    /// `num` elements drawn at random (an action), as Spark's `takeSample`: the RDD is counted,
    /// sampled with a fraction large enough to yield `num` elements with high probability
    /// (resampled with a new seed in the rare case it does not), and the sample shuffled.
    /// Without replacement and `num >= count`, every element is returned, shuffled.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let picked = ctx.range(0, 1000, 4).take_sample(false, 10, 7).unwrap();
    /// assert_eq!(picked.len(), 10);
    /// assert_eq!(picked, ctx.range(0, 1000, 4).take_sample(false, 10, 7).unwrap(), "seeded");
    /// ```
    #[track_caller]
    pub fn take_sample(&self, with_replacement: bool, num: usize, seed: u64) -> Result<Vec<T>> {
        use rand::seq::SliceRandom;
        if num == 0 {
            return Ok(Vec::new());
        }
        let count = self.count()?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut rng = partition_rng(seed, usize::MAX);
        if !with_replacement && num as u64 >= count {
            let mut all = self.collect()?;
            all.shuffle(&mut rng);
            return Ok(all);
        }
        let fraction = sample_fraction(num as u64, count, with_replacement);
        let mut attempt_seed = seed;
        let mut sample = self.sample(with_replacement, fraction, attempt_seed).collect()?;
        // The fraction makes a short sample very unlikely (Spark: 99.99%); retry if it happens.
        while sample.len() < num {
            attempt_seed = attempt_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            sample = self.sample(with_replacement, fraction, attempt_seed).collect()?;
        }
        sample.shuffle(&mut rng);
        sample.truncate(num);
        Ok(sample)
    }

    /// Splits the RDD randomly by `weights` (normalised to sum 1): every element lands in
    /// exactly one split. Seeded and deterministic.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let parts = ctx.range(0, 1000, 4).random_split(&[0.7, 0.3], 42).unwrap();
    /// let (a, b) = (parts[0].count().unwrap(), parts[1].count().unwrap());
    /// assert_eq!(a + b, 1000);
    /// ```
    #[track_caller]
    pub fn random_split(&self, weights: &[f64], seed: u64) -> Result<Vec<Rdd<T>>> {
        if weights.is_empty()
            || weights.iter().any(|w| !w.is_finite() || *w < 0.0)
            || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(EngineError::invalid(
                "weights",
                format!("{weights:?}"),
                "expected non-negative weights with a positive sum",
            ));
        }
        let total: f64 = weights.iter().sum();
        let mut lo = 0.0;
        let mut splits = Vec::with_capacity(weights.len());
        for (i, w) in weights.iter().enumerate() {
            let hi = if i + 1 == weights.len() {
                f64::INFINITY
            } else {
                lo + w / total
            };
            splits.push(self.with_partition_fn("random_split", RangeSplitFn { lo, hi, seed }));
            lo = hi;
        }
        Ok(splits)
    }
}
