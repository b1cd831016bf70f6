//! `eˣ` and `ln(1 + x)` on the ranges the losses need, as straight-line arithmetic.
//!
//! The C library's `exp` and `log1p` are calls the compiler cannot vectorise; these are the
//! same textbook algorithms (Cody–Waite reduction and a Taylor polynomial for `eˣ`; fdlibm's
//! reduction and minimax polynomial for the logarithm) written with selects instead of
//! branches, so that a loop over them runs 4 lanes at a time under AVX2 (see
//! [`super::simd`]). Both are within 1 ulp of the correctly rounded result over their ranges
//! (tested against the standard library), and, being plain IEEE operations without fused
//! multiply-adds, return the same bits on every CPU.

// The constants are written as fdlibm publishes them (they round to the intended doubles).
#![allow(clippy::excessive_precision)]

/// `1.5 · 2⁵²`: adding it to a number of magnitude below 2⁵¹ rounds it to an integer held in
/// the low bits of the sum.
const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// `ln 2` split so that `n · LN2_HI` is exact for the `|n| ≤ 1100` used here (fdlibm).
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;

/// Below this, `eˣ` is under `2⁻¹⁰²²` (no longer a normal number) and is returned as 0.
const EXP_MIN: f64 = -708.0;

/// `1/k!` for `k = 13, 12, ..., 2`: the Taylor polynomial of `eʳ` for `|r| ≤ ln 2 / 2`,
/// whose truncation error (`r¹⁴/14!` < 4·10⁻¹⁸) is far below an ulp.
const EXP_TAYLOR: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    1.0 / 2.0,
];

/// `eˣ` for `x ≤ 0` (a positive `x` is taken as 0; NaN is not expected). Values below
/// `e⁻⁷⁰⁸` (about `3·10⁻³⁰⁸`) return 0 rather than a subnormal.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let t = x.clamp(EXP_MIN, 0.0);
    // t = n·ln 2 + r, |r| ≤ ln 2 / 2, with n rounded to nearest in the low bits of `shifted`.
    let shifted = t * std::f64::consts::LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    let mut p = EXP_TAYLOR[0];
    for c in &EXP_TAYLOR[1..] {
        p = p * r + c;
    }
    let p = (p * r + 1.0) * r + 1.0;
    // 2ⁿ: the exponent field n + 1023 (1 ≤ n + 1023 ≤ 1023 since −1022 ≤ n ≤ 0).
    let n_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    if x < EXP_MIN { 0.0 } else { p * scale }
}

/// fdlibm's minimax coefficients for `ln(1 + f)` on `√2/2 − 1 ≤ f ≤ √2 − 1`.
const LG: [f64; 7] = [
    6.666_666_666_666_735_130e-1,
    3.999_999_999_940_941_908e-1,
    2.857_142_874_366_239_149e-1,
    2.222_219_843_214_978_396e-1,
    1.818_357_216_161_805_012e-1,
    1.531_383_769_920_937_332e-1,
    1.479_819_860_511_658_591e-1,
];

/// `ln(1 + x)` for `0 ≤ x ≤ 1`, computed as `ln(m)` of `m = 1 + x` rounded (an absolute error
/// of at most 2⁻⁵³ in `x`, as `(1.0 + x).ln()` has).
#[inline(always)]
pub fn ln_1p_unit(x: f64) -> f64 {
    let m = 1.0 + x;
    // m = 2ᵏ·(1 + f) with k ∈ {0, 1}; both subtractions are exact (Sterbenz).
    let high = m > std::f64::consts::SQRT_2;
    let f = if high { m * 0.5 - 1.0 } else { m - 1.0 };
    let k = if high { 1.0 } else { 0.0 };
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * (LG[3] + w * LG[5]));
    let t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Distance in units in the last place between two finite numbers of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_one_ulp_of_std_on_a_grid() {
        let mut worst = 0;
        for i in 0..=700_000 {
            let x = -(i as f64) * 1e-3;
            worst = worst.max(ulps(exp_nonpositive(x), x.exp()));
        }
        assert!(worst <= 1, "worst error {worst} ulps");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(3.0), 1.0, "positive arguments are taken as 0");
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(ulps(exp_nonpositive(-707.9), (-707.9f64).exp()) <= 1);
    }

    #[test]
    fn ln_1p_is_within_one_ulp_of_std_on_a_grid() {
        let mut worst = 0;
        for i in 0..=1_000_000 {
            let x = i as f64 * 1e-6;
            worst = worst.max(ulps(ln_1p_unit(x), (1.0 + x).ln()));
        }
        assert!(worst <= 1, "worst error {worst} ulps");
        assert_eq!(ln_1p_unit(0.0), 0.0);
        assert_eq!(ln_1p_unit(1.0), std::f64::consts::LN_2);
    }

    proptest! {
        #[test]
        fn exp_matches_std(x in -708.0f64..=0.0) {
            prop_assert!(ulps(exp_nonpositive(x), x.exp()) <= 1);
        }

        #[test]
        fn ln_1p_matches_std(x in 0.0f64..=1.0) {
            prop_assert!(ulps(ln_1p_unit(x), (1.0 + x).ln()) <= 1);
        }

        #[test]
        fn tiny_arguments(e in -300i32..=-1) {
            let x = 10f64.powi(e);
            prop_assert!(ulps(ln_1p_unit(x), (1.0 + x).ln()) <= 1);
            prop_assert!(ulps(exp_nonpositive(-x), (-x).exp()) <= 1);
        }
    }
}
