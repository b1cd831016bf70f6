//! Column statistics of labelled points in one pass: count, weight sum, mean, unbiased
//! variance, min, max and number of non-zeros per feature, and the same for the label.
//!
//! As Spark's `Summarizer`: each partition folds its rows into a buffer that updates the mean
//! and the sum of squared deviations (`m2`) of the *non-zero* entries by weighted Welford
//! steps (sparse vectors cost their non-zeros); buffers merge by Chan's formula in a tree
//! aggregation; the implicit zeros are added at the end. Rows of weight 0 are ignored, as
//! Spark does. Variances are Spark's weighted unbiased ones:
//! `Σ w (x - mean)² / (W - Σ w² / W)` (with unit weights, `/(n - 1)`), 0 for one row.

use flint_engine::Rdd;
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use crate::error::{MlError, Result};
use crate::linalg::Vector;

/// Statistics of a data set's features and labels (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows of non-zero weight.
    pub count: u64,
    /// Σ w.
    pub weight_sum: f64,
    /// Weighted mean of each feature.
    pub mean: Vec<f64>,
    /// Weighted unbiased variance of each feature.
    pub variance: Vec<f64>,
    /// Square roots of `variance`.
    pub std: Vec<f64>,
    /// Smallest value of each feature.
    pub min: Vec<f64>,
    /// Largest value of each feature.
    pub max: Vec<f64>,
    /// Rows where each feature is non-zero.
    pub num_nonzeros: Vec<u64>,
    /// Weighted mean of the label.
    pub label_mean: f64,
    /// Weighted unbiased variance of the label.
    pub label_variance: f64,
    /// Smallest label.
    pub label_min: f64,
    /// Largest label.
    pub label_max: f64,
    /// Whether every label is a non-negative integer (class indices).
    pub labels_are_classes: bool,
}

impl Summary {
    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.mean.len()
    }

    /// Number of classes if the labels are class indices (`label_max + 1`), else `None`.
    pub fn num_classes(&self) -> Option<usize> {
        self.labels_are_classes.then(|| self.label_max as usize + 1)
    }
}

/// Per-partition partial statistics (Welford over non-zeros).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Buffer {
    /// Feature count, set by the first row.
    dim: Option<usize>,
    count: u64,
    weight_sum: f64,
    weight_sq_sum: f64,
    /// Per feature, over non-zero entries: weight sum, mean, m2, count, min, max.
    nz_weight: Vec<f64>,
    nz_mean: Vec<f64>,
    nz_m2: Vec<f64>,
    nnz: Vec<u64>,
    min: Vec<f64>,
    max: Vec<f64>,
    label_mean: f64,
    label_m2: f64,
    label_min: f64,
    label_max: f64,
    labels_are_classes: bool,
    /// Rows with a different feature count than the first.
    bad_dims: u64,
    /// Rows with a NaN or infinite feature, label or weight, or a negative weight.
    bad_values: u64,
}

impl Buffer {
    fn init(&mut self, dim: usize) {
        self.dim = Some(dim);
        self.nz_weight = vec![0.0; dim];
        self.nz_mean = vec![0.0; dim];
        self.nz_m2 = vec![0.0; dim];
        self.nnz = vec![0; dim];
        self.min = vec![f64::INFINITY; dim];
        self.max = vec![f64::NEG_INFINITY; dim];
        self.label_min = f64::INFINITY;
        self.label_max = f64::NEG_INFINITY;
        self.labels_are_classes = true;
    }

    #[inline]
    fn add_entry(&mut self, j: usize, v: f64, w: f64) {
        if v == 0.0 {
            return;
        }
        let nw = self.nz_weight[j] + w;
        let delta = v - self.nz_mean[j];
        self.nz_mean[j] += delta * (w / nw);
        self.nz_m2[j] += w * delta * (v - self.nz_mean[j]);
        self.nz_weight[j] = nw;
        self.nnz[j] += 1;
        self.min[j] = self.min[j].min(v);
        self.max[j] = self.max[j].max(v);
    }

    fn add(mut self, p: &LabeledPoint) -> Self {
        let w = p.weight;
        if w == 0.0 {
            return self;
        }
        let finite = match &p.features {
            Vector::Dense(v) => v.iter().all(|x| x.is_finite()),
            Vector::Sparse(s) => s.values.iter().all(|x| x.is_finite()),
        };
        if !finite || !p.label.is_finite() || !w.is_finite() || w < 0.0 {
            self.bad_values += 1;
            return self;
        }
        let dim = p.features.len();
        match self.dim {
            None => self.init(dim),
            Some(d) if d != dim => {
                self.bad_dims += 1;
                return self;
            }
            Some(_) => {}
        }
        match &p.features {
            Vector::Dense(v) => {
                for (j, x) in v.iter().enumerate() {
                    self.add_entry(j, *x, w);
                }
            }
            Vector::Sparse(s) => {
                for (j, x) in s.indices.iter().zip(&s.values) {
                    self.add_entry(*j as usize, *x, w);
                }
            }
        }
        self.count += 1;
        self.weight_sum += w;
        self.weight_sq_sum += w * w;
        let y = p.label;
        let delta = y - self.label_mean;
        self.label_mean += delta * (w / self.weight_sum);
        self.label_m2 += w * delta * (y - self.label_mean);
        self.label_min = self.label_min.min(y);
        self.label_max = self.label_max.max(y);
        self.labels_are_classes &= y >= 0.0 && y.fract() == 0.0;
        self
    }

    fn merge(mut self, other: Buffer) -> Self {
        let bad = (other.bad_dims, other.bad_values);
        self.bad_values += bad.1;
        let Some(dim) = other.dim else {
            self.bad_dims += bad.0;
            return self;
        };
        match self.dim {
            None => {
                let (bd, bv) = (self.bad_dims, self.bad_values);
                let mut out = other;
                out.bad_dims += bd;
                out.bad_values = bv;
                return out;
            }
            Some(d) if d != dim => {
                self.bad_dims += bad.0 + other.count;
                return self;
            }
            Some(_) => {}
        }
        self.bad_dims += bad.0;
        for j in 0..dim {
            let (wa, wb) = (self.nz_weight[j], other.nz_weight[j]);
            let w = wa + wb;
            if wb > 0.0 {
                let delta = other.nz_mean[j] - self.nz_mean[j];
                self.nz_mean[j] += delta * (wb / w);
                self.nz_m2[j] += other.nz_m2[j] + delta * delta * (wa * wb / w);
            }
            self.nz_weight[j] = w;
            self.nnz[j] += other.nnz[j];
            self.min[j] = self.min[j].min(other.min[j]);
            self.max[j] = self.max[j].max(other.max[j]);
        }
        let (wa, wb) = (self.weight_sum, other.weight_sum);
        let w = wa + wb;
        if wb > 0.0 {
            let delta = other.label_mean - self.label_mean;
            self.label_mean += delta * (wb / w);
            self.label_m2 += other.label_m2 + delta * delta * (wa * wb / w);
        }
        self.count += other.count;
        self.weight_sum = w;
        self.weight_sq_sum += other.weight_sq_sum;
        self.label_min = self.label_min.min(other.label_min);
        self.label_max = self.label_max.max(other.label_max);
        self.labels_are_classes &= other.labels_are_classes;
        self
    }

    fn finish(self) -> Result<Summary> {
        if self.bad_values > 0 {
            return Err(MlError::Data(format!(
                "{} rows have a NaN or infinite feature or label, or a negative or infinite weight",
                self.bad_values
            )));
        }
        if self.bad_dims > 0 {
            return Err(MlError::Data(format!(
                "{} rows have another number of features than the first row ({})",
                self.bad_dims,
                self.dim.unwrap_or(0)
            )));
        }
        let Some(dim) = self.dim else {
            return Err(MlError::Data("no rows of non-zero weight".to_string()));
        };
        let total = self.weight_sum;
        let denominator = total - self.weight_sq_sum / total;
        let mut mean = vec![0.0; dim];
        let mut variance = vec![0.0; dim];
        let mut min = self.min;
        let mut max = self.max;
        for j in 0..dim {
            let wnz = self.nz_weight[j];
            mean[j] = self.nz_mean[j] * (wnz / total);
            if denominator > 0.0 {
                let m = self.nz_mean[j];
                let m2 = self.nz_m2[j] + m * m * wnz * (total - wnz) / total;
                variance[j] = (m2 / denominator).max(0.0);
            }
            if self.nnz[j] < self.count {
                min[j] = min[j].min(0.0);
                max[j] = max[j].max(0.0);
            }
        }
        let label_variance = if denominator > 0.0 {
            (self.label_m2 / denominator).max(0.0)
        } else {
            0.0
        };
        Ok(Summary {
            count: self.count,
            weight_sum: total,
            std: variance.iter().map(|v| v.sqrt()).collect(),
            mean,
            variance,
            min,
            max,
            num_nonzeros: self.nnz,
            label_mean: self.label_mean,
            label_variance,
            label_min: self.label_min,
            label_max: self.label_max,
            labels_are_classes: self.labels_are_classes,
        })
    }
}

/// Summarises `data` in one job (a tree aggregation of per-partition buffers).
///
/// Errors: no rows of non-zero weight, rows with NaN/infinite values or negative weights,
/// rows with different feature counts (each counted and named in the message).
///
/// ```
/// # use flint_mllib::{LabeledPoint, feature::summarize};
/// let ctx = flint_engine::Context::local(2).unwrap();
/// let data = ctx.parallelize(vec![LabeledPoint::new(0.0, vec![1.0]), LabeledPoint::new(1.0, vec![3.0])], 2);
/// let s = summarize(&data).unwrap();
/// assert_eq!((s.mean[0], s.variance[0], s.num_classes()), (2.0, 2.0, Some(2)));
/// ```
pub fn summarize(data: &Rdd<LabeledPoint>) -> Result<Summary> {
    // The points borrowed where they are cached (no point cloned).
    let buffer = data
        .map_partitions_borrowed(|ps: &[LabeledPoint]| [ps.iter().fold(Buffer::default(), Buffer::add)])
        .tree_aggregate(
            Buffer::default(),
            |a: Buffer, b: Buffer| a.merge(b),
            |a: Buffer, b: Buffer| a.merge(b),
            2,
        )?;
    buffer.finish()
}
