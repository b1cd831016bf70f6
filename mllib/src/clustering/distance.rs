//! Squared Euclidean distances of block rows to a set of centers, and each row's closest center.
//!
//! The closest center is picked with `‖x‖² − 2·x·c + ‖c‖²` (a matrix product), then its distance
//! is recomputed exactly (`Σ (x − c)²`, [`sq_dist`]), so that costs carry no cancellation error.
//! When the runner-up is within the rounding error of that expression ([`Centers::margin`]), the
//! tie is settled on exact distances (lowest index first, as [`closest_dense`]). So the
//! assignment of a row is *the* closest center by [`sq_dist`], whatever kernel computed the
//! products: the AVX2 + FMA kernel (chosen at run time where the CPU has it) and the baseline
//! one train bit-identical models, and they assign as the fitted model predicts.
//!
//! Rows go by stretches that fit in the L1 cache: first the rows their bounds settle (with
//! the next rows' cache lines requested ahead), then the others through the kernel
//! ([`super::nearest`]) four at a time, then every row of the stretch to the caller, in order.

use std::sync::Arc;

#[cfg(target_arch = "x86_64")]
use pulp::x86::V3;
use serde::{Deserialize, Serialize};

#[cfg(target_arch = "x86_64")]
use super::nearest::Avx2;
use super::nearest::{Baseline, GROUP, NearestKernel, ROWS};

use crate::data::InstanceBlock;
use crate::linalg::gemm::row_sq_norms;

/// Relative slack on the bounds, far above the rounding of the distances they come from.
const SLACK: f64 = 1e-10;

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
    /// The centers in groups of [`GROUP`] (zeros past `k`): group `g` holds
    /// `packed[(g·d + p)·GROUP + l]` = coordinate `p` of center `g·GROUP + l`.
    pub(super) packed: Vec<f64>,
    /// `‖c_j‖²` padded to whole groups with `+∞` (a padding lane is never the closest).
    pub(super) packed_norms: Vec<f64>,
    /// The largest `‖c_j‖²`.
    norm_max: f64,
    /// Relative rounding error allowed for `‖x‖² − 2·x·c + ‖c‖²` (see [`Centers::margin`]).
    tolerance: f64,
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
        let groups = k.div_ceil(GROUP);
        let mut packed = vec![0.0; groups * d * GROUP];
        for (j, c) in values.chunks_exact(d.max(1)).enumerate().take(k) {
            let (g, l) = (j / GROUP, j % GROUP);
            for (p, x) in c.iter().enumerate() {
                packed[(g * d + p) * GROUP + l] = *x;
            }
        }
        let mut packed_norms = vec![f64::INFINITY; groups * GROUP];
        packed_norms[..k].copy_from_slice(&norms);
        Centers {
            k,
            d,
            norm_max: norms.iter().fold(0.0f64, |a, &b| a.max(b)),
            values,
            norms,
            packed,
            packed_norms,
            // `SLACK` covers dimensions up to ~10⁵; past that, the textbook bound of a
            // `d`-term dot product (with headroom).
            tolerance: SLACK.max(8.0 * (d as f64 + 2.0) * f64::EPSILON),
        }
    }

    /// Center `j`.
    #[inline]
    pub fn row(&self, j: usize) -> &[f64] {
        &self.values[j * self.d..(j + 1) * self.d]
    }

    /// Bound on the rounding error of a difference of two values of `‖x‖² − 2·x·c + ‖c‖²` for a
    /// row of squared norm `xn` (and of their error against [`sq_dist`]).
    #[inline]
    fn margin(&self, xn: f64) -> f64 {
        self.tolerance * (xn + self.norm_max)
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
/// vectorises) as [`crate::linalg::kernels::dot`]. Never fused (no FMA): the same bits on
/// every CPU.
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

/// What one row's last assignment proved (Hamerly's bounds, kept between Lloyd iterations
/// by [`super::bounds`]): its center, an upper bound on the (Euclidean, not squared) distance
/// to that center and a lower bound on the distance to every other center, both valid for the
/// centers of the pass that computed them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Bounds {
    /// Closest center per row.
    pub assign: Vec<u32>,
    /// Upper bound on `‖x − c_assign‖`.
    pub upper: Vec<f64>,
    /// Lower bound on `‖x − c_j‖` for every other `j`.
    pub lower: Vec<f64>,
}

impl Bounds {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.assign.capacity() * 4 + (self.upper.capacity() + self.lower.capacity()) * 8
    }

    #[inline]
    fn set(&mut self, r: usize, center: usize, upper: f64, lower: f64) {
        self.assign[r] = center as u32;
        self.upper[r] = upper;
        self.lower[r] = lower;
    }
}

/// Calls `visit(row, closest center, squared distance to it)` for every row of `nb`, in row
/// order. Does nothing when there are no centers.
pub(crate) fn for_each_closest(nb: &NormedBlock, centers: &Centers, visit: impl FnMut(usize, usize, f64)) {
    assign_rows(nb, centers, None, None, visit);
}

/// Assigns every row of `nb` to its closest center as [`for_each_closest`] (same `visit`,
/// same assignments) and leaves the rows' new bounds in `bounds`, in place.
///
/// With `drift` (how far, Euclidean, each center moved since the pass that computed
/// `bounds`, which must then be this block's), a row whose distance to its center stays below
/// the lower bound on every other keeps it, and only its exact distance is recomputed; the
/// others go through the full kernel. Without, or when `bounds` is not this block's, every row
/// goes through the kernel (`bounds` is resized, its memory reused). Returns how many rows
/// the bounds spared the kernel.
pub(crate) fn assign_bounded(
    nb: &NormedBlock,
    centers: &Centers,
    bounds: &mut Bounds,
    drift: Option<&[f64]>,
    visit: impl FnMut(usize, usize, f64),
) -> usize {
    let rows = nb.block.rows;
    let drift = drift.filter(|d| d.len() == centers.k && bounds.assign.len() == rows);
    if drift.is_none() {
        bounds.assign.resize(rows, 0);
        bounds.upper.resize(rows, 0.0);
        bounds.lower.resize(rows, 0.0);
    }
    assign_rows(nb, centers, Some(bounds), drift, visit)
}

/// [`assign_bounded`] (or [`for_each_closest`], without bounds) with the kernel this CPU runs
/// fastest. `drift` only comes with `bounds` holding the previous pass's.
fn assign_rows(
    nb: &NormedBlock,
    centers: &Centers,
    mut bounds: Option<&mut Bounds>,
    drift: Option<&[f64]>,
    mut visit: impl FnMut(usize, usize, f64),
) -> usize {
    if centers.k == 0 {
        return 0;
    }
    if centers.d == 0 {
        // Every center is the empty vector: all at distance 0, the first is the closest.
        for r in 0..nb.block.rows {
            if let Some(out) = bounds.as_deref_mut() {
                out.set(r, 0, 0.0, 0.0);
            }
            visit(r, 0, 0.0);
        }
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = V3::try_new() {
        return simd.vectorize(
            #[inline(always)]
            || assign_with(Avx2(simd), nb, centers, bounds, drift, visit),
        );
    }
    assign_with(Baseline, nb, centers, bounds, drift, visit)
}

/// Rows ahead of the one being checked against its bounds whose cache lines are requested
/// (the check is too short for the hardware prefetcher to keep up with alone). 32 rather than
/// 16 or 64: a bounded pass over 2M x 20 from memory, one core, 29-30 against 30-31 ms.
const AHEAD: usize = 32;

/// Rows per stretch: assigned (bounds first, then the kernel on the rest), then visited in
/// order while they are still in the L1 cache.
fn stretch_rows(d: usize) -> usize {
    (16 * 1024 / (8 * d.max(1))).clamp(ROWS, 256)
}

#[inline(always)]
fn assign_with<K: NearestKernel>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    mut bounds: Option<&mut Bounds>,
    drift: Option<&[f64]>,
    mut visit: impl FnMut(usize, usize, f64),
) -> usize {
    let (b, rows) = (&nb.block, nb.block.rows);
    let mut spared = 0;
    let stretch = stretch_rows(centers.d);
    let drifts = drift.map(Drifts::of);
    // Per row of the stretch: its center and exact squared distance.
    let mut found = vec![(0usize, 0.0f64); stretch];
    let mut pending = Vec::with_capacity(stretch);
    let mut start = 0;
    while start < rows {
        let end = (start + stretch).min(rows);
        pending.clear();
        match (bounds.as_deref_mut(), &drifts) {
            (Some(old), Some(drifts)) => {
                keep_by_bounds(kernel, b, start..end, old, centers, drifts, &mut found, &mut pending)
            }
            _ => pending.extend(start..end),
        }
        // Whole groups of rows: the last one padded with copies of its last row.
        for g in pending.chunks(ROWS) {
            if drift.is_none() {
                // Consecutive rows: request the ones the kernel reaches next (the bounds' loop
                // above did, when there is one).
                for &r in g.iter().filter(|&&r| r + AHEAD < rows) {
                    kernel.prefetch(b.row(r + AHEAD));
                }
            }
            let at = |i: usize| g[i.min(g.len() - 1)];
            let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(at(i)));
            let xn: [f64; ROWS] = std::array::from_fn(|i| nb.norms[at(i)]);
            for ((&r, x), near) in g.iter().zip(xs).zip(kernel.nearest(xs, xn, centers)) {
                let margin = centers.margin(nb.norms[r]);
                let (center, d2, lower) = if near.second - near.best <= margin {
                    // A near tie: settle it on exact distances; every center is at least
                    // `best` away.
                    let (j, d2) = closest_dense(x, centers);
                    (j, d2, near.best - margin)
                } else {
                    (near.center, sq_dist(x, centers.row(near.center)), near.second - margin)
                };
                found[r - start] = (center, d2);
                if let Some(out) = bounds.as_deref_mut() {
                    out.set(
                        r,
                        center,
                        d2.sqrt() * (1.0 + SLACK),
                        lower.max(0.0).sqrt() * (1.0 - SLACK),
                    );
                }
            }
        }
        for (r, &(center, d2)) in (start..end).zip(&found) {
            visit(r, center, d2);
        }
        spared += (end - start) - pending.len();
        start = end;
    }
    spared
}

/// How far each center moved since the previous pass, and the two largest moves.
struct Drifts<'a> {
    each: &'a [f64],
    /// The center that moved most, and how far.
    first: (usize, f64),
    /// The largest move of the other centers.
    second: f64,
}

impl<'a> Drifts<'a> {
    fn of(each: &'a [f64]) -> Self {
        let mut d = Drifts {
            each,
            first: (0, 0.0),
            second: 0.0,
        };
        for (j, &m) in each.iter().enumerate() {
            if m > d.first.1 {
                d.second = d.first.1;
                d.first = (j, m);
            } else if m > d.second {
                d.second = m;
            }
        }
        d
    }

    /// The largest move of the centers other than `a`: how much closer any of them can have
    /// come to a row assigned to `a` (Hamerly's refinement: one center moving far no longer
    /// voids every other cluster's bounds).
    #[inline(always)]
    fn others_than(&self, a: usize) -> f64 {
        if a == self.first.0 { self.second } else { self.first.1 }
    }
}

/// For each row `r` of `rows` (a stretch of `b`): when its bounds from the previous pass (`old`,
/// for centers that moved by `drifts` since) prove its center still the closest, its center
/// and exact squared distance go to `found[r − rows.start]` and its bounds are updated in
/// place; otherwise `r` goes to `pending`, for the kernel. One loop over the stretch's rows
/// and bounds zipped (no index arithmetic or bounds checks per row), asking for the rows
/// [`AHEAD`] on from memory as it goes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn keep_by_bounds<K: NearestKernel>(
    kernel: K,
    b: &InstanceBlock,
    rows: std::ops::Range<usize>,
    old: &mut Bounds,
    centers: &Centers,
    drifts: &Drifts,
    found: &mut [(usize, f64)],
    pending: &mut Vec<usize>,
) {
    let d = centers.d;
    let (start, end, len) = (rows.start, rows.end, b.features.len());
    let xs = b.features[start * d..end * d].chunks_exact(d);
    // The values `AHEAD` rows on, as far as the block goes.
    let ahead = &b.features[((start + AHEAD) * d).min(len)..((end + AHEAD) * d).min(len)];
    let bounds = old.assign[start..end]
        .iter_mut()
        .zip(&mut old.upper[start..end])
        .zip(&mut old.lower[start..end]);
    for (i, ((x, ((assign, upper), lower)), f)) in xs.zip(bounds).zip(found.iter_mut()).enumerate() {
        if let Some(next) = ahead.get(i * d..(i + 1) * d) {
            kernel.prefetch(next);
        }
        let a = *assign as usize;
        let low = *lower - drifts.others_than(a);
        if *upper + drifts.each[a] < low {
            let d2 = sq_dist(x, centers.row(a));
            let up = d2.sqrt() * (1.0 + SLACK);
            if up < low {
                (*upper, *lower) = (up, low);
                *f = (a, d2);
                continue;
            }
        }
        pending.push(start + i);
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
    use proptest::prelude::*;

    use super::*;
    use crate::data::LabeledPoint;

    fn block(rows: &[Vec<f64>]) -> NormedBlock {
        let d = rows.first().map_or(0, Vec::len);
        let points: Vec<LabeledPoint> = rows.iter().map(|x| LabeledPoint::new(0.0, x.clone())).collect();
        NormedBlock::new(InstanceBlock::from_points(&points, d))
    }

    fn wavy(n: usize) -> NormedBlock {
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let t = i as f64;
                vec![(t * 0.7).sin() * 5.0, (t * 0.3).cos() * 5.0, (t * 0.01).sin()]
            })
            .collect();
        block(&rows)
    }

    /// Every row's (center, exact squared distance) with `kernel`.
    fn visits<K: NearestKernel>(kernel: K, nb: &NormedBlock, centers: &Centers) -> Vec<(usize, u64)> {
        let mut seen = Vec::new();
        assign_with(kernel, nb, centers, None, None, |r, j, d2| {
            assert_eq!(r, seen.len(), "rows visited in order");
            seen.push((j, d2.to_bits()));
        });
        seen
    }

    /// What the model predicts: the first center at the least exact distance.
    fn brute_force(nb: &NormedBlock, centers: &Centers) -> Vec<(usize, u64)> {
        (0..nb.block.rows)
            .map(|r| {
                let (j, d2) = closest_dense(nb.block.row(r), centers);
                (j, d2.to_bits())
            })
            .collect()
    }

    #[test]
    fn closest_centers_are_those_of_exact_distances() {
        let nb = wavy(600);
        let cs: Vec<Vec<f64>> = (0..7).map(|j| vec![j as f64 - 3.0, 3.0 - j as f64, 0.5]).collect();
        let centers = Centers::new(&cs, 3);
        let mut seen = Vec::new();
        for_each_closest(&nb, &centers, |_, j, d2| seen.push((j, d2.to_bits())));
        assert_eq!(seen, brute_force(&nb, &centers));
    }

    #[test]
    fn both_kernels_assign_identically_for_every_group_shape() {
        let rows: Vec<Vec<f64>> = (0..203)
            .map(|i| (0..9).map(|p| ((i * 13 + p * 7) as f64 * 0.37).sin() * 3.0).collect())
            .collect();
        let nb = block(&rows);
        // 1 to 30 centers: groups of one, two and three vectors, several groups, ragged ends.
        for k in 1..=30 {
            let cs: Vec<Vec<f64>> = (0..k)
                .map(|j| (0..9).map(|p| ((j * 5 + p) as f64 * 0.91).cos() * 2.5).collect())
                .collect();
            let centers = Centers::new(&cs, 9);
            let expected = brute_force(&nb, &centers);
            assert_eq!(visits(Baseline, &nb, &centers), expected, "baseline, k = {k}");
            if let Some(simd) = V3::try_new() {
                assert_eq!(visits(Avx2(simd), &nb, &centers), expected, "avx2, k = {k}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_first_center_at_the_least_exact_distance() {
        // Rows on the plane x = 0 are equidistant from centers 1 and 2 (mirror images), and
        // center 3 duplicates center 0.
        let rows: Vec<Vec<f64>> = (0..41).map(|i| vec![0.0, i as f64 * 0.25 - 5.0]).collect();
        let nb = block(&rows);
        let cs = vec![vec![9.0, 9.0], vec![-1.0, 0.5], vec![1.0, 0.5], vec![9.0, 9.0]];
        let centers = Centers::new(&cs, 2);
        let mut seen = Vec::new();
        for_each_closest(&nb, &centers, |_, j, _| seen.push(j));
        assert!(seen.iter().all(|&j| j == 1), "{seen:?}");
        let far: Vec<Vec<f64>> = (0..5).map(|i| vec![9.0 + i as f64 * 1e-3, 9.0]).collect();
        seen.clear();
        for_each_closest(&block(&far), &centers, |_, j, _| seen.push(j));
        assert_eq!(seen, vec![0; 5]);
    }

    #[test]
    fn bounded_assignments_match_the_full_computation_as_centers_move() {
        let nb = wavy(601);
        let mut cs: Vec<Vec<f64>> = (0..7).map(|j| vec![j as f64 - 3.0, 3.0 - j as f64, 0.5]).collect();
        let mut bounds = Bounds::default();
        let mut drift = vec![0.0; cs.len()];
        let mut pruned = 0;
        for step in 0..12 {
            let centers = Centers::new(&cs, 3);
            if step > 0 {
                let b = &bounds;
                pruned += (0..601)
                    .filter(|&r| b.upper[r] + drift[b.assign[r] as usize] < b.lower[r])
                    .count();
            }
            let prior = (step > 0).then_some(&drift[..]);
            let mut seen = Vec::new();
            assign_bounded(&nb, &centers, &mut bounds, prior, |_, j, d2| {
                seen.push((j, d2.to_bits()))
            });
            assert_eq!(seen, brute_force(&nb, &centers), "step {step}");
            for (r, &(j, _)) in seen.iter().enumerate() {
                assert_eq!(bounds.assign[r] as usize, j, "step {step}, row {r}");
            }
            // Move the centers a little, by different amounts.
            for (j, c) in cs.iter_mut().enumerate() {
                let before = c.clone();
                c[0] += 0.05 * ((step * 7 + j) as f64).sin();
                c[1] -= 0.03 * (j as f64 + 1.0) / (step as f64 + 1.0);
                drift[j] = sq_dist(c, &before).sqrt() * (1.0 + 1e-10);
            }
        }
        assert!(pruned > 1000, "the bounds spared few rows: {pruned}");
    }

    #[test]
    fn a_row_discounts_the_largest_move_of_the_other_centers() {
        let d = Drifts::of(&[0.1, 0.5, 0.3, 0.5]);
        assert_eq!((d.first, d.second), ((1, 0.5), 0.5));
        let d = Drifts::of(&[0.1, 0.5, 0.3]);
        assert_eq!((d.others_than(1), d.others_than(0), d.others_than(2)), (0.3, 0.5, 0.5));
        assert_eq!(Drifts::of(&[0.0]).others_than(0), 0.0);
    }

    proptest! {
        #[test]
        fn assignments_are_the_exact_nearest_centers(
            d in 1usize..12,
            k in 1usize..20,
            seed in any::<u64>(),
            rows in 1usize..40,
        ) {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Coarse values make exact ties common.
                ((state % 9) as f64 - 4.0) * 0.5
            };
            let xs: Vec<Vec<f64>> = (0..rows).map(|_| (0..d).map(|_| next()).collect()).collect();
            let cs: Vec<Vec<f64>> = (0..k).map(|_| (0..d).map(|_| next()).collect()).collect();
            let (nb, centers) = (block(&xs), Centers::new(&cs, d));
            let mut seen = Vec::new();
            for_each_closest(&nb, &centers, |_, j, d2| seen.push((j, d2.to_bits())));
            prop_assert_eq!(seen, brute_force(&nb, &centers));
        }
    }
}
