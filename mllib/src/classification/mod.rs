//! Classifiers: [`LogisticRegression`] (binomial and multinomial, L1/L2/elastic-net) and
//! [`LinearSvc`] (hinge loss, L2).
//!
//! Training follows Spark ML: one pass validates the data and computes the label histogram and
//! the feature standard deviations; the rows are scaled by them, stacked into cached
//! [`InstanceBlock`](crate::InstanceBlock)s, and each optimizer evaluation is one job that
//! broadcasts the coefficients and tree-aggregates the loss and gradient of every block.

mod logistic;
pub(crate) mod loss;
mod stats;
mod svc;

pub use logistic::{Family, LogisticRegression, LogisticRegressionModel};
pub use svc::{LinearSvc, LinearSvcModel};
