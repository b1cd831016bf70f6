//! Evaluation metrics over RDDs of `(score or prediction, label[, weight])` tuples, computed
//! as Spark's evaluators compute them: [`BinaryClassificationEvaluator`] (areas under the ROC
//! and precision-recall curves), [`MulticlassClassificationEvaluator`] (accuracy, weighted
//! F1/precision/recall, log-loss), [`RegressionEvaluator`] (RMSE, MSE, MAE, R²) and
//! [`ClusteringEvaluator`] (silhouette with squared Euclidean distance).
//!
//! Every `evaluate` has an `evaluate_weighted` twin taking a weight per row; the unweighted
//! form gives each row weight 1. Bad input (NaN, negative weights, an empty RDD, one class
//! only for curves) is an [`MlError::Data`](crate::MlError).

mod binary;
mod clustering;
mod multiclass;
mod regression;

pub use binary::{BinaryClassificationEvaluator, BinaryMetrics};
pub use clustering::ClusteringEvaluator;
pub use multiclass::{MulticlassClassificationEvaluator, MulticlassMetrics};
pub use regression::{RegressionEvaluator, RegressionMetrics};

use crate::error::{MlError, Result};

/// Checks one weighted total: positive and finite.
pub(crate) fn check_total(what: &str, total: f64, bad: u64) -> Result<()> {
    if bad > 0 {
        return Err(MlError::Data(format!(
            "{what}: {bad} rows have a NaN or infinite value or a negative or infinite weight"
        )));
    }
    if total <= 0.0 {
        return Err(MlError::Data(format!("{what}: no rows of positive weight")));
    }
    Ok(())
}

/// Whether a weight can be used.
#[inline]
pub(crate) fn good_weight(w: f64) -> bool {
    w.is_finite() && w >= 0.0
}
