//! Generalized linear regression by iteratively reweighted least squares, as Spark ML's
//! `GeneralizedLinearRegression` (solver `irls`).
//!
//! - Start: regress `g(μ₀(y))` on the features by weighted least squares (Spark's
//!   `initialize`: `μ₀ = y`, `(w y + ½)/(w + 1)` for the binomial, `0.1` for a Poisson 0).
//! - Each iteration is one job over the cached blocks: at the current `(β, b)`, every row gets
//!   `η = xᵀβ + b`, `μ = g⁻¹(η)` (projected into the family's range), the working response
//!   `z = η + (y − μ) g'(μ)` and weight `w / (g'(μ)² V(μ))`; the pass accumulates the weighted
//!   Gram matrix `XᵀWX` (with the intercept column) and `XᵀWz` (packed, tree-aggregated), and
//!   the driver solves the normal equations by Cholesky, with the penalty `λ/2 ‖β‖²` (Spark's
//!   IRLS runs its weighted least squares without standardisation; see [`super::wls`]).
//! - It stops when no coefficient (intercept included) moves by `tol` or more, or after
//!   `max_iter` iterations.
//! - The Tweedie family (variance `μ^p`, power links `η = μ^λ`, default `λ = 1 − p`) runs
//!   the same IRLS; like Spark, its dispersion is estimated and it has no AIC (NaN).
//! - The gaussian family with the identity link is solved directly, in one pass, with Spark's
//!   standardised ridge penalty `λ/(2σ_y) Σ σ_j² β_j²` (what Spark does for it).
//!
//! The summary is Spark's `GeneralizedLinearRegressionTrainingSummary`: standard errors
//! `sqrt(φ · diag((XᵀWX + penalty)⁻¹))` from the last solve, z values and normal p-values for
//! the binomial and Poisson families (dispersion `φ = 1`), t values and Student t p-values with
//! `n − rank` degrees of freedom for the gaussian and gamma families (`φ` = Pearson χ² / (n −
//! rank)), deviance, null deviance (the intercept-only model: the weighted mean label; without
//! an intercept `g⁻¹(0)`), and Spark's AIC (which, unlike statsmodels, counts the gaussian
//! scale as a parameter: +2, and for the gamma family uses the dispersion `D / Σw`). Arrays
//! list the coefficients, then the intercept.

use std::path::Path;
use std::time::Instant;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::dist::{normal_two_sided_p, student_t_two_sided_p};
use super::family::{AicTerms, Family, Link};
use super::input::prepare;
use super::wls::{WlsParams, WorkingResponse, normal_stats, solve};
use crate::data::{InstanceBlock, LabeledPoint};
use crate::device::Device;
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::linalg::kernels::dot;
use crate::persist::{load_model, save_model};
use crate::summary::TrainingSummary;

/// The GLM estimator. Defaults: gaussian family, its canonical link, an intercept,
/// `reg_param = 0`, `max_iter = 25`, `tol = 1e-6`; row weights come from the points.
///
/// ```
/// use flint_engine::Context;
/// use flint_mllib::LabeledPoint;
/// use flint_mllib::regression::{Family, GeneralizedLinearRegression};
/// let ctx = Context::local(2).unwrap();
/// let rows: Vec<LabeledPoint> = (0..40)
///     .map(|i| { let x = i as f64 / 10.0; LabeledPoint::new((0.5 + 0.3 * x).exp().round(), vec![x]) })
///     .collect();
/// let model = GeneralizedLinearRegression::new()
///     .family(Family::Poisson)
///     .fit(&ctx.parallelize(rows, 2))
///     .unwrap();
/// assert!((model.coefficients[0] - 0.3).abs() < 0.1);
/// assert!(model.summary.p_values[0] < 1e-3);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneralizedLinearRegression {
    family: Family,
    link: Option<Link>,
    fit_intercept: bool,
    reg_param: f64,
    max_iter: usize,
    tol: f64,
    #[serde(default)]
    device: Option<Device>,
}

impl Default for GeneralizedLinearRegression {
    fn default() -> Self {
        Self::new()
    }
}

impl GeneralizedLinearRegression {
    /// The estimator with the defaults.
    pub fn new() -> Self {
        GeneralizedLinearRegression {
            family: Family::Gaussian,
            link: None,
            fit_intercept: true,
            reg_param: 0.0,
            max_iter: 25,
            tol: 1e-6,
            device: None,
        }
    }

    /// Where the Gram matrices of the IRLS passes run (default: the `flint.ml.device`
    /// setting, environment variable `FLINT_ML_DEVICE`, else [`Device::Auto`]); see
    /// [`crate::device`]. The working weights and responses, the deviance and the summary
    /// pass stay on the CPU.
    ///
    /// ```
    /// use flint_mllib::{Device, regression::GeneralizedLinearRegression};
    /// let glm = GeneralizedLinearRegression::new().device(Device::Cpu);
    /// # let _ = glm;
    /// ```
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// The error distribution (default gaussian).
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// The link (default: the family's canonical link).
    pub fn link(mut self, link: Link) -> Self {
        self.link = Some(link);
        self
    }

    /// Whether to fit an intercept (default true).
    pub fn fit_intercept(mut self, on: bool) -> Self {
        self.fit_intercept = on;
        self
    }

    /// L2 regularization `λ ≥ 0` (default 0): the IRLS steps penalise `λ/2 ‖β‖²`.
    pub fn reg_param(mut self, reg: f64) -> Self {
        self.reg_param = reg;
        self
    }

    /// Most IRLS iterations (default 25).
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Convergence tolerance on the largest coefficient change (default 1e-6).
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// The link used: the one set, or the family's canonical link.
    pub fn link_used(&self) -> Link {
        self.link.unwrap_or_else(|| self.family.canonical_link())
    }

    fn validate(&self) -> Result<()> {
        let link = self.link_used();
        if let Family::Tweedie { variance_power: p } = self.family
            && !(p == 0.0 || (p >= 1.0 && p.is_finite()))
        {
            return Err(MlError::param("variance_power", p, "0 or a finite value >= 1"));
        }
        if !self.family.supports(link) {
            let mut names: Vec<String> = self.family.supported_links().iter().map(|l| l.to_string()).collect();
            if let Family::Tweedie { .. } = self.family {
                names.insert(0, "power(λ)".into());
            }
            return Err(MlError::param(
                "link",
                link,
                format!("the {} family supports {}", self.family, names.join(", ")),
            ));
        }
        if !(self.reg_param >= 0.0 && self.reg_param.is_finite()) {
            return Err(MlError::param("reg_param", self.reg_param, "a finite value >= 0"));
        }
        if self.max_iter == 0 {
            return Err(MlError::param("max_iter", self.max_iter, "at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(MlError::param("tol", self.tol, "a finite value >= 0"));
        }
        Ok(())
    }

    /// Fits the model (one job to check and cache the data, one per IRLS iteration, one for
    /// the summary).
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<GeneralizedLinearRegressionModel> {
        self.validate()?;
        let device = Device::or_env(self.device)?;
        let start = Instant::now();
        let prepared = prepare(data, Some(self.family), device.block_rows(None))?;
        let result = self.fit_blocks(
            &prepared.blocks,
            prepared.cols,
            prepared.rows,
            prepared.label_mean,
            start,
            device,
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
        device: Device,
    ) -> Result<GeneralizedLinearRegressionModel> {
        let (family, link) = (self.family, self.link_used());
        let standardized = WlsParams {
            fit_intercept: self.fit_intercept,
            reg_param: self.reg_param,
            elastic_net_param: 0.0,
            standardize_features: true,
            standardize_label: true,
        };
        let (mut coefficients, mut intercept, diag_inv, iterations, converged, mut history);
        // IRLS's passes (one weighted least-squares job each).
        let mut pass_seconds = Vec::new();
        if family == Family::Gaussian && link == Link::Identity {
            let stats = normal_stats(blocks, cols, WorkingResponse::Label, device)?;
            let sol = solve(&stats, &standardized)?;
            (coefficients, intercept, diag_inv) = (sol.coefficients, sol.intercept, sol.diag_inv);
            (iterations, converged, history) = (1, true, Vec::new());
        } else {
            let stats = normal_stats(blocks, cols, WorkingResponse::InitialEta { family, link }, device)?;
            let sol = solve(&stats, &standardized)?;
            (coefficients, intercept) = (sol.coefficients, sol.intercept);
            let irls = WlsParams {
                standardize_features: false,
                standardize_label: false,
                ..standardized
            };
            let mut last_diag = sol.diag_inv;
            let mut iter = 0;
            let mut done = false;
            history = Vec::new();
            while iter < self.max_iter && !done {
                let response = WorkingResponse::Irls {
                    family,
                    link,
                    coefficients: coefficients.clone(),
                    intercept,
                };
                let pass_start = Instant::now();
                let stats = normal_stats(blocks, cols, response, device)?;
                pass_seconds.push(pass_start.elapsed().as_secs_f64());
                history.push(stats.deviance);
                let sol = solve(&stats, &irls)?;
                let max_change = coefficients
                    .iter()
                    .zip(&sol.coefficients)
                    .map(|(a, b)| (a - b).abs())
                    .fold((intercept - sol.intercept).abs(), f64::max);
                if !max_change.is_finite() {
                    return Err(MlError::Data(format!(
                        "IRLS diverged at iteration {} (the {family} family with the {link} link does not fit this data)",
                        iter + 1
                    )));
                }
                (coefficients, intercept, last_diag) = (sol.coefficients, sol.intercept, sol.diag_inv);
                iter += 1;
                done = max_change < self.tol;
                debug!(iteration = iter, deviance = stats.deviance, max_change, "glm irls");
            }
            if !done {
                warn!(max_iter = self.max_iter, "glm: IRLS did not converge");
            }
            (diag_inv, iterations, converged) = (last_diag, iter, done);
        }
        let fitted = Fitted {
            family,
            link,
            coefficients: coefficients.clone(),
            intercept,
        };
        let stats = final_stats(blocks, fitted.clone(), self.fit_intercept, label_mean)?;
        history.push(stats.deviance);
        let rank = cols + usize::from(self.fit_intercept);
        let df = rows as i64 - rank as i64;
        let dispersion = if family.fixed_dispersion() {
            1.0
        } else {
            stats.pearson / df as f64
        };
        let standard_errors: Vec<f64> = diag_inv.iter().map(|d| (d * dispersion).sqrt()).collect();
        let mut estimates = coefficients.clone();
        if self.fit_intercept {
            estimates.push(intercept);
        }
        let t_values: Vec<f64> = estimates.iter().zip(&standard_errors).map(|(b, s)| b / s).collect();
        let p_values = t_values
            .iter()
            .map(|&t| {
                if family.fixed_dispersion() {
                    normal_two_sided_p(t)
                } else {
                    student_t_two_sided_p(t, df as f64)
                }
            })
            .collect();
        let aic = family.aic(&stats.aic, stats.deviance, rows as f64, stats.weight_sum) + 2.0 * rank as f64;
        let train_seconds = start.elapsed().as_secs_f64();
        info!(%family, %link, iterations, converged, deviance = stats.deviance, "glm fitted");
        Ok(GeneralizedLinearRegressionModel {
            family,
            link,
            coefficients,
            intercept,
            summary: GeneralizedLinearRegressionSummary {
                training: TrainingSummary {
                    iterations,
                    loss_history: history,
                    converged,
                    train_seconds,
                    pass_seconds,
                },
                num_instances: rows,
                rank,
                coefficient_standard_errors: standard_errors,
                t_values,
                p_values,
                dispersion,
                deviance: stats.deviance,
                null_deviance: stats.null_deviance,
                aic,
                residual_degree_of_freedom: df,
                residual_degree_of_freedom_null: rows as i64 - i64::from(self.fit_intercept),
            },
        })
    }
}

/// A fitted GLM's parameters, as shipped to the summary pass.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Fitted {
    family: Family,
    link: Link,
    coefficients: Vec<f64>,
    intercept: f64,
}

/// Sums of the summary pass.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FinalStats {
    deviance: f64,
    null_deviance: f64,
    pearson: f64,
    weight_sum: f64,
    aic: AicTerms,
}

fn final_stats(
    blocks: &Rdd<InstanceBlock>,
    fitted: Fitted,
    fit_intercept: bool,
    label_mean: f64,
) -> Result<FinalStats> {
    let null_mu = if fit_intercept {
        label_mean
    } else {
        fitted.link.unlink(0.0)
    };
    let bc = blocks.context().broadcast((fitted, null_mu));
    let stats = blocks.tree_aggregate(
        FinalStats::default(),
        with(
            bc,
            |bc: &Broadcast<(Fitted, f64)>, mut acc: FinalStats, block: InstanceBlock| {
                let (m, null_mu) = bc.value();
                let family = m.family;
                for r in 0..block.rows {
                    let (y, w) = (block.labels[r], block.weights[r]);
                    let mu = family.project(m.link.unlink(dot(block.row(r), &m.coefficients) + m.intercept));
                    acc.deviance += family.deviance(y, mu, w);
                    acc.null_deviance += family.deviance(y, *null_mu, w);
                    acc.pearson += w * (y - mu) * (y - mu) / family.variance(mu);
                    acc.weight_sum += w;
                    acc.aic.add(family, y, mu, w);
                }
                acc
            },
        ),
        |mut a: FinalStats, b: FinalStats| {
            a.deviance += b.deviance;
            a.null_deviance += b.null_deviance;
            a.pearson += b.pearson;
            a.weight_sum += b.weight_sum;
            a.aic.merge(&b.aic);
            a
        },
        2,
    )?;
    Ok(stats)
}

/// The training summary of a GLM (Spark's `GeneralizedLinearRegressionTrainingSummary`).
/// Per-coefficient arrays list the coefficients, then the intercept when one was fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneralizedLinearRegressionSummary {
    /// Iterations, convergence, time; `loss_history` holds the deviance at the start of each
    /// IRLS iteration and of the final model.
    pub training: TrainingSummary,
    /// Rows of the training data.
    pub num_instances: u64,
    /// Parameters fitted: features, plus 1 for the intercept.
    pub rank: usize,
    /// Standard errors `sqrt(φ · diag((XᵀWX + penalty)⁻¹))`.
    pub coefficient_standard_errors: Vec<f64>,
    /// Estimates over their standard errors (z values when the dispersion is fixed at 1).
    pub t_values: Vec<f64>,
    /// Two-sided p-values: normal for the binomial and Poisson families, Student t with
    /// `residual_degree_of_freedom` degrees of freedom otherwise.
    pub p_values: Vec<f64>,
    /// `φ`: 1 for the binomial and Poisson families, Pearson χ² / residual degrees of freedom
    /// otherwise.
    pub dispersion: f64,
    /// Deviance of the model.
    pub deviance: f64,
    /// Deviance of the intercept-only model (or of `g⁻¹(0)` without an intercept).
    pub null_deviance: f64,
    /// Akaike's information criterion, Spark's definition (module docs).
    pub aic: f64,
    /// Rows minus rank.
    pub residual_degree_of_freedom: i64,
    /// Rows minus 1 with an intercept, rows without.
    pub residual_degree_of_freedom_null: i64,
}

/// A fitted GLM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneralizedLinearRegressionModel {
    /// The family.
    pub family: Family,
    /// The link.
    pub link: Link,
    /// One coefficient per feature.
    pub coefficients: Vec<f64>,
    /// The intercept (0 when not fitted).
    pub intercept: f64,
    /// What training found.
    pub summary: GeneralizedLinearRegressionSummary,
}

const KIND: &str = "GeneralizedLinearRegressionModel";

impl GeneralizedLinearRegressionModel {
    /// The linear predictor `η = xᵀβ + b`. `features` must have one entry per coefficient.
    pub fn predict_link(&self, features: &Vector) -> f64 {
        features.dot(&self.coefficients) + self.intercept
    }

    /// The predicted mean `μ = g⁻¹(η)` (projected into the family's range, as Spark).
    pub fn predict(&self, features: &Vector) -> f64 {
        self.family.project(self.link.unlink(self.predict_link(features)))
    }

    /// `(label, predicted mean)` for every point.
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<(f64, f64)> {
        data.map(with(
            self.clone(),
            |m: &GeneralizedLinearRegressionModel, p: LabeledPoint| (p.label, m.predict(&p.features)),
        ))
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
