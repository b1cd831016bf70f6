//! Runs a kernel compiled for the widest vector unit of the CPU it runs on.
//!
//! The workspace is built for the baseline `x86-64` target (SSE2), so that one binary runs on
//! every machine of a cluster. [`Isa::detect`] finds AVX-512 (x86-64-v4) or AVX2 + FMA
//! (x86-64-v3) at run time, through [`pulp`], and [`vectorized`] runs its closure inlined into
//! a copy of the calling code compiled for them: the compiler's auto-vectorisation of the
//! kernels' plain loops then uses 512- or 256-bit registers. Elsewhere the closure runs as it
//! is. Kernels written out with vectors (`linalg/rows.rs`, `clustering/nearest.rs`) pick their
//! variant from the same [`Isa`].
//!
//! **Same results on every CPU.** Rust never contracts `a * b + c` into a fused multiply-add,
//! and the kernels keep their accumulators explicit, so a kernel computes the same operations
//! in the same order whatever the vector width: the vector copies return bit-identical values.
//! Executors on different machines of a cluster therefore train the same model.

#[cfg(target_arch = "x86_64")]
use pulp::x86::{V3, V4};

/// The instruction sets the kernels are compiled for, the best of which this CPU has.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2(V3),
    #[cfg(target_arch = "x86_64")]
    Avx512(V4),
}

impl Isa {
    /// The best this CPU has, detected once per process. `FLINT_ML_ISA=avx2|baseline` caps it
    /// (to compare the kernels on one machine; a model does not depend on it).
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(Isa::probe)
    }

    fn probe() -> Isa {
        let cap = std::env::var("FLINT_ML_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            if cap.is_empty()
                && let Some(simd) = V4::try_new()
            {
                return Isa::Avx512(simd);
            }
            if cap != "baseline"
                && let Some(simd) = V3::try_new()
            {
                return Isa::Avx2(simd);
            }
        }
        let _ = cap;
        Isa::Baseline
    }

    /// The AVX2 subset, where the CPU has it (AVX-512 CPUs do).
    #[cfg(target_arch = "x86_64")]
    pub fn avx2(self) -> Option<V3> {
        match self {
            Isa::Avx512(simd) => Some(*simd),
            Isa::Avx2(simd) => Some(simd),
            Isa::Baseline => None,
        }
    }
}

/// Runs `kernel` compiled for the best instruction set this CPU supports (see the module
/// docs). Call it once per block, around the whole loop.
///
/// Mark the closure `#[inline(always)]` (`vectorized(#[inline(always)] || ...)`): it is
/// called from several copies (one per instruction set), so without the attribute the
/// compiler may keep it one function compiled for the baseline, and nothing is gained. The
/// functions it calls in its hot loop must be inlined too (`#[inline(always)]` or small
/// `#[inline]`).
#[inline(always)]
pub(crate) fn vectorized<R>(kernel: impl FnOnce() -> R) -> R {
    match Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(simd) => simd.vectorize(kernel),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(simd) => simd.vectorize(kernel),
        Isa::Baseline => kernel(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::kernels::dot;

    #[test]
    fn a_vectorized_kernel_returns_the_bits_of_the_plain_one() {
        let a: Vec<f64> = (0..1001).map(|i| (i as f64 * 0.37).sin() * 1e3).collect();
        let b: Vec<f64> = (0..1001).map(|i| (i as f64 * 0.11).cos() / 7.0).collect();
        let plain = dot(&a, &b);
        let fast = vectorized(
            #[inline(always)]
            || dot(&a, &b),
        );
        assert_eq!(plain.to_bits(), fast.to_bits());
    }
}
