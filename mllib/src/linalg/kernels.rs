//! Dense kernels over row-major blocks. Every loop accumulates in `f64`.

use super::rows::RowDots;
use super::simd::vectorized;

/// `a · b`. Always inlined: called from a kernel compiled for AVX2 (a `pulp` dispatch), an
/// outlined `dot` runs the baseline target's code behind a call (it measured a sixth of a
/// k-means pass).
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    // Four independent accumulators let the compiler vectorise and pipeline the adds.
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        let i = c * 4;
        acc[0] += a[i] * b[i];
        acc[1] += a[i + 1] * b[i + 1];
        acc[2] += a[i + 2] * b[i + 2];
        acc[3] += a[i + 3] * b[i + 3];
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks * 4..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// `y += alpha · x`, by fours (one vector operation each where the caller's target has
/// 256-bit vectors; a plain loop over the whole length costs a generic vector loop and a scalar
/// tail for short rows).
#[inline]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    let (mut ys, mut xs) = (y.chunks_exact_mut(4), x.chunks_exact(4));
    if alpha == 1.0 {
        // The same sums without the multiplications (`1 · x` is exactly `x`): unit weights.
        for (yi, xi) in ys.by_ref().zip(xs.by_ref()) {
            for i in 0..4 {
                yi[i] += xi[i];
            }
        }
    } else {
        for (yi, xi) in ys.by_ref().zip(xs.by_ref()) {
            for i in 0..4 {
                yi[i] += alpha * xi[i];
            }
        }
    }
    for (yi, xi) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *yi += alpha * xi;
    }
}

/// Rows a streaming pass handles together ([`gemv`], the binomial loss): their features
/// (16 × 50 × 8 bytes for 50 features) stay in L1 while they are used; the rows two stretches
/// ahead are requested from memory meanwhile.
pub(crate) const STRETCH: usize = 16;

/// `out = X · w` for a row-major `rows × cols` matrix `x` (each entry [`dot`] of a row and
/// `w`, to the bit).
pub fn gemv(x: &[f64], rows: usize, cols: usize, w: &[f64], out: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    let (rows, w) = (rows.min(out.len()), &w[..cols]);
    RowDots::detect().run(
        #[inline(always)]
        |k| {
            for start in (0..rows).step_by(STRETCH) {
                let ahead = start + 2 * STRETCH;
                if ahead < rows {
                    k.prefetch(&x[ahead * cols..(ahead + STRETCH).min(rows) * cols]);
                }
                let end = (start + STRETCH).min(rows);
                k.dots(&x[start * cols..end * cols], w, &mut out[start..end]);
            }
        },
    );
}

/// One pass over a row-major `rows × cols` matrix `x` in L1-sized stretches of [`STRETCH`]
/// rows: each stretch's `X_s · w` (as [`gemv`]), which `weigh(first row, values)` turns in
/// place into per-row weights, then `out += X_sᵀ · weights` (as [`gemv_t_add`]) while the rows
/// are still in L1 — the same numbers as [`gemv`], `weigh` over the whole block, then
/// [`gemv_t_add`], without a second pass over the block or a vector of its rows. The linear
/// models' loss-and-gradient passes (least squares, hinge).
pub(crate) fn margins_then_gradient(
    x: &[f64],
    rows: usize,
    w: &[f64],
    out: &mut [f64],
    mut weigh: impl FnMut(usize, &mut [f64]),
) {
    let cols = w.len();
    debug_assert_eq!(x.len(), rows * cols);
    debug_assert_eq!(out.len(), cols);
    RowDots::detect().run(
        #[inline(always)]
        |k| {
            let mut values = [0.0; STRETCH];
            for start in (0..rows).step_by(STRETCH) {
                let end = (start + STRETCH).min(rows);
                let ahead = start + 2 * STRETCH;
                if ahead < rows {
                    k.prefetch(&x[ahead * cols..(ahead + STRETCH).min(rows) * cols]);
                }
                let (stretch, values) = (&x[start * cols..end * cols], &mut values[..end - start]);
                k.dots(stretch, w, values);
                weigh(start, values);
                add_scaled_rows(stretch, values, out);
            }
        },
    );
}

/// `out += Xᵀ · v` for a row-major `rows × cols` matrix `x`, four rows per pass over `out`:
/// `out[j] += (v₀·x₀ⱼ + v₁·x₁ⱼ) + (v₂·x₂ⱼ + v₃·x₃ⱼ)`. Rows of weight 0 add nothing (four in a
/// row are skipped).
pub fn gemv_t_add(x: &[f64], rows: usize, cols: usize, v: &[f64], out: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    let rows = rows.min(v.len());
    vectorized(
        #[inline(always)]
        || add_scaled_rows(&x[..rows * cols], &v[..rows], &mut out[..cols]),
    );
}

/// `out += Σ v_i · x_i` over the `v.len()` rows of `rows` (`out.len()` columns), as
/// [`gemv_t_add`] (which runs it for the CPU's widest vector unit; inline it into a loop that
/// is).
#[inline(always)]
pub(crate) fn add_scaled_rows(rows: &[f64], v: &[f64], out: &mut [f64]) {
    let d = out.len();
    let mut quads = v.chunks_exact(4);
    let mut r = 0;
    for vq in quads.by_ref() {
        if vq.iter().any(|&c| c != 0.0) {
            let xs: [&[f64]; 4] = std::array::from_fn(|i| &rows[(r + i) * d..(r + i + 1) * d]);
            for (j, oj) in out.iter_mut().enumerate() {
                *oj += (vq[0] * xs[0][j] + vq[1] * xs[1][j]) + (vq[2] * xs[2][j] + vq[3] * xs[3][j]);
            }
        }
        r += 4;
    }
    for &c in quads.remainder() {
        if c != 0.0 {
            axpy(c, &rows[r * d..(r + 1) * d], out);
        }
        r += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_pass_returns_the_bits_of_gemv_then_gemv_t_add() {
        // 37 rows: two whole stretches and a partial one (quads and single rows).
        let (rows, cols) = (37, 9);
        let x: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.731).sin() * 3.0).collect();
        let w: Vec<f64> = (0..cols).map(|j| (j as f64 * 1.3).cos()).collect();
        // Rows whose value is negative get weight 0 (as the hinge loss's).
        let weigh = |first: usize, values: &mut [f64]| {
            for (i, v) in values.iter_mut().enumerate() {
                *v = if *v < 0.0 { 0.0 } else { *v * (first + i) as f64 };
            }
        };
        let mut margins = vec![0.0; rows];
        gemv(&x, rows, cols, &w, &mut margins);
        weigh(0, &mut margins);
        let mut want = vec![0.25; cols];
        gemv_t_add(&x, rows, cols, &margins, &mut want);
        let mut got = vec![0.25; cols];
        margins_then_gradient(&x, rows, &w, &mut got, weigh);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn gemv_and_transpose_agree_with_naive_loops() {
        let (rows, cols) = (7, 5);
        let x: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.37).sin()).collect();
        let w: Vec<f64> = (0..cols).map(|i| i as f64 - 2.0).collect();
        let mut out = vec![0.0; rows];
        gemv(&x, rows, cols, &w, &mut out);
        for r in 0..rows {
            let naive: f64 = (0..cols).map(|c| x[r * cols + c] * w[c]).sum();
            assert!((out[r] - naive).abs() < 1e-12);
        }
        // A quad of rows of weight 0 (skipped), a whole quad, then three rows one by one.
        let (rows, x) = (rows + 4, [vec![9.0; 4 * cols], x].concat());
        let v: Vec<f64> = (0..rows)
            .map(|i| if i < 4 { 0.0 } else { 1.0 / (i as f64 - 3.0) })
            .collect();
        let mut t = vec![0.5; cols];
        gemv_t_add(&x, rows, cols, &v, &mut t);
        for c in 0..cols {
            let naive: f64 = 0.5 + (0..rows).map(|r| x[r * cols + c] * v[r]).sum::<f64>();
            assert!((t[c] - naive).abs() < 1e-12, "column {c}: {} vs {naive}", t[c]);
        }
    }
}
