//! One validating pass over the training data: row count, weight sums, label histogram and
//! weighted feature means and variances (Spark's summarizer: unbiased with reliability
//! weights, `Σ w (x − μ)² / (W − Σ w² / W)`).

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::{InstanceBlock, LabeledPoint};
use crate::error::{MlError, Result};
use crate::linalg::Vector;
use crate::linalg::simd::vectorized;

/// What the pass found; the first bad row's description in `error`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ClassStats {
    pub rows: u64,
    pub weight_sum: f64,
    pub weight_sq_sum: f64,
    /// Weight per class (index = label).
    pub histogram: Vec<f64>,
    pub mean: Vec<f64>,
    /// Weighted sum of squared deviations from the mean.
    pub m2: Vec<f64>,
    pub error: Option<String>,
}

impl ClassStats {
    fn fail(mut self, msg: String) -> Self {
        if self.error.is_none() {
            self.error = Some(msg);
        }
        self
    }

    /// Adds one row (`scratch`: room for a sparse row's dense values).
    #[inline(always)]
    fn add(mut self, p: &LabeledPoint, scratch: &mut Vec<f64>) -> Self {
        if self.error.is_some() {
            return self;
        }
        let y = p.label;
        if !(y.is_finite() && y >= 0.0 && y.fract() == 0.0 && y < 1e6) {
            return self.fail(format!(
                "label {y} is not a class index (labels must be integers 0, 1, ..., K-1)"
            ));
        }
        if !(p.weight.is_finite() && p.weight >= 0.0) {
            return self.fail(format!("weight {} is not a finite non-negative number", p.weight));
        }
        let d = p.features.len();
        if self.rows == 0 {
            self.mean = vec![0.0; d];
            self.m2 = vec![0.0; d];
        } else if d != self.mean.len() {
            let msg = format!("a row has {d} features, another {}", self.mean.len());
            return self.fail(msg);
        }
        let x: &[f64] = match &p.features {
            Vector::Dense(v) => v,
            sparse => {
                scratch.resize(d, 0.0);
                sparse.write_dense(scratch);
                scratch
            }
        };
        if let Some(j) = x.iter().position(|v| !v.is_finite()) {
            return self.fail(format!("feature {j} is {} (label {y})", x[j]));
        }
        let k = y as usize;
        if self.histogram.len() <= k {
            self.histogram.resize(k + 1, 0.0);
        }
        self.histogram[k] += p.weight;
        self.rows += 1;
        let w = p.weight;
        if w > 0.0 {
            let total = self.weight_sum + w;
            // One division per row, not per feature.
            let share = w / total;
            for ((m, s), xi) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(x) {
                let delta = xi - *m;
                *m += delta * share;
                *s += w * delta * (xi - *m);
            }
            self.weight_sum = total;
            self.weight_sq_sum += w * w;
        }
        self
    }

    fn merge(self, other: Self) -> Self {
        if self.error.is_some() || other.rows == 0 {
            return self;
        }
        if other.error.is_some() || self.rows == 0 {
            return other;
        }
        if self.mean.len() != other.mean.len() {
            let msg = format!("a row has {} features, another {}", self.mean.len(), other.mean.len());
            return self.fail(msg);
        }
        let mut out = self;
        let total = out.weight_sum + other.weight_sum;
        if total > 0.0 {
            for j in 0..out.mean.len() {
                let delta = other.mean[j] - out.mean[j];
                out.m2[j] += other.m2[j] + delta * delta * out.weight_sum * other.weight_sum / total;
                out.mean[j] += delta * other.weight_sum / total;
            }
        }
        out.weight_sum = total;
        out.weight_sq_sum += other.weight_sq_sum;
        out.rows += other.rows;
        if out.histogram.len() < other.histogram.len() {
            out.histogram.resize(other.histogram.len(), 0.0);
        }
        for (a, b) in out.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
        out
    }

    /// Weighted unbiased standard deviations (0 for a constant feature or a single row).
    pub fn std(&self) -> Vec<f64> {
        let denom = self.weight_sum - self.weight_sq_sum / self.weight_sum;
        self.m2
            .iter()
            .map(|s| if denom > 0.0 { (s / denom).max(0.0).sqrt() } else { 0.0 })
            .collect()
    }

    /// Validates and summarises `data` in one job.
    pub fn compute(data: &Rdd<LabeledPoint>, depth: u32) -> Result<ClassStats> {
        // The points borrowed where they are cached (no point cloned).
        let stats = data
            .map_partitions_borrowed(|ps: &[LabeledPoint]| {
                let mut scratch = Vec::new();
                [vectorized(
                    #[inline(always)]
                    || ps.iter().fold(ClassStats::default(), |s, p| s.add(p, &mut scratch)),
                )]
            })
            .tree_aggregate(
                ClassStats::default(),
                |a: ClassStats, b: ClassStats| a.merge(b),
                |a: ClassStats, b: ClassStats| a.merge(b),
                depth,
            )?;
        if let Some(e) = stats.error {
            return Err(MlError::Data(e));
        }
        if stats.rows == 0 {
            return Err(MlError::Data("the training data is empty".into()));
        }
        if stats.weight_sum <= 0.0 {
            return Err(MlError::Data("every training row has weight 0".into()));
        }
        Ok(stats)
    }
}

/// The rows with feature `j` multiplied by `inv_std[j]`, stacked into cached blocks (the caller
/// unpersists them).
pub(crate) fn scaled_blocks(data: &Rdd<LabeledPoint>, inv_std: &[f64], block_rows: usize) -> Rdd<InstanceBlock> {
    // The points borrowed where they are cached: each is copied (and scaled) once, into its
    // block.
    data.map_partitions_borrowed(with(
        (inv_std.to_vec(), block_rows.max(1)),
        |(inv, block_rows): &(Vec<f64>, usize), points: &[LabeledPoint]| {
            points
                .chunks(*block_rows)
                .map(|rows| InstanceBlock::from_points_scaled(rows, inv))
                .collect::<Vec<_>>()
        },
    ))
    .cache()
}
