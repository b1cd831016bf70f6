//! Per-cluster statistics of a block's rows by *segments* (a few L1 stretches of consecutive
//! rows), kept with the block's bounds between Lloyd passes, so that a pass reads only the rows
//! of the segments where some row changed cluster.
//!
//! A segment's statistics per cluster present in it are the row count, `w = Σ wᵣ`, the sum
//! `S = Σ wᵣ·xᵣ` and the scatter about the segment's own mean `W = Σ wᵣ‖xᵣ − S/w‖²`. They
//! depend only on the rows and their assignments, not on the centers, so a segment whose rows
//! all keep their center contributes the same numbers as in the previous pass. The cost against
//! a center `c` follows without the rows: `Σ wᵣ‖xᵣ − c‖² = W + ‖S − w·c‖² / w`.
//!
//! `W` comes from each row's squared distance to its block's mean row `m` (computed once with
//! the block): `W = Σ wᵣ‖xᵣ − m‖² − ‖S − w·m‖² / w`, one addition per row. Centering on the
//! block's mean keeps the cancellation small: the relative error of the cost is about the
//! rounding unit times the ratio of the rows' scatter about their block's mean to their
//! scatter about their clusters' centers (rather than to `‖x‖²`, as `‖x‖² − 2x·c + ‖c‖²`
//! would give). Every CPU pass, with bounds or without, computes a
//! block's statistics this way (segment by segment, in row order), so a pass that starts from
//! cached statistics gives the same bits as one that recomputes them.

use crate::device::ClusterSums;
use crate::linalg::kernels::axpy;

use super::distance::{Centers, NormedBlock};

/// Rows per segment for `k` centers of dimension `d`, a multiple of the stretch (`stretch`
/// rows): at least enough rows that the statistics (`d + 3` numbers per center) take an eighth
/// of the rows' bytes at most.
pub(super) fn segment_rows(k: usize, d: usize, stretch: usize) -> usize {
    let need = (8 * k * (d + 3)).div_ceil(d.max(1));
    need.div_ceil(stretch).max(1) * stretch
}

/// The statistics of every segment of one block (see the module's documentation), per center:
/// segment `s`'s numbers for center `j` are at `s·k + j` (`d` values from `(s·k + j)·d` for
/// the sums); a center with no row in the segment has a count of 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Segments {
    /// Rows of the block.
    block_rows: usize,
    /// Rows per segment (the last one may have fewer).
    rows: usize,
    /// Centers.
    k: usize,
    /// Dimension.
    d: usize,
    /// Per segment: whether its statistics are held.
    held: Vec<bool>,
    /// Per segment and center: row count, `w` and `W`.
    counts: Vec<u32>,
    weights: Vec<f64>,
    scatter: Vec<f64>,
    /// Per segment and center: `S` (`d` values).
    sums: Vec<f64>,
}

impl Segments {
    /// Shapes for a block of `block_rows` rows cut into segments of `rows` rows, `k` centers of
    /// dimension `d`; nothing held (the buffers are reused).
    pub fn reset(&mut self, block_rows: usize, rows: usize, k: usize, d: usize) {
        let rows = rows.max(1);
        let segments = block_rows.div_ceil(rows);
        (self.block_rows, self.rows, self.k, self.d) = (block_rows, rows, k, d);
        self.held.clear();
        self.held.resize(segments, false);
        let n = segments * k;
        self.counts.resize(n, 0);
        self.weights.resize(n, 0.0);
        self.scatter.resize(n, 0.0);
        self.sums.resize(n * d, 0.0);
    }

    /// Whether the segments have this shape (and may hold statistics).
    pub fn shaped(&self, block_rows: usize, rows: usize, k: usize, d: usize) -> bool {
        (self.block_rows, self.rows, self.k, self.d) == (block_rows, rows.max(1), k, d)
    }

    /// Rows per segment.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether segment `s`'s statistics are held.
    pub fn held(&self, s: usize) -> bool {
        self.held[s]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.held.capacity()
            + self.counts.capacity() * 4
            + (self.weights.capacity() + self.scatter.capacity() + self.sums.capacity()) * 8
    }

    /// Computes segment `s`'s statistics: rows `s·rows..` of `nb`, row `r` in cluster
    /// `assign[r]`; with `only` (a bit per center, centers under 64), only those centers'
    /// (the others' are held and unchanged: only their rows are read). Each center's numbers
    /// are the same bits either way: its rows' in row order. Inlined into the caller's loop
    /// (which may be compiled for AVX2).
    #[inline(always)]
    pub fn compute(&mut self, s: usize, nb: &NormedBlock, assign: &[u32], only: Option<u64>) {
        let (b, d, k) = (&nb.block, self.d, self.k);
        let (start, end) = (s * self.rows, ((s + 1) * self.rows).min(b.rows));
        let wanted = |j: usize| only.is_none_or(|bits| bits >> j & 1 == 1);
        // Everything as plain slices, hoisted out of the loops.
        let (xs, ws, qs) = (
            &b.features[start * d..end * d],
            &b.weights[start..end],
            &nb.centered[start..end],
        );
        let assign = &assign[start..end];
        let at = s * k..(s + 1) * k;
        let counts = &mut self.counts[at.clone()];
        let weights = &mut self.weights[at.clone()];
        let scatter = &mut self.scatter[at.clone()];
        let sums = &mut self.sums[at.start * d..at.end * d];
        for j in (0..k).filter(|&j| wanted(j)) {
            (counts[j], weights[j], scatter[j]) = (0, 0.0, 0.0);
            sums[j * d..(j + 1) * d].fill(0.0);
        }
        for (i, ((&w, &q), &j)) in ws.iter().zip(qs).zip(assign).enumerate() {
            let j = j as usize;
            if !wanted(j) {
                continue;
            }
            counts[j] += 1;
            weights[j] += w;
            // Until the correction below: `Σ w·‖x − m‖²`.
            scatter[j] += w * q;
            // `w · x` by fours, plain additions for a unit weight (`1 · x` is `x`: the same
            // bits).
            axpy(w, &xs[i * d..(i + 1) * d], &mut sums[j * d..(j + 1) * d]);
        }
        for j in (0..k).filter(|&j| wanted(j)) {
            // A cluster of zero weight (every row weighs 0) has no scatter.
            let w = weights[j];
            scatter[j] = if w > 0.0 {
                (scatter[j] - off_center(&sums[j * d..(j + 1) * d], w, &nb.mean)).max(0.0)
            } else {
                0.0
            };
        }
        self.held[s] = true;
    }

    /// Requests segment `s`'s statistics from memory (`prefetch` of each array's part): they
    /// are read or written a segment later, and a store to a line not in the cache stalls
    /// the loop behind it.
    #[inline(always)]
    pub fn request(&self, s: usize, prefetch: impl Fn(&[u8])) {
        if s >= self.held.len() {
            return;
        }
        let (k, d) = (self.k, self.d);
        let at = s * k..(s + 1) * k;
        prefetch(bytemuck::cast_slice(&self.counts[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.weights[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.scatter[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.sums[at.start * d..at.end * d]));
    }

    /// Adds segment `s`'s statistics (held) to `out`, with its cost against `centers`.
    #[inline(always)]
    pub fn add_to(&self, s: usize, centers: &Centers, out: &mut ClusterSums) {
        let (k, d) = (self.k, self.d);
        for j in 0..k {
            let at = s * k + j;
            if self.counts[at] == 0 {
                continue;
            }
            let (sum, w) = (&self.sums[at * d..(at + 1) * d], self.weights[at]);
            out.sums[j * d..(j + 1) * d]
                .iter_mut()
                .zip(sum)
                .for_each(|(o, s)| *o += s);
            out.weights[j] += w;
            out.counts[j] += u64::from(self.counts[at]);
            if w > 0.0 {
                out.cost += self.scatter[at] + off_center(sum, w, centers.row(j));
            }
        }
    }
}

/// `‖S − w·c‖² / w`: what the rows of sum `S` and weight `w` (> 0) add to their scatter
/// about their mean when measured from `c` instead.
#[inline(always)]
fn off_center(sum: &[f64], w: f64, c: &[f64]) -> f64 {
    sum.iter().zip(c).map(|(s, c)| (s - w * c) * (s - w * c)).sum::<f64>() / w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::distance::sq_dist;
    use crate::data::{InstanceBlock, LabeledPoint};

    fn block(rows: &[(Vec<f64>, f64)]) -> InstanceBlock {
        let points: Vec<LabeledPoint> = rows
            .iter()
            .map(|(x, w)| LabeledPoint::new(0.0, x.clone()).with_weight(*w))
            .collect();
        InstanceBlock::from_points(&points, rows[0].0.len())
    }

    #[test]
    fn segments_add_up_to_the_row_by_row_statistics() {
        // 23 rows of 3 features in segments of 5, 4 clusters (one never used), a zero weight.
        let rows: Vec<(Vec<f64>, f64)> = (0..23)
            .map(|i| {
                let t = i as f64;
                (
                    vec![(t * 0.7).sin() * 5.0, t * 0.1, (t * 0.3).cos()],
                    if i == 4 { 0.0 } else { 1.0 + (i % 3) as f64 },
                )
            })
            .collect();
        let nb = NormedBlock::new(block(&rows));
        let b = &nb.block;
        let assign: Vec<u32> = (0..23).map(|i| [0, 2, 2, 1][i % 4]).collect();
        let cs: Vec<Vec<f64>> = (0..4).map(|j| vec![j as f64, -1.0, 0.5 * j as f64]).collect();
        let centers = Centers::new(&cs, 3);
        let mut seg = Segments::default();
        seg.reset(23, 5, 4, 3);
        assert!(seg.shaped(23, 5, 4, 3) && !seg.shaped(24, 5, 4, 3) && !seg.held(0));
        let mut got = ClusterSums::zero(4, 3);
        for s in 0..5 {
            seg.compute(s, &nb, &assign, None);
            assert!(seg.held(s));
            seg.add_to(s, &centers, &mut got);
        }
        let mut want = ClusterSums::zero(4, 3);
        for (r, &j) in assign.iter().enumerate() {
            want.add_row(b, r, j as usize, sq_dist(b.row(r), centers.row(j as usize)));
        }
        assert_eq!((&got.counts, &got.weights), (&want.counts, &want.weights));
        for (g, w) in got.sums.iter().zip(&want.sums) {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{got:?} {want:?}");
        }
        assert!(
            (got.cost - want.cost).abs() <= 1e-12 * want.cost,
            "{} {}",
            got.cost,
            want.cost
        );
        // Computing again gives the same bits; a single-segment shape agrees within rounding.
        let mut again = ClusterSums::zero(4, 3);
        for s in 0..5 {
            seg.compute(s, &nb, &assign, None);
            seg.add_to(s, &centers, &mut again);
        }
        assert_eq!(again.cost.to_bits(), got.cost.to_bits());
        assert_eq!(again.sums, got.sums);
    }

    #[test]
    fn recomputing_only_the_centers_rows_moved_between_gives_the_full_bits() {
        let rows: Vec<(Vec<f64>, f64)> = (0..40)
            .map(|i| {
                (
                    vec![(i as f64 * 0.37).sin() * 3.0, i as f64 * 0.05 - 1.0],
                    0.5 + (i % 4) as f64,
                )
            })
            .collect();
        let nb = NormedBlock::new(block(&rows));
        let mut assign: Vec<u32> = (0..40).map(|i| (i * 7 % 5) as u32).collect();
        let (mut held, mut fresh) = (Segments::default(), Segments::default());
        held.reset(40, 16, 5, 2);
        for s in 0..3 {
            held.compute(s, &nb, &assign, None);
        }
        // Rows 3 and 20 move (segments 0 and 1), from centers 1 and 0 to 4 and 1.
        (assign[3], assign[20]) = (4, 1);
        held.compute(0, &nb, &assign, Some(0b10010));
        held.compute(1, &nb, &assign, Some(0b00011));
        fresh.reset(40, 16, 5, 2);
        for s in 0..3 {
            fresh.compute(s, &nb, &assign, None);
        }
        assert_eq!(held, fresh);
    }

    #[test]
    fn segments_hold_an_eighth_of_the_rows_bytes_at_most() {
        for (k, d) in [(1, 1), (10, 20), (100, 20), (7, 3), (1000, 50)] {
            let stretch = 100;
            let rows = segment_rows(k, d, stretch);
            assert_eq!(rows % stretch, 0);
            assert!(8 * k * (d + 3) <= rows * d, "k {k}, d {d}: {rows} rows");
        }
        assert_eq!(segment_rows(10, 20, 102), 102);
    }
}
