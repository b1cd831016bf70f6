//! Matrix-matrix products over row-major `f64` matrices: `C = A · Bᵀ`, the kernel of
//! pairwise squared distances (`‖x‖² − 2·x·c + ‖c‖²`, k-means) and of multinomial scores.
//!
//! The product is computed in 4 × 4 register tiles: each tile streams one row of `A` and one
//! row of `B` per group of four, both contiguous (the inner dimension is the rows' own), so
//! sixteen independent accumulators keep the floating-point units busy and the compiler can
//! vectorise across them. Edges (row counts not multiple of four) fall back to dot products.

use super::kernels::dot;

/// Tile side of the register micro-kernel.
const TILE: usize = 4;

/// Rows of `B` (e.g. cluster centers) processed together, so that they stay in the L1/L2 cache
/// while every row of `A` streams past them.
const B_PANEL: usize = 64;

/// `out = A · Bᵀ`, with `A` row-major `m × d`, `B` row-major `n × d` and `out` row-major
/// `m × n` (`out[i·n + j] = a_i · b_j`).
///
/// # Panics
/// When a slice length does not match its dimensions.
pub fn gemm_nt(a: &[f64], m: usize, d: usize, b: &[f64], n: usize, out: &mut [f64]) {
    assert_eq!(a.len(), m * d, "gemm_nt: A is not {m} × {d}");
    assert_eq!(b.len(), n * d, "gemm_nt: B is not {n} × {d}");
    assert_eq!(out.len(), m * n, "gemm_nt: out is not {m} × {n}");
    if m == 0 || n == 0 {
        return;
    }
    let mut j0 = 0;
    while j0 < n {
        let j_end = (j0 + B_PANEL).min(n);
        let mut i = 0;
        while i + TILE <= m {
            let mut j = j0;
            while j + TILE <= j_end {
                tile_4x4(a, b, d, i, j, n, out);
                j += TILE;
            }
            for jj in j..j_end {
                let bj = &b[jj * d..(jj + 1) * d];
                for ii in i..i + TILE {
                    out[ii * n + jj] = dot(&a[ii * d..(ii + 1) * d], bj);
                }
            }
            i += TILE;
        }
        for ii in i..m {
            let ai = &a[ii * d..(ii + 1) * d];
            for jj in j0..j_end {
                out[ii * n + jj] = dot(ai, &b[jj * d..(jj + 1) * d]);
            }
        }
        j0 = j_end;
    }
}

/// The 4 × 4 tile of `out` at rows `i..i+4`, columns `j..j+4`.
#[inline]
fn tile_4x4(a: &[f64], b: &[f64], d: usize, i: usize, j: usize, n: usize, out: &mut [f64]) {
    let a0 = &a[i * d..(i + 1) * d];
    let a1 = &a[(i + 1) * d..(i + 2) * d];
    let a2 = &a[(i + 2) * d..(i + 3) * d];
    let a3 = &a[(i + 3) * d..(i + 4) * d];
    let b0 = &b[j * d..(j + 1) * d];
    let b1 = &b[(j + 1) * d..(j + 2) * d];
    let b2 = &b[(j + 2) * d..(j + 3) * d];
    let b3 = &b[(j + 3) * d..(j + 4) * d];
    let mut acc = [[0.0f64; TILE]; TILE];
    for p in 0..d {
        let av = [a0[p], a1[p], a2[p], a3[p]];
        let bv = [b0[p], b1[p], b2[p], b3[p]];
        for (row, x) in acc.iter_mut().zip(av) {
            for (c, y) in row.iter_mut().zip(bv) {
                *c += x * y;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        out[(i + r) * n + j..(i + r) * n + j + TILE].copy_from_slice(row);
    }
}

/// Squared Euclidean norm of each row of the row-major `rows × cols` matrix `x`.
pub fn row_sq_norms(x: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        let row = &x[r * cols..(r + 1) * cols];
        *o = dot(row, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], m: usize, d: usize, b: &[f64], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..d).map(|p| a[i * d + p] * b[j * d + p]).sum();
            }
        }
        out
    }

    #[test]
    fn gemm_nt_agrees_with_naive_loops_on_every_edge_shape() {
        for &(m, d, n) in &[
            (0, 3, 2),
            (1, 1, 1),
            (4, 4, 4),
            (7, 5, 3),
            (9, 6, 70),
            (13, 2, 133),
            (5, 0, 5),
        ] {
            let a: Vec<f64> = (0..m * d).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n * d).map(|i| (i as f64 * 0.11).cos()).collect();
            let mut out = vec![f64::NAN; m * n];
            gemm_nt(&a, m, d, &b, n, &mut out);
            let want = naive(&a, m, d, &b, n);
            for (x, y) in out.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "{m}×{d}·({n}×{d})ᵀ: {x} vs {y}");
            }
        }
    }

    #[test]
    fn row_norms_are_squared_lengths() {
        let x = [3.0, 4.0, 1.0, 0.0];
        let mut out = [0.0; 2];
        row_sq_norms(&x, 2, 2, &mut out);
        assert_eq!(out, [25.0, 1.0]);
    }
}
