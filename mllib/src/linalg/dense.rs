//! Small dense symmetric matrices for the normal equations: packed Gram accumulation over a
//! block, Cholesky factorisation and solve, and the inverse of a symmetric positive definite
//! matrix (for standard errors).
//!
//! Packed storage holds the lower triangle row by row: entry `(i, j)` with `j ≤ i` is at
//! [`packed_index`]`(i, j) = i(i+1)/2 + j`; an `n × n` matrix takes [`packed_len`]`(n)` values.
//! Full matrices are row-major `n × n`.

use super::kernels::axpy;

/// Number of values of a packed symmetric `n × n` matrix.
#[inline]
pub fn packed_len(n: usize) -> usize {
    n * (n + 1) / 2
}

/// Index of entry `(i, j)` of a packed symmetric matrix (either order).
#[inline]
pub fn packed_index(i: usize, j: usize) -> usize {
    let (i, j) = if j > i { (j, i) } else { (i, j) };
    i * (i + 1) / 2 + j
}

/// `A += alpha · v vᵀ` on a packed symmetric matrix of size `v.len()`.
#[inline]
pub fn spr_add(alpha: f64, v: &[f64], packed: &mut [f64]) {
    debug_assert_eq!(packed.len(), packed_len(v.len()));
    if alpha == 0.0 {
        return;
    }
    for i in 0..v.len() {
        let start = i * (i + 1) / 2;
        axpy(alpha * v[i], &v[..=i], &mut packed[start..=start + i]);
    }
}

/// Accumulates the weighted Gram matrix of a row-major `rows × cols` block augmented with a
/// column of ones (the intercept column, last): `packed += Σ_r w_r a_r a_rᵀ` and
/// `az += Σ_r w_r a_r z_r` with `a_r = [x_r, 1]`, so `packed` is `(cols+1)`-square and `az` has
/// `cols + 1` entries. Rows of weight 0 are skipped.
pub fn gram_accumulate(x: &[f64], rows: usize, cols: usize, w: &[f64], z: &[f64], packed: &mut [f64], az: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    debug_assert_eq!(packed.len(), packed_len(cols + 1));
    debug_assert_eq!(az.len(), cols + 1);
    let mut a = vec![0.0; cols + 1];
    a[cols] = 1.0;
    for r in 0..rows {
        let wr = w[r];
        if wr == 0.0 {
            continue;
        }
        a[..cols].copy_from_slice(&x[r * cols..(r + 1) * cols]);
        spr_add(wr, &a, packed);
        axpy(wr * z[r], &a, az);
    }
}

/// The full row-major `n × n` matrix of a packed one.
pub fn unpack(packed: &[f64], n: usize) -> Vec<f64> {
    debug_assert_eq!(packed.len(), packed_len(n));
    let mut full = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = packed[packed_index(i, j)];
            full[i * n + j] = v;
            full[j * n + i] = v;
        }
    }
    full
}

/// Cholesky factorisation `A = L Lᵀ` of a full symmetric `n × n` matrix, in place: the lower
/// triangle becomes `L` (the upper triangle is left as it was). `Err(k)` when the leading
/// `k+1`-minor is not positive definite (the matrix is singular or indefinite).
pub fn cholesky(a: &mut [f64], n: usize) -> Result<(), usize> {
    debug_assert_eq!(a.len(), n * n);
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        // A pivot that lost (almost) all its value to cancellation means a (numerically)
        // singular matrix: refuse it rather than divide by rounding noise.
        if d.is_nan() || d <= a[j * n + j].abs() * 1e-13 || d <= 0.0 {
            return Err(j);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    Ok(())
}

/// Solves `L Lᵀ x = b` in place (`b` becomes `x`) with `L` from [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    debug_assert_eq!(b.len(), n);
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// The inverse (full, row-major) of a symmetric positive definite matrix given its Cholesky
/// factor `L` from [`cholesky`].
pub fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for c in 0..n {
        e.fill(0.0);
        e[c] = 1.0;
        cholesky_solve(l, n, &mut e);
        for r in 0..n {
            inv[r * n + c] = e[r];
        }
    }
    inv
}

/// The inverse of a full symmetric positive definite `n × n` matrix; `None` when it is not
/// (numerically) positive definite.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    cholesky(&mut l, n).ok()?;
    Some(cholesky_inverse(&l, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // B Bᵀ + n I for a fixed B.
        let b: Vec<f64> = (0..n * n).map(|i| ((i * 7 + 3) as f64 * 0.31).sin()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn gram_matches_naive_sums() {
        let (rows, cols) = (6, 3);
        let x: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.7).cos()).collect();
        let w: Vec<f64> = (0..rows).map(|i| 0.5 + i as f64).collect();
        let z: Vec<f64> = (0..rows).map(|i| i as f64 - 2.0).collect();
        let mut p = vec![0.0; packed_len(cols + 1)];
        let mut az = vec![0.0; cols + 1];
        gram_accumulate(&x, rows, cols, &w, &z, &mut p, &mut az);
        let a = |r: usize, c: usize| if c == cols { 1.0 } else { x[r * cols + c] };
        for i in 0..=cols {
            for j in 0..=cols {
                let naive: f64 = (0..rows).map(|r| w[r] * a(r, i) * a(r, j)).sum();
                assert!((p[packed_index(i, j)] - naive).abs() < 1e-12);
            }
            let naive: f64 = (0..rows).map(|r| w[r] * a(r, i) * z[r]).sum();
            assert!((az[i] - naive).abs() < 1e-12);
        }
        let full = unpack(&p, cols + 1);
        assert_eq!(full[1], full[cols + 1]);
    }

    #[test]
    fn cholesky_solves_and_inverts() {
        let n = 5;
        let a = spd(n);
        let x: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
        let mut b: Vec<f64> = (0..n).map(|i| (0..n).map(|k| a[i * n + k] * x[k]).sum()).collect();
        let mut l = a.clone();
        cholesky(&mut l, n).unwrap();
        cholesky_solve(&l, n, &mut b);
        for i in 0..n {
            assert!((b[i] - x[i]).abs() < 1e-12);
        }
        let inv = spd_inverse(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let p: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                assert!((p - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn singular_matrices_are_refused() {
        let a = vec![1.0, 2.0, 2.0, 4.0];
        assert!(spd_inverse(&a, 2).is_none());
        assert!(spd_inverse(&[-1.0], 1).is_none());
    }
}
