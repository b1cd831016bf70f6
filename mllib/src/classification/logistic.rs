//! Logistic regression, as Spark ML's `LogisticRegression`.
//!
//! Objective: the weighted mean log-loss `(1/W) Σ w_i ℓ_i` plus
//! `regParam·((1−α)/2·‖β‖₂² + α·‖β‖₁)` (`α = elasticNetParam`, intercepts never penalised),
//! with the penalty on the coefficients of the features divided by their standard deviation
//! when `standardization` is on (the default; features are not centred). L-BFGS minimises it
//! when the L1 part is zero, OWL-QN otherwise; with [`Solver::Sgd`] (binomial) Spark's
//! mini-batch gradient descent does (module `sgd`), in the same scaled space, the L1 part by
//! soft-thresholding after each step.
//!
//! The multinomial model is over-parameterised as Spark's: one coefficient vector and one
//! intercept per class. Its intercepts are reported centred (mean 0 over the classes); without
//! regularization the coefficients of each feature are centred too (they are identifiable only
//! up to a constant then).

use std::path::Path;
use std::time::Instant;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::loss::{LossSums, Shape};
use super::stats::{ClassStats, scaled_blocks};
use crate::data::{InstanceBlock, LabeledPoint};
use crate::device::{Device, device_error};
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::optim::{GradientDescent, Lbfgs, Minimum, OwlQn};
use crate::persist::{load_model, save_model};
use crate::regression::Solver;
use crate::summary::TrainingSummary;

mod sgd;

/// The label distribution a [`LogisticRegression`] models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Binomial for two classes, multinomial for more (the default).
    Auto,
    /// Two classes, one coefficient vector (labels 0 and 1).
    Binomial,
    /// `K` classes, one coefficient vector per class (softmax).
    Multinomial,
}

/// Logistic regression (binomial or multinomial) with elastic-net regularization.
///
/// ```
/// use flint_mllib::{LabeledPoint, classification::LogisticRegression};
/// let ctx = flint_engine::Context::local(2).unwrap();
/// let pts: Vec<LabeledPoint> = (0..40)
///     .map(|i| { let x = i as f64 / 10.0 - 2.0; LabeledPoint::new(if (x + 0.3 * (i % 3) as f64) > 0.0 { 1.0 } else { 0.0 }, vec![x]) })
///     .collect();
/// let model = LogisticRegression::new().reg_param(0.01).fit(&ctx.parallelize(pts, 2)).unwrap();
/// assert_eq!(model.predict(&flint_mllib::Vector::Dense(vec![1.5])), 1.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticRegression {
    /// Binomial, multinomial or chosen from the number of classes (default `Auto`).
    pub family: Family,
    /// Regularization strength `regParam` (default 0.0).
    pub reg_param: f64,
    /// Elastic-net mixing α in [0, 1]: 0 is L2, 1 is L1 (default 0.0).
    pub elastic_net_param: f64,
    /// Iteration limit of the optimizer (default 100).
    pub max_iter: usize,
    /// Convergence tolerance of the optimizer (default 1e-6).
    pub tol: f64,
    /// Whether to fit intercepts (default true).
    pub fit_intercept: bool,
    /// Whether the penalty applies to standardized coefficients (default true).
    pub standardization: bool,
    /// Binomial decision threshold on the probability of class 1 (default 0.5).
    pub threshold: f64,
    /// Depth of the tree aggregation (default 2).
    pub aggregation_depth: u32,
    /// Rows per instance block (default `None`: [`DEFAULT_BLOCK_ROWS`](crate::data::DEFAULT_BLOCK_ROWS), or
    /// [`crate::device::GPU_BLOCK_ROWS`] with [`Device::Gpu`]).
    pub block_rows: Option<usize>,
    /// The optimizer (default `Auto`): `Auto` and `LBfgs` run L-BFGS (OWL-QN with an L1
    /// term), `Sgd` mini-batch gradient descent (binomial; L1 by soft-thresholding);
    /// `Normal` is for linear regression only and is rejected.
    pub solver: Solver,
    /// Initial step size of the sgd solver, `η/√i` at iteration `i` (default 1.0).
    pub step_size: f64,
    /// Fraction of the rows the sgd solver samples per iteration, in (0, 1] (default 1.0).
    pub mini_batch_fraction: f64,
    /// Seed of the sgd solver's samples (default 42).
    pub seed: u64,
    /// Where the loss and gradient passes of L-BFGS / OWL-QN run (default `None`: the
    /// `flint.ml.device` setting, environment variable `FLINT_ML_DEVICE`, else
    /// [`Device::Auto`]); see [`crate::device`]. The sgd solver's sampled passes run on the
    /// CPU.
    pub device: Option<Device>,
}

impl Default for LogisticRegression {
    fn default() -> Self {
        LogisticRegression {
            family: Family::Auto,
            reg_param: 0.0,
            elastic_net_param: 0.0,
            max_iter: 100,
            tol: 1e-6,
            fit_intercept: true,
            standardization: true,
            threshold: 0.5,
            aggregation_depth: 2,
            block_rows: None,
            solver: Solver::Auto,
            step_size: 1.0,
            mini_batch_fraction: 1.0,
            seed: 42,
            device: None,
        }
    }
}

/// State shipped with each iteration's job: the broadcast parameters, their shape and the
/// device (each process resolves `Auto` against its own adapters).
type IterState = (Broadcast<Vec<f64>>, Shape, Device);

impl LogisticRegression {
    /// The defaults (see the fields).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the family.
    pub fn family(mut self, f: Family) -> Self {
        self.family = f;
        self
    }

    /// Sets `regParam`.
    pub fn reg_param(mut self, v: f64) -> Self {
        self.reg_param = v;
        self
    }

    /// Sets `elasticNetParam` (α).
    pub fn elastic_net_param(mut self, v: f64) -> Self {
        self.elastic_net_param = v;
        self
    }

    /// Sets the iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, v: f64) -> Self {
        self.tol = v;
        self
    }

    /// Sets whether to fit intercepts.
    pub fn fit_intercept(mut self, on: bool) -> Self {
        self.fit_intercept = on;
        self
    }

    /// Sets whether to standardize.
    pub fn standardization(mut self, on: bool) -> Self {
        self.standardization = on;
        self
    }

    /// Sets the binomial threshold.
    pub fn threshold(mut self, v: f64) -> Self {
        self.threshold = v;
        self
    }

    /// Sets the depth of the tree aggregation.
    pub fn aggregation_depth(mut self, depth: u32) -> Self {
        self.aggregation_depth = depth;
        self
    }

    /// Sets the rows per instance block.
    pub fn block_rows(mut self, n: usize) -> Self {
        self.block_rows = Some(n);
        self
    }

    /// Sets the optimizer (see the `solver` field).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// Sets the initial step size of the sgd solver.
    pub fn step_size(mut self, v: f64) -> Self {
        self.step_size = v;
        self
    }

    /// Sets the fraction of the rows the sgd solver samples per iteration.
    pub fn mini_batch_fraction(mut self, v: f64) -> Self {
        self.mini_batch_fraction = v;
        self
    }

    /// Sets the seed of the sgd solver's samples.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Sets the device the loss and gradient passes run on (see the `device` field).
    ///
    /// ```
    /// use flint_mllib::{Device, classification::LogisticRegression};
    /// let lr = LogisticRegression::new().device(Device::Cpu);
    /// assert_eq!(lr.device, Some(Device::Cpu));
    /// ```
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    fn validate(&self) -> Result<()> {
        if !(self.reg_param.is_finite() && self.reg_param >= 0.0) {
            return Err(MlError::param("reg_param", self.reg_param, "finite and >= 0"));
        }
        if self.solver == Solver::Normal {
            return Err(MlError::param("solver", "normal", "auto, l-bfgs or sgd"));
        }
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
        if !(0.0..=1.0).contains(&self.elastic_net_param) {
            return Err(MlError::param("elastic_net_param", self.elastic_net_param, "in [0, 1]"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(MlError::param("tol", self.tol, "finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(MlError::param("threshold", self.threshold, "in [0, 1]"));
        }
        if self.aggregation_depth < 1 {
            return Err(MlError::param("aggregation_depth", self.aggregation_depth, ">= 1"));
        }
        if self.block_rows == Some(0) {
            return Err(MlError::param("block_rows", 0, ">= 1"));
        }
        Ok(())
    }

    /// Fits a model to `data` (labels `0, 1, ..., K−1`).
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<LogisticRegressionModel> {
        self.validate()?;
        let device = Device::or_env(self.device)?;
        let start = Instant::now();
        let stats = ClassStats::compute(data, self.aggregation_depth)?;
        let num_classes = stats.histogram.len();
        let present = stats.histogram.iter().filter(|w| **w > 0.0).count();
        if present < 2 {
            return Err(MlError::Data(format!(
                "the labels hold one class only (label {}); a classifier needs two or more",
                stats.histogram.iter().position(|w| *w > 0.0).unwrap_or(0)
            )));
        }
        let multinomial = match self.family {
            Family::Auto => num_classes > 2,
            Family::Binomial if num_classes > 2 => {
                return Err(MlError::Data(format!(
                    "family binomial needs labels 0 and 1, but the labels go up to {}",
                    num_classes - 1
                )));
            }
            Family::Binomial => false,
            Family::Multinomial => true,
        };
        if multinomial && self.solver == Solver::Sgd {
            return Err(MlError::param(
                "solver",
                "sgd",
                "a binomial model (labels 0 and 1, family auto or binomial): sgd is binomial only",
            ));
        }
        let d = stats.mean.len();
        let std = stats.std();
        let inv_std: Vec<f64> = std.iter().map(|s| if *s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        let shape = Shape {
            d,
            k: if multinomial { num_classes } else { 1 },
            intercept: self.fit_intercept,
            multinomial,
        };

        // Rows scaled by 1/σ once, stacked and cached: every evaluation streams these blocks.
        let blocks = scaled_blocks(data, &inv_std, device.block_rows(self.block_rows));
        // Built and cached here, so that every evaluation (and its entry in `pass_seconds`) is a
        // pass over cached blocks.
        if let Err(e) = blocks.count() {
            blocks.unpersist();
            return Err(e.into());
        }

        // Penalty weights per standardized coefficient: with standardization off, the penalty is
        // on the original coefficients β_j = β̃_j/σ_j, so the weights are divided by σ_j (σ_j²).
        let reg_l1 = self.reg_param * self.elastic_net_param;
        let reg_l2 = self.reg_param * (1.0 - self.elastic_net_param);
        let scale_of = |j: usize, power: i32| {
            if self.standardization {
                1.0
            } else if std[j] > 0.0 {
                1.0 / std[j].powi(power)
            } else {
                0.0
            }
        };
        let l2: Vec<f64> = (0..shape.k * d).map(|i| reg_l2 * scale_of(i % d, 2)).collect();
        let mut l1 = vec![0.0; shape.len()];
        for (i, v) in l1.iter_mut().enumerate().take(shape.k * d) {
            *v = reg_l1 * scale_of(i % d, 1);
        }

        let ctx = data.context().clone();
        let depth = self.aggregation_depth;
        // Blocks of the last pass computed on a GPU (for the log).
        let mut gpu_blocks = 0;
        let mut objective = |coefs: &[f64]| -> Result<(f64, Vec<f64>)> {
            let state: IterState = (ctx.broadcast(coefs.to_vec()), shape, device);
            let sums = blocks.tree_aggregate(
                LossSums::default(),
                with(
                    state,
                    |(coefs, shape, device): &IterState, acc: LossSums, block: InstanceBlock| {
                        acc.add_block_on(*device, shape, coefs.value(), &block)
                    },
                ),
                |a: LossSums, b: LossSums| a.merge(b),
                depth,
            )?;
            if let Some(why) = sums.failure {
                return Err(device_error(device, why));
            }
            gpu_blocks = sums.gpu_blocks;
            if sums.weight <= 0.0 {
                return Err(MlError::Data("the training data is empty".into()));
            }
            let mut grad = sums.grad;
            grad.iter_mut().for_each(|g| *g /= sums.weight);
            let mut value = sums.loss / sums.weight;
            for (i, w) in l2.iter().enumerate() {
                value += 0.5 * w * coefs[i] * coefs[i];
                grad[i] += w * coefs[i];
            }
            Ok((value, grad))
        };

        // Start at the coefficients 0 and the intercepts of the label distribution (as Spark).
        let mut x0 = vec![0.0; shape.len()];
        if self.fit_intercept {
            let h = &stats.histogram;
            if multinomial {
                let raw: Vec<f64> = h.iter().map(|c| c.ln_1p()).collect();
                let mean = raw.iter().sum::<f64>() / raw.len() as f64;
                for (c, r) in raw.iter().enumerate() {
                    x0[shape.k * d + c] = r - mean;
                }
            } else {
                x0[d] = (h[1] / h[0]).ln();
            }
        }

        let result: Result<Minimum> = if self.solver == Solver::Sgd {
            let gd = GradientDescent::new()
                .step_size(self.step_size)
                .num_iterations(self.max_iter)
                .mini_batch_fraction(self.mini_batch_fraction)
                .convergence_tol(self.tol)
                .seed(self.seed)
                .l1(if reg_l1 > 0.0 { l1.clone() } else { Vec::new() });
            sgd::minimize(&blocks, shape, &l2, depth, &gd, x0)
        } else if reg_l1 > 0.0 {
            OwlQn::new(l1)
                .max_iter(self.max_iter)
                .tol(self.tol)
                .minimize(&mut objective, x0)
        } else {
            Lbfgs::new()
                .max_iter(self.max_iter)
                .tol(self.tol)
                .minimize(&mut objective, x0)
        };
        blocks.unpersist();
        let min = result?;
        tracing::debug!(%device, gpu_blocks, "LogisticRegression: blocks of the last pass computed on a GPU");

        // Back to the original feature scale.
        let mut coefficients: Vec<f64> = (0..shape.k * d).map(|i| min.x[i] * inv_std[i % d]).collect();
        let mut intercepts = if self.fit_intercept {
            min.x[shape.k * d..].to_vec()
        } else {
            vec![0.0; shape.k]
        };
        if multinomial {
            let k = shape.k as f64;
            if self.reg_param == 0.0 {
                for j in 0..d {
                    let mean = (0..shape.k).map(|c| coefficients[c * d + j]).sum::<f64>() / k;
                    (0..shape.k).for_each(|c| coefficients[c * d + j] -= mean);
                }
            }
            let mean = intercepts.iter().sum::<f64>() / k;
            intercepts.iter_mut().for_each(|b| *b -= mean);
        }
        let summary = TrainingSummary {
            iterations: min.iterations,
            loss_history: min.loss_history,
            converged: min.converged,
            train_seconds: start.elapsed().as_secs_f64(),
            pass_seconds: min.evaluation_seconds,
        };
        info!(
            iterations = summary.iterations,
            converged = summary.converged,
            objective = summary.loss_history.last().copied().unwrap_or(f64::NAN),
            "LogisticRegression fitted"
        );
        Ok(LogisticRegressionModel {
            num_classes,
            num_features: d,
            multinomial,
            coefficients,
            intercepts,
            threshold: self.threshold,
            summary,
        })
    }
}

/// A fitted [`LogisticRegression`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegressionModel {
    num_classes: usize,
    num_features: usize,
    multinomial: bool,
    /// Row-major `K × d` (`K = 1` for a binomial model).
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    threshold: f64,
    summary: TrainingSummary,
}

impl LogisticRegressionModel {
    /// Kind name in model files.
    pub const KIND: &'static str = "LogisticRegressionModel";

    /// Number of classes `K`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of features `d`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Whether the model is multinomial (one coefficient vector per class).
    pub fn is_multinomial(&self) -> bool {
        self.multinomial
    }

    /// The coefficients: `d` values for a binomial model; for a multinomial one the `K × d`
    /// matrix, row-major (class by class).
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// The coefficients as rows: one row (binomial) or `K` rows (multinomial).
    pub fn coefficient_matrix(&self) -> Vec<Vec<f64>> {
        self.coefficients
            .chunks(self.num_features.max(1))
            .map(|r| r.to_vec())
            .collect()
    }

    /// The binomial intercept (for a multinomial model, class 0's; see [`Self::intercepts`]).
    pub fn intercept(&self) -> f64 {
        self.intercepts[0]
    }

    /// The intercepts: one (binomial) or one per class (multinomial, centred). Zeros when no
    /// intercept was fitted.
    pub fn intercepts(&self) -> &[f64] {
        &self.intercepts
    }

    /// The binomial decision threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The same model with another binomial decision threshold.
    pub fn with_threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }

    /// How training went (objective history: mean loss plus regularization, as Spark's
    /// `objectiveHistory`).
    pub fn summary(&self) -> &TrainingSummary {
        &self.summary
    }

    fn margins(&self, features: &Vector) -> Vec<f64> {
        assert_eq!(
            features.len(),
            self.num_features,
            "LogisticRegressionModel: a vector of {} features for a model of {}",
            features.len(),
            self.num_features
        );
        let d = self.num_features;
        self.intercepts
            .iter()
            .enumerate()
            .map(|(c, b)| features.dot(&self.coefficients[c * d..(c + 1) * d]) + b)
            .collect()
    }

    /// Raw predictions: `[−m, m]` for a binomial model (margin `m`), the `K` margins otherwise.
    ///
    /// Panics if `features` does not have [`Self::num_features`] entries (as every predictor).
    pub fn predict_raw(&self, features: &Vector) -> Vec<f64> {
        let m = self.margins(features);
        if self.multinomial { m } else { vec![-m[0], m[0]] }
    }

    /// Class probabilities (`K` values summing to 1).
    pub fn predict_proba(&self, features: &Vector) -> Vec<f64> {
        let m = self.margins(features);
        if self.multinomial {
            let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = m.iter().map(|z| (z - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(|v| v / sum).collect()
        } else {
            let z = m[0];
            let p1 = if z >= 0.0 {
                1.0 / (1.0 + (-z).exp())
            } else {
                let e = z.exp();
                e / (1.0 + e)
            };
            vec![1.0 - p1, p1]
        }
    }

    /// The predicted class: for a binomial model 1 when the probability of class 1 exceeds the
    /// threshold, otherwise 0; for a multinomial one the most probable class.
    pub fn predict(&self, features: &Vector) -> f64 {
        let p = self.predict_proba(features);
        if self.multinomial {
            let mut best = 0;
            for (c, v) in p.iter().enumerate() {
                if *v > p[best] {
                    best = c;
                }
            }
            best as f64
        } else if p[1] > self.threshold {
            1.0
        } else {
            0.0
        }
    }

    /// `(label, prediction)` for every point of `data` (lazy).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<(f64, f64)> {
        data.map(with(self.clone(), |m: &LogisticRegressionModel, p: LabeledPoint| {
            (p.label, m.predict(&p.features))
        }))
    }

    /// Saves the model to `path` (JSON, kind `LogisticRegressionModel`, version 1).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(path.as_ref(), Self::KIND, 1, self)
    }

    /// Loads a model saved by [`Self::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        load_model(path.as_ref(), Self::KIND, 1)
    }
}
