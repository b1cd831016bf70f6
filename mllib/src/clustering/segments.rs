//! Per-cluster statistics of a block's rows by *segments* (a few L1 stretches of consecutive
//! rows), kept with the block's bounds between Lloyd passes, so that a pass reads only the rows
//! of the segments where some row changed cluster.
//!
//! A segment's statistics per cluster present in it are the row count, `w = Σ wᵣ`, the sum
//! `S = Σ wᵣ·xᵣ` and the scatter about the segment's own mean `W = Σ wᵣ‖xᵣ − S/w‖²`. They
//! depend only on the rows and their assignments, not on the centers, so a segment whose rows
//! all keep their center contributes the same numbers as in the previous pass. The cost against
//! a center `c` follows without the rows: `Σ wᵣ‖xᵣ − c‖² = W + ‖S − w·c‖² / w` (both terms
//! sums of squares: no cancellation). Every CPU pass, with bounds or without, computes a
//! block's statistics this way (segment by segment, in row order), so a pass that starts from
//! cached statistics gives the same bits as one that recomputes them.

use crate::data::InstanceBlock;
use crate::device::ClusterSums;
use crate::linalg::kernels::axpy;

use super::distance::{Centers, sq_dist};

/// Marks a segment whose statistics are not held (to compute).
const NOT_HELD: u32 = u32::MAX;

/// Rows per segment for `k` centers of dimension `d`, a multiple of the stretch (`stretch`
/// rows): at least enough rows that the statistics (`k` slots of `d + 3` numbers) take an
/// eighth of the rows' bytes at most.
pub(super) fn segment_rows(k: usize, d: usize, stretch: usize) -> usize {
    let need = (8 * k * (d + 3)).div_ceil(d.max(1));
    need.div_ceil(stretch).max(1) * stretch
}

/// The statistics of every segment of one block (see the module's documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Segments {
    /// Rows of the block.
    block_rows: usize,
    /// Rows per segment (the last one may have fewer).
    rows: usize,
    /// Slots per segment: `min(k, rows)`.
    slots: usize,
    /// Dimension.
    d: usize,
    /// Per segment: slots in use, or [`NOT_HELD`].
    used: Vec<u32>,
    /// Per slot: its cluster, row count, `w` and `W`.
    clusters: Vec<u32>,
    counts: Vec<u32>,
    weights: Vec<f64>,
    scatter: Vec<f64>,
    /// Per slot: `S` (`d` values).
    sums: Vec<f64>,
    /// Scratch: each cluster's slot in the segment being computed ([`NOT_HELD`] if none).
    slot_of: Vec<u32>,
    /// Scratch: the mean of each slot of the segment being computed.
    means: Vec<f64>,
}

impl Segments {
    /// Shapes for a block of `block_rows` rows cut into segments of `rows` rows, `k` centers of
    /// dimension `d`; nothing held (the buffers are reused).
    pub fn reset(&mut self, block_rows: usize, rows: usize, k: usize, d: usize) {
        let rows = rows.max(1);
        let segments = block_rows.div_ceil(rows);
        let slots = k.min(rows);
        (self.block_rows, self.rows, self.slots, self.d) = (block_rows, rows, slots, d);
        self.used.clear();
        self.used.resize(segments, NOT_HELD);
        let n = segments * slots;
        self.clusters.resize(n, 0);
        self.counts.resize(n, 0);
        self.weights.resize(n, 0.0);
        self.scatter.resize(n, 0.0);
        self.sums.resize(n * d, 0.0);
        self.slot_of.clear();
        self.slot_of.resize(k, NOT_HELD);
        self.means.resize(slots * d, 0.0);
    }

    /// Whether the segments have this shape (and may hold statistics).
    pub fn shaped(&self, block_rows: usize, rows: usize, k: usize, d: usize) -> bool {
        (self.block_rows, self.rows, self.d, self.slot_of.len()) == (block_rows, rows.max(1), d, k)
    }

    /// Rows per segment.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether segment `s`'s statistics are held.
    pub fn held(&self, s: usize) -> bool {
        self.used[s] != NOT_HELD
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.used.capacity() + self.clusters.capacity() + self.counts.capacity() + self.slot_of.capacity()) * 4
            + (self.weights.capacity() + self.scatter.capacity() + self.sums.capacity() + self.means.capacity()) * 8
    }

    /// Computes segment `s`'s statistics: rows `s·rows..` of `b`, row `r` in cluster
    /// `assign[r]`. Inlined into the caller's loop (which may be compiled for AVX2).
    #[inline(always)]
    pub fn compute(&mut self, s: usize, b: &InstanceBlock, assign: &[u32]) {
        let (d, slots) = (self.d, self.slots);
        let (start, end) = (s * self.rows, ((s + 1) * self.rows).min(b.rows));
        let base = s * slots;
        // Everything as plain slices, hoisted out of the loops.
        let (xs, ws, assign) = (
            &b.features[start * d..end * d],
            &b.weights[start..end],
            &assign[start..end],
        );
        let clusters = &mut self.clusters[base..base + slots];
        let counts = &mut self.counts[base..base + slots];
        let weights = &mut self.weights[base..base + slots];
        let scatter = &mut self.scatter[base..base + slots];
        let sums = &mut self.sums[base * d..(base + slots) * d];
        let (slot_of, means) = (&mut self.slot_of[..], &mut self.means[..]);
        let mut used = 0usize;
        for (i, (&w, &j)) in ws.iter().zip(assign).enumerate() {
            let mut slot = slot_of[j as usize] as usize;
            if slot == NOT_HELD as usize {
                slot = used;
                used += 1;
                slot_of[j as usize] = slot as u32;
                (clusters[slot], counts[slot], weights[slot], scatter[slot]) = (j, 0, 0.0, 0.0);
                sums[slot * d..(slot + 1) * d].fill(0.0);
            }
            counts[slot] += 1;
            weights[slot] += w;
            axpy(w, &xs[i * d..(i + 1) * d], &mut sums[slot * d..(slot + 1) * d]);
        }
        for slot in 0..used {
            let w = weights[slot];
            for (m, s) in means[slot * d..(slot + 1) * d]
                .iter_mut()
                .zip(&sums[slot * d..(slot + 1) * d])
            {
                *m = s / w;
            }
        }
        for (i, (&w, &j)) in ws.iter().zip(assign).enumerate() {
            let slot = slot_of[j as usize] as usize;
            // A cluster of zero weight has no mean and adds nothing to the cost.
            if weights[slot] > 0.0 {
                scatter[slot] += w * sq_dist(&xs[i * d..(i + 1) * d], &means[slot * d..(slot + 1) * d]);
            }
        }
        for &j in &clusters[..used] {
            slot_of[j as usize] = NOT_HELD;
        }
        self.used[s] = used as u32;
    }

    /// Requests segment `s`'s statistics from memory (`prefetch` of each array's part): they
    /// are read or written a segment later, and a store to a line not in the cache stalls
    /// the loop behind it.
    #[inline(always)]
    pub fn request(&self, s: usize, prefetch: impl Fn(&[u8])) {
        let (slots, d) = (self.slots, self.d);
        if s >= self.used.len() {
            return;
        }
        let at = s * slots..(s + 1) * slots;
        prefetch(bytemuck::cast_slice(&self.clusters[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.counts[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.weights[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.scatter[at.clone()]));
        prefetch(bytemuck::cast_slice(&self.sums[at.start * d..at.end * d]));
    }

    /// Adds segment `s`'s statistics (held) to `out`, with its cost against `centers`.
    #[inline(always)]
    pub fn add_to(&self, s: usize, centers: &Centers, out: &mut ClusterSums) {
        let d = self.d;
        let base = s * self.slots;
        for at in base..base + self.used[s] as usize {
            let j = self.clusters[at] as usize;
            let (sum, w) = (&self.sums[at * d..(at + 1) * d], self.weights[at]);
            out.sums[j * d..(j + 1) * d]
                .iter_mut()
                .zip(sum)
                .for_each(|(o, s)| *o += s);
            out.weights[j] += w;
            out.counts[j] += u64::from(self.counts[at]);
            if w > 0.0 {
                let off: f64 = sum
                    .iter()
                    .zip(centers.row(j))
                    .map(|(s, c)| (s - w * c) * (s - w * c))
                    .sum();
                out.cost += self.scatter[at] + off / w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabeledPoint;

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
        let b = block(&rows);
        let assign: Vec<u32> = (0..23).map(|i| [0, 2, 2, 1][i % 4]).collect();
        let cs: Vec<Vec<f64>> = (0..4).map(|j| vec![j as f64, -1.0, 0.5 * j as f64]).collect();
        let centers = Centers::new(&cs, 3);
        let mut seg = Segments::default();
        seg.reset(23, 5, 4, 3);
        assert!(seg.shaped(23, 5, 4, 3) && !seg.shaped(24, 5, 4, 3) && !seg.held(0));
        let mut got = ClusterSums::zero(4, 3);
        for s in 0..5 {
            seg.compute(s, &b, &assign);
            assert!(seg.held(s));
            seg.add_to(s, &centers, &mut got);
        }
        let mut want = ClusterSums::zero(4, 3);
        for (r, &j) in assign.iter().enumerate() {
            want.add_row(&b, r, j as usize, sq_dist(b.row(r), centers.row(j as usize)));
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
            seg.compute(s, &b, &assign);
            seg.add_to(s, &centers, &mut again);
        }
        assert_eq!(again.cost.to_bits(), got.cost.to_bits());
        assert_eq!(again.sums, got.sums);
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
