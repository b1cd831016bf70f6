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
    /// combined result): k-means's Lloyd iterations; the objective's evaluations of the
    /// iterative solvers (L-BFGS and OWL-QN: the start and every line-search trial; gradient
    /// descent: each mini-batch) of logistic regression, linear SVC and linear regression;
    /// GLM's IRLS iterations. Empty where the fit is not such a loop (normal equations). With
    /// the bytes of the blocks, it gives the passes' distance from the memory-bandwidth bound
    /// apart from the fit's set-up.
    #[serde(default)]
    pub pass_seconds: Vec<f64>,
}
