//! Optimizers: L-BFGS, OWL-QN (L1 / elastic-net) and mini-batch gradient descent.
//!
//! They minimise a [`DiffFunction`]: a function that returns its value and gradient at a
//! point. For the estimators, evaluating it is one job over the cached blocks.
//!
//! - [`Lbfgs`]: smooth objectives, strong Wolfe line search;
//! - [`OwlQn`]: smooth objective plus per-coordinate L1 terms;
//! - [`GradientDescent`]: Spark's mini-batch SGD over a [`StochasticGradient`].

mod gd;
mod lbfgs;
mod line_search;

pub use gd::{GradientDescent, StochasticGradient};
pub use lbfgs::{Lbfgs, OwlQn};

use crate::error::Result;

/// A differentiable function to minimise.
pub trait DiffFunction {
    /// The value and gradient at `x`.
    fn evaluate(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>)>;
}

impl<F: FnMut(&[f64]) -> Result<(f64, Vec<f64>)>> DiffFunction for F {
    fn evaluate(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        self(x)
    }
}

/// Where an optimizer stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimum {
    /// The point.
    pub x: Vec<f64>,
    /// The objective after each iteration. L-BFGS and OWL-QN: the first entry is at the
    /// starting point (Spark's `objectiveHistory`); gradient descent: the mini-batch's loss at
    /// the weights each iteration started from (Spark's `stochasticLossHistory`).
    pub loss_history: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was met (rather than the iteration limit).
    pub converged: bool,
    /// Wall seconds of each evaluation of the objective, in order (L-BFGS and OWL-QN: the
    /// starting point's and every line-search trial's; gradient descent: each iteration's
    /// mini-batch). For an objective that is one job over cached blocks, the time of each pass.
    pub evaluation_seconds: Vec<f64>,
}
