//! Weighted least squares on the normal equations (Spark's `WeightedLeastSquares`): one pass
//! accumulates the weighted Gram matrix of the features augmented with a column of ones and
//! the products with a working response `z`; the driver then solves Spark's objective.
//!
//! Spark solves, in standardised space (features divided by `σ_j`, the response by `σ_z`),
//! the least-squares problem with penalty `λ/σ_z · ((1−α)/2 ‖β̃‖² + α ‖β̃‖₁)`; `W = Σ w_i`, and
//! `σ_j`, `σ_z` are the *population* weighted standard deviations of feature `j` and of `z`
//! (Spark's WLS uses `E[x²] − E[x]²`, not the unbiased estimate). Undoing the scaling
//! (`β̃_j = β_j σ_j/σ_z`, the objective multiplied by `σ_z²`), the optimum is the one of
//!
//! ```text
//! min_{β, b}  1/(2W) Σ_i w_i (x_iᵀβ + b − z_i)²  +  (1−α)/2 · λ₂ · Σ_j (s_j β_j)²  +  α λ Σ_j s_j |β_j|
//! ```
//!
//! with `s_j = σ_j` when standardising features and 1 otherwise, and `λ₂ = λ/σ_z` when
//! standardising the label, `λ` otherwise. (Spark adds `λ/σ_z` — divided by `σ_j²` without
//! feature standardisation, times `σ_z` without label standardisation — to the diagonal of the
//! standardised Gram matrix, and uses `αλ/σ_z` — divided by `σ_j` without feature
//! standardisation — as the L1 weight of its OWL-QN solve.) So ridge with standardisation
//! (`LinearRegression`'s default) penalises `λ/(2σ_y) Σ σ_j² β_j²`, and the IRLS steps of a
//! GLM (neither standardised) penalise `λ/2 ‖β‖²`.
//!
//! The intercept is never penalised. Features of zero variance get coefficient
//! 0, as in Spark. A constant response gives coefficients 0 and intercept `E[z]` (with an
//! intercept, or when `E[z] = 0`); without an intercept its scale `σ_z` becomes `|E[z]|`.
//!
//! The solve itself is done in centred (with an intercept) and Jacobi-scaled coordinates:
//! the same optimum as Spark's standardised system, with the best conditioning a Cholesky
//! factorisation can have without pivoting.

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};

use super::family::{Family, Link};
use crate::data::InstanceBlock;
use crate::device::{Device, device_error};
use crate::error::{MlError, Result};
use crate::linalg::dense::{cholesky, cholesky_inverse, cholesky_solve, gram_accumulate, packed_index, packed_len};
use crate::linalg::kernels::dot;

/// Sums of one pass: `Σ w a aᵀ` (packed, `a = [x, 1]`), `Σ w a z`, `Σ w z²`, the row count,
/// and (IRLS) the deviance of the model the working response was computed at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NormalStats {
    pub cols: usize,
    pub count: u64,
    pub gram: Vec<f64>,
    pub az: Vec<f64>,
    pub zz: f64,
    pub deviance: f64,
    /// Why a block could not be computed on the requested device (the first reason).
    #[serde(default)]
    pub failure: Option<String>,
}

impl NormalStats {
    pub fn new(cols: usize) -> Self {
        NormalStats {
            cols,
            count: 0,
            gram: vec![0.0; packed_len(cols + 1)],
            az: vec![0.0; cols + 1],
            zz: 0.0,
            deviance: 0.0,
            failure: None,
        }
    }

    fn add_block(&mut self, block: &InstanceBlock, w: &[f64], z: &[f64]) {
        gram_accumulate(
            &block.features,
            block.rows,
            block.cols,
            w,
            z,
            &mut self.gram,
            &mut self.az,
        );
        self.zz += w.iter().zip(z).map(|(w, z)| w * z * z).sum::<f64>();
        self.count += block.rows as u64;
    }

    /// [`Self::add_block`] with the Gram matrix and `Σ w a z` computed on `device` as this
    /// process resolves it (`w`, `z`, `Σ w z²` and the deviance stay on the CPU).
    fn add_block_on(&mut self, device: Device, block: &InstanceBlock, w: &[f64], z: &[f64]) {
        if self.failure.is_some() {
            return;
        }
        let sums = match device.select(block.rows * block.cols) {
            Ok(engine) if engine.is_gpu() => engine.gram(block, w, z),
            Ok(_) => return self.add_block(block, w, z),
            Err(why) => Err(why),
        };
        match sums {
            Ok((gram, az)) => {
                self.gram.iter_mut().zip(&gram).for_each(|(a, b)| *a += b);
                self.az.iter_mut().zip(&az).for_each(|(a, b)| *a += b);
                self.zz += w.iter().zip(z).map(|(w, z)| w * z * z).sum::<f64>();
                self.count += block.rows as u64;
            }
            Err(why) => self.failure = Some(why),
        }
    }

    fn merge(mut self, o: NormalStats) -> Self {
        for (a, b) in self.gram.iter_mut().zip(&o.gram) {
            *a += b;
        }
        for (a, b) in self.az.iter_mut().zip(&o.az) {
            *a += b;
        }
        self.zz += o.zz;
        self.deviance += o.deviance;
        self.count += o.count;
        if self.failure.is_none() {
            self.failure = o.failure;
        }
        self
    }

    /// `Σ w`.
    pub fn weight_sum(&self) -> f64 {
        self.gram[packed_index(self.cols, self.cols)]
    }
}

/// What the pass regresses on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum WorkingResponse {
    /// The label itself, with the row weights (least squares).
    Label,
    /// `g(μ₀(y))` with the row weights: the start of IRLS (Spark's `initialize`).
    InitialEta { family: Family, link: Link },
    /// IRLS: `z = η + (y − μ) g'(μ)` with weights `w / (g'(μ)² V(μ))` at the current model.
    Irls {
        family: Family,
        link: Link,
        coefficients: Vec<f64>,
        intercept: f64,
    },
}

impl WorkingResponse {
    /// Fills the working weights and response of `block`; returns the deviance of its rows
    /// (IRLS only, 0 otherwise).
    fn fill(&self, block: &InstanceBlock, w: &mut Vec<f64>, z: &mut Vec<f64>) -> f64 {
        w.clear();
        z.clear();
        match self {
            WorkingResponse::Label => {
                w.extend_from_slice(&block.weights);
                z.extend_from_slice(&block.labels);
                0.0
            }
            WorkingResponse::InitialEta { family, link } => {
                w.extend_from_slice(&block.weights);
                z.extend(
                    block
                        .labels
                        .iter()
                        .zip(block.weights.iter())
                        .map(|(&y, &wt)| link.link(family.initial_mean(y, wt))),
                );
                0.0
            }
            WorkingResponse::Irls {
                family,
                link,
                coefficients,
                intercept,
            } => {
                let mut deviance = 0.0;
                for r in 0..block.rows {
                    let eta = dot(block.row(r), coefficients) + intercept;
                    let mu = family.project(link.unlink(eta));
                    let d = link.deriv(mu);
                    let y = block.labels[r];
                    z.push(eta + (y - mu) * d);
                    w.push(block.weights[r] / (d * d * family.variance(mu)));
                    deviance += family.deviance(y, mu, block.weights[r]);
                }
                deviance
            }
        }
    }
}

/// One job: the normal-equation sums of `response` over the cached blocks, the Gram matrices
/// on `device` (see [`crate::device`]).
pub(crate) fn normal_stats(
    blocks: &Rdd<InstanceBlock>,
    cols: usize,
    response: WorkingResponse,
    device: Device,
) -> Result<NormalStats> {
    let bc = blocks.context().broadcast(response);
    let stats = blocks.tree_aggregate(
        NormalStats::new(cols),
        with(
            (bc, device),
            |(bc, device): &(Broadcast<WorkingResponse>, Device), mut acc: NormalStats, block: InstanceBlock| {
                let (mut w, mut z) = (Vec::with_capacity(block.rows), Vec::with_capacity(block.rows));
                acc.deviance += bc.value().fill(&block, &mut w, &mut z);
                acc.add_block_on(*device, &block, &w, &z);
                acc
            },
        ),
        |a: NormalStats, b: NormalStats| a.merge(b),
        2,
    )?;
    if let Some(why) = stats.failure {
        return Err(device_error(device, why));
    }
    let bad = stats.gram.iter().chain(&stats.az).any(|v| !v.is_finite()) || !stats.zz.is_finite();
    if bad {
        return Err(MlError::Data(
            "the normal equations overflowed (non-finite sums): rescale the features or labels".into(),
        ));
    }
    Ok(stats)
}

/// How to solve the normal equations (Spark's `WeightedLeastSquares` parameters).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WlsParams {
    pub fit_intercept: bool,
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub standardize_features: bool,
    pub standardize_label: bool,
}

/// The optimum.
#[derive(Clone, Debug)]
pub(crate) struct WlsSolution {
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// Diagonal of `(AᵀWA + penalty)⁻¹` (coefficients, then the intercept when fitted), as
    /// Spark's `diagInvAtWA`; NaN for features of zero variance.
    pub diag_inv: Vec<f64>,
    /// Iterations of coordinate descent (0 for a direct Cholesky solve).
    pub iterations: usize,
    /// The penalty term of the objective at the optimum (module docs).
    pub penalty: f64,
}

/// Solves Spark's objective (module docs) from the sums of one pass.
pub(crate) fn solve(stats: &NormalStats, p: &WlsParams) -> Result<WlsSolution> {
    let d = stats.cols;
    let wsum = stats.weight_sum();
    if wsum <= 0.0 {
        return Err(MlError::Data("the weights sum to 0".into()));
    }
    let g = |i: usize, j: usize| stats.gram[packed_index(i, j)] / wsum;
    let mx: Vec<f64> = (0..d).map(|j| g(j, d)).collect();
    let mz = stats.az[d] / wsum;
    let var_z = (stats.zz / wsum - mz * mz).max(0.0);
    let n_out = d + usize::from(p.fit_intercept);
    // Rounding of E[z²] − E[z]² leaves ~1e-16·E[z²] for a constant response.
    let mut sigma_z = var_z.sqrt();
    if var_z <= 1e-14 * (stats.zz / wsum) {
        if p.fit_intercept || mz == 0.0 {
            return Ok(WlsSolution {
                coefficients: vec![0.0; d],
                intercept: if p.fit_intercept { mz } else { 0.0 },
                diag_inv: vec![0.0; n_out],
                iterations: 0,
                penalty: 0.0,
            });
        }
        if p.reg_param > 0.0 && p.standardize_label {
            return Err(MlError::Data(
                "the label is constant: the model cannot be regularized when labels are standardized".into(),
            ));
        }
        sigma_z = mz.abs();
    }
    // Active (non-constant) features.
    let active: Vec<usize> = (0..d)
        .filter(|&j| {
            let (ex2, m) = (g(j, j), mx[j]);
            ex2 - m * m > 1e-14 * ex2
        })
        .collect();
    let k = active.len();
    let sigma = |j: usize| (g(j, j) - mx[j] * mx[j]).max(0.0).sqrt();
    let lambda = |j: usize| {
        let mut l = p.reg_param / sigma_z;
        if p.standardize_features {
            let s = sigma(j);
            l *= s * s;
        }
        if !p.standardize_label {
            l *= sigma_z;
        }
        l
    };
    // Centred (with an intercept) second moments of the active features.
    let mut a = vec![0.0; k * k];
    let mut rhs = vec![0.0; k];
    for (r, &i) in active.iter().enumerate() {
        for (c, &j) in active.iter().enumerate() {
            a[r * k + c] = g(i, j) - if p.fit_intercept { mx[i] * mx[j] } else { 0.0 };
        }
        rhs[r] = stats.az[i] / wsum - if p.fit_intercept { mx[i] * mz } else { 0.0 };
    }
    let l2: Vec<f64> = active
        .iter()
        .map(|&j| lambda(j) * (1.0 - p.elastic_net_param))
        .collect();
    let l1: Vec<f64> = active
        .iter()
        .map(|&j| p.reg_param * p.elastic_net_param * if p.standardize_features { sigma(j) } else { 1.0 })
        .collect();
    for r in 0..k {
        a[r * k + r] += l2[r];
    }
    // Jacobi scaling.
    let s: Vec<f64> = (0..k).map(|r| a[r * k + r].sqrt()).collect();
    let mut scaled = a.clone();
    for r in 0..k {
        for c in 0..k {
            scaled[r * k + c] /= s[r] * s[c];
        }
    }
    let mut chol = scaled.clone();
    let factored = cholesky(&mut chol, k);
    let (beta_active, iterations) = if p.elastic_net_param > 0.0 && p.reg_param > 0.0 {
        super::cd::minimize(&a, &rhs, &l1, k)
    } else {
        if let Err(col) = factored {
            return Err(singular(&active, col));
        }
        let mut x: Vec<f64> = (0..k).map(|r| rhs[r] / s[r]).collect();
        cholesky_solve(&chol, k, &mut x);
        ((0..k).map(|r| x[r] / s[r]).collect(), 0)
    };
    let mut coefficients = vec![0.0; d];
    for (r, &j) in active.iter().enumerate() {
        coefficients[j] = beta_active[r];
    }
    let intercept = if p.fit_intercept {
        mz - dot(&mx, &coefficients)
    } else {
        0.0
    };
    let mut diag_inv = vec![f64::NAN; n_out];
    if let Ok(()) = factored {
        // A⁻¹ = S⁻¹ (scaled)⁻¹ S⁻¹.
        let inv = cholesky_inverse(&chol, k);
        for (r, &j) in active.iter().enumerate() {
            diag_inv[j] = inv[r * k + r] / (s[r] * s[r]) / wsum;
        }
        if p.fit_intercept {
            // The intercept's entry of the inverse of [[C + Λ + m mᵀ, m], [mᵀ, 1]]: 1 + mᵀ (C+Λ)⁻¹ m.
            let mut quad = 0.0;
            for r in 0..k {
                for c in 0..k {
                    quad += mx[active[r]] * inv[r * k + c] / (s[r] * s[c]) * mx[active[c]];
                }
            }
            diag_inv[d] = (1.0 + quad) / wsum;
        }
    }
    let penalty = (0..k)
        .map(|r| {
            let b = beta_active[r];
            0.5 * l2[r] * b * b + l1[r] * b.abs()
        })
        .sum();
    Ok(WlsSolution {
        coefficients,
        intercept,
        diag_inv,
        iterations,
        penalty,
    })
}

fn singular(active: &[usize], col: usize) -> MlError {
    MlError::Data(format!(
        "the normal equations are singular: feature {} is (numerically) a linear combination of \
         the features before it (collinear features); drop it or set reg_param > 0",
        active.get(col).copied().unwrap_or(col)
    ))
}
