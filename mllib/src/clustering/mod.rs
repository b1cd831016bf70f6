//! Clustering: [`KMeans`] (Lloyd's algorithm with k-means|| or random initialization, as
//! Spark ML's `KMeans`) and its [`KMeansModel`].
//!
//! Training stacks the rows into cached instance blocks with their squared norms; each
//! iteration is one job that broadcasts the centers, assigns every row to its closest center
//! (a register-tiled product, `nearest`, skipped for the rows whose Hamerly bounds, kept in
//! each executor between passes by `bounds`, prove their center unchanged; exact distances
//! and ties in `distance`), and combines per-cluster weighted sums, weights and the cost with
//! a tree aggregation. Those statistics are kept by segments of rows with the bounds
//! (`segments`), so that late passes read only the rows near a boundary between clusters.

mod bounds;
pub(crate) mod distance;
mod init;
mod input;
mod kmeans;
mod model;
mod nearest;
mod segments;

pub use kmeans::{InitMode, KMeans};
pub use model::{KMeansModel, KMeansSummary};
