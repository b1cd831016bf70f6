//! Statistics of numeric RDDs, as Spark's `DoubleRDDFunctions`: `sum`, `mean`, `variance`,
//! `stdev`, and `stats` (all in one pass, merged with Chan's parallel algorithm).

use serde::{Deserialize, Serialize};

use super::Rdd;
use crate::data::Data;
use crate::error::Result;

/// Count, mean, variance, min and max of a set of numbers, mergeable across partitions
/// (as Spark's `StatCounter`; variance by Welford's update and Chan's merge).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatCounter {
    /// Number of values.
    pub count: u64,
    /// Their mean (0 when there are none).
    pub mean: f64,
    /// Sum of squared differences from the mean.
    m2: f64,
    /// Smallest value (+inf when there are none).
    pub min: f64,
    /// Largest value (-inf when there are none).
    pub max: f64,
}

impl Default for StatCounter {
    fn default() -> Self {
        StatCounter {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl StatCounter {
    /// Adds one value.
    pub fn with_value(mut self, x: f64) -> Self {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self
    }

    /// Merges the statistics of another set of values.
    pub fn merge(self, other: StatCounter) -> Self {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        StatCounter {
            count: self.count + other.count,
            mean: self.mean + delta * other.count as f64 / n,
            m2: self.m2 + other.m2 + delta * delta * self.count as f64 * other.count as f64 / n,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Sum of the values.
    pub fn sum(&self) -> f64 {
        self.mean * self.count as f64
    }

    /// Population variance (divides by n), as Spark's `variance`; NaN when empty.
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.m2 / self.count as f64
        }
    }

    /// Sample variance (divides by n - 1); NaN with fewer than two values.
    pub fn sample_variance(&self) -> f64 {
        if self.count < 2 {
            f64::NAN
        } else {
            self.m2 / (self.count - 1) as f64
        }
    }

    /// Population standard deviation.
    pub fn stdev(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Sample standard deviation.
    pub fn sample_stdev(&self) -> f64 {
        self.sample_variance().sqrt()
    }
}

/// A number that statistics can be taken of (converted to `f64`, as Spark's numeric RDDs do).
pub trait Numeric: Data + Copy {
    /// The value as `f64` (64-bit integers beyond 2^53 lose precision).
    fn to_f64(self) -> f64;
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
numeric!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

impl<T: Numeric> Rdd<T> {
    /// Count, mean, variance, min and max in one pass.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// assert_eq!(ctx.range(1, 101, 4).sum().unwrap(), 5050.0);
    /// let s = ctx.parallelize(vec![1.0, 2.0, 3.0, 4.0], 2).stats().unwrap();
    /// assert_eq!((s.count, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
    /// assert!((s.variance() - 1.25).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn stats(&self) -> Result<StatCounter> {
        self.aggregate(
            StatCounter::default(),
            |s: StatCounter, x: T| s.with_value(x.to_f64()),
            |a: StatCounter, b: StatCounter| a.merge(b),
        )
    }

    /// Sum of the elements, as `f64` (0 for an empty RDD).
    #[track_caller]
    pub fn sum(&self) -> Result<f64> {
        self.aggregate(0.0, |s: f64, x: T| s + x.to_f64(), |a: f64, b: f64| a + b)
    }

    /// Mean of the elements (NaN for an empty RDD).
    #[track_caller]
    pub fn mean(&self) -> Result<f64> {
        let s = self.stats()?;
        Ok(if s.count == 0 { f64::NAN } else { s.mean })
    }

    /// Population variance of the elements.
    #[track_caller]
    pub fn variance(&self) -> Result<f64> {
        Ok(self.stats()?.variance())
    }

    /// Population standard deviation of the elements.
    #[track_caller]
    pub fn stdev(&self) -> Result<f64> {
        Ok(self.stats()?.stdev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_partial_counters_equals_one_pass() {
        let xs: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 7.0 - 30.0).collect();
        let whole = xs.iter().fold(StatCounter::default(), |s, x| s.with_value(*x));
        let merged = xs
            .chunks(37)
            .map(|c| c.iter().fold(StatCounter::default(), |s, x| s.with_value(*x)))
            .fold(StatCounter::default(), StatCounter::merge);
        assert_eq!(whole.count, merged.count);
        assert!((whole.mean - merged.mean).abs() < 1e-9);
        assert!((whole.variance() - merged.variance()).abs() < 1e-9);
        assert_eq!((whole.min, whole.max), (merged.min, merged.max));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!((whole.variance() - var).abs() < 1e-9);
        assert!((whole.sum() - xs.iter().sum::<f64>()).abs() < 1e-6);
    }

    #[test]
    fn empty_counters_are_neutral() {
        let one = StatCounter::default().with_value(5.0);
        assert_eq!(StatCounter::default().merge(one), one);
        assert_eq!(one.merge(StatCounter::default()), one);
        assert!(StatCounter::default().variance().is_nan());
        assert!(one.sample_variance().is_nan());
    }
}
