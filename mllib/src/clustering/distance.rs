//! Squared Euclidean distances of block rows to a set of centers, and each row's closest center.
//!
//! The closest center is picked with `‖x‖² − 2·x·c + ‖c‖²` (a matrix product); where a distance
//! is reported (predictions, the model's cost) it is recomputed exactly (`Σ (x − c)²`,
//! [`sq_dist`]), so it carries no cancellation error. A Lloyd pass takes its cost from segment
//! statistics and its bounds from the kernel's values widened by their rounding margin.
//! When the runner-up is within the rounding error of that expression ([`Centers::margin`]), the
//! tie is settled on exact distances (lowest index first, as [`closest_dense`]). So the
//! assignment of a row is *the* closest center by [`sq_dist`], whatever kernel computed the
//! products: the AVX2 + FMA kernel (chosen at run time where the CPU has it) and the baseline
//! one train bit-identical models, and they assign as the fitted model predicts.
//!
//! A Lloyd pass ([`lloyd_block`]) goes by stretches of rows that fit in the L1 cache: first the
//! rows their bounds settle (most without being read), then the others through the kernel
//! ([`super::nearest`]) three at a time; then, segment by segment, the clusters' statistics
//! ([`super::segments`]), read from the rows only for the centers some row left or joined.

use std::sync::Arc;

#[cfg(target_arch = "x86_64")]
use pulp::x86::V3;
use serde::{Deserialize, Serialize};

#[cfg(target_arch = "x86_64")]
use super::nearest::Avx2;
use super::nearest::{Baseline, GROUP, NearestKernel, ROWS};
use super::segments::{Segments, segment_rows};

use crate::data::InstanceBlock;
use crate::device::ClusterSums;
use crate::linalg::gemm::row_sq_norms;
use crate::linalg::kernels::dot;

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

/// An instance block with the squared distances of its rows to the block's mean row
/// (computed once, cached with it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NormedBlock {
    /// The rows.
    pub block: InstanceBlock,
    /// The block's mean row `m`.
    pub mean: Arc<Vec<f64>>,
    /// `‖x_r − m‖²` per row: the scatter of a set of rows about its own mean follows from
    /// these without reading the rows ([`super::segments`]).
    pub centered: Arc<Vec<f64>>,
}

impl NormedBlock {
    /// Computes the mean row of `block` and its rows' squared distances to it.
    pub fn new(block: InstanceBlock) -> Self {
        let (rows, d) = (block.rows, block.cols);
        let mut mean = vec![0.0; d];
        for r in 0..rows {
            mean.iter_mut().zip(block.row(r)).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut().for_each(|m| *m /= rows.max(1) as f64);
        let centered = (0..rows).map(|r| sq_dist(block.row(r), &mean)).collect();
        NormedBlock {
            block,
            mean: Arc::new(mean),
            centered: Arc::new(centered),
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
    /// The statistics of the rows' segments under `assign`.
    pub segments: Segments,
}

impl Bounds {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.assign.capacity() * 4 + (self.upper.capacity() + self.lower.capacity()) * 8 + self.segments.bytes()
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
pub(crate) fn for_each_closest(nb: &NormedBlock, centers: &Centers, mut visit: impl FnMut(usize, usize, f64)) {
    if centers.k == 0 {
        return;
    }
    if centers.d == 0 {
        // Every center is the empty vector: all at distance 0, the first is the closest.
        (0..nb.block.rows).for_each(|r| visit(r, 0, 0.0));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = V3::try_new() {
        return simd.vectorize(AssignOnAvx2 {
            simd,
            nb,
            centers,
            visit,
        });
    }
    assign_with(Baseline, nb, centers, visit)
}

/// One Lloyd pass over `nb`: every row assigned to its closest center as [`for_each_closest`]
/// assigns it, each cluster's statistics (count, weight, weighted sum, cost against
/// `centers`) added to `out`, and the rows' new bounds and segment statistics left in
/// `bounds`, in place.
///
/// With `drift` (how far, Euclidean, each center moved since the pass that computed
/// `bounds`, which must then be this block's), a row whose distance to its center stays below
/// the lower bound on every other keeps it without being read, or after only its exact
/// distance is recomputed; the others go through the full kernel; and a segment adds its
/// statistics without reading its rows, but those of the centers some row left or joined
/// ([`super::segments`]). Without, or when `bounds` is not this block's, every row goes
/// through the kernel and every segment's statistics are computed (`bounds` is resized, its
/// memory reused). Either way `out` receives the same bits. Returns how many rows the bounds
/// spared the kernel.
pub(crate) fn lloyd_block(
    nb: &NormedBlock,
    centers: &Centers,
    bounds: &mut Bounds,
    drift: Option<&[f64]>,
    out: &mut ClusterSums,
) -> usize {
    let (rows, k, d) = (nb.block.rows, centers.k, centers.d);
    if k == 0 {
        return 0;
    }
    let segment = segment_rows(k, d, stretch_rows(d));
    let valid = drift.is_some_and(|m| m.len() == k)
        && bounds.assign.len() == rows
        && bounds.segments.shaped(rows, segment, k, d);
    if !valid {
        bounds.assign.resize(rows, 0);
        bounds.upper.resize(rows, 0.0);
        bounds.lower.resize(rows, 0.0);
        bounds.segments.reset(rows, segment, k, d);
    }
    let drift = drift.filter(|_| valid);
    if d == 0 {
        // Every center is the empty vector: all at distance 0, the first is the closest.
        for r in 0..rows {
            bounds.set(r, 0, 0.0, 0.0);
        }
        for s in 0..rows.div_ceil(segment) {
            bounds.segments.compute(s, nb, &bounds.assign, None);
            bounds.segments.add_to(s, centers, out);
        }
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = V3::try_new() {
        return simd.vectorize(LloydOnAvx2 {
            simd,
            nb,
            centers,
            bounds,
            drift,
            out,
        });
    }
    lloyd_with(Baseline, nb, centers, bounds, drift, out)
}

/// [`lloyd_with`] on the AVX2 kernel, for [`V3::vectorize`] (which compiles what it inlines
/// for AVX2 + FMA): its `call` is always inlined there, and so is the pass. Not a closure: a
/// closure handed to `vectorize` is called through a `FnOnce` shim that the compiler may keep
/// out of line, and it did once the pass grew: the whole pass then ran as baseline code
/// calling each intrinsic, twenty times slower.
#[cfg(target_arch = "x86_64")]
struct LloydOnAvx2<'a> {
    simd: V3,
    nb: &'a NormedBlock,
    centers: &'a Centers,
    bounds: &'a mut Bounds,
    drift: Option<&'a [f64]>,
    out: &'a mut ClusterSums,
}

#[cfg(target_arch = "x86_64")]
impl pulp::NullaryFnOnce for LloydOnAvx2<'_> {
    type Output = usize;

    #[inline(always)]
    fn call(self) -> usize {
        lloyd_with(
            Avx2(self.simd),
            self.nb,
            self.centers,
            self.bounds,
            self.drift,
            self.out,
        )
    }
}

/// [`assign_with`] on the AVX2 kernel, for [`V3::vectorize`] (see [`LloydOnAvx2`]).
#[cfg(target_arch = "x86_64")]
struct AssignOnAvx2<'a, F> {
    simd: V3,
    nb: &'a NormedBlock,
    centers: &'a Centers,
    visit: F,
}

#[cfg(target_arch = "x86_64")]
impl<F: FnMut(usize, usize, f64)> pulp::NullaryFnOnce for AssignOnAvx2<'_, F> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        assign_with(Avx2(self.simd), self.nb, self.centers, self.visit)
    }
}

/// Rows per stretch: assigned (bounds first, then the kernel on the rest) while they are in
/// the L1 cache.
fn stretch_rows(d: usize) -> usize {
    (16 * 1024 / (8 * d.max(1))).clamp(ROWS, 256)
}

/// The rows of the next stretch that will be read, requested from memory a few at a time
/// while the current stretch is worked on (one row per row worked on): far enough ahead for
/// the memory's latency, spread out so that the requests never queue up in a burst.
struct Requests<'a> {
    rows: &'a [usize],
    at: usize,
}

impl<'a> Requests<'a> {
    fn new(rows: &'a [usize]) -> Self {
        Requests { rows, at: 0 }
    }

    /// Requests the next `n` rows of `b`.
    #[inline(always)]
    fn issue<K: NearestKernel>(&mut self, kernel: K, b: &InstanceBlock, n: usize) {
        let end = (self.at + n).min(self.rows.len());
        for &r in &self.rows[self.at..end] {
            kernel.prefetch(b.row(r));
        }
        self.at = end;
    }

    /// Requests every row not requested yet.
    #[inline(always)]
    fn rest<K: NearestKernel>(&mut self, kernel: K, b: &InstanceBlock) {
        self.issue(kernel, b, self.rows.len());
    }
}

/// For each of `rows` (of `nb`), through the kernel [`ROWS`] at a time: `each(row, closest
/// center, squared distance to it, lower bound on the squared distance to every other
/// center)`, with `next`'s rows requested as it goes. The distance is exact ([`sq_dist`]) with
/// `EXACT`; without, it is an upper bound (the kernel's value plus its rounding margin, or
/// the exact value where a near tie was settled), which is all the bounds need: a Lloyd pass
/// takes its costs from the segment statistics and spares its kernel rows a second read of
/// the center.
#[inline(always)]
fn settle<K: NearestKernel, const EXACT: bool>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    rows: &[usize],
    next: &mut Requests,
    mut each: impl FnMut(usize, usize, f64, f64),
) {
    let b = &nb.block;
    // Whole groups of rows: the last one padded with copies of its last row.
    for g in rows.chunks(ROWS) {
        next.issue(kernel, b, ROWS);
        let at = |i: usize| g[i.min(g.len() - 1)];
        let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(at(i)));
        // `‖x‖²` computed here rather than cached: 8 bytes a row fewer to cache, and only the
        // kernel's rows need it.
        // A plain loop: `xs.map(..)` with a closure was compiled out of line (baseline code).
        let mut xn = [0.0f64; ROWS];
        for (n, x) in xn.iter_mut().zip(xs) {
            *n = dot(x, x);
        }
        for (((&r, x), near), xn) in g.iter().zip(xs).zip(kernel.nearest(xs, xn, centers)).zip(xn) {
            let margin = centers.margin(xn);
            if near.second - near.best <= margin {
                // A near tie: settle it on exact distances; every center is at least `best`
                // away.
                let (j, d2) = closest_dense(x, centers);
                each(r, j, d2, near.best - margin);
            } else {
                let d2 = if EXACT {
                    sq_dist(x, centers.row(near.center))
                } else {
                    near.best + margin
                };
                each(r, near.center, d2, near.second - margin);
            }
        }
    }
}

/// [`settle`] for a Lloyd pass: each row's center and new bounds go to `bounds` (the square
/// roots of a group's rows taken together); the centers rows left or joined go to `moved`.
#[inline(always)]
fn settle_bounded<K: NearestKernel>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    rows: &[usize],
    next: &mut Requests,
    bounds: &mut Bounds,
    moved: &mut Moved,
) {
    const { assert!(ROWS <= 4) };
    for g in rows.chunks(ROWS) {
        let (mut center, mut d2, mut lower) = ([0usize; ROWS], [0.0f64; 4], [0.0f64; 4]);
        // `settle` goes through `g`'s rows in order.
        let mut i = 0;
        settle::<K, false>(kernel, nb, centers, g, next, |_, j, dist, low| {
            (center[i], d2[i], lower[i]) = (j, dist.max(0.0), low.max(0.0));
            i += 1;
        });
        let (up, low) = (kernel.sqrt4(d2), kernel.sqrt4(lower));
        for (i, &r) in g.iter().enumerate() {
            moved.add(bounds.assign[r] as usize, center[i]);
            bounds.set(r, center[i], up[i] * (1.0 + SLACK), low[i] * (1.0 - SLACK));
        }
    }
}

/// The centers some row of a segment left or joined in a pass: a bit per center under 64, or
/// all of them.
#[derive(Clone, Copy)]
struct Moved {
    bits: u64,
    all: bool,
}

impl Moved {
    /// A row went from center `from` to center `to` (nothing when they are the same).
    #[inline(always)]
    fn add(&mut self, from: usize, to: usize) {
        if from != to {
            if from.max(to) < 64 {
                self.bits |= (1 << from) | (1 << to);
            } else {
                self.all = true;
            }
        }
    }
}

#[inline(always)]
fn assign_with<K: NearestKernel>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    mut visit: impl FnMut(usize, usize, f64),
) {
    let (rows, stretch) = (nb.block.rows, stretch_rows(centers.d));
    let (mut these, mut next) = (Vec::with_capacity(stretch), Vec::with_capacity(stretch));
    these.extend(0..stretch.min(rows));
    for start in (0..rows).step_by(stretch) {
        next.clear();
        next.extend((start + stretch).min(rows)..(start + 2 * stretch).min(rows));
        let mut requests = Requests::new(&next);
        settle::<K, true>(kernel, nb, centers, &these, &mut requests, |r, j, d2, _| {
            visit(r, j, d2)
        });
        requests.rest(kernel, &nb.block);
        std::mem::swap(&mut these, &mut next);
    }
}

#[inline(always)]
fn lloyd_with<K: NearestKernel>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    bounds: &mut Bounds,
    drift: Option<&[f64]>,
    out: &mut ClusterSums,
) -> usize {
    let (b, rows) = (&nb.block, nb.block.rows);
    let stretch = stretch_rows(centers.d);
    let segment = bounds.segments.rows();
    let drifts = drift.map(Drifts::of);
    // The rows of the current and of the next stretch that have to be read.
    let (mut reads, mut next_reads) = (vec![0; stretch], vec![0; stretch]);
    let mut pending = Vec::with_capacity(stretch);
    // The rows of stretch `start..` to read: those the bounds cannot settle unread (the bounds
    // moved), or every row.
    let to_read = |start: usize, bounds: &mut Bounds, out: &mut [usize]| -> usize {
        let end = (start + stretch).min(rows);
        rows_to_read(start..end, bounds, drifts.as_ref(), out)
    };
    let mut n = if rows > 0 { to_read(0, bounds, &mut reads) } else { 0 };
    let mut spared = 0;
    let mut moved = Moved { bits: 0, all: false };

    for start in (0..rows).step_by(stretch) {
        let end = (start + stretch).min(rows);
        let s = start / segment;
        if start % segment == 0 {
            moved = Moved {
                bits: 0,
                all: !bounds.segments.held(s),
            };
            bounds.segments.request(s + 1, |bytes| kernel.prefetch_bytes(bytes));
        }
        let n_next = if end < rows {
            to_read(end, bounds, &mut next_reads)
        } else {
            0
        };
        let mut next = Requests::new(&next_reads[..n_next]);
        pending.clear();
        // Tightening a row's upper bound costs its exact distance: when the bounds of most of
        // the stretch's rows failed (the centers moved far, an early pass), so would most
        // tightened ones, and the rows go straight to the kernel. Which rows are spared never
        // changes an assignment.
        if drifts.is_some() && 2 * n <= end - start {
            tighten(kernel, b, &reads[..n], bounds, centers, &mut next, &mut pending);
        } else {
            pending.extend_from_slice(&reads[..n]);
        }
        settle_bounded(kernel, nb, centers, &pending, &mut next, bounds, &mut moved);
        next.rest(kernel, b);
        spared += (end - start) - pending.len();
        if end % segment == 0 || end == rows {
            if moved.all {
                bounds.segments.compute(s, nb, &bounds.assign, None);
            } else if moved.bits != 0 {
                bounds.segments.compute(s, nb, &bounds.assign, Some(moved.bits));
            }
            bounds.segments.add_to(s, centers, out);
        }
        std::mem::swap(&mut reads, &mut next_reads);
        n = n_next;
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

/// The rows of `rows` to read: with `drifts`, [`move_bounds`]; else every row. Written to `out`,
/// returns how many.
#[inline(always)]
fn rows_to_read(
    rows: std::ops::Range<usize>,
    bounds: &mut Bounds,
    drifts: Option<&Drifts>,
    out: &mut [usize],
) -> usize {
    match drifts {
        Some(drifts) => move_bounds(rows, bounds, drifts, out),
        None => {
            let n = rows.len();
            out.iter_mut().zip(rows).for_each(|(o, r)| *o = r);
            n
        }
    }
}

/// Moves the bounds of `rows` by how far the centers moved since they were computed (the
/// upper bound up by its center's move, the lower one down by the largest move of the
/// others) and writes to `out` the rows whose bounds no longer prove their center the
/// closest, returning how many. Touches only the bounds (zipped: no index arithmetic or
/// bounds checks) and has no branch: every row's index is written, counted only when the row
/// has to be read.
#[inline(always)]
fn move_bounds(rows: std::ops::Range<usize>, old: &mut Bounds, drifts: &Drifts, out: &mut [usize]) -> usize {
    let (start, end) = (rows.start, rows.end);
    let bounds = old.assign[start..end]
        .iter()
        .zip(&mut old.upper[start..end])
        .zip(&mut old.lower[start..end]);
    let mut n = 0;
    for (r, ((assign, upper), lower)) in (start..end).zip(bounds) {
        let a = *assign as usize;
        // A kept row's bounds; a row that goes to the kernel gets new ones.
        *lower -= drifts.others_than(a);
        *upper += drifts.each[a];
        out[n] = r;
        n += usize::from(*upper >= *lower);
    }
    n
}

/// Tightens the upper bound of each of `rows` (read from `b`) to its exact distance to its
/// center; those whose bounds then prove the center still the closest keep it, the others
/// go to `pending`, for the kernel. Four rows at a time (one vector of square roots);
/// requests one of `next`'s rows per row.
#[inline(always)]
fn tighten<K: NearestKernel>(
    kernel: K,
    b: &InstanceBlock,
    rows: &[usize],
    old: &mut Bounds,
    centers: &Centers,
    next: &mut Requests,
    pending: &mut Vec<usize>,
) {
    for four in rows.chunks(4) {
        next.issue(kernel, b, four.len());
        let mut d2 = [0.0f64; 4];
        for (d2, &r) in d2.iter_mut().zip(four) {
            *d2 = sq_dist(b.row(r), centers.row(old.assign[r] as usize));
        }
        for (up, &r) in kernel.sqrt4(d2).iter().zip(four) {
            let up = up * (1.0 + SLACK);
            if up < old.lower[r] {
                old.upper[r] = up;
            } else {
                pending.push(r);
            }
        }
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
        assign_with(kernel, nb, centers, |r, j, d2| {
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

    /// Each cluster's statistics row by row, from exact distances.
    fn row_by_row(nb: &NormedBlock, centers: &Centers) -> ClusterSums {
        let mut want = ClusterSums::zero(centers.k, centers.d);
        for_each_closest(nb, centers, |r, j, d2| want.add_row(&nb.block, r, j, d2));
        want
    }

    #[test]
    fn bounded_passes_match_the_full_computation_as_centers_move() {
        let nb = wavy(601);
        let mut cs: Vec<Vec<f64>> = (0..7).map(|j| vec![j as f64 - 3.0, 3.0 - j as f64, 0.5]).collect();
        let mut bounds = Bounds::default();
        let mut drift = vec![0.0; cs.len()];
        let mut spared = 0;
        for step in 0..12 {
            let centers = Centers::new(&cs, 3);
            let prior = (step > 0).then_some(&drift[..]);
            let mut got = ClusterSums::zero(7, 3);
            spared += lloyd_block(&nb, &centers, &mut bounds, prior, &mut got);
            let expected: Vec<usize> = brute_force(&nb, &centers).iter().map(|&(j, _)| j).collect();
            let assigned: Vec<usize> = bounds.assign.iter().map(|&j| j as usize).collect();
            assert_eq!(assigned, expected, "step {step}");
            // The same bits as a pass without bounds (every row and segment computed afresh).
            let mut fresh = ClusterSums::zero(7, 3);
            lloyd_block(&nb, &centers, &mut Bounds::default(), None, &mut fresh);
            assert_eq!(got.counts, fresh.counts, "step {step}");
            assert_eq!(got.weights, fresh.weights, "step {step}");
            assert_eq!(got.sums, fresh.sums, "step {step}");
            assert_eq!(got.cost.to_bits(), fresh.cost.to_bits(), "step {step}");
            // And the statistics row by row, within rounding.
            let want = row_by_row(&nb, &centers);
            assert_eq!(got.counts, want.counts, "step {step}");
            for (g, w) in got.sums.iter().zip(&want.sums) {
                assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "step {step}: {g} {w}");
            }
            assert!((got.cost - want.cost).abs() <= 1e-12 * want.cost, "step {step}");
            // Move the centers a little, by different amounts.
            for (j, c) in cs.iter_mut().enumerate() {
                let before = c.clone();
                c[0] += 0.05 * ((step * 7 + j) as f64).sin();
                c[1] -= 0.03 * (j as f64 + 1.0) / (step as f64 + 1.0);
                drift[j] = sq_dist(c, &before).sqrt() * (1.0 + 1e-10);
            }
        }
        assert!(spared > 1000, "the bounds spared few rows: {spared}");
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
