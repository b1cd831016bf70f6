//! One pass over the cached blocks: the weighted first and second moments of the features and
//! the label, which both iterative solvers (l-bfgs, sgd) standardise with.

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
