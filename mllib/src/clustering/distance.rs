//! Squared Euclidean distances of block rows to a set of centers, as one matrix product per
//! chunk of rows: `‖x‖² − 2·X·Cᵀ + ‖c‖²` picks each row's closest center, whose distance is
//! then recomputed exactly (`Σ (x − c)²`), so that costs carry no cancellation error.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::InstanceBlock;
use crate::linalg::gemm::{gemm_nt, row_sq_norms};

/// Rows whose distances are computed together: the `rows × k` product stays small (64 KiB for
/// 32 centers) however large the block.
const CHUNK_ROWS: usize = 256;

/// Centers stacked row-major with their squared norms: what an iteration broadcasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Centers {
    /// Number of centers.
    pub k: usize,
    /// Dimension.
    pub d: usize,
    /// `k × d`, row-major.
    pub values: Vec<f64>,
    /// `‖c_j‖²`.
    pub norms: Vec<f64>,
}

impl Centers {
    /// Stacks `centers` (each of length `d`).
    pub fn new(centers: &[Vec<f64>], d: usize) -> Self {
        let k = centers.len();
        let mut values = Vec::with_capacity(k * d);
        for c in centers {
            debug_assert_eq!(c.len(), d);
            values.extend_from_slice(c);
        }
        let mut norms = vec![0.0; k];
        row_sq_norms(&values, k, d, &mut norms);
        Centers { k, d, values, norms }
    }

    /// Center `j`.
    #[inline]
    pub fn row(&self, j: usize) -> &[f64] {
        &self.values[j * self.d..(j + 1) * self.d]
    }
}

/// An instance block with the squared norms of its rows (computed once, cached with it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NormedBlock {
    /// The rows.
    pub block: InstanceBlock,
    /// `‖x_r‖²` per row.
    pub norms: Arc<Vec<f64>>,
}

impl NormedBlock {
    /// Computes the row norms of `block`.
    pub fn new(block: InstanceBlock) -> Self {
        let mut norms = vec![0.0; block.rows];
        row_sq_norms(&block.features, block.rows, block.cols, &mut norms);
        NormedBlock {
            block,
            norms: Arc::new(norms),
        }
    }

    /// Every row as its own vector.
    pub fn rows_vec(&self) -> Vec<Vec<f64>> {
        (0..self.block.rows).map(|r| self.block.row(r).to_vec()).collect()
    }
}

/// `Σ (a − b)²`.
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// For every row of `nb`: calls `visit(row, closest center, squared distance to it)`.
/// Does nothing when there are no centers.
pub(crate) fn for_each_closest(nb: &NormedBlock, centers: &Centers, mut visit: impl FnMut(usize, usize, f64)) {
    let (b, k, d) = (&nb.block, centers.k, centers.d);
    if k == 0 {
        return;
    }
    debug_assert_eq!(b.cols, d);
    let mut dots = vec![0.0; CHUNK_ROWS.min(b.rows) * k];
    let mut start = 0;
    while start < b.rows {
        let end = (start + CHUNK_ROWS).min(b.rows);
        let m = end - start;
        let dots = &mut dots[..m * k];
        gemm_nt(&b.features[start * d..end * d], m, d, &centers.values, k, dots);
        for i in 0..m {
            let r = start + i;
            let xn = nb.norms[r];
            let row_dots = &dots[i * k..(i + 1) * k];
            let mut best = 0;
            let mut best_d = f64::INFINITY;
            for (j, (dot, cn)) in row_dots.iter().zip(&centers.norms).enumerate() {
                let dist = xn - 2.0 * dot + cn;
                if dist < best_d {
                    best_d = dist;
                    best = j;
                }
            }
            visit(r, best, sq_dist(b.row(r), centers.row(best)));
        }
        start = end;
    }
}

/// The closest of `centers` to `x` (dense, same dimension) and the squared distance to it.
pub(crate) fn closest_dense(x: &[f64], centers: &Centers) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for j in 0..centers.k {
        let dist = sq_dist(x, centers.row(j));
        if dist < best.1 {
            best = (j, dist);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabeledPoint;

    #[test]
    fn closest_centers_match_brute_force() {
        let points: Vec<LabeledPoint> = (0..600)
            .map(|i| {
                let t = i as f64;
                LabeledPoint::new(
                    0.0,
                    vec![(t * 0.7).sin() * 5.0, (t * 0.3).cos() * 5.0, (t * 0.01).sin()],
                )
            })
            .collect();
        let nb = NormedBlock::new(InstanceBlock::from_points(&points, 3));
        let cs: Vec<Vec<f64>> = (0..7).map(|j| vec![j as f64 - 3.0, 3.0 - j as f64, 0.5]).collect();
        let centers = Centers::new(&cs, 3);
        let mut seen = 0;
        for_each_closest(&nb, &centers, |r, j, dist| {
            let (bj, bd) = closest_dense(nb.block.row(r), &centers);
            assert_eq!(j, bj, "row {r}");
            assert!((dist - bd).abs() <= 1e-12 * bd.max(1.0));
            seen += 1;
        });
        assert_eq!(seen, 600);
    }
}
