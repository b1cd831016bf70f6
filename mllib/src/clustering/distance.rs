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

/// `Σ (a − b)²`, in four interleaved partial sums (independent add chains the compiler
/// vectorises) as [`crate::linalg::kernels::dot`].
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            let t = x[i] - y[i];
            acc[i] += t * t;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The closest center to each of `R` rows (`xs`, with squared norms `xn`) as (index,
/// `‖x‖² − 2·x·c + ‖c‖²`, the same for the second closest center): the micro-kernel, one pass
/// over the packed panels.
#[inline(always)]
fn closest_rows<const R: usize>(xs: [&[f64]; R], xn: [f64; R], centers: &Centers) -> [(usize, f64, f64); R] {
    let d = centers.d;
    let mut best = [(0usize, f64::INFINITY, f64::INFINITY); R];
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
                // Branch-free: the second best is the least of the others.
                let better = dist < b.1;
                b.2 = b.2.min(if better { b.1 } else { dist });
                if better {
                    b.0 = q * LANES + l;
                    b.1 = dist;
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
        for (i, (j, _, _)) in best.into_iter().enumerate() {
            visit(r + i, j, sq_dist(xs[i], centers.row(j)));
        }
        r += ROWS;
    }
    for r in full..b.rows {
        let x = b.row(r);
        let [(j, _, _)] = closest_rows([x], [nb.norms[r]], centers);
        visit(r, j, sq_dist(x, centers.row(j)));
    }
}

/// What one row's last assignment proved (Hamerly's bounds, kept between Lloyd iterations
/// next to each cached block): its center, an upper bound on the (Euclidean, not squared)
/// distance to that center and a lower bound on the distance to every other center, both
/// valid for the centers of the pass that computed them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bounds {
    /// Closest center per row.
    pub assign: Vec<u32>,
    /// Exact `Σ (x − c)²` to it (the row's cost).
    pub dist2: Vec<f64>,
    /// Upper bound on `‖x − c_assign‖`.
    pub upper: Vec<f64>,
    /// Lower bound on `‖x − c_j‖` for every other `j`.
    pub lower: Vec<f64>,
}

/// Relative slack on the bounds, far above the rounding of the distances they come from.
const SLACK: f64 = 1e-10;

/// Assigns every row of `nb` to its closest center, as [`for_each_closest`], reusing `old` (the
/// bounds of the previous pass, `None` on the first) after the centers moved by `drift[j]`
/// (Euclidean) since: a row whose distance to its center stays below the lower bound on every
/// other keeps it, and only its exact distance is recomputed; the others go through the full
/// kernel. The assignments are those of the full computation (the bounds carry a relative
/// slack of [`SLACK`] plus the cancellation error of `‖x‖² − 2·x·c + ‖c‖²`).
pub(crate) fn assign_bounded(nb: &NormedBlock, centers: &Centers, old: Option<&Bounds>, drift: &[f64]) -> Bounds {
    let (b, rows) = (&nb.block, nb.block.rows);
    let mut out = Bounds {
        assign: vec![0; rows],
        dist2: vec![0.0; rows],
        upper: vec![0.0; rows],
        lower: vec![0.0; rows],
    };
    if centers.k == 0 {
        return out;
    }
    let max_drift = drift.iter().fold(0.0f64, |a, &b| a.max(b));
    let cn_max = centers.norms.iter().fold(0.0f64, |a, &b| a.max(b));
    let mut pending = Vec::new();
    match old {
        Some(old) if old.assign.len() == rows => {
            for r in 0..rows {
                let a = old.assign[r] as usize;
                let lower = old.lower[r] - max_drift;
                if old.upper[r] + drift[a] < lower {
                    let d2 = sq_dist(b.row(r), centers.row(a));
                    let upper = d2.sqrt() * (1.0 + SLACK);
                    if upper < lower {
                        out.assign[r] = a as u32;
                        out.dist2[r] = d2;
                        out.upper[r] = upper;
                        out.lower[r] = lower;
                        continue;
                    }
                }
                pending.push(r);
            }
        }
        _ => pending.extend(0..rows),
    }
    let mut settle = |r: usize, (j, _, second): (usize, f64, f64)| {
        let x = b.row(r);
        let d2 = sq_dist(x, centers.row(j));
        let margin = SLACK * (nb.norms[r] + cn_max);
        out.assign[r] = j as u32;
        out.dist2[r] = d2;
        out.upper[r] = d2.sqrt() * (1.0 + SLACK);
        out.lower[r] = (second - margin).max(0.0).sqrt() * (1.0 - SLACK);
    };
    let mut groups = pending.chunks_exact(ROWS);
    for g in groups.by_ref() {
        let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(g[i]));
        let xn: [f64; ROWS] = std::array::from_fn(|i| nb.norms[g[i]]);
        for (&r, best) in g.iter().zip(closest_rows(xs, xn, centers)) {
            settle(r, best);
        }
    }
    for &r in groups.remainder() {
        let [best] = closest_rows([b.row(r)], [nb.norms[r]], centers);
        settle(r, best);
    }
    out
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

    #[test]
    fn bounded_assignments_match_the_full_computation_as_centers_move() {
        let points: Vec<LabeledPoint> = (0..601)
            .map(|i| {
                let t = i as f64;
                LabeledPoint::new(
                    0.0,
                    vec![(t * 0.7).sin() * 5.0, (t * 0.3).cos() * 5.0, (t * 0.01).sin()],
                )
            })
            .collect();
        let nb = NormedBlock::new(InstanceBlock::from_points(&points, 3));
        let mut cs: Vec<Vec<f64>> = (0..7).map(|j| vec![j as f64 - 3.0, 3.0 - j as f64, 0.5]).collect();
        let mut old: Option<Bounds> = None;
        let mut drift = vec![0.0; cs.len()];
        for step in 0..12 {
            let centers = Centers::new(&cs, 3);
            let got = assign_bounded(&nb, &centers, old.as_ref(), &drift);
            for_each_closest(&nb, &centers, |r, j, dist| {
                assert_eq!(got.assign[r] as usize, j, "step {step}, row {r}");
                assert!((got.dist2[r] - dist).abs() <= 1e-12 * dist.max(1.0));
            });
            old = Some(got);
            // Move the centers a little, by different amounts.
            for (j, c) in cs.iter_mut().enumerate() {
                let before = c.clone();
                c[0] += 0.05 * ((step * 7 + j) as f64).sin();
                c[1] -= 0.03 * (j as f64 + 1.0) / (step as f64 + 1.0);
                drift[j] = sq_dist(c, &before).sqrt() * (1.0 + 1e-10);
            }
        }
    }
}
