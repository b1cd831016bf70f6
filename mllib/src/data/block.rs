//! Instance blocks: rows stacked into a dense row-major `f64` matrix with their labels and
//! weights, so that a pass over the data is matrix-vector (or matrix-matrix) products over
//! contiguous memory.
//!
//! Storage is `f64` (not `f32`): estimators are checked against scikit-learn to a relative
//! 1e-4 or better, and the sums of a pass over a million rows lose that in `f32`. A cached block
//! costs its raw size plus a few words (the arrays are shared, `Arc`, so handing a cached block
//! to a task copies nothing).

use std::sync::Arc;

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;

/// Rows per block unless the caller says: 4096 rows of 50 features is 1.6 MB, large enough
/// for the kernels to stream, small enough to stay in the last-level cache while a pass uses it.
pub const DEFAULT_BLOCK_ROWS: usize = 4096;

/// A block of training rows. Cloning shares the arrays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceBlock {
    /// Number of rows.
    pub rows: usize,
    /// Number of features per row.
    pub cols: usize,
    /// `rows × cols` features, row-major.
    pub features: Arc<Vec<f64>>,
    /// One label per row.
    pub labels: Arc<Vec<f64>>,
    /// One weight per row.
    pub weights: Arc<Vec<f64>>,
}

impl InstanceBlock {
    /// Stacks `points` (all with `cols` features) into one block.
    pub fn from_points(points: &[LabeledPoint], cols: usize) -> Self {
        Self::stack(points, cols, None)
    }

    /// Stacks `points` into one block with feature `j` multiplied by `scale[j]` (one factor per
    /// feature).
    pub fn from_points_scaled(points: &[LabeledPoint], scale: &[f64]) -> Self {
        Self::stack(points, scale.len(), Some(scale))
    }

    fn stack(points: &[LabeledPoint], cols: usize, scale: Option<&[f64]>) -> Self {
        let mut features = vec![0.0; points.len() * cols];
        let mut labels = Vec::with_capacity(points.len());
        let mut weights = Vec::with_capacity(points.len());
        for (r, p) in points.iter().enumerate() {
            let row = &mut features[r * cols..(r + 1) * cols];
            p.features.write_dense(row);
            if let Some(scale) = scale {
                row.iter_mut().zip(scale).for_each(|(v, s)| *v *= s);
            }
            labels.push(p.label);
            weights.push(p.weight);
        }
        InstanceBlock {
            rows: points.len(),
            cols,
            features: Arc::new(features),
            labels: Arc::new(labels),
            weights: Arc::new(weights),
        }
    }

    /// Row `r`'s features.
    #[inline]
    pub fn row(&self, r: usize) -> &[f64] {
        &self.features[r * self.cols..(r + 1) * self.cols]
    }

    /// Bytes of the arrays (what caching the block costs, give or take a few words).
    pub fn size_bytes(&self) -> usize {
        8 * (self.features.len() + self.labels.len() + self.weights.len())
    }
}

/// Stacks each partition's points into blocks of at most `block_rows` rows. Every point must
/// have `cols` features (readers check that and name the line that does not).
pub fn to_blocks(points: &Rdd<LabeledPoint>, cols: usize, block_rows: usize) -> Rdd<InstanceBlock> {
    // The points borrowed where they are cached: each is copied once, into its block.
    points.map_partitions_borrowed(with(
        (cols, block_rows.max(1)),
        |(cols, block_rows): &(usize, usize), points: &[LabeledPoint]| {
            points
                .chunks(*block_rows)
                .map(|rows| InstanceBlock::from_points(rows, *cols))
                .collect::<Vec<_>>()
        },
    ))
}
