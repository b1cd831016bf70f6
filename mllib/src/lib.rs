//! # flint-mllib
//!
//! flint's machine learning library, re-exported as `flint::ml`: estimators with a Spark ML
//! shape (parameters with documented defaults set by a builder, `fit(&rdd) -> Model`, models
//! with `predict`, a training summary, `save`/`load`) trained on cached *instance blocks*
//! (a partition's rows stacked into a dense row-major matrix), one job per iteration:
//! broadcast the parameters, compute per-block statistics, combine by tree aggregation.
//!
//! - [`linalg`]: vectors and the dense kernels;
//! - [`data`]: labelled points and instance blocks;
//! - [`optim`]: L-BFGS, OWL-QN (L1) and mini-batch gradient descent;
//! - [`regression`]: linear regression and generalized linear models;
//! - [`persist`]: versioned model files; [`summary`]: training summaries;
//! - [`error`]: the error type, `MlError`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod linalg;
pub mod optim;
pub mod persist;
pub mod regression;
pub mod summary;

pub use data::{InstanceBlock, LabeledPoint};
pub use error::{MlError, Result};
pub use linalg::Vector;
pub use summary::TrainingSummary;
