//! Dot products of many rows of a row-major block with one vector: the margins of the linear
//! models' passes (`X · w`), with [`super::kernels::dot`]'s arithmetic for each row.
//!
//! The compiler's auto-vectorisation of four rows' [`dot`]s at once keeps one row's four
//! partial sums in one register but loads each row's elements across lanes (shuffles and
//! blends per element): three times slower than the loads and adds themselves. [`RowDots::Avx2`]
//! writes the loop out with AVX2 vectors instead: rows in groups of [`GROUP`], one vector of
//! four partial sums per row, the partial sums folded `(a₀ + a₁) + (a₂ + a₃)` for all the
//! group's rows with two horizontal adds, the tail after. Each multiplication and addition is
//! [`dot`]'s, in [`dot`]'s order (no fused multiply-add), so both variants, and [`dot`] itself,
//! return the same bits.

#[cfg(target_arch = "x86_64")]
use pulp::x86::V3;
#[cfg(target_arch = "x86_64")]
use pulp::{Simd, f64x4};

use super::kernels::dot;
#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
use super::simd::vectorized;

/// Rows of a group: independent chains of additions that keep the adder busy while each
/// waits for its previous sum.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 8;

/// How a CPU computes [`RowDots::dots`]: chosen once ([`RowDots::detect`]) and passed into the
/// loop that [`RowDots::run`] compiles for it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowDots {
    /// AVX2 (x86-64-v3), written out with vectors.
    #[cfg(target_arch = "x86_64")]
    Avx2(V3),
    /// Plain loops, vectorised by the compiler for the CPU [`vectorized`] finds.
    Plain,
}

impl RowDots {
    /// The fastest variant this CPU runs (AVX2 on AVX-512 CPUs too: [`Isa::avx2`]).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = Isa::detect().avx2() {
            return RowDots::Avx2(simd);
        }
        RowDots::Plain
    }

    /// Runs `pass` (a whole pass over a block: mark it `#[inline(always)]`) compiled for this
    /// variant's instruction set, with the variant to call [`RowDots::dots`] with.
    #[inline(always)]
    pub fn run<R>(self, pass: impl FnOnce(Self) -> R) -> R {
        match self {
            #[cfg(target_arch = "x86_64")]
            RowDots::Avx2(simd) => simd.vectorize(
                #[inline(always)]
                || pass(self),
            ),
            RowDots::Plain => vectorized(
                #[inline(always)]
                || pass(self),
            ),
        }
    }

    /// `out[i] = dot(row i, w)` for the `out.len()` rows of `rows` (row-major, `w.len()`
    /// columns). Call it inside [`RowDots::run`].
    #[inline(always)]
    pub fn dots(self, rows: &[f64], w: &[f64], out: &mut [f64]) {
        let d = w.len();
        debug_assert!(rows.len() >= out.len() * d);
        match self {
            #[cfg(target_arch = "x86_64")]
            RowDots::Avx2(simd) => {
                let done = out.len() / GROUP * GROUP;
                let mut groups = out.chunks_exact_mut(GROUP);
                for (g, o) in groups.by_ref().enumerate() {
                    let at = g * GROUP * d;
                    avx2_group(simd, &rows[at..at + GROUP * d], w, o);
                }
                for (i, o) in groups.into_remainder().iter_mut().enumerate() {
                    let r = done + i;
                    *o = dot(&rows[r * d..(r + 1) * d], w);
                }
            }
            RowDots::Plain => {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = dot(&rows[r * d..(r + 1) * d], w);
                }
            }
        }
    }

    /// Hints that `data` will be read soon (a pass asks for the rows it reaches next: the
    /// hardware prefetcher stops at every 4 KiB page).
    #[inline(always)]
    pub fn prefetch(self, data: &[f64]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            RowDots::Avx2(simd) => {
                // One request per 64-byte line (8 values).
                for at in (0..data.len()).step_by(8) {
                    simd.sse
                        ._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data[at..].as_ptr().cast());
                }
            }
            RowDots::Plain => {}
        }
    }
}

/// [`GROUP`] rows' dot products with `w`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx2_group(simd: V3, rows: &[f64], w: &[f64], out: &mut [f64]) {
    let d = w.len();
    let full = d / 4 * 4;
    let (wv, _) = V3::as_simd_f64s(w);
    let x: [&[f64x4]; GROUP] = std::array::from_fn(|i| V3::as_simd_f64s(&rows[i * d..i * d + full]).0);
    let zero = simd.splat_f64x4(0.0);
    let mut acc = [zero; GROUP];
    for (q, &wq) in wv.iter().enumerate() {
        for (a, xi) in acc.iter_mut().zip(&x) {
            *a = simd.add_f64x4(*a, simd.mul_f64x4(xi[q], wq));
        }
    }
    // (a₀ + a₁) + (a₂ + a₃) of four rows at once: the horizontal adds pair lanes 0-1 and 2-3
    // of two rows, the cross-half permutes bring each row's two pairs together.
    let fold4 = |a: &[f64x4]| -> [f64; 4] {
        let avx = simd.avx;
        let h01 = avx._mm256_hadd_pd(pulp::cast(a[0]), pulp::cast(a[1]));
        let h23 = avx._mm256_hadd_pd(pulp::cast(a[2]), pulp::cast(a[3]));
        let low = avx._mm256_permute2f128_pd::<0x20>(h01, h23);
        let high = avx._mm256_permute2f128_pd::<0x31>(h01, h23);
        pulp::cast(avx._mm256_add_pd(low, high))
    };
    let heads = [fold4(&acc[..4]), fold4(&acc[4..])];
    for (i, o) in out.iter_mut().enumerate() {
        let row = &rows[i * d..(i + 1) * d];
        let head = heads[i / 4][i % 4];
        *o = row[full..].iter().zip(&w[full..]).fold(head, |s, (x, w)| s + x * w);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_variant_returns_the_bits_of_dot(
            d in 0usize..23,
            rows in 0usize..29,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Magnitudes across many binades: sums whose order shows in their bits.
                ((state % 2001) as f64 - 1000.0) * 10f64.powi((state >> 40) as i32 % 9 - 4)
            };
            let x: Vec<f64> = (0..rows * d).map(|_| next()).collect();
            let w: Vec<f64> = (0..d).map(|_| next()).collect();
            let want: Vec<u64> = (0..rows).map(|r| dot(&x[r * d..(r + 1) * d], &w).to_bits()).collect();
            for variant in [RowDots::detect(), RowDots::Plain] {
                let mut out = vec![f64::NAN; rows];
                variant.run(
                    #[inline(always)]
                    |k| k.dots(&x, &w, &mut out),
                );
                let got: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(&got, &want, "{:?}", variant);
            }
        }
    }
}
