//! Linear regression as Spark ML's `LinearRegression`: solver `normal` (Spark's
//! `WeightedLeastSquares`, features standardised when `standardization` is on, the label
//! always): one job accumulates the weighted Gram matrix, the driver solves; solver `l-bfgs`
//! (`lbfgs` module): L-BFGS, or OWL-QN with an L1 term, on the same objective in Spark's
//! standardised space, one job per evaluation; solver `sgd` (`sgd` module): Spark's
//! mini-batch gradient descent on that standardised objective (the L1 part by
//! soft-thresholding), one job per iteration. Solver
//! `auto` takes the normal equations up to [`MAX_NORMAL_FEATURES`] features and l-bfgs beyond.
//!
//! The objective (see [`super::wls`] for the derivation from Spark's standardised one), with
//! `W = Σ w_i`, `σ_y` and `σ_j` the population weighted standard deviations of the label and
//! of feature `j`, `s_j = σ_j` with standardization and 1 without, `λ = reg_param`,
//! `α = elastic_net_param`:
//!
//! ```text
//! 1/(2W) Σ_i w_i (x_iᵀβ + b − y_i)²  +  λ(1−α)/(2σ_y) Σ_j (s_j β_j)²  +  λα Σ_j s_j |β_j|
//! ```
//!
//! (the intercept `b` is not penalised; without an intercept `b = 0`). Ridge (`α = 0`) is one
//! Cholesky solve; the elastic net (`α > 0`) runs cyclic coordinate descent on the same normal
//! equations, the optimum Spark's OWL-QN on them approaches. Features of zero variance get
//! coefficient 0, as in Spark. The l-bfgs solver stops after `max_iter` iterations or when
//! the objective improves by less than `tol` relative to its value.
//!
//! The summary: objective at the optimum (l-bfgs: at the start and after every iteration,
//! Spark's `objectiveHistory` in the units above, i.e. Spark's values times `σ_y²`), RMSE,
//! MSE, MAE and R² on the training data (weighted; R² about the weighted mean, or about 0
//! without an intercept, as Spark), and for `α = 0` with the normal solver Spark's
//! coefficient standard errors `sqrt(σ̂² · diag((XᵀWX + penalty)⁻¹))` with
//! `σ̂² = Σ w r² / (n − rank)`, t values and Student t p-values (none with l-bfgs, as Spark).

use std::path::Path;
use std::time::Instant;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::dist::student_t_two_sided_p;
use super::input::prepare;
use super::wls::{WlsParams, WorkingResponse, normal_stats, solve};
use crate::data::{InstanceBlock, LabeledPoint};
use crate::device::Device;
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::linalg::kernels::dot;
use crate::persist::{load_model, save_model};
use crate::summary::TrainingSummary;
use lbfgs::{LbfgsParams, LbfgsSolution};
use sgd::SgdParams;

mod lbfgs;
mod moments;
mod sgd;

/// Most features the normal equations are used for with solver `auto` (Spark's
/// `WeightedLeastSquares.MAX_NUM_FEATURES`).
pub const MAX_NORMAL_FEATURES: usize = 4096;

/// How [`LinearRegression`] solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Solver {
    /// The normal equations up to [`MAX_NORMAL_FEATURES`] features, L-BFGS beyond.
    Auto,
    /// The normal equations.
    Normal,
    /// L-BFGS on the loss, OWL-QN when it has an L1 term (`reg_param · elastic_net_param > 0`).
    LBfgs,
    /// Mini-batch stochastic gradient descent (Spark's `GradientDescent`; an L1 term by
    /// soft-thresholding, as its `L1Updater`). For
    /// [`LogisticRegression`](crate::classification::LogisticRegression) too (binomial only).
    Sgd,
}

impl Solver {
    /// Parses a solver name: Spark's (`auto`, `normal`, `l-bfgs`), and `sgd` (mini-batch
    /// gradient descent, as Spark's `GradientDescent`).
    pub fn parse(name: &str) -> Result<Solver> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(Solver::Auto),
            "normal" => Ok(Solver::Normal),
            "l-bfgs" | "lbfgs" => Ok(Solver::LBfgs),
            "sgd" => Ok(Solver::Sgd),
            _ => Err(MlError::param("solver", name, "one of auto, normal, l-bfgs, sgd")),
        }
    }
}

/// The linear regression estimator. Defaults: `reg_param = 0`, `elastic_net_param = 0`,
/// an intercept, `standardization = true`, solver `auto`, `max_iter = 100`, `tol = 1e-6`,
/// and for solver `sgd` `step_size = 1.0`, `mini_batch_fraction = 1.0`, `seed = 42`;
/// row weights come from the points.
///
/// ```
/// use flint_engine::Context;
/// use flint_mllib::{LabeledPoint, Vector};
/// use flint_mllib::regression::LinearRegression;
/// let ctx = Context::local(2).unwrap();
/// let rows: Vec<LabeledPoint> = (0..20)
///     .map(|i| { let x = i as f64; LabeledPoint::new(1.0 + 2.0 * x, vec![x]) })
///     .collect();
/// let model = LinearRegression::new().fit(&ctx.parallelize(rows, 2)).unwrap();
/// assert!((model.coefficients[0] - 2.0).abs() < 1e-9 && (model.intercept - 1.0).abs() < 1e-9);
/// assert!((model.predict(&Vector::Dense(vec![3.0])) - 7.0).abs() < 1e-9);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearRegression {
    reg_param: f64,
    elastic_net_param: f64,
    fit_intercept: bool,
    standardization: bool,
    solver: Solver,
    max_iter: usize,
    tol: f64,
    step_size: f64,
    mini_batch_fraction: f64,
    seed: u64,
}

impl Default for LinearRegression {
    fn default() -> Self {
        Self::new()
    }
}

impl LinearRegression {
    /// The estimator with the defaults.
    pub fn new() -> Self {
        LinearRegression {
            reg_param: 0.0,
            elastic_net_param: 0.0,
            fit_intercept: true,
            standardization: true,
            solver: Solver::Auto,
            max_iter: 100,
            tol: 1e-6,
            step_size: 1.0,
            mini_batch_fraction: 1.0,
            seed: 42,
        }
    }

    /// Regularization strength `λ ≥ 0` (default 0).
    pub fn reg_param(mut self, reg: f64) -> Self {
        self.reg_param = reg;
        self
    }

    /// Elastic-net mixing `α` in `[0, 1]`: 0 is ridge, 1 is lasso (default 0).
    pub fn elastic_net_param(mut self, alpha: f64) -> Self {
        self.elastic_net_param = alpha;
        self
    }

    /// Whether to fit an intercept (default true).
    pub fn fit_intercept(mut self, on: bool) -> Self {
        self.fit_intercept = on;
        self
    }

    /// Whether the penalty applies to standardised features (default true).
    pub fn standardization(mut self, on: bool) -> Self {
        self.standardization = on;
        self
    }

    /// The solver (default auto).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// Iteration limit of the l-bfgs and sgd solvers, at least 1 (default 100).
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Convergence tolerance of the l-bfgs solver, finite and `>= 0` (default 1e-6): it stops
    /// when an iteration improves the objective by less than `tol` relative to its value.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Initial step size `η` of the sgd solver, finite and `> 0` (default 1.0): iteration `i`
    /// steps `η/√i` along the (mini-batch) gradient in standardised space.
    pub fn step_size(mut self, v: f64) -> Self {
        self.step_size = v;
        self
    }

    /// Fraction of the rows the sgd solver samples per iteration, in `(0, 1]` (default 1.0).
    pub fn mini_batch_fraction(mut self, v: f64) -> Self {
        self.mini_batch_fraction = v;
        self
    }

    /// Seed of the sgd solver's samples (default 42): a fit is reproducible.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// The solver a fit on `num_features` features uses: [`Solver::Normal`] or
    /// [`Solver::LBfgs`] (`auto` picks the normal equations up to [`MAX_NORMAL_FEATURES`]
    /// features, as Spark).
    ///
    /// ```
    /// use flint_mllib::regression::{LinearRegression, Solver};
    /// assert_eq!(LinearRegression::new().effective_solver(4096), Solver::Normal);
    /// assert_eq!(LinearRegression::new().effective_solver(4097), Solver::LBfgs);
    /// ```
    pub fn effective_solver(&self, num_features: usize) -> Solver {
        match self.solver {
            Solver::Auto if num_features > MAX_NORMAL_FEATURES => Solver::LBfgs,
            Solver::Auto | Solver::Normal => Solver::Normal,
            Solver::LBfgs => Solver::LBfgs,
            Solver::Sgd => Solver::Sgd,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.reg_param >= 0.0 && self.reg_param.is_finite()) {
            return Err(MlError::param("reg_param", self.reg_param, "a finite value >= 0"));
        }
        if !(0.0..=1.0).contains(&self.elastic_net_param) {
            return Err(MlError::param(
                "elastic_net_param",
                self.elastic_net_param,
                "a value in [0, 1]",
            ));
        }
        if self.max_iter == 0 {
            return Err(MlError::param("max_iter", self.max_iter, ">= 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(MlError::param("tol", self.tol, "a finite value >= 0"));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(MlError::param("step_size", self.step_size, "a finite value > 0"));
        }
        if !(self.mini_batch_fraction > 0.0 && self.mini_batch_fraction <= 1.0) {
            return Err(MlError::param(
                "mini_batch_fraction",
                self.mini_batch_fraction,
                "a value in (0, 1]",
            ));
        }
        Ok(())
    }

    /// Fits the model: one job to check and cache the data, one for the normal equations (or,
    /// with l-bfgs, one for the moments and one per evaluation of the objective), one for the
    /// summary.
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<LinearRegressionModel> {
        self.validate()?;
        let start = Instant::now();
        let prepared = prepare(data, None, crate::data::DEFAULT_BLOCK_ROWS)?;
        let result = self.fit_blocks(
            &prepared.blocks,
            prepared.cols,
            prepared.rows,
            prepared.label_mean,
            start,
        );
        prepared.blocks.unpersist();
        result
    }

    fn fit_blocks(
        &self,
        blocks: &Rdd<InstanceBlock>,
        cols: usize,
        rows: u64,
        label_mean: f64,
        start: Instant,
    ) -> Result<LinearRegressionModel> {
        match self.effective_solver(cols) {
            Solver::LBfgs => return self.fit_lbfgs(blocks, cols, rows, label_mean, start),
            Solver::Sgd => {
                let sol = sgd::solve(
                    blocks,
                    cols,
                    &SgdParams {
                        fit_intercept: self.fit_intercept,
                        reg_param: self.reg_param,
                        elastic_net_param: self.elastic_net_param,
                        standardization: self.standardization,
                        max_iter: self.max_iter,
                        tol: self.tol,
                        step_size: self.step_size,
                        mini_batch_fraction: self.mini_batch_fraction,
                        seed: self.seed,
                    },
                )?;
                return self.iterative_model(blocks, sol, rows, label_mean, start, "sgd");
            }
            _ => {}
        }
        // The CPU: its `f64` Gram matrix is what the 1e-9 fixture tolerances need.
        let stats = normal_stats(blocks, cols, WorkingResponse::Label, Device::Cpu)?;
        let sol = solve(
            &stats,
            &WlsParams {
                fit_intercept: self.fit_intercept,
                reg_param: self.reg_param,
                elastic_net_param: self.elastic_net_param,
                standardize_features: self.standardization,
                standardize_label: true,
            },
        )?;
        let (sse, sae, sst, wsum) = self.residual_sums(blocks, &sol.coefficients, sol.intercept, label_mean)?;
        let objective = sse / (2.0 * wsum) + sol.penalty;
        let rank = cols + usize::from(self.fit_intercept);
        let df = rows as i64 - rank as i64;
        let (standard_errors, t_values, p_values) = if self.elastic_net_param == 0.0 || self.reg_param == 0.0 {
            let sigma2 = sse / df as f64;
            let se: Vec<f64> = sol.diag_inv.iter().map(|d| (d * sigma2).sqrt()).collect();
            let mut estimates = sol.coefficients.clone();
            if self.fit_intercept {
                estimates.push(sol.intercept);
            }
            let t: Vec<f64> = estimates.iter().zip(&se).map(|(b, s)| b / s).collect();
            let p = t.iter().map(|&t| student_t_two_sided_p(t, df as f64)).collect();
            (Some(se), Some(t), Some(p))
        } else {
            (None, None, None)
        };
        let train_seconds = start.elapsed().as_secs_f64();
        info!(objective, iterations = sol.iterations, "linear regression fitted");
        Ok(LinearRegressionModel {
            coefficients: sol.coefficients,
            intercept: sol.intercept,
            summary: LinearRegressionSummary {
                training: TrainingSummary {
                    iterations: sol.iterations,
                    loss_history: vec![objective],
                    converged: true,
                    train_seconds,
                    pass_seconds: Vec::new(),
                },
                num_instances: rows,
                degrees_of_freedom: df,
                root_mean_squared_error: (sse / wsum).sqrt(),
                mean_squared_error: sse / wsum,
                mean_absolute_error: sae / wsum,
                r2: 1.0 - sse / sst,
                coefficient_standard_errors: standard_errors,
                t_values,
                p_values,
            },
        })
    }

    /// The l-bfgs path: no standard errors (as Spark), the objective after every iteration.
    fn fit_lbfgs(
        &self,
        blocks: &Rdd<InstanceBlock>,
        cols: usize,
        rows: u64,
        label_mean: f64,
        start: Instant,
    ) -> Result<LinearRegressionModel> {
        let sol = lbfgs::solve(
            blocks,
            cols,
            &LbfgsParams {
                fit_intercept: self.fit_intercept,
                reg_param: self.reg_param,
                elastic_net_param: self.elastic_net_param,
                standardization: self.standardization,
                max_iter: self.max_iter,
                tol: self.tol,
            },
        )?;
        self.iterative_model(blocks, sol, rows, label_mean, start, "l-bfgs")
    }

    /// The model of an iterative solver (l-bfgs, sgd): no standard errors (as Spark).
    fn iterative_model(
        &self,
        blocks: &Rdd<InstanceBlock>,
        sol: LbfgsSolution,
        rows: u64,
        label_mean: f64,
        start: Instant,
        solver: &str,
    ) -> Result<LinearRegressionModel> {
        let cols = sol.coefficients.len();
        let (sse, sae, sst, wsum) = self.residual_sums(blocks, &sol.coefficients, sol.intercept, label_mean)?;
        let rank = cols + usize::from(self.fit_intercept);
        let df = rows as i64 - rank as i64;
        let train_seconds = start.elapsed().as_secs_f64();
        info!(
            objective = sol.objective_history.last().copied().unwrap_or(f64::NAN),
            iterations = sol.iterations,
            converged = sol.converged,
            solver,
            "linear regression fitted"
        );
        Ok(LinearRegressionModel {
            coefficients: sol.coefficients,
            intercept: sol.intercept,
            summary: LinearRegressionSummary {
                training: TrainingSummary {
                    iterations: sol.iterations,
                    loss_history: sol.objective_history,
                    converged: sol.converged,
                    train_seconds,
                    pass_seconds: sol.pass_seconds,
                },
                num_instances: rows,
                degrees_of_freedom: df,
                root_mean_squared_error: (sse / wsum).sqrt(),
                mean_squared_error: sse / wsum,
                mean_absolute_error: sae / wsum,
                r2: 1.0 - sse / sst,
                coefficient_standard_errors: None,
                t_values: None,
                p_values: None,
            },
        })
    }

    /// One job: `(Σ w r², Σ w |r|, Σ w (y − ȳ)², Σ w)` of the model (`ȳ = 0` without an intercept).
    fn residual_sums(
        &self,
        blocks: &Rdd<InstanceBlock>,
        coefficients: &[f64],
        intercept: f64,
        label_mean: f64,
    ) -> Result<(f64, f64, f64, f64)> {
        let center = if self.fit_intercept { label_mean } else { 0.0 };
        let bc = blocks.context().broadcast((coefficients.to_vec(), intercept, center));
        let [sse, sae, sst, wsum] = blocks.tree_aggregate(
            [0.0f64; 4],
            with(
                bc,
                |bc: &Broadcast<(Vec<f64>, f64, f64)>, mut acc: [f64; 4], block: InstanceBlock| {
                    let (beta, b, center) = bc.value();
                    for r in 0..block.rows {
                        let (y, w) = (block.labels[r], block.weights[r]);
                        let res = dot(block.row(r), beta) + b - y;
                        acc[0] += w * res * res;
                        acc[1] += w * res.abs();
                        acc[2] += w * (y - center) * (y - center);
                        acc[3] += w;
                    }
                    acc
                },
            ),
            |a: [f64; 4], b: [f64; 4]| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]],
            2,
        )?;
        Ok((sse, sae, sst, wsum))
    }
}

/// What training found (Spark's `LinearRegressionTrainingSummary`, weighted metrics).
/// Per-coefficient arrays list the coefficients, then the intercept when one was fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearRegressionSummary {
    /// Normal solver: coordinate-descent sweeps (0 for a direct solve), `loss_history` holds
    /// the objective at the optimum. L-BFGS: its iterations, `loss_history` the objective at
    /// the start and after every iteration (Spark's `objectiveHistory` times `σ_y²`).
    pub training: TrainingSummary,
    /// Rows of the training data.
    pub num_instances: u64,
    /// Rows minus features, minus 1 with an intercept.
    pub degrees_of_freedom: i64,
    /// `sqrt(Σ w r² / Σ w)`.
    pub root_mean_squared_error: f64,
    /// `Σ w r² / Σ w`.
    pub mean_squared_error: f64,
    /// `Σ w |r| / Σ w`.
    pub mean_absolute_error: f64,
    /// `1 − Σ w r² / Σ w (y − ȳ)²` (`ȳ = 0` without an intercept).
    pub r2: f64,
    /// Standard errors (normal solver, ridge and least squares only: `None` with an L1
    /// penalty or the l-bfgs solver, as Spark).
    pub coefficient_standard_errors: Option<Vec<f64>>,
    /// Estimates over their standard errors.
    pub t_values: Option<Vec<f64>>,
    /// Two-sided Student t p-values with `degrees_of_freedom`.
    pub p_values: Option<Vec<f64>>,
}

/// A fitted linear regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearRegressionModel {
    /// One coefficient per feature.
    pub coefficients: Vec<f64>,
    /// The intercept (0 when not fitted).
    pub intercept: f64,
    /// What training found.
    pub summary: LinearRegressionSummary,
}

const KIND: &str = "LinearRegressionModel";

impl LinearRegressionModel {
    /// `xᵀβ + b`. `features` must have one entry per coefficient.
    pub fn predict(&self, features: &Vector) -> f64 {
        features.dot(&self.coefficients) + self.intercept
    }

    /// `(label, prediction)` for every point.
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<(f64, f64)> {
        data.map(with(self.clone(), |m: &LinearRegressionModel, p: LabeledPoint| {
            (p.label, m.predict(&p.features))
        }))
    }

    /// Writes the model to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(path.as_ref(), KIND, 1, self)
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        load_model(path.as_ref(), KIND, 1)
    }
}
