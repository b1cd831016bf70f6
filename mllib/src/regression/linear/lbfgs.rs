//! The l-bfgs solver of [`LinearRegression`](super::LinearRegression), as Spark's
//! `LinearRegression` with solver `l-bfgs`: the same objective as the normal equations
//! ([`super::super::wls`]), minimised by L-BFGS (no L1 term) or OWL-QN (an L1 term).
//!
//! As Spark, the optimiser works in standardised space: features `x̃_j = (x_j − c_j)/σ_j`, the
//! label `ỹ = (y − c_y)/σ_y` (`c` the weighted means with an intercept, 0 without; `σ` the
//! *population* weighted standard deviations, as the normal equations use), over the
//! standardised coefficients `β̃_j = β_j σ_j/σ_y` only: with an intercept it is found in
//! closed form afterwards (`b = ȳ − Σ β_j x̄_j`, Spark's centred least squares). The
//! standardised objective is
//!
//! ```text
//! F(β̃) = 1/(2W) Σ_i w_i (x̃_iᵀβ̃ − ỹ_i)²  +  λ(1−α)/(2σ_y) Σ_j (β̃_j/t_j)²  +  λα/σ_y Σ_j |β̃_j|/t_j
//! ```
//!
//! with `t_j = 1` with standardization and `σ_j` without; `σ_y² F` is the objective of the
//! normal equations. Features of zero variance keep coefficient 0.
//!
//! One pass computes the moments, then every evaluation of `F` is one job: broadcast
//! `v_j = β̃_j/σ_j` and the offset, per block `r = Xv − offset − y/σ_y` by `gemv`, accumulate
//! `Σ w r²`, `Σ w r` and `Xᵀ(w r)` in one pass (`margins_then_gradient`), combine with `tree_aggregate`.

use flint_engine::{Broadcast, Rdd, with};

use super::moments::{Moments, Penalty, Scaling, scaling};
use crate::data::InstanceBlock;
use crate::error::{MlError, Result};
use crate::linalg::kernels::margins_then_gradient;
use crate::optim::{Lbfgs, Minimum, OwlQn};

/// The parameters of one solve.
#[derive(Clone, Copy, Debug)]
pub(super) struct LbfgsParams {
    pub fit_intercept: bool,
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub standardization: bool,
    pub max_iter: usize,
    pub tol: f64,
}

/// The optimum found.
#[derive(Clone, Debug)]
pub(super) struct LbfgsSolution {
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// The objective of the normal equations (`σ_y² F`) at the start and after every
    /// iteration (Spark's `objectiveHistory`, which reports `F` itself).
    pub objective_history: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    /// Seconds of each evaluation (a pass over the blocks).
    pub pass_seconds: Vec<f64>,
}

impl LbfgsSolution {
    /// The model of a constant label: no coefficients, `intercept`, nothing to iterate.
    pub(super) fn constant(cols: usize, intercept: f64) -> Self {
        LbfgsSolution {
            coefficients: vec![0.0; cols],
            intercept,
            objective_history: vec![0.0],
            iterations: 0,
            converged: true,
            pass_seconds: Vec::new(),
        }
    }
}

/// What each evaluation ships: `v_j = β̃_j/σ_j`, `offset = Σ v_j c_j − c_y/σ_y`, `1/σ_y`.
type EvalState = Broadcast<(Vec<f64>, f64, f64)>;

/// `(Xᵀ(w r), Σ w r², Σ w r)` summed over the blocks.
type Sums = (Vec<f64>, f64, f64);

/// Minimises the objective over the cached `blocks` of `cols` features.
pub(super) fn solve(blocks: &Rdd<InstanceBlock>, cols: usize, p: &LbfgsParams) -> Result<LbfgsSolution> {
    let penalty = Penalty {
        fit_intercept: p.fit_intercept,
        reg_param: p.reg_param,
        elastic_net_param: p.elastic_net_param,
        standardization: p.standardization,
    };
    let Scaling {
        wsum,
        mean_y,
        sigma_y,
        mean_x,
        sigma_x,
        center_x,
        center_y,
        l2,
        l1,
    } = match scaling(&Moments::of(blocks, cols)?, &penalty)? {
        Ok(s) => s,
        // A constant label: the same model as the normal equations give.
        Err(intercept) => return Ok(LbfgsSolution::constant(cols, intercept)),
    };

    let ctx = blocks.context();
    let mut objective = |beta: &[f64]| -> Result<(f64, Vec<f64>)> {
        let v: Vec<f64> = beta
            .iter()
            .zip(&sigma_x)
            .map(|(b, s)| if *s == 0.0 { 0.0 } else { b / s })
            .collect();
        let offset = v.iter().zip(&center_x).map(|(v, c)| v * c).sum::<f64>() - center_y / sigma_y;
        let state: EvalState = ctx.broadcast((v, offset, 1.0 / sigma_y));
        let (xwr, swr2, swr): Sums = blocks.tree_aggregate(
            (vec![0.0; cols], 0.0, 0.0),
            with(state, |bc: &EvalState, mut acc: Sums, block: InstanceBlock| {
                let (v, offset, inv_sy) = bc.value();
                let (labels, weights) = (&block.labels[..], &block.weights[..]);
                let (grad, mut swr2, mut swr) = (&mut acc.0, acc.1, acc.2);
                // Predictions, then each row's weighted residual in their place.
                margins_then_gradient(&block.features, block.rows, v, grad, |start, r| {
                    for (i, ri) in r.iter_mut().enumerate() {
                        let res = *ri - offset - labels[start + i] * inv_sy;
                        let wr = weights[start + i] * res;
                        swr2 += wr * res;
                        swr += wr;
                        *ri = wr;
                    }
                });
                (acc.1, acc.2) = (swr2, swr);
                acc
            }),
            |mut a: Sums, b: Sums| {
                for (x, y) in a.0.iter_mut().zip(&b.0) {
                    *x += y;
                }
                (a.0, a.1 + b.1, a.2 + b.2)
            },
            2,
        )?;
        let mut value = swr2 / (2.0 * wsum);
        let mut grad = vec![0.0; cols];
        for j in 0..cols {
            if sigma_x[j] == 0.0 {
                continue;
            }
            grad[j] = (xwr[j] - center_x[j] * swr) / (wsum * sigma_x[j]) + l2[j] * beta[j];
            value += 0.5 * l2[j] * beta[j] * beta[j];
        }
        if !value.is_finite() {
            return Err(MlError::Data(
                "the least-squares loss is not finite: rescale the features or labels".into(),
            ));
        }
        Ok((value, grad))
    };
    let x0 = vec![0.0; cols];
    let min: Minimum = if p.elastic_net_param * p.reg_param == 0.0 {
        Lbfgs::new()
            .max_iter(p.max_iter)
            .tol(p.tol)
            .minimize(&mut objective, x0)?
    } else {
        OwlQn::new(l1)
            .max_iter(p.max_iter)
            .tol(p.tol)
            .minimize(&mut objective, x0)?
    };
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
