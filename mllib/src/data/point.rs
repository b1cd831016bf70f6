//! A labelled, optionally weighted, feature vector.

use serde::{Deserialize, Serialize};

use crate::linalg::Vector;

/// One training example: a label, features and a weight (1 unless given).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabeledPoint {
    /// The label (class index for classifiers, value for regressors; unused by k-means).
    pub label: f64,
    /// The features.
    pub features: Vector,
    /// The example's weight in losses and statistics.
    pub weight: f64,
}

impl LabeledPoint {
    /// A point of weight 1 with dense features.
    pub fn new(label: f64, features: Vec<f64>) -> Self {
        LabeledPoint {
            label,
            features: Vector::Dense(features),
            weight: 1.0,
        }
    }

    /// The same point with another weight.
    pub fn with_weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }
}
