//! Runs a kernel compiled for the widest vector unit of the CPU it runs on.
//!
//! The workspace is built for the baseline `x86-64` target (SSE2), so that one binary runs on
//! every machine of a cluster. [`vectorized`] detects AVX2 + FMA at run time (x86-64-v3,
//! through [`pulp`]) and, where they exist, runs its closure inlined into a copy of the
//! calling code compiled with them: the compiler's auto-vectorisation of the kernels' plain
//! loops then uses 256-bit registers. Elsewhere the closure runs as it is.
//!
//! **Same results on every CPU.** Rust never contracts `a * b + c` into a fused multiply-add,
//! and the kernels keep their accumulators explicit, so a kernel computes the same operations
//! in the same order whatever the vector width: the AVX2 copy returns bit-identical values.
//! Executors on different machines of a cluster therefore train the same model.

/// Runs `kernel` compiled for the best instruction set this CPU supports (see the module
/// docs). Call it once per block, around the whole loop: the detection costs a few loads.
///
/// Mark the closure `#[inline(always)]` (`vectorized(#[inline(always)] || ...)`): it is
/// called from two copies (vector and baseline), so without the attribute the compiler may
/// keep it one function compiled for the baseline, and nothing is gained. The functions it
/// calls in its hot loop must be inlined too (`#[inline(always)]` or small `#[inline]`).
#[inline(always)]
pub(crate) fn vectorized<R>(kernel: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(kernel)
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
