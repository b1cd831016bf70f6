//! The sgd solver of [`LinearRegression`](super::LinearRegression): Spark's mini-batch
//! [`GradientDescent`] on the l-bfgs solver's standardised objective (see [`super::lbfgs`]):
//! features `x̃_j = (x_j − c_j)/σ_j`, label `ỹ = (y − c_y)/σ_y`, coefficients `β̃_j = β_j σ_j/σ_y`,
//!
//! ```text
//! F(β̃) = 1/(2W) Σ_i w_i (x̃_iᵀβ̃ − ỹ_i)²  +  λ(1−α)/(2σ_y) Σ_j (β̃_j/t_j)²  +  λα/σ_y Σ_j |β̃_j|/t_j
//! ```
//!
//! (`t_j = 1` with standardization, `σ_j` without; the L1 part by [`GradientDescent::l1`]'s
//! soft-thresholding), the intercept in closed form
//! afterwards. One pass computes the moments; then each iteration is one job: broadcast
//! `v_j = β̃_j/σ_j` and the offset, draw each block's rows with
//! [`GradientDescent::sample_block`] (seeded from the iteration's seed, the partition index and
//! the block's position), accumulate `Σ w r²`, `Σ w r`, `Xᵀ(w r)` and `Σ w` of the sample, combine
//! with `tree_aggregate`. The L2 penalty is added on the driver, scaled by the sample's weight
//! (the optimizer divides by it); the optimizer's own `reg_param` stays 0.

use flint_engine::{BoxIter, Broadcast, Rdd, with};

use super::lbfgs::LbfgsSolution;
use super::moments::{Moments, Penalty, Scaling, scaling};
use crate::data::InstanceBlock;
use crate::error::{MlError, Result};
use crate::optim::{GradientDescent, StochasticGradient};

/// The parameters of one solve.
#[derive(Clone, Copy, Debug)]
pub(super) struct SgdParams {
    pub fit_intercept: bool,
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub standardization: bool,
    pub max_iter: usize,
    pub tol: f64,
    pub step_size: f64,
    pub mini_batch_fraction: f64,
    pub seed: u64,
}

/// What each iteration ships: `v`, the offset, `1/σ_y`, the fraction and the seed.
type SampleState = (Broadcast<(Vec<f64>, f64, f64)>, f64, u64);

/// `(Xᵀ(w r), Σ w r², Σ w r, Σ w)` over a sample.
type Sums = (Vec<f64>, f64, f64, f64);

struct BlockGradient<'a> {
    blocks: &'a Rdd<InstanceBlock>,
    sigma_x: &'a [f64],
    center_x: &'a [f64],
    center_y: f64,
    sigma_y: f64,
    l2: &'a [f64],
}

impl StochasticGradient for BlockGradient<'_> {
    fn sample_gradient(&mut self, beta: &[f64], fraction: f64, seed: u64) -> Result<(Vec<f64>, f64, f64)> {
        let cols = beta.len();
        let v: Vec<f64> = beta
            .iter()
            .zip(self.sigma_x)
            .map(|(b, s)| if *s == 0.0 { 0.0 } else { b / s })
            .collect();
        let offset = v.iter().zip(self.center_x).map(|(v, c)| v * c).sum::<f64>() - self.center_y / self.sigma_y;
        let bc = self.blocks.context().broadcast((v, offset, 1.0 / self.sigma_y));
        let state: SampleState = (bc, fraction, seed);
        let (xwr, swr2, swr, wsum): Sums = self
            .blocks
            .map_partitions_with_index(with(
                state,
                |(bc, fraction, seed): &SampleState, partition: usize, it: BoxIter<InstanceBlock>| {
                    let (v, offset, inv_sy) = bc.value();
                    let mut acc: Sums = (vec![0.0; v.len()], 0.0, 0.0, 0.0);
                    for (i, block) in it.enumerate() {
                        let s = GradientDescent::sample_block(&block, *fraction, *seed, partition, i);
                        for r in 0..s.rows {
                            let x = s.row(r);
                            let res = x.iter().zip(v).map(|(a, b)| a * b).sum::<f64>() - offset - s.labels[r] * inv_sy;
                            let wr = s.weights[r] * res;
                            acc.1 += wr * res;
                            acc.2 += wr;
                            acc.3 += s.weights[r];
                            for (g, xj) in acc.0.iter_mut().zip(x) {
                                *g += wr * xj;
                            }
                        }
                    }
                    std::iter::once(acc)
                },
            ))
            .tree_aggregate((vec![0.0; cols], 0.0, 0.0, 0.0), merge, merge, 2)?;
        let mut loss = swr2 / 2.0;
        let mut grad = vec![0.0; cols];
        for j in 0..cols {
            if self.sigma_x[j] == 0.0 {
                continue;
            }
            grad[j] = (xwr[j] - self.center_x[j] * swr) / self.sigma_x[j] + wsum * self.l2[j] * beta[j];
            loss += wsum * 0.5 * self.l2[j] * beta[j] * beta[j];
        }
        if !loss.is_finite() {
            return Err(MlError::Data(
                "the least-squares loss is not finite: lower step_size or rescale the features or labels".into(),
            ));
        }
        Ok((grad, loss, wsum))
    }
}

fn merge(mut a: Sums, b: Sums) -> Sums {
    for (x, y) in a.0.iter_mut().zip(&b.0) {
        *x += y;
    }
    (a.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
}

/// Minimises the objective over the cached `blocks` of `cols` features.
pub(super) fn solve(blocks: &Rdd<InstanceBlock>, cols: usize, p: &SgdParams) -> Result<LbfgsSolution> {
    let penalty = Penalty {
        fit_intercept: p.fit_intercept,
        reg_param: p.reg_param,
        elastic_net_param: p.elastic_net_param,
        standardization: p.standardization,
    };
    let Scaling {
        mean_y,
        sigma_y,
        mean_x,
        sigma_x,
        center_x,
        center_y,
        l2,
        l1,
        ..
    } = match scaling(&Moments::of(blocks, cols)?, &penalty)? {
        Ok(s) => s,
        // A constant label: the same model as the normal equations give.
        Err(intercept) => return Ok(LbfgsSolution::constant(cols, intercept)),
    };
    let mut f = BlockGradient {
        blocks,
        sigma_x: &sigma_x,
        center_x: &center_x,
        center_y,
        sigma_y,
        l2: &l2,
    };
    let min = GradientDescent::new()
        .step_size(p.step_size)
        .num_iterations(p.max_iter)
        .mini_batch_fraction(p.mini_batch_fraction)
        .convergence_tol(p.tol)
        .seed(p.seed)
        .l1(if p.elastic_net_param > 0.0 { l1 } else { Vec::new() })
        .minimize(&mut f, vec![0.0; cols])?;
    let coefficients: Vec<f64> = min
        .x
        .iter()
        .zip(&sigma_x)
        .map(|(b, s)| if *s == 0.0 { 0.0 } else { b * sigma_y / s })
        .collect();
    let intercept = if p.fit_intercept {
        mean_y - coefficients.iter().zip(&mean_x).map(|(b, m)| b * m).sum::<f64>()
    } else {
        0.0
    };
    let s2 = sigma_y * sigma_y;
    Ok(LbfgsSolution {
        coefficients,
        intercept,
        objective_history: min.loss_history.iter().map(|f| f * s2).collect(),
        iterations: min.iterations,
        converged: min.converged,
        pass_seconds: min.evaluation_seconds,
    })
}
