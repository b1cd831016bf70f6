//! Standardisation: scale features to unit standard deviation, optionally centre them.

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use std::path::Path;

use crate::error::Result;
use crate::feature::summarize;
use crate::linalg::{SparseVector, Vector};
use crate::pipeline::{Estimator, Transformer};

/// Spark's `StandardScaler`: `x_j ↦ (x_j − mean_j) / std_j` (centring only with `with_mean`),
/// with the weighted unbiased standard deviation of [`summarize`] (Spark's, for unit
/// weights). A feature of standard deviation 0 maps to 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Subtract the mean (dense output). Default false.
    pub with_mean: bool,
    /// Divide by the standard deviation. Default true.
    pub with_std: bool,
}

impl Default for StandardScaler {
    fn default() -> Self {
        StandardScaler {
            with_mean: false,
            with_std: true,
        }
    }
}

impl StandardScaler {
    /// The defaults: `with_mean = false`, `with_std = true`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `with_mean`.
    pub fn with_mean(mut self, on: bool) -> Self {
        self.with_mean = on;
        self
    }

    /// Sets `with_std`.
    pub fn with_std(mut self, on: bool) -> Self {
        self.with_std = on;
        self
    }

    /// Computes the features' means and standard deviations (one job).
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<StandardScalerModel> {
        let s = summarize(data)?;
        Ok(StandardScalerModel {
            with_mean: self.with_mean,
            with_std: self.with_std,
            mean: s.mean,
            std: s.std,
        })
    }
}

/// A fitted [`StandardScaler`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScalerModel {
    /// Whether features are centred.
    pub with_mean: bool,
    /// Whether features are scaled.
    pub with_std: bool,
    /// Each feature's mean.
    pub mean: Vec<f64>,
    /// Each feature's standard deviation.
    pub std: Vec<f64>,
}

impl StandardScalerModel {
    #[inline]
    fn factor(&self, j: usize) -> f64 {
        if !self.with_std {
            1.0
        } else if self.std[j] != 0.0 {
            1.0 / self.std[j]
        } else {
            0.0
        }
    }

    /// Scales one vector (of the fitted length). Sparse input stays sparse unless centred.
    pub fn transform_vector(&self, features: &Vector) -> Vector {
        match features {
            Vector::Sparse(s) if !self.with_mean => Vector::Sparse(SparseVector {
                size: s.size,
                indices: s.indices.clone(),
                values: s
                    .indices
                    .iter()
                    .zip(&s.values)
                    .map(|(j, v)| v * self.factor(*j as usize))
                    .collect(),
            }),
            _ => {
                let mut x = features.to_dense();
                for (j, v) in x.iter_mut().enumerate() {
                    let centred = if self.with_mean { *v - self.mean[j] } else { *v };
                    *v = centred * self.factor(j);
                }
                Vector::Dense(x)
            }
        }
    }

    /// Writes the model to `path` (kind `StandardScalerModel`, version 1).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::persist::save_model(path.as_ref(), "StandardScalerModel", 1, self)
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        crate::persist::load_model(path.as_ref(), "StandardScalerModel", 1)
    }

    /// Scales every point's features (lazy; labels and weights unchanged).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<LabeledPoint> {
        data.map(with(self.clone(), |m: &StandardScalerModel, mut p: LabeledPoint| {
            p.features = m.transform_vector(&p.features);
            p
        }))
    }
}

impl Estimator for StandardScaler {
    type Model = StandardScalerModel;
    fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<StandardScalerModel> {
        StandardScaler::fit(self, data)
    }
}

impl Transformer for StandardScalerModel {
    fn transform(&self, data: &Rdd<LabeledPoint>) -> Result<Rdd<LabeledPoint>> {
        Ok(StandardScalerModel::transform(self, data))
    }
    fn transform_vector(&self, features: &Vector) -> Vector {
        StandardScalerModel::transform_vector(self, features)
    }
}
