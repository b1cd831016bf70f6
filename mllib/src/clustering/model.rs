//! The fitted k-means model.

use std::path::Path;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};

use super::distance::{Centers, closest_dense};
use crate::data::LabeledPoint;
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::persist::{load_model, save_model};
use crate::summary::TrainingSummary;

/// What k-means reports about its training (Spark's `KMeansSummary`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KMeansSummary {
    /// Iterations run, the cost of each iteration's assignment in `loss_history` (the cost of
    /// the centers the iteration started from, as Spark logs it), whether the centers stopped
    /// moving by more than `tol`, and the time spent.
    pub training: TrainingSummary,
    /// Spark's `trainingCost`: the weighted sum of squared distances of the training rows to
    /// their closest center at the last iteration (the last entry of `loss_history`; computed
    /// with the final centers when no iteration ran).
    pub training_cost: f64,
    /// Rows assigned to each cluster at the last iteration.
    pub cluster_sizes: Vec<u64>,
}

/// A fitted k-means model: the cluster centers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    centers: Vec<Vec<f64>>,
    /// How training went.
    pub summary: KMeansSummary,
}

/// Model kind in model files.
const KIND: &str = "KMeansModel";
/// Model file format version.
const VERSION: u32 = 1;

impl KMeansModel {
    /// A model made of `centers` (all of one length, at least one) and `summary`.
    pub(crate) fn new(centers: Vec<Vec<f64>>, summary: KMeansSummary) -> Self {
        KMeansModel { centers, summary }
    }

    /// The cluster centers; cluster `j` is `cluster_centers()[j]`. There are `k` of them unless
    /// the data has fewer than `k` distinct rows (as Spark).
    pub fn cluster_centers(&self) -> &[Vec<f64>] {
        &self.centers
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.centers.len()
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.centers[0].len()
    }

    /// The cluster closest to `features` (Euclidean).
    ///
    /// # Panics
    /// When `features` does not have [`num_features`](Self::num_features) entries.
    pub fn predict(&self, features: &Vector) -> usize {
        assert_eq!(
            features.len(),
            self.num_features(),
            "KMeansModel::predict: the model has {} features, the vector {}",
            self.num_features(),
            features.len()
        );
        closest_dense(&features.to_dense(), &self.stacked()).0
    }

    fn stacked(&self) -> Centers {
        Centers::new(&self.centers, self.num_features())
    }

    /// Weighted sum of squared distances of the points to their closest center (Σ wᵢ·dᵢ²,
    /// scikit-learn's `inertia`); an error when a point has another number of features.
    pub fn compute_cost(&self, data: &Rdd<LabeledPoint>) -> Result<f64> {
        let bc = data.context().broadcast(self.stacked());
        let (cost, bad) = data.tree_aggregate(
            (0.0, None),
            with(
                bc,
                |bc: &Broadcast<Centers>, (cost, bad): (f64, Option<usize>), p: LabeledPoint| {
                    if p.features.len() != bc.d {
                        return (cost, bad.or(Some(p.features.len())));
                    }
                    (cost + p.weight * closest_dense(&p.features.to_dense(), bc).1, bad)
                },
            ),
            |a: (f64, Option<usize>), b: (f64, Option<usize>)| (a.0 + b.0, a.1.or(b.1)),
            2,
        )?;
        match bad {
            Some(n) => Err(MlError::Data(format!(
                "a row has {n} features but the model has {}",
                self.num_features()
            ))),
            None => Ok(cost),
        }
    }

    /// Each point's label and cluster (lazy; a point with another number of features fails
    /// the job that evaluates it).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Rdd<(f64, usize)> {
        let bc = data.context().broadcast(self.stacked());
        data.map(with(bc, |bc: &Broadcast<Centers>, p: LabeledPoint| {
            assert_eq!(
                p.features.len(),
                bc.d,
                "KMeansModel::transform: a row has {} features but the model has {}",
                p.features.len(),
                bc.d
            );
            (p.label, closest_dense(&p.features.to_dense(), bc).0)
        }))
    }

    /// Writes the model to `path` (JSON, kind `KMeansModel`, version 1).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(path.as_ref(), KIND, VERSION, self)
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let model: KMeansModel = load_model(path.as_ref(), KIND, VERSION)?;
        let d = model.centers.first().map(Vec::len).unwrap_or(0);
        if d == 0 || model.centers.iter().any(|c| c.len() != d) {
            return Err(MlError::ModelFile {
                path: path.as_ref().to_path_buf(),
                detail: "damaged KMeansModel: no centers, or centers of different lengths".into(),
            });
        }
        Ok(model)
    }
}
