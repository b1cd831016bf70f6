//! Monte Carlo estimate of pi: the fraction of random points of the unit square inside the
//! quarter circle, times 4.

use flint::Result;
use flint::prelude::*;
use rand::{RngExt, SeedableRng};

/// Estimates pi from `samples` seeded random points in `partitions` partitions.
pub fn run(ctx: &Context, samples: u64, partitions: usize, seed: u64) -> Result<f64> {
    let inside = ctx
        .range(0, samples as i64, partitions)
        .map_partitions_with_index(with(seed, |seed: &u64, split: usize, it: BoxIter<i64>| {
            let mut rng =
                rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ (split as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let hits = it
                .filter(|_| {
                    let (x, y): (f64, f64) = (rng.random(), rng.random());
                    x * x + y * y <= 1.0
                })
                .count() as u64;
            std::iter::once(hits)
        }))
        .fold(0, |a, b| a + b)?;
    Ok(4.0 * inside as f64 / samples.max(1) as f64)
}
