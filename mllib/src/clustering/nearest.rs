//! The distance micro-kernels: for a few rows at a time, the two least values of
//! `‖x‖² − 2·x·c + ‖c‖²` over the packed centers ([`super::distance::Centers`]) and the center
//! of the least. Which kernel runs never changes an assignment (near ties are settled on exact
//! distances by the caller), so each CPU runs the fastest it has ([`Isa::detect`], at run time
//! through [`pulp`]): AVX-512 (x86-64-v4), AVX2 with FMA (x86-64-v3), else plain loops the
//! compiler vectorises for the baseline target.
//!
//! The products are register-tiled: the centers are packed (once per iteration, when
//! broadcast) in groups of `group` centers ([`GROUP`] = [`VECTORS`] vectors of [`LANES`] for
//! AVX2, [`WIDE_GROUP`] for AVX-512: the packing follows the kernel of the CPU that unpacks
//! them), `packed[(g·d + p)·group + l]` = coordinate `p` of center `g·group + l`, so that
//! [`ROWS`] rows times one group accumulate in `ROWS × VECTORS` vector registers: per
//! coordinate, [`VECTORS`] contiguous loads and one broadcast per row. The best and second-best
//! centers are tracked as the groups go, so no `rows × k` product is stored.

#[cfg(target_arch = "x86_64")]
use pulp::x86::{V3, V4};
#[cfg(target_arch = "x86_64")]
use pulp::{Simd, f64x4, f64x8};

use super::distance::Centers;
use crate::linalg::simd::Isa;

/// Centers per vector (`f64` lanes of a 256-bit register).
pub(super) const LANES: usize = 4;

/// Vectors of centers in one packed group (AVX2 has 16 registers: `ROWS × VECTORS`
/// accumulators, the group's vectors and two broadcasts; one more row and the compiler spills
/// an accumulator, whose store and reload then lengthen its chain of additions).
pub(super) const VECTORS: usize = 3;

/// Centers per packed group for the AVX2 and baseline kernels.
pub(super) const GROUP: usize = LANES * VECTORS;

/// Centers per packed group for the AVX-512 kernel: two vectors of eight lanes (32 registers,
/// but a third vector would pad small `k` further: 10 centers take 16 lanes, not 24).
pub(super) const WIDE_GROUP: usize = 16;

/// Rows sharing each load of a group in the micro-kernel.
pub(super) const ROWS: usize = 3;

/// Centers per packed group for the kernel of `isa`.
pub(super) fn group(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(_) => WIDE_GROUP,
        _ => GROUP,
    }
}

/// The two smallest values of `‖x‖² − 2·x·c + ‖c‖²` over the centers seen so far for one row,
/// and the center of the smallest.
#[derive(Clone, Copy, Debug)]
pub(super) struct Nearest {
    pub center: usize,
    pub best: f64,
    pub second: f64,
}

impl Nearest {
    const NONE: Nearest = Nearest {
        center: 0,
        best: f64::INFINITY,
        second: f64::INFINITY,
    };

    /// Takes in the least two of other centers.
    #[inline(always)]
    pub fn merge(&mut self, o: Nearest) {
        let low = if o.best < self.best { o.best } else { self.best };
        let high = if o.best < self.best { self.best } else { o.best };
        let second = if o.second < self.second { o.second } else { self.second };
        self.second = if high < second { high } else { second };
        if o.best < self.best {
            self.center = o.center;
        }
        self.best = low;
    }

    /// Takes in the values of centers `first..first + dist.len()`.
    #[inline(always)]
    pub fn scan(&mut self, first: usize, dist: &[f64]) {
        for (l, &v) in dist.iter().enumerate() {
            // Branch-free (selects, not `f64::min`: no NaN here, padding lanes are +∞): the
            // second best is the least of the others.
            let better = v < self.best;
            let other = if better { self.best } else { v };
            self.second = if other < self.second { other } else { self.second };
            if better {
                self.center = first + l;
                self.best = v;
            }
        }
    }
}

/// Computes [`Nearest`] for [`ROWS`] rows at a time (`xs`, each of length `d`, with squared
/// norms `xn`).
pub(super) trait NearestKernel: Copy {
    fn nearest(self, xs: [&[f64]; ROWS], xn: [f64; ROWS], centers: &Centers) -> [Nearest; ROWS];

    /// Hints that `data` will be read soon.
    #[inline(always)]
    fn prefetch(self, _data: &[f64]) {}

    /// Hints that `bytes` will be read or written soon.
    #[inline(always)]
    fn prefetch_bytes(self, _bytes: &[u8]) {}

    /// Square roots of four values (correctly rounded, as `f64::sqrt`: the same bits on
    /// every kernel), in one instruction where the CPU has one: a scalar square root takes
    /// nearly as long as four in a vector.
    #[inline(always)]
    fn sqrt4(self, x: [f64; 4]) -> [f64; 4] {
        x.map(f64::sqrt)
    }
}

/// Plain loops for the baseline target (SSE2): per group, one vector of [`LANES`] centers at
/// a time in `ROWS × LANES` accumulators that the compiler keeps in registers.
#[derive(Clone, Copy)]
pub(super) struct Baseline;

impl NearestKernel for Baseline {
    #[inline(always)]
    fn nearest(self, xs: [&[f64]; ROWS], xn: [f64; ROWS], centers: &Centers) -> [Nearest; ROWS] {
        let (d, width) = (centers.d, centers.group);
        let mut best = [Nearest::NONE; ROWS];
        for (g, (group, cn)) in centers
            .packed
            .chunks_exact(d * width)
            .zip(centers.packed_norms.chunks_exact(width))
            .enumerate()
        {
            // Vectors holding at least one center (the rest is padding).
            let live = (centers.k - g * width).min(width).div_ceil(LANES);
            for v in 0..live {
                let mut acc = [[0.0f64; LANES]; ROWS];
                for (p, cp) in group.chunks_exact(width).enumerate() {
                    let cv = &cp[v * LANES..(v + 1) * LANES];
                    for (a, x) in acc.iter_mut().zip(&xs) {
                        let xp = x[p];
                        for (al, cl) in a.iter_mut().zip(cv) {
                            *al += xp * cl;
                        }
                    }
                }
                let cn = &cn[v * LANES..(v + 1) * LANES];
                for ((b, a), xn) in best.iter_mut().zip(&acc).zip(xn) {
                    let dist: [f64; LANES] = std::array::from_fn(|l| xn - 2.0 * a[l] + cn[l]);
                    b.scan(g * width + v * LANES, &dist);
                }
            }
        }
        best
    }
}

/// AVX2 + FMA (x86-64-v3): the `ROWS × VECTORS` accumulators are named variables (an array
/// of them is kept in memory by the compiler), each coordinate one fused multiply-add per
/// accumulator.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2(pub V3);

#[cfg(target_arch = "x86_64")]
impl NearestKernel for Avx2 {
    #[inline(always)]
    fn sqrt4(self, x: [f64; 4]) -> [f64; 4] {
        pulp::cast(self.0.sqrt_f64x4(pulp::cast(x)))
    }

    #[inline(always)]
    fn prefetch(self, data: &[f64]) {
        self.prefetch_bytes(bytemuck::cast_slice(data));
    }

    #[inline(always)]
    fn prefetch_bytes(self, bytes: &[u8]) {
        for at in (0..bytes.len()).step_by(64) {
            self.0
                .sse
                ._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes[at..].as_ptr().cast());
        }
    }

    #[inline(always)]
    fn nearest(self, xs: [&[f64]; ROWS], xn: [f64; ROWS], centers: &Centers) -> [Nearest; ROWS] {
        const { assert!(ROWS == 3 && VECTORS == 3) };
        debug_assert_eq!(centers.group, GROUP, "centers packed for another kernel");
        let simd = self.0;
        let d = centers.d;
        let [x0, x1, x2] = xs.map(|x| &x[..d]);
        let zero = simd.splat_f64x4(0.0);
        let mut best = [Nearest::NONE; ROWS];
        for (g, (group, cn)) in centers
            .packed
            .chunks_exact(d * GROUP)
            .zip(centers.packed_norms.chunks_exact(GROUP))
            .enumerate()
        {
            let (group, _) = V3::as_simd_f64s(group);
            let (panels, _) = group.as_chunks::<VECTORS>();
            let [mut a00, mut a01, mut a02, mut a10, mut a11, mut a12] = [zero; 6];
            let [mut a20, mut a21, mut a22] = [zero; 3];
            for ((&[c0, c1, c2], (&y0, &y1)), &y2) in panels.iter().zip(x0.iter().zip(x1)).zip(x2) {
                let y = simd.splat_f64x4(y0);
                a00 = simd.mul_add_f64x4(y, c0, a00);
                a01 = simd.mul_add_f64x4(y, c1, a01);
                a02 = simd.mul_add_f64x4(y, c2, a02);
                let y = simd.splat_f64x4(y1);
                a10 = simd.mul_add_f64x4(y, c0, a10);
                a11 = simd.mul_add_f64x4(y, c1, a11);
                a12 = simd.mul_add_f64x4(y, c2, a12);
                let y = simd.splat_f64x4(y2);
                a20 = simd.mul_add_f64x4(y, c0, a20);
                a21 = simd.mul_add_f64x4(y, c1, a21);
                a22 = simd.mul_add_f64x4(y, c2, a22);
            }
            let (cn, _) = V3::as_simd_f64s(cn);
            let &[cn0, cn1, cn2] = cn else {
                unreachable!("a group has {VECTORS} vectors")
            };
            let minus_two = simd.splat_f64x4(-2.0);
            let accs = [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22]];
            for ((b, [a0, a1, a2]), xn) in best.iter_mut().zip(accs).zip(xn) {
                let xn = simd.splat_f64x4(xn);
                let dist = |a, cn| simd.mul_add_f64x4(minus_two, a, simd.add_f64x4(xn, cn));
                b.merge(self.least_two(dist(a0, cn0), dist(a1, cn1), dist(a2, cn2), g * GROUP));
            }
        }
        best
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The [`Nearest`] of one row among the 12 centers `first..first + 12`, whose values of
    /// `‖x‖² − 2·x·c + ‖c‖²` are the lanes of `d0, d1, d2`: the least two values lane-wise,
    /// then across lanes (every lane ends with both), then the first lane holding the least
    /// (which of equal values wins does not matter: near ties are settled exactly).
    #[inline(always)]
    fn least_two(self, d0: f64x4, d1: f64x4, d2: f64x4, first: usize) -> Nearest {
        let simd = self.0;
        let (lo, hi) = (simd.min_f64x4(d0, d1), simd.max_f64x4(d0, d1));
        let best = simd.min_f64x4(lo, d2);
        let second = simd.min_f64x4(hi, simd.max_f64x4(lo, d2));
        let swap =
            |x: f64x4| -> f64x4 { pulp::cast(simd.avx._mm256_shuffle_pd::<0b0101>(pulp::cast(x), pulp::cast(x))) };
        let half =
            |x: f64x4| -> f64x4 { pulp::cast(simd.avx._mm256_permute2f128_pd::<0x01>(pulp::cast(x), pulp::cast(x))) };
        let fold = |(best, second): (f64x4, f64x4), f: &dyn Fn(f64x4) -> f64x4| {
            let (b, s) = (f(best), f(second));
            (
                simd.min_f64x4(best, b),
                simd.min_f64x4(simd.max_f64x4(best, b), simd.min_f64x4(second, s)),
            )
        };
        let (best, second) = fold(fold((best, second), &swap), &half);
        let at = |d: f64x4| simd.avx._mm256_movemask_pd(pulp::cast(simd.cmp_eq_f64x4(d, best))) as u32;
        let lanes = at(d0) | (at(d1) << LANES) | (at(d2) << (2 * LANES));
        Nearest {
            center: first + lanes.trailing_zeros() as usize,
            best: best.0,
            second: second.0,
        }
    }
}

/// AVX-512 (x86-64-v4): as [`Avx2`], on groups of [`WIDE_GROUP`] centers in two 512-bit
/// vectors. The products and the values `‖x‖² − 2·x·c + ‖c‖²` are formed in the same order and
/// with the same fused operations as there, so both give the same bits.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx512(pub V4);

#[cfg(target_arch = "x86_64")]
impl NearestKernel for Avx512 {
    #[inline(always)]
    fn sqrt4(self, x: [f64; 4]) -> [f64; 4] {
        Avx2(*self.0).sqrt4(x)
    }

    #[inline(always)]
    fn prefetch(self, data: &[f64]) {
        Avx2(*self.0).prefetch(data)
    }

    #[inline(always)]
    fn prefetch_bytes(self, bytes: &[u8]) {
        Avx2(*self.0).prefetch_bytes(bytes)
    }

    #[inline(always)]
    fn nearest(self, xs: [&[f64]; ROWS], xn: [f64; ROWS], centers: &Centers) -> [Nearest; ROWS] {
        const { assert!(ROWS == 3 && WIDE_GROUP == 16) };
        debug_assert_eq!(centers.group, WIDE_GROUP, "centers packed for another kernel");
        let simd = self.0;
        let d = centers.d;
        let [x0, x1, x2] = xs.map(|x| &x[..d]);
        let zero = simd.splat_f64x8(0.0);
        let mut best = [Nearest::NONE; ROWS];
        for (g, (group, cn)) in centers
            .packed
            .chunks_exact(d * WIDE_GROUP)
            .zip(centers.packed_norms.chunks_exact(WIDE_GROUP))
            .enumerate()
        {
            let (group, _) = V4::as_simd_f64s(group);
            let (panels, _) = group.as_chunks::<2>();
            let [mut a00, mut a01, mut a10, mut a11, mut a20, mut a21] = [zero; 6];
            for ((&[c0, c1], (&y0, &y1)), &y2) in panels.iter().zip(x0.iter().zip(x1)).zip(x2) {
                let y = simd.splat_f64x8(y0);
                a00 = simd.mul_add_f64x8(y, c0, a00);
                a01 = simd.mul_add_f64x8(y, c1, a01);
                let y = simd.splat_f64x8(y1);
                a10 = simd.mul_add_f64x8(y, c0, a10);
                a11 = simd.mul_add_f64x8(y, c1, a11);
                let y = simd.splat_f64x8(y2);
                a20 = simd.mul_add_f64x8(y, c0, a20);
                a21 = simd.mul_add_f64x8(y, c1, a21);
            }
            let (cn, _) = V4::as_simd_f64s(cn);
            let &[cn0, cn1] = cn else {
                unreachable!("a wide group has two vectors")
            };
            let minus_two = simd.splat_f64x8(-2.0);
            let accs = [[a00, a01], [a10, a11], [a20, a21]];
            for ((b, [a0, a1]), xn) in best.iter_mut().zip(accs).zip(xn) {
                let xn = simd.splat_f64x8(xn);
                let dist = |a: f64x8, cn: f64x8| -> f64x8 {
                    let sum = simd.avx512f._mm512_add_pd(pulp::cast(xn), pulp::cast(cn));
                    simd.mul_add_f64x8(minus_two, a, pulp::cast(sum))
                };
                b.merge(self.least_two(dist(a0, cn0), dist(a1, cn1), g * WIDE_GROUP));
            }
        }
        best
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx512 {
    /// The [`Nearest`] of one row among the 16 centers `first..first + 16`, whose values are
    /// the lanes of `d0, d1` (as [`Avx2::least_two`]: lane-wise, then across lanes by three
    /// swaps, then the first lane holding the least).
    #[inline(always)]
    fn least_two(self, d0: f64x8, d1: f64x8, first: usize) -> Nearest {
        use std::arch::x86_64::__m512d;
        let f = self.0.avx512f;
        let (d0, d1): (__m512d, __m512d) = (pulp::cast(d0), pulp::cast(d1));
        let best = f._mm512_min_pd(d0, d1);
        let second = f._mm512_max_pd(d0, d1);
        let fold = |(best, second): (__m512d, __m512d), swap: &dyn Fn(__m512d) -> __m512d| {
            let (b, s) = (swap(best), swap(second));
            (
                f._mm512_min_pd(best, b),
                f._mm512_min_pd(f._mm512_max_pd(best, b), f._mm512_min_pd(second, s)),
            )
        };
        // Neighbouring lanes, then pairs, then halves.
        let pairs = |x| f._mm512_shuffle_pd::<0b0101_0101>(x, x);
        let quads = |x| f._mm512_permutex_pd::<0b0100_1110>(x);
        let halves = |x| f._mm512_shuffle_f64x2::<0b0100_1110>(x, x);
        let (best, second) = fold(fold(fold((best, second), &pairs), &quads), &halves);
        let at = |d| f._mm512_cmp_pd_mask::<{ std::arch::x86_64::_CMP_EQ_OQ }>(d, best) as u32;
        let lanes = at(d0) | (at(d1) << 8);
        let (best, second): (f64x8, f64x8) = (pulp::cast(best), pulp::cast(second));
        Nearest {
            center: first + lanes.trailing_zeros() as usize,
            best: best.0,
            second: second.0,
        }
    }
}
