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

use serde::{Deserialize, Serialize};

#[cfg(target_arch = "x86_64")]
use super::nearest::{Avx2, Avx512};
use super::nearest::{Baseline, GROUP, NearestKernel, ROWS, WIDE_GROUP, group};
use super::segments::{Segments, segment_rows};

use crate::data::InstanceBlock;
use crate::device::ClusterSums;
use crate::linalg::gemm::row_sq_norms;
use crate::linalg::kernels::dot;
use crate::linalg::simd::Isa;

/// Relative slack on the bounds, far above the rounding of the distances they come from.
const SLACK: f64 = 1e-10;

/// Centers stacked row-major with their squared norms: what an iteration broadcasts. Only the
/// centers travel ([`Stacked`]): the receiving process derives the rest, packed for its own
/// kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stacked", into = "Stacked")]
pub(crate) struct Centers {
    /// Number of centers.
    pub k: usize,
    /// Dimension.
    pub d: usize,
    /// `k × d`, row-major.
    pub values: Vec<f64>,
    /// `‖c_j‖²`.
    pub norms: Vec<f64>,
    /// Centers per packed group: what the kernel of this CPU takes ([`group`]).
    pub(super) group: usize,
    /// The centers in groups of `group` (zeros past `k`): group `g` holds
    /// `packed[(g·d + p)·group + l]` = coordinate `p` of center `g·group + l`.
    pub(super) packed: Vec<f64>,
    /// `‖c_j‖²` padded to whole groups with `+∞` (a padding lane is never the closest).
    pub(super) packed_norms: Vec<f64>,
    /// The largest `‖c_j‖²`.
    norm_max: f64,
    /// Relative rounding error allowed for `‖x‖² − 2·x·c + ‖c‖²` (see [`Centers::margin`]).
    tolerance: f64,
}

impl Centers {
    /// Stacks `centers` (each of length `d`), packed for this CPU's kernel.
    pub fn new(centers: &[Vec<f64>], d: usize) -> Self {
        let mut values = Vec::with_capacity(centers.len() * d);
        for c in centers {
            debug_assert_eq!(c.len(), d);
            values.extend_from_slice(c);
        }
        Centers::packed(values, centers.len(), d, group(Isa::detect()))
    }

    /// `values` (`k × d`, row-major) packed in groups of `group` centers.
    pub(super) fn packed(values: Vec<f64>, k: usize, d: usize, group: usize) -> Self {
        debug_assert_eq!(values.len(), k * d);
        let mut norms = vec![0.0; k];
        row_sq_norms(&values, k, d, &mut norms);
        let groups = k.div_ceil(group);
        let mut packed = vec![0.0; groups * d * group];
        for (j, c) in values.chunks_exact(d.max(1)).enumerate().take(k) {
            let (g, l) = (j / group, j % group);
            for (p, x) in c.iter().enumerate() {
                packed[(g * d + p) * group + l] = *x;
            }
        }
        let mut packed_norms = vec![f64::INFINITY; groups * group];
        packed_norms[..k].copy_from_slice(&norms);
        Centers {
            k,
            d,
            group,
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

/// What travels of [`Centers`] when they are broadcast.
#[derive(Serialize, Deserialize)]
struct Stacked {
    k: usize,
    d: usize,
    values: Vec<f64>,
}

impl From<Centers> for Stacked {
    fn from(c: Centers) -> Self {
        Stacked {
            k: c.k,
            d: c.d,
            values: c.values,
        }
    }
}

impl TryFrom<Stacked> for Centers {
    type Error = String;

    fn try_from(s: Stacked) -> Result<Self, String> {
        if s.k.checked_mul(s.d) != Some(s.values.len()) {
            return Err(format!(
                "{} values for {} centers of dimension {}",
                s.values.len(),
                s.k,
                s.d
            ));
        }
        Ok(Centers::packed(s.values, s.k, s.d, group(Isa::detect())))
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
    // Centers packed for another kernel (only tests pack them so) take the baseline one.
    match Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(simd) if centers.group == WIDE_GROUP => simd.vectorize(AssignPass {
            kernel: Avx512(simd),
            nb,
            centers,
            visit,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(simd) if centers.group == GROUP => simd.vectorize(AssignPass {
            kernel: Avx2(simd),
            nb,
            centers,
            visit,
        }),
        _ => assign_with(Baseline, nb, centers, visit),
    }
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
    match Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(simd) if centers.group == WIDE_GROUP => simd.vectorize(LloydPass {
            kernel: Avx512(simd),
            nb,
            centers,
            bounds,
            drift,
            out,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(simd) if centers.group == GROUP => simd.vectorize(LloydPass {
            kernel: Avx2(simd),
            nb,
            centers,
            bounds,
            drift,
            out,
        }),
        _ => lloyd_with(Baseline, nb, centers, bounds, drift, out),
    }
}

/// [`lloyd_with`] on a SIMD kernel, for `vectorize` (which compiles what it inlines for the
/// kernel's instruction set): its `call` is always inlined there, and so is the pass. Not a
/// closure: a closure handed to `vectorize` is called through a `FnOnce` shim that the compiler
/// may keep out of line, and it did once the pass grew: the whole pass then ran as baseline
/// code calling each intrinsic, twenty times slower.
struct LloydPass<'a, K> {
    kernel: K,
    nb: &'a NormedBlock,
    centers: &'a Centers,
    bounds: &'a mut Bounds,
    drift: Option<&'a [f64]>,
    out: &'a mut ClusterSums,
}

impl<K: NearestKernel> pulp::NullaryFnOnce for LloydPass<'_, K> {
    type Output = usize;

    #[inline(always)]
    fn call(self) -> usize {
        lloyd_with(self.kernel, self.nb, self.centers, self.bounds, self.drift, self.out)
    }
}

/// [`assign_with`] on a SIMD kernel, for `vectorize` (see [`LloydPass`]).
struct AssignPass<'a, K, F> {
    kernel: K,
    nb: &'a NormedBlock,
    centers: &'a Centers,
    visit: F,
}

impl<K: NearestKernel, F: FnMut(usize, usize, f64)> pulp::NullaryFnOnce for AssignPass<'_, K, F> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        assign_with(self.kernel, self.nb, self.centers, self.visit)
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
/// center)`, with `next`'s rows requested as it goes (see [`settle_group`]).
#[inline(always)]
fn settle<K: NearestKernel, const EXACT: bool>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    rows: &[usize],
    next: &mut Requests,
    mut each: impl FnMut(usize, usize, f64, f64),
) {
    for g in rows.chunks(ROWS) {
        let settled = settle_group::<K, EXACT>(kernel, nb, centers, g, next);
        for (&r, (j, d2, low)) in g.iter().zip(settled) {
            each(r, j, d2, low);
        }
    }
}

/// Up to [`ROWS`] rows `g` (of `nb`) through the kernel, with [`ROWS`] of `next`'s rows
/// requested: per row, the closest center, the squared distance to it and a lower bound on
/// the squared distance to every other center (past `g.len()`, copies of the last row's). The
/// distance is exact ([`sq_dist`]) with `EXACT`; without, it is an upper bound (the kernel's
/// value plus its rounding margin, or the exact value where a near tie was settled), which is
/// all the bounds need: a Lloyd pass takes its costs from the segment statistics and spares
/// its kernel rows a second read of the center.
///
/// Returned as an array with constant indices, not through a callback counting the rows: the
/// values stay in registers (a counted index put them on the stack, and the vector of square
/// roots that reads them waited for the stores: an eighth of a pass).
#[inline(always)]
fn settle_group<K: NearestKernel, const EXACT: bool>(
    kernel: K,
    nb: &NormedBlock,
    centers: &Centers,
    g: &[usize],
    next: &mut Requests,
) -> [(usize, f64, f64); ROWS] {
    let b = &nb.block;
    next.issue(kernel, b, ROWS);
    // A short group is padded with copies of its last row.
    let at = |i: usize| g[i.min(g.len() - 1)];
    let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(at(i)));
    // `‖x‖²` computed here rather than cached: 8 bytes a row fewer to cache, and only the
    // kernel's rows need it.
    // A plain loop: `xs.map(..)` with a closure was compiled out of line (baseline code).
    let mut xn = [0.0f64; ROWS];
    for (n, x) in xn.iter_mut().zip(xs) {
        *n = dot(x, x);
    }
    let near = kernel.nearest(xs, xn, centers);
    let mut settled = [(0, 0.0, 0.0); ROWS];
    for i in 0..ROWS {
        let (x, near) = (xs[i], near[i]);
        let margin = centers.margin(xn[i]);
        settled[i] = if near.second - near.best <= margin {
            // A near tie: settle it on exact distances; every center is at least `best` away.
            let (j, d2) = closest_dense(x, centers);
            (j, d2, near.best - margin)
        } else {
            let d2 = if EXACT {
                sq_dist(x, centers.row(near.center))
            } else {
                near.best + margin
            };
            (near.center, d2, near.second - margin)
        };
    }
    settled
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
    const { assert!(ROWS == 3) };
    for g in rows.chunks(ROWS) {
        let [s0, s1, s2] = settle_group::<K, false>(kernel, nb, centers, g, next);
        let up = kernel.sqrt4([s0.1.max(0.0), s1.1.max(0.0), s2.1.max(0.0), 0.0]);
        let low = kernel.sqrt4([s0.2.max(0.0), s1.2.max(0.0), s2.2.max(0.0), 0.0]);
        let center = [s0.0, s1.0, s2.0];
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
    fn every_kernel_assigns_identically_for_every_group_shape() {
        let rows: Vec<Vec<f64>> = (0..203)
            .map(|i| (0..9).map(|p| ((i * 13 + p * 7) as f64 * 0.37).sin() * 3.0).collect())
            .collect();
        let nb = block(&rows);
        // 1 to 40 centers: groups of one, two and three vectors, several groups, ragged ends.
        for k in 1..=40 {
            let values: Vec<f64> = (0..k * 9)
                .map(|i| ((i / 9 * 5 + i % 9) as f64 * 0.91).cos() * 2.5)
                .collect();
            let narrow = Centers::packed(values.clone(), k, 9, GROUP);
            let wide = Centers::packed(values, k, 9, WIDE_GROUP);
            let expected = brute_force(&nb, &narrow);
            assert_eq!(visits(Baseline, &nb, &narrow), expected, "baseline, k = {k}");
            assert_eq!(visits(Baseline, &nb, &wide), expected, "baseline, wide groups, k = {k}");
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V3::try_new() {
                assert_eq!(visits(Avx2(simd), &nb, &narrow), expected, "avx2, k = {k}");
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V4::try_new() {
                assert_eq!(visits(Avx512(simd), &nb, &wide), expected, "avx-512, k = {k}");
            }
        }
    }

    /// The kernel's (center, least value, second value) per row, bits.
    #[cfg(target_arch = "x86_64")]
    fn kernel_values<K: NearestKernel>(kernel: K, nb: &NormedBlock, centers: &Centers) -> Vec<(usize, u64, u64)> {
        let b = &nb.block;
        (0..b.rows - ROWS + 1)
            .flat_map(|r| {
                let xs: [&[f64]; ROWS] = std::array::from_fn(|i| b.row(r + i));
                let xn = xs.map(|x| dot(x, x));
                kernel.nearest(xs, xn, centers)
            })
            .map(|n| (n.center, n.best.to_bits(), n.second.to_bits()))
            .collect()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_and_avx512_kernels_compute_the_same_bits() {
        let (Some(v3), Some(v4)) = (pulp::x86::V3::try_new(), pulp::x86::V4::try_new()) else {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        };
        let nb = wavy(50);
        for k in [1, 2, 7, 10, 12, 13, 16, 17, 25, 40] {
            let values: Vec<f64> = (0..k * 3).map(|i| ((i * 7) as f64 * 0.53).sin() * 4.0).collect();
            let narrow = Centers::packed(values.clone(), k, 3, GROUP);
            let wide = Centers::packed(values, k, 3, WIDE_GROUP);
            let (a, b) = (
                v3.vectorize(|| kernel_values(Avx2(v3), &nb, &narrow)),
                v4.vectorize(|| kernel_values(Avx512(v4), &nb, &wide)),
            );
            assert_eq!(a, b, "k = {k}");
        }
    }

    #[test]
    fn centers_travel_as_their_values_and_are_packed_on_arrival() {
        let cs: Vec<Vec<f64>> = (0..13).map(|j| vec![j as f64, -(j as f64), 0.25]).collect();
        let centers = Centers::new(&cs, 3);
        let bytes = bincode::serialize(&centers).unwrap();
        assert_eq!(
            bytes.len(),
            3 * 8 + 13 * 3 * 8,
            "k, d, the values' length and the values"
        );
        assert_eq!(bincode::deserialize::<Centers>(&bytes).unwrap(), centers);
        // Values that do not fill `k` centers are an error, not a panic.
        let mut bad = bytes.clone();
        bad[0] = 14;
        let err = bincode::deserialize::<Centers>(&bad).unwrap_err().to_string();
        assert!(err.contains("39 values for 14 centers of dimension 3"), "{err}");
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
