//! Rescaling of every feature to a range.

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use std::path::Path;

use crate::error::{MlError, Result};
use crate::feature::summarize;
use crate::linalg::Vector;
use crate::pipeline::{Estimator, Transformer};

/// Spark's `MinMaxScaler`: `x_j ↦ (x_j − E_min) / (E_max − E_min) · (max − min) + min` with
/// the feature's observed range `[E_min, E_max]`; a constant feature maps to
/// `(min + max) / 2`. Output is dense.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    /// Lower end of the output range. Default 0.
    pub min: f64,
    /// Upper end of the output range. Default 1.
    pub max: f64,
}

impl Default for MinMaxScaler {
    fn default() -> Self {
        MinMaxScaler { min: 0.0, max: 1.0 }
    }
}

impl MinMaxScaler {
    /// The defaults: range `[0, 1]`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the lower end of the output range.
    pub fn min(mut self, min: f64) -> Self {
        self.min = min;
        self
    }

    /// Sets the upper end of the output range.
    pub fn max(mut self, max: f64) -> Self {
        self.max = max;
        self
    }

    /// Computes each feature's range (one job). Errors: `min >= max` or not finite.
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<MinMaxScalerModel> {
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(MlError::param(
                "min, max",
                format!("{}, {}", self.min, self.max),
                "finite with min < max",
            ));
        }
        let s = summarize(data)?;
        Ok(MinMaxScalerModel {
            min: self.min,
            max: self.max,
            original_min: s.min,
            original_max: s.max,
        })
    }
}

/// A fitted [`MinMaxScaler`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScalerModel {
    /// Lower end of the output range.
    pub min: f64,
    /// Upper end of the output range.
    pub max: f64,
    /// Each feature's observed minimum.
    pub original_min: Vec<f64>,
    /// Each feature's observed maximum.
    pub original_max: Vec<f64>,
}

impl MinMaxScalerModel {
    /// Rescales one vector (of the fitted length).
    pub fn transform_vector(&self, features: &Vector) -> Vector {
        let scale = self.max - self.min;
        let mut x = features.to_dense();
        for (j, v) in x.iter_mut().enumerate() {
            let range = self.original_max[j] - self.original_min[j];
            let unit = if range != 0.0 {
                (*v - self.original_min[j]) / range
            } else {
                0.5
            };
            *v = unit * scale + self.min;
        }
        Vector::Dense(x)
    }

    /// Writes the model to `path` (kind `MinMaxScalerModel`, version 1).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::persist::save_model(path.as_ref(), "MinMaxScalerModel", 1, self)
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        crate::persist::load_model(path.as_ref(), "MinMaxScalerModel", 1)
    }

    /// Rescales every point's features (lazy; labels and weights unchanged).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<LabeledPoint> {
        data.map(with(self.clone(), |m: &MinMaxScalerModel, mut p: LabeledPoint| {
            p.features = m.transform_vector(&p.features);
            p
        }))
    }
}

impl Estimator for MinMaxScaler {
    type Model = MinMaxScalerModel;
    fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<MinMaxScalerModel> {
        MinMaxScaler::fit(self, data)
    }
}

impl Transformer for MinMaxScalerModel {
    fn transform(&self, data: &Rdd<LabeledPoint>) -> Result<Rdd<LabeledPoint>> {
        Ok(MinMaxScalerModel::transform(self, data))
    }
    fn transform_vector(&self, features: &Vector) -> Vector {
        MinMaxScalerModel::transform_vector(self, features)
    }
}
