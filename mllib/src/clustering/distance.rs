//! Squared Euclidean distances of block rows to a set of centers: `‖x‖² − 2·x·c + ‖c‖²` picks
//! each row's closest center, whose distance is then recomputed exactly (`Σ (x − c)²`), so that
//! costs carry no cancellation error.
//!
//! The dot products are a register-tiled matrix product: the centers are packed (once per
//! iteration, when broadcast) transposed into panels of [`LANES`] centers, `panel[p·LANES + l]`
//! = coordinate `p` of center `l`, so that [`ROWS`] rows times one panel accumulate in
//! `ROWS × LANES` independent registers: per coordinate, one contiguous load of the panel and
//! one broadcast per row, which the compiler vectorises across the lanes. The best center is
//! tracked as the panels go, so no `rows × k` product is stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::InstanceBlock;
use crate::linalg::gemm::row_sq_norms;

/// Centers per packed panel (vector lanes of the micro-kernel).
const LANES: usize = 4;

/// Rows sharing each load of a panel in the micro-kernel.
const ROWS: usize = 4;

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
    /// The centers transposed in panels of [`LANES`] (zeros past `k`): panel `q` holds
    /// `packed[(q·d + p)·LANES + l]` = coordinate `p` of center `q·LANES + l`.
    packed: Vec<f64>,
    /// `‖c_j‖²` padded to whole panels with `+∞` (a padding lane is never the closest).
    packed_norms: Vec<f64>,
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
        let panels = k.div_ceil(LANES);
        let mut packed = vec![0.0; panels * d * LANES];
        for (j, c) in values.chunks_exact(d.max(1)).enumerate().take(k) {
            let (q, l) = (j / LANES, j % LANES);
            for (p, x) in c.iter().enumerate() {
                packed[(q * d + p) * LANES + l] = *x;
            }
        }
        let mut packed_norms = vec![f64::INFINITY; panels * LANES];
        packed_norms[..k].copy_from_slice(&norms);
        Centers {
            k,
            d,
            values,
            norms,
            packed,
            packed_norms,
        }
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

/// The closest center (index, `‖x‖² − 2·x·c + ‖c‖²`) to each of `R` rows (`xs`, with squared
/// norms `xn`): the micro-kernel, one pass over the packed panels.
#[inline(always)]
fn closest_rows<const R: usize>(xs: [&[f64]; R], xn: [f64; R], centers: &Centers) -> [(usize, f64); R] {
    let d = centers.d;
    let mut best = [(0usize, f64::INFINITY); R];
    if d == 0 {
        return best;
    }
    for (q, (panel, cn)) in centers
        .packed
        .chunks_exact(d * LANES)
        .zip(centers.packed_norms.chunks_exact(LANES))
        .enumerate()
    {
        let mut acc = [[0.0f64; LANES]; R];
        for (p, cv) in panel.chunks_exact(LANES).enumerate() {
            for (a, x) in acc.iter_mut().zip(&xs) {
                let xp = x[p];
                for (al, cl) in a.iter_mut().zip(cv) {
                    *al += xp * cl;
                }
            }
        }
        for ((b, a), xn) in best.iter_mut().zip(&acc).zip(xn) {
            for (l, (dot, cn)) in a.iter().zip(cn).enumerate() {
                let dist = xn - 2.0 * dot + cn;
                if dist < b.1 {
                    *b = (q * LANES + l, dist);
                }
            }
        }
    }
    best
}

/// For every row of `nb`: calls `visit(row, closest center, squared distance to it)`.
/// Does nothing when there are no centers.
pub(crate) fn for_each_closest(nb: &NormedBlock, centers: &Centers, mut visit: impl FnMut(usize, usize, f64)) {
    let (b, k, d) = (&nb.block, centers.k, centers.d);
    if k == 0 {
        return;
    }
    debug_assert_eq!(b.cols, d);
    let full = b.rows / ROWS * ROWS;
    let mut r = 0;
    while r < full {
        let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(r + i));
        let xn: [f64; ROWS] = std::array::from_fn(|i| nb.norms[r + i]);
        let best = closest_rows(xs, xn, centers);
        for (i, (j, _)) in best.into_iter().enumerate() {
            visit(r + i, j, sq_dist(xs[i], centers.row(j)));
        }
        r += ROWS;
    }
    for r in full..b.rows {
        let x = b.row(r);
        let [(j, _)] = closest_rows([x], [nb.norms[r]], centers);
        visit(r, j, sq_dist(x, centers.row(j)));
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
