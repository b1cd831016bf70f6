//! One pass over the cached blocks: the weighted first and second moments of the features and
//! the label, and the standardisation and penalty weights both iterative solvers (l-bfgs,
//! sgd) derive from them ([`scaling`]).

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::InstanceBlock;
use crate::error::{MlError, Result};

/// Weighted first and second moments of the features and the label: one pass.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Moments {
    /// `Σ w`.
    pub wsum: f64,
    /// `Σ w x_j`.
    pub x: Vec<f64>,
    /// `Σ w x_j²`.
    pub xx: Vec<f64>,
    /// `Σ w y`.
    pub y: f64,
    /// `Σ w y²`.
    pub yy: f64,
}

impl Moments {
    /// The moments of `blocks` (`cols` features), checked: a positive weight sum, finite sums.
    pub(super) fn of(blocks: &Rdd<InstanceBlock>, cols: usize) -> Result<Moments> {
        let m = blocks.tree_aggregate(
            Moments::new(cols),
            with(cols, |_: &usize, acc: Moments, block: InstanceBlock| {
                acc.add_block(&block)
            }),
            |a: Moments, b: Moments| a.merge(b),
            2,
        )?;
        if m.wsum <= 0.0 {
            return Err(MlError::Data("the weights sum to 0".into()));
        }
        if !(m.y.is_finite() && m.yy.is_finite()) || m.x.iter().chain(&m.xx).any(|v| !v.is_finite()) {
            return Err(MlError::Data(
                "the feature or label moments overflowed (non-finite sums): rescale the features or labels".into(),
            ));
        }
        Ok(m)
    }

    fn new(cols: usize) -> Self {
        Moments {
            wsum: 0.0,
            x: vec![0.0; cols],
            xx: vec![0.0; cols],
            y: 0.0,
            yy: 0.0,
        }
    }

    fn add_block(mut self, block: &InstanceBlock) -> Self {
        for r in 0..block.rows {
            let (w, y) = (block.weights[r], block.labels[r]);
            self.wsum += w;
            self.y += w * y;
            self.yy += w * y * y;
            for ((sx, sxx), &v) in self.x.iter_mut().zip(self.xx.iter_mut()).zip(block.row(r)) {
                *sx += w * v;
                *sxx += w * v * v;
            }
        }
        self
    }

    fn merge(mut self, o: Moments) -> Self {
        self.wsum += o.wsum;
        self.y += o.y;
        self.yy += o.yy;
        for (a, b) in self.x.iter_mut().zip(&o.x) {
            *a += b;
        }
        for (a, b) in self.xx.iter_mut().zip(&o.xx) {
            *a += b;
        }
        self
    }
}

/// The objective's settings both iterative solvers share.
#[derive(Clone, Copy, Debug)]
pub(super) struct Penalty {
    pub fit_intercept: bool,
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub standardization: bool,
}

/// Where both iterative solvers work: Spark's standardised space (features `(x_j − c_j)/σ_j`,
/// label `(y − c_y)/σ_y`) and the penalty's weight per standardised coefficient.
#[derive(Clone, Debug)]
pub(super) struct Scaling {
    pub wsum: f64,
    pub mean_y: f64,
    pub sigma_y: f64,
    pub mean_x: Vec<f64>,
    /// `σ_j`, or 0 for a feature of zero variance (it keeps coefficient 0).
    pub sigma_x: Vec<f64>,
    /// `c_j`: the means with an intercept, else 0.
    pub center_x: Vec<f64>,
    pub center_y: f64,
    /// L2 weight per coordinate (`λ(1−α)/σ_y · s_j²`, 0 for constant features).
    pub l2: Vec<f64>,
    /// L1 weight per coordinate (`λα/σ_y · s_j`).
    pub l1: Vec<f64>,
}

/// The standardisation of `m`, or, for a constant label, the model without features the normal
/// equations (`wls::solve`) give too: `Ok(Err(intercept))`.
pub(super) fn scaling(m: &Moments, p: &Penalty) -> Result<std::result::Result<Scaling, f64>> {
    let wsum = m.wsum;
    let mean_y = m.y / wsum;
    let ey2 = m.yy / wsum;
    let var_y = (ey2 - mean_y * mean_y).max(0.0);
    let mut sigma_y = var_y.sqrt();
    if var_y <= 1e-14 * ey2 {
        if p.fit_intercept || mean_y == 0.0 {
            return Ok(Err(if p.fit_intercept { mean_y } else { 0.0 }));
        }
        if p.reg_param > 0.0 {
            return Err(MlError::Data(
                "the label is constant: the model cannot be regularized when labels are standardized".into(),
            ));
        }
        sigma_y = mean_y.abs();
    }
    let cols = m.x.len();
    let mean_x: Vec<f64> = m.x.iter().map(|s| s / wsum).collect();
    let sigma_x: Vec<f64> = (0..cols)
        .map(|j| {
            let (ex2, mj) = (m.xx[j] / wsum, mean_x[j]);
            let var = ex2 - mj * mj;
            if var > 1e-14 * ex2 { var.sqrt() } else { 0.0 }
        })
        .collect();
    let center_x = if p.fit_intercept {
        mean_x.clone()
    } else {
        vec![0.0; cols]
    };
    let center_y = if p.fit_intercept { mean_y } else { 0.0 };
    let scale = |j: usize| {
        if sigma_x[j] == 0.0 {
            0.0
        } else if p.standardization {
            1.0
        } else {
            1.0 / sigma_x[j]
        }
    };
    let reg = p.reg_param / sigma_y;
    let l2 = (0..cols)
        .map(|j| reg * (1.0 - p.elastic_net_param) * scale(j) * scale(j))
        .collect();
    let l1 = (0..cols).map(|j| reg * p.elastic_net_param * scale(j)).collect();
    Ok(Ok(Scaling {
        wsum,
        mean_y,
        sigma_y,
        mean_x,
        sigma_x,
        center_x,
        center_y,
        l2,
        l1,
    }))
}
