//! # flint-mllib
//!
//! flint's machine learning library, re-exported as `flint::ml`: estimators with a Spark ML
//! shape (parameters with documented defaults set by a builder, `fit(&rdd) -> Model`, models
//! with `predict`, a training summary, `save`/`load`) trained on cached *instance blocks*
//! (a partition's rows stacked into a dense row-major matrix), one job per iteration:
//! broadcast the parameters, compute per-block statistics, combine by tree aggregation.
//!
//! - [`clustering`]: k-means (Lloyd, k-means|| initialization);
//! - [`linalg`]: vectors and the dense kernels;
//! - [`device`]: where the dense kernels run (CPU, or a GPU through wgpu), `flint.ml.device`;
//! - [`data`]: labelled points and instance blocks, CSV and LIBSVM readers, random splits;
//! - [`feature`]: one-pass feature statistics, standard and min-max scalers;
//! - [`classification`]: logistic regression, linear SVM;
//! - [`regression`]: linear regression, generalized linear models (IRLS);
//! - [`evaluation`]: binary, multiclass, regression and clustering metrics;
//! - [`pipeline`]: transformers, estimators and pipelines of them;
//! - [`optim`]: L-BFGS, OWL-QN (L1) and mini-batch gradient descent;
//! - [`regression`]: linear regression and generalized linear models;
//! - [`persist`]: versioned model files; [`summary`]: training summaries;
//! - [`error`]: the error type, [`MlError`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod classification;
pub mod clustering;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluation;
pub mod feature;
pub mod linalg;
pub mod optim;
pub mod persist;
pub mod pipeline;
pub mod regression;
pub mod summary;

pub use clustering::{KMeans, KMeansModel};
pub use data::{InstanceBlock, LabeledPoint};
pub use device::Device;
pub use error::{MlError, Result};
pub use linalg::Vector;
pub use summary::TrainingSummary;
