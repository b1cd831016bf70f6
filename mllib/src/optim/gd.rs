//! Mini-batch gradient descent, as Spark's `GradientDescent.runMiniBatchSGD`.
//!
//! Iteration `i` (from 1) asks the [`StochasticGradient`] for the summed gradient and loss over
//! a sample of the data (fraction `mini_batch_fraction`, seed `seed + i`; an estimator draws it
//! with `rdd.sample(false, fraction, seed)` and one `tree_aggregate`), and steps
//! `w ← w·(1 − η_i·λ) − η_i·ḡ` with `η_i = step_size/√i` (Spark's `SquaredL2Updater` when
//! `reg_param` λ > 0, its `SimpleUpdater` otherwise); with L1 weights `μ` ([`GradientDescent::l1`]),
//! each weight then goes through the proximal step of `μ_j·|w_j|`, soft-thresholding
//! `w_j ← sign(w_j)·max(|w_j| − η_i·μ_j, 0)` (Spark's `L1Updater`, per weight), which sets
//! weights exactly to zero. The loss history records the sample's mean loss plus
//! `λ/2·‖w‖² + Σ μ_j·|w_j|` of the weights it was computed at. It stops after `num_iterations`,
//! or when `‖w_i − w_{i−1}‖ < convergence_tol · max(‖w_i‖, 1)`.
//!
//! The estimators' implementations draw their samples over cached [`InstanceBlock`]s with
//! [`GradientDescent::sample_block`]: a Bernoulli(`fraction`) draw per row, seeded from the iteration's seed,
//! the partition index and the block's position in its partition, so that a fit is
//! reproducible whatever thread or process runs each task.

use tracing::{debug, warn};

use super::Minimum;
use crate::data::InstanceBlock;
use crate::error::{MlError, Result};
use crate::linalg::kernels::{axpy, dot};

/// Sums of gradients and losses over a random sample of the data.
pub trait StochasticGradient {
    /// At `w`, over a sample drawn without replacement with `fraction` and `seed`: the summed
    /// gradient, the summed loss and the number (or weight sum) of the sampled examples.
    fn sample_gradient(&mut self, w: &[f64], fraction: f64, seed: u64) -> Result<(Vec<f64>, f64, f64)>;
}

/// Mini-batch stochastic gradient descent with a `1/√i` step schedule.
///
/// ```
/// use flint_mllib::optim::{GradientDescent, StochasticGradient};
/// // Mean of ½ (w - t)² over targets t: minimum at the mean, 2.
/// struct Mean(Vec<f64>);
/// impl StochasticGradient for Mean {
///     fn sample_gradient(&mut self, w: &[f64], _: f64, _: u64)
///         -> flint_mllib::Result<(Vec<f64>, f64, f64)> {
///         let g = self.0.iter().map(|t| w[0] - t).sum();
///         let l = self.0.iter().map(|t| 0.5 * (w[0] - t).powi(2)).sum();
///         Ok((vec![g], l, self.0.len() as f64))
///     }
/// }
/// let min = GradientDescent::new().convergence_tol(1e-9).num_iterations(1000)
///     .minimize(&mut Mean(vec![1.0, 2.0, 3.0]), vec![0.0]).unwrap();
/// assert!((min.x[0] - 2.0).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GradientDescent {
    /// Initial step size η (default 1.0); iteration `i` uses `η/√i`.
    pub step_size: f64,
    /// Iterations (default 100).
    pub num_iterations: usize,
    /// Fraction of the data sampled per iteration (default 1.0: all of it).
    pub mini_batch_fraction: f64,
    /// Stop when the weights change by less than this, relative (default 0.001).
    pub convergence_tol: f64,
    /// Squared-L2 regularization λ (default 0.0: none).
    pub reg_param: f64,
    /// Seed of the samples; iteration `i` samples with `seed + i` (default 42, as Spark).
    pub seed: u64,
    /// L1 penalty per weight (default empty: none; missing entries are 0).
    pub l1: Vec<f64>,
}

impl Default for GradientDescent {
    fn default() -> Self {
        GradientDescent {
            step_size: 1.0,
            num_iterations: 100,
            mini_batch_fraction: 1.0,
            convergence_tol: 0.001,
            reg_param: 0.0,
            seed: 42,
            l1: Vec::new(),
        }
    }
}

impl GradientDescent {
    /// Spark's defaults: step 1.0, 100 iterations, fraction 1.0, tolerance 0.001, no
    /// regularization, seed 42.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the initial step size.
    pub fn step_size(mut self, v: f64) -> Self {
        self.step_size = v;
        self
    }

    /// Sets the number of iterations.
    pub fn num_iterations(mut self, n: usize) -> Self {
        self.num_iterations = n;
        self
    }

    /// Sets the fraction of the data sampled per iteration.
    pub fn mini_batch_fraction(mut self, v: f64) -> Self {
        self.mini_batch_fraction = v;
        self
    }

    /// Sets the convergence tolerance on the relative change of the weights.
    pub fn convergence_tol(mut self, v: f64) -> Self {
        self.convergence_tol = v;
        self
    }

    /// Sets the squared-L2 regularization.
    pub fn reg_param(mut self, v: f64) -> Self {
        self.reg_param = v;
        self
    }

    /// Sets the sampling seed.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Sets the L1 penalty of each weight (`μ_j·|w_j|`; 0 for an unpenalised weight such as an
    /// intercept), applied by soft-thresholding after each step.
    pub fn l1(mut self, weights: Vec<f64>) -> Self {
        self.l1 = weights;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(MlError::param("step_size", self.step_size, "finite and > 0"));
        }
        if !(self.mini_batch_fraction > 0.0 && self.mini_batch_fraction <= 1.0) {
            return Err(MlError::param(
                "mini_batch_fraction",
                self.mini_batch_fraction,
                "in (0, 1]",
            ));
        }
        if !(self.convergence_tol.is_finite() && self.convergence_tol >= 0.0) {
            return Err(MlError::param(
                "convergence_tol",
                self.convergence_tol,
                "finite and >= 0",
            ));
        }
        if !(self.reg_param.is_finite() && self.reg_param >= 0.0) {
            return Err(MlError::param("reg_param", self.reg_param, "finite and >= 0"));
        }
        if let Some(bad) = self.l1.iter().find(|m| !(m.is_finite() && **m >= 0.0)) {
            return Err(MlError::param("l1", bad, "finite and >= 0 for every weight"));
        }
        Ok(())
    }

    /// The rows of `block` a [`StochasticGradient`] over cached blocks uses: independent
    /// Bernoulli(`fraction`) draws seeded from `(seed, partition, index)` (`index`: the block's
    /// position in its partition), so the same arguments keep the same rows.
    pub(crate) fn sample_block(
        block: &InstanceBlock,
        fraction: f64,
        seed: u64,
        partition: usize,
        index: usize,
    ) -> InstanceBlock {
        sample_block(block, fraction, seed, partition, index)
    }

    /// Runs gradient descent from `w0`.
    pub fn minimize(&self, f: &mut dyn StochasticGradient, w0: Vec<f64>) -> Result<Minimum> {
        self.validate()?;
        let mut w = w0;
        if self.l1.len() > w.len() {
            return Err(MlError::param(
                "l1",
                format!("{} weights", self.l1.len()),
                format!("at most one per weight ({})", w.len()),
            ));
        }
        let reg_value = |w: &[f64]| {
            let l1: f64 = w.iter().zip(&self.l1).map(|(v, m)| m * v.abs()).sum();
            0.5 * self.reg_param * dot(w, w) + l1
        };
        let mut reg = reg_value(&w);
        let mut loss_history = Vec::with_capacity(self.num_iterations);
        let mut converged = false;
        let mut iterations = 0;
        let mut evaluation_seconds = Vec::with_capacity(self.num_iterations);
        for i in 1..=self.num_iterations {
            let start = std::time::Instant::now();
            let (grad_sum, loss_sum, count) =
                f.sample_gradient(&w, self.mini_batch_fraction, self.seed.wrapping_add(i as u64))?;
            evaluation_seconds.push(start.elapsed().as_secs_f64());
            iterations = i;
            if count <= 0.0 {
                warn!(iteration = i, "the mini-batch sample is empty; no step this iteration");
                continue;
            }
            if grad_sum.len() != w.len() {
                return Err(MlError::Data(format!(
                    "the gradient has {} entries for {} weights",
                    grad_sum.len(),
                    w.len()
                )));
            }
            loss_history.push(loss_sum / count + reg);
            let eta = self.step_size / (i as f64).sqrt();
            let previous = w.clone();
            if self.reg_param > 0.0 {
                let shrink = 1.0 - eta * self.reg_param;
                w.iter_mut().for_each(|v| *v *= shrink);
            }
            axpy(-eta / count, &grad_sum, &mut w);
            for (v, m) in w.iter_mut().zip(&self.l1) {
                let magnitude = v.abs() - eta * m;
                *v = if magnitude > 0.0 { v.signum() * magnitude } else { 0.0 };
            }
            reg = reg_value(&w);
            let diff: f64 = w
                .iter()
                .zip(&previous)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            debug!(iteration = i, loss = loss_history.last(), diff, "gradient descent step");
            if diff < self.convergence_tol * dot(&w, &w).sqrt().max(1.0) {
                converged = true;
                break;
            }
        }
        Ok(Minimum {
            x: w,
            loss_history,
            iterations,
            converged,
            evaluation_seconds,
        })
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rows of `block` kept by independent Bernoulli(`fraction`) draws from a stream seeded by
/// `(seed, partition, index)`: the same arguments always keep the same rows. With
/// `fraction >= 1` the block itself (its arrays shared, nothing drawn).
fn sample_block(block: &InstanceBlock, fraction: f64, seed: u64, partition: usize, index: usize) -> InstanceBlock {
    if fraction >= 1.0 {
        return block.clone();
    }
    let mut state = mix(mix(mix(seed) ^ partition as u64) ^ index as u64);
    let mut features = Vec::with_capacity(((block.rows as f64 * fraction) as usize + 1) * block.cols);
    let (mut labels, mut weights) = (Vec::new(), Vec::new());
    for r in 0..block.rows {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let u = (mix(state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        if u < fraction {
            features.extend_from_slice(block.row(r));
            labels.push(block.labels[r]);
            weights.push(block.weights[r]);
        }
    }
    InstanceBlock {
        rows: labels.len(),
        cols: block.cols,
        features: features.into(),
        labels: labels.into(),
        weights: weights.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `½·mean (w − t)²` over targets `t`.
    struct Squares(Vec<f64>);

    impl StochasticGradient for Squares {
        fn sample_gradient(&mut self, w: &[f64], _: f64, _: u64) -> Result<(Vec<f64>, f64, f64)> {
            let g = self.0.iter().map(|t| w[0] - t).sum();
            let l = self.0.iter().map(|t| 0.5 * (w[0] - t).powi(2)).sum();
            Ok((vec![g, 0.0], l, self.0.len() as f64))
        }
    }

    #[test]
    fn l1_soft_thresholds_to_the_lasso_solution_and_to_exact_zero() {
        // Minimum of ½·mean (w − t)² + μ|w| with mean t = 2: w = 2 − μ for μ < 2, else 0.
        let gd = |mu: f64| {
            GradientDescent::new()
                .convergence_tol(0.0)
                .num_iterations(3000)
                .l1(vec![mu])
                .minimize(&mut Squares(vec![1.0, 2.0, 3.0]), vec![0.0, 5.0])
                .unwrap()
        };
        let m = gd(0.5);
        assert!((m.x[0] - 1.5).abs() < 1e-3, "{:?}", m.x);
        // The second weight has no penalty and no gradient: untouched.
        assert_eq!(m.x[1], 5.0);
        // The history counts the penalty: mean loss + μ|w| at the last step.
        let last = *m.loss_history.last().unwrap();
        let expected = (0.5f64.powi(2) + 0.5f64.powi(2) + 1.5f64.powi(2)) / 6.0 + 0.5 * 1.5;
        assert!((last - expected).abs() < 1e-2, "{last} vs {expected}");
        assert_eq!(gd(2.5).x[0], 0.0);
    }

    #[test]
    fn bad_l1_weights_are_named() {
        let bad = |l1: Vec<f64>| match GradientDescent::new()
            .l1(l1)
            .minimize(&mut Squares(vec![1.0]), vec![0.0, 0.0])
        {
            Err(MlError::Param { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(vec![-1.0]), "l1");
        assert_eq!(bad(vec![f64::NAN]), "l1");
        assert_eq!(bad(vec![0.0, 0.0, 0.0]), "l1");
    }
}
