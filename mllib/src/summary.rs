//! What every estimator reports about its training.

use serde::{Deserialize, Serialize};

/// Iterations and objective history of one `fit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Iterations run.
    pub iterations: usize,
    /// The objective (mean loss plus regularization, as Spark's `objectiveHistory`) at the
    /// start and after each iteration; for k-means, the cost after each iteration.
    pub loss_history: Vec<f64>,
    /// Whether the tolerance was met before the iteration limit.
    pub converged: bool,
    /// Seconds spent fitting (data already loaded and cached).
    pub train_seconds: f64,
}
