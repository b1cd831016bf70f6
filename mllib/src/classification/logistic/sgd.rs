//! The `sgd` solver of [`LogisticRegression`](super::LogisticRegression) (binomial only):
//! Spark's mini-batch [`GradientDescent`] over the same cached blocks and in the same space as
//! L-BFGS (features divided by their standard deviation, not centred).
//!
//! Each iteration is one job: broadcast the weights, in every partition draw each block's rows
//! with [`GradientDescent::sample_block`] (Bernoulli(fraction), seeded from the iteration's seed, the partition
//! index and the block's position) and add their log-loss and gradient, combine with
//! `tree_aggregate`. The L2 penalty (per-coordinate weights, intercept unpenalised) is added on
//! the driver, scaled by the sample's weight so that [`GradientDescent`], which divides by it,
//! steps along the gradient of the estimator's objective; its own `reg_param` stays 0. The L1
//! penalty (same per-coordinate weights as OWL-QN's) is [`GradientDescent::l1`]'s proximal step.

use flint_engine::{BoxIter, Broadcast, Rdd, with};

use crate::classification::loss::{LossSums, Shape};
use crate::data::InstanceBlock;
use crate::error::Result;
use crate::optim::{GradientDescent, Minimum, StochasticGradient};

/// What each iteration ships: the weights, their shape, the fraction and the seed.
type SampleState = (Broadcast<Vec<f64>>, Shape, f64, u64);

/// Sampled log-loss sums over the cached blocks, plus the L2 penalty.
struct BlockGradient<'a> {
    blocks: &'a Rdd<InstanceBlock>,
    shape: Shape,
    l2: &'a [f64],
    depth: u32,
}

impl StochasticGradient for BlockGradient<'_> {
    fn sample_gradient(&mut self, w: &[f64], fraction: f64, seed: u64) -> Result<(Vec<f64>, f64, f64)> {
        let state: SampleState = (self.blocks.context().broadcast(w.to_vec()), self.shape, fraction, seed);
        let sums = self
            .blocks
            .map_partitions_with_index(with(
                state,
                |(w, shape, fraction, seed): &SampleState, partition: usize, it: BoxIter<InstanceBlock>| {
                    let mut acc = LossSums::default();
                    for (i, block) in it.enumerate() {
                        let sample = GradientDescent::sample_block(&block, *fraction, *seed, partition, i);
                        acc = acc.add_block(shape, w.value(), &sample);
                    }
                    std::iter::once(acc)
                },
            ))
            .tree_aggregate(
                LossSums::default(),
                |a: LossSums, b: LossSums| a.merge(b),
                |a: LossSums, b: LossSums| a.merge(b),
                self.depth,
            )?;
        let count = sums.weight;
        let mut grad = sums.grad;
        if grad.is_empty() {
            grad = vec![0.0; w.len()];
        }
        let mut loss = sums.loss;
        for (i, l2) in self.l2.iter().enumerate() {
            grad[i] += count * l2 * w[i];
            loss += count * 0.5 * l2 * w[i] * w[i];
        }
        Ok((grad, loss, count))
    }
}

/// Runs `gd` (its `reg_param` must be 0: the penalty is `l2`, one weight per coefficient)
/// from `x0` over the scaled, cached `blocks`.
pub(super) fn minimize(
    blocks: &Rdd<InstanceBlock>,
    shape: Shape,
    l2: &[f64],
    depth: u32,
    gd: &GradientDescent,
    x0: Vec<f64>,
) -> Result<Minimum> {
    let mut f = BlockGradient {
        blocks,
        shape,
        l2,
        depth,
    };
    gd.minimize(&mut f, x0)
}
