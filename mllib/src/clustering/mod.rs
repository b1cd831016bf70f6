//! Clustering: [`KMeans`] (Lloyd's algorithm with k-means|| or random initialization, as
//! Spark ML's `KMeans`) and its [`KMeansModel`].
//!
//! Training stacks the rows into cached instance blocks with their squared norms; each
//! iteration is one job that broadcasts the centers, computes every row's distances to all
//! centers as one matrix product per chunk of rows ([`crate::linalg::gemm`]), and combines
//! per-cluster weighted sums, weights and the cost with a tree aggregation.

pub(crate) mod distance;
mod init;
mod input;
mod kmeans;
mod model;

pub use kmeans::{InitMode, KMeans};
pub use model::{KMeansModel, KMeansSummary};
