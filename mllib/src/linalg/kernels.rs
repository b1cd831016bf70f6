//! Dense kernels over row-major blocks. Every loop accumulates in `f64`.

/// `a · b`.
#[inline]
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

/// `out = X · w` for a row-major `rows × cols` matrix `x`.
pub fn gemv(x: &[f64], rows: usize, cols: usize, w: &[f64], out: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        *o = dot(&x[r * cols..(r + 1) * cols], w);
    }
}

/// `out += Xᵀ · v` for a row-major `rows × cols` matrix `x`.
pub fn gemv_t_add(x: &[f64], rows: usize, cols: usize, v: &[f64], out: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    for r in 0..rows {
        let coef = v[r];
        if coef != 0.0 {
            axpy(coef, &x[r * cols..(r + 1) * cols], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let v: Vec<f64> = (0..rows).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let mut t = vec![0.0; cols];
        gemv_t_add(&x, rows, cols, &v, &mut t);
        for c in 0..cols {
            let naive: f64 = (0..rows).map(|r| x[r * cols + c] * v[r]).sum();
            assert!((t[c] - naive).abs() < 1e-12);
        }
    }
}
