//! Linear support vector classification, as Spark ML's `LinearSVC`.
//!
//! Objective: the weighted mean hinge loss `(1/W) Σ w_i max(0, 1 − ỹ_i (βᵀx_i + b))`
//! (`ỹ = 2y − 1`) plus `regParam/2·‖β‖²` on the standardized coefficients (see
//! [`LogisticRegression`](super::LogisticRegression) for the standardization convention),
//! minimised by OWL-QN without L1 terms, as Spark does (its backtracking line search copes with
//! the hinge's kinks). The hinge is not differentiable, so the optimizer reaches the exact
//! minimum only approximately (on the test fixture, with a tight `tol`: the coefficients of an
//! exact SVM solver to about 2e-5 relative, its objective to 1e-9).

use std::path::Path;
use std::time::Instant;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::stats::{ClassStats, scaled_blocks};
use crate::data::{DEFAULT_BLOCK_ROWS, InstanceBlock, LabeledPoint};
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::linalg::kernels::margins_then_gradient;
use crate::optim::OwlQn;
use crate::persist::{load_model, save_model};
use crate::summary::TrainingSummary;

/// Linear SVM for labels 0 and 1 with L2 regularization.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSvc {
    /// Regularization strength `regParam` (default 0.0).
    pub reg_param: f64,
    /// Iteration limit (default 100).
    pub max_iter: usize,
    /// Convergence tolerance (default 1e-6).
    pub tol: f64,
    /// Whether to fit an intercept (default true).
    pub fit_intercept: bool,
    /// Whether the penalty applies to standardized coefficients (default true).
    pub standardization: bool,
    /// Decision threshold on the raw margin (default 0.0).
    pub threshold: f64,
    /// Depth of the tree aggregation (default 2).
    pub aggregation_depth: u32,
    /// Rows per instance block (default [`DEFAULT_BLOCK_ROWS`]).
    pub block_rows: usize,
}

impl Default for LinearSvc {
    fn default() -> Self {
        LinearSvc {
            reg_param: 0.0,
            max_iter: 100,
            tol: 1e-6,
            fit_intercept: true,
            standardization: true,
            threshold: 0.0,
            aggregation_depth: 2,
            block_rows: DEFAULT_BLOCK_ROWS,
        }
    }
}

/// Sums over blocks: weighted hinge loss, weight, gradient (`d` coefficients, then the
/// intercept).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HingeSums {
    loss: f64,
    weight: f64,
    grad: Vec<f64>,
}

impl HingeSums {
    fn merge(mut self, other: HingeSums) -> HingeSums {
        if other.grad.is_empty() {
            return self;
        }
        if self.grad.is_empty() {
            return other;
        }
        self.loss += other.loss;
        self.weight += other.weight;
        self.grad.iter_mut().zip(&other.grad).for_each(|(a, b)| *a += b);
        self
    }

    fn add_block(mut self, (d, intercept): (usize, bool), coefs: &[f64], block: &InstanceBlock) -> HingeSums {
        if self.grad.is_empty() {
            self.grad = vec![0.0; d + 1];
        }
        let b = if intercept { coefs[d] } else { 0.0 };
        let (mut loss, mut weight, mut intercept_grad) = (self.loss, self.weight, 0.0);
        let (labels, weights) = (&block.labels[..], &block.weights[..]);
        // Margins, then each row's hinge gradient weight in their place.
        margins_then_gradient(
            &block.features,
            block.rows,
            &coefs[..d],
            &mut self.grad[..d],
            |start, m| {
                for (i, mr) in m.iter_mut().enumerate() {
                    let (w, y) = (weights[start + i], labels[start + i]);
                    let ys = 2.0 * y - 1.0;
                    let slack = 1.0 - ys * (*mr + b);
                    weight += w;
                    if slack > 0.0 {
                        loss += w * slack;
                        *mr = -w * ys;
                        intercept_grad += *mr;
                    } else {
                        *mr = 0.0;
                    }
                }
            },
        );
        (self.loss, self.weight) = (loss, weight);
        self.grad[d] += intercept_grad;
        self
    }
}

type IterState = (Broadcast<Vec<f64>>, (usize, bool));

impl LinearSvc {
    /// The defaults (see the fields).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `regParam`.
    pub fn reg_param(mut self, v: f64) -> Self {
        self.reg_param = v;
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

    /// Sets whether to fit an intercept.
    pub fn fit_intercept(mut self, on: bool) -> Self {
        self.fit_intercept = on;
        self
    }

    /// Sets whether to standardize.
    pub fn standardization(mut self, on: bool) -> Self {
        self.standardization = on;
        self
    }

    /// Sets the decision threshold on the raw margin.
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
        self.block_rows = n;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(self.reg_param.is_finite() && self.reg_param >= 0.0) {
            return Err(MlError::param("reg_param", self.reg_param, "finite and >= 0"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(MlError::param("tol", self.tol, "finite and >= 0"));
        }
        if !self.threshold.is_finite() {
            return Err(MlError::param("threshold", self.threshold, "finite"));
        }
        if self.aggregation_depth < 1 {
            return Err(MlError::param("aggregation_depth", self.aggregation_depth, ">= 1"));
        }
        if self.block_rows < 1 {
            return Err(MlError::param("block_rows", self.block_rows, ">= 1"));
        }
        Ok(())
    }

    /// Fits a model to `data` (labels 0 and 1).
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<LinearSvcModel> {
        self.validate()?;
        let start = Instant::now();
        let stats = ClassStats::compute(data, self.aggregation_depth)?;
        if stats.histogram.len() > 2 {
            return Err(MlError::Data(format!(
                "LinearSVC is binary: labels must be 0 or 1, found {}",
                stats.histogram.len() - 1
            )));
        }
        if stats.histogram.len() < 2 || stats.histogram.iter().any(|w| *w <= 0.0) {
            return Err(MlError::Data(
                "the labels hold one class only; a classifier needs labels 0 and 1".into(),
            ));
        }
        let d = stats.mean.len();
        let std = stats.std();
        let inv_std: Vec<f64> = std.iter().map(|s| if *s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        let blocks = scaled_blocks(data, &inv_std, self.block_rows);
        // Built and cached here, so that every evaluation (and its entry in `pass_seconds`) is a
        // pass over cached blocks.
        if let Err(e) = blocks.count() {
            blocks.unpersist();
            return Err(e.into());
        }
        let l2: Vec<f64> = (0..d)
            .map(|j| {
                if self.standardization {
                    self.reg_param
                } else {
                    self.reg_param * inv_std[j] * inv_std[j]
                }
            })
            .collect();
        let ctx = data.context().clone();
        let (depth, shape) = (self.aggregation_depth, (d, self.fit_intercept));
        let mut objective = |coefs: &[f64]| -> Result<(f64, Vec<f64>)> {
            let state: IterState = (ctx.broadcast(coefs.to_vec()), shape);
            let sums = blocks.tree_aggregate(
                HingeSums::default(),
                with(state, |(c, shape): &IterState, acc: HingeSums, block: InstanceBlock| {
                    acc.add_block(*shape, c.value(), &block)
                }),
                |a: HingeSums, b: HingeSums| a.merge(b),
                depth,
            )?;
            if sums.weight <= 0.0 {
                return Err(MlError::Data("the training data is empty".into()));
            }
            let mut grad = sums.grad;
            grad.iter_mut().for_each(|g| *g /= sums.weight);
            if !shape.1 {
                grad[d] = 0.0;
            }
            let mut value = sums.loss / sums.weight;
            for (j, w) in l2.iter().enumerate() {
                value += 0.5 * w * coefs[j] * coefs[j];
                grad[j] += w * coefs[j];
            }
            Ok((value, grad))
        };
        let result = OwlQn::new(vec![0.0; d + 1])
            .max_iter(self.max_iter)
            .tol(self.tol)
            .minimize(&mut objective, vec![0.0; d + 1]);
        blocks.unpersist();
        let min = result?;
        let coefficients = (0..d).map(|j| min.x[j] * inv_std[j]).collect();
        let intercept = if self.fit_intercept { min.x[d] } else { 0.0 };
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
            "LinearSVC fitted"
        );
        Ok(LinearSvcModel {
            coefficients,
            intercept,
            threshold: self.threshold,
            summary,
        })
    }
}

/// A fitted [`LinearSvc`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSvcModel {
    coefficients: Vec<f64>,
    intercept: f64,
    threshold: f64,
    summary: TrainingSummary,
}

impl LinearSvcModel {
    /// Kind name in model files.
    pub const KIND: &'static str = "LinearSVCModel";

    /// The coefficients (original feature scale).
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// The intercept (0 when none was fitted).
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.coefficients.len()
    }

    /// How training went (objective history: mean hinge loss plus regularization).
    pub fn summary(&self) -> &TrainingSummary {
        &self.summary
    }

    /// `[−m, m]` for the margin `m = βᵀx + b`.
    ///
    /// Panics if `features` does not have [`Self::num_features`] entries.
    pub fn predict_raw(&self, features: &Vector) -> Vec<f64> {
        assert_eq!(
            features.len(),
            self.coefficients.len(),
            "LinearSVCModel: a vector of {} features for a model of {}",
            features.len(),
            self.coefficients.len()
        );
        let m = features.dot(&self.coefficients) + self.intercept;
        vec![-m, m]
    }

    /// 1 when the margin exceeds the threshold, otherwise 0.
    pub fn predict(&self, features: &Vector) -> f64 {
        if self.predict_raw(features)[1] > self.threshold {
            1.0
        } else {
            0.0
        }
    }

    /// `(label, prediction)` for every point of `data` (lazy).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<(f64, f64)> {
        data.map(with(self.clone(), |m: &LinearSvcModel, p: LabeledPoint| {
            (p.label, m.predict(&p.features))
        }))
    }

    /// Saves the model to `path` (JSON, kind `LinearSVCModel`, version 1).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(path.as_ref(), Self::KIND, 1, self)
    }

    /// Loads a model saved by [`Self::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        load_model(path.as_ref(), Self::KIND, 1)
    }
}
