//! Random train/test splits.
//!
//! The engine's [`Rdd::random_split`] is what Spark's `randomSplit` is: every element lands in
//! exactly one split, chosen by a seeded generator per partition (so the splits are
//! deterministic for a given seed and input partitioning, and each split re-reads the parent:
//! cache the input first when it is expensive). This module only adapts its error type.

use flint_engine::Rdd;

use crate::data::LabeledPoint;
use crate::error::Result;

/// Splits `data` randomly by `weights` (non-negative, positive sum, normalised to 1), seeded.
///
/// ```
/// # use flint_mllib::{LabeledPoint, data::random_split};
/// let ctx = flint_engine::Context::local(2).unwrap();
/// let data = ctx.parallelize((0..100).map(|i| LabeledPoint::new(0.0, vec![i as f64])).collect(), 2);
/// let parts = random_split(&data, &[0.8, 0.2], 7).unwrap();
/// assert_eq!(parts[0].count().unwrap() + parts[1].count().unwrap(), 100);
/// ```
pub fn random_split(data: &Rdd<LabeledPoint>, weights: &[f64], seed: u64) -> Result<Vec<Rdd<LabeledPoint>>> {
    Ok(data.random_split(weights, seed)?)
}
