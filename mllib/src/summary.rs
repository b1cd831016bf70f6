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
    /// Wall seconds of each pass over the cached training blocks (one job each, broadcast to
    /// combined result): k-means's Lloyd iterations, logistic regression's and linear SVC's
    /// loss-and-gradient evaluations (L-BFGS and OWL-QN; a line search may evaluate more than
    /// once per iteration). Empty for the estimators and solvers that do not time their
    /// passes. With the bytes of the blocks, it gives the passes' distance from the
    /// memory-bandwidth bound apart from the fit's set-up.
    #[serde(default)]
    pub pass_seconds: Vec<f64>,
}
