//! Clustering quality: the silhouette.

use std::collections::BTreeMap;

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::linalg::Vector;

/// Spark's `ClusteringEvaluator` with its default squared Euclidean distance: the mean
/// silhouette `s_i = (b_i − a_i) / max(a_i, b_i)` (0 for a point alone in its cluster), where
/// `a_i` is the mean distance to the other points of its cluster and `b_i` the smallest mean
/// distance to another cluster. As Spark, in two jobs and O(n·k): with per-cluster weight
/// `W_C`, feature sum `Y_C` and squared-norm sum `Ψ_C`, the summed distance of `x` to `C` is
/// `W_C‖x‖² + Ψ_C − 2 x·Y_C`. (The k-means cost is reported by k-means itself.)
#[derive(Clone, Debug, Default)]
pub struct ClusteringEvaluator;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClusterStats {
    weight: f64,
    sum: Vec<f64>,
    sq_norm_sum: f64,
}

type Clusters = BTreeMap<usize, ClusterStats>;

fn sq_norm(x: &Vector) -> f64 {
    match x {
        Vector::Dense(v) => v.iter().map(|a| a * a).sum(),
        Vector::Sparse(s) => s.values.iter().map(|a| a * a).sum(),
    }
}

fn silhouette_of(clusters: &Clusters, x: &Vector, c: usize, w: f64) -> f64 {
    let own = &clusters[&c];
    if own.weight == w {
        return 0.0;
    }
    let norm = sq_norm(x);
    let mean_distance = |s: &ClusterStats| norm + s.sq_norm_sum / s.weight - 2.0 * x.dot(&s.sum) / s.weight;
    let a = mean_distance(own) * own.weight / (own.weight - w);
    let b = clusters
        .iter()
        .filter(|(k, _)| **k != c)
        .map(|(_, s)| mean_distance(s))
        .fold(f64::INFINITY, f64::min);
    if a < b {
        1.0 - a / b
    } else if a > b {
        b / a - 1.0
    } else {
        0.0
    }
}

impl ClusteringEvaluator {
    /// The evaluator.
    pub fn new() -> Self {
        ClusteringEvaluator
    }

    /// Mean silhouette of `(features, cluster)` rows.
    pub fn silhouette(&self, data: &Rdd<(Vector, usize)>) -> Result<f64> {
        self.silhouette_weighted(&data.map(|(x, c): (Vector, usize)| (x, c, 1.0)))
    }

    /// Weighted mean silhouette of `(features, cluster, weight)` rows. Errors: fewer than two
    /// clusters, rows of different lengths, NaN values, bad weights.
    pub fn silhouette_weighted(&self, data: &Rdd<(Vector, usize, f64)>) -> Result<f64> {
        type Acc = (Clusters, u64);
        let (clusters, bad) = data.tree_aggregate(
            (Clusters::new(), 0u64),
            |(mut m, bad): Acc, (x, c, w): (Vector, usize, f64)| {
                let finite = match &x {
                    Vector::Dense(v) => v.iter().all(|a| a.is_finite()),
                    Vector::Sparse(s) => s.values.iter().all(|a| a.is_finite()),
                };
                if !finite || !super::good_weight(w) {
                    return (m, bad + 1);
                }
                let s = m.entry(c).or_insert_with(|| ClusterStats {
                    sum: vec![0.0; x.len()],
                    ..ClusterStats::default()
                });
                if s.sum.len() != x.len() {
                    return (m, bad + 1);
                }
                s.weight += w;
                s.sq_norm_sum += w * sq_norm(&x);
                match &x {
                    Vector::Dense(v) => crate::linalg::kernels::axpy(w, v, &mut s.sum),
                    Vector::Sparse(sp) => {
                        for (i, v) in sp.indices.iter().zip(&sp.values) {
                            s.sum[*i as usize] += w * v;
                        }
                    }
                }
                (m, bad)
            },
            |(mut a, bad_a): Acc, (b, bad_b): Acc| {
                let mut bad = bad_a + bad_b;
                for (c, s) in b {
                    match a.get_mut(&c) {
                        None => {
                            a.insert(c, s);
                        }
                        Some(t) if t.sum.len() == s.sum.len() => {
                            t.weight += s.weight;
                            t.sq_norm_sum += s.sq_norm_sum;
                            crate::linalg::kernels::axpy(1.0, &s.sum, &mut t.sum);
                        }
                        Some(_) => bad += 1,
                    }
                }
                (a, bad)
            },
            2,
        )?;
        if bad > 0 {
            return Err(MlError::Data(format!(
                "silhouette: {bad} rows (or partitions) have NaN or infinite features, a bad weight, \
                 or another number of features than their cluster"
            )));
        }
        let dims: Vec<usize> = clusters.values().map(|s| s.sum.len()).collect();
        if dims.windows(2).any(|d| d[0] != d[1]) {
            return Err(MlError::Data(
                "silhouette: clusters have different numbers of features".into(),
            ));
        }
        let clusters: Clusters = clusters.into_iter().filter(|(_, s)| s.weight > 0.0).collect();
        if clusters.len() < 2 {
            return Err(MlError::Data(format!(
                "silhouette needs at least two clusters, found {}",
                clusters.len()
            )));
        }
        let (sum, w) = data
            .map(with(clusters, |cl: &Clusters, (x, c, w): (Vector, usize, f64)| {
                if w == 0.0 {
                    (0.0, 0.0)
                } else {
                    (w * silhouette_of(cl, &x, c, w), w)
                }
            }))
            .tree_aggregate(
                (0.0, 0.0),
                |a: (f64, f64), b: (f64, f64)| (a.0 + b.0, a.1 + b.1),
                |a: (f64, f64), b: (f64, f64)| (a.0 + b.0, a.1 + b.1),
                2,
            )?;
        Ok(sum / w)
    }
}
