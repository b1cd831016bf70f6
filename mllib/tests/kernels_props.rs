//! Property tests of the dense kernels against naive loops, on odd sizes.

use flint_mllib::linalg::kernels::{axpy, dot, gemv, gemv_t_add};
use proptest::prelude::*;

fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..rows * cols)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #[test]
    fn dot_and_axpy_match_naive(n in 0usize..67, seed in any::<u64>(), alpha in -3.0f64..3.0) {
        let a = matrix(1, n, seed);
        let b = matrix(1, n, seed ^ 0xabc);
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        prop_assert!(close(dot(&a, &b), naive));
        let mut y = b.clone();
        axpy(alpha, &a, &mut y);
        for i in 0..n {
            prop_assert!(close(y[i], b[i] + alpha * a[i]));
        }
    }

    #[test]
    fn gemv_and_its_transpose_match_naive(rows in 0usize..41, cols in 1usize..23, seed in any::<u64>()) {
        let x = matrix(rows, cols, seed);
        let w = matrix(1, cols, seed ^ 1);
        let mut out = vec![0.0; rows];
        gemv(&x, rows, cols, &w, &mut out);
        for r in 0..rows {
            let naive: f64 = (0..cols).map(|c| x[r * cols + c] * w[c]).sum();
            prop_assert!(close(out[r], naive));
        }
        let v = matrix(1, rows, seed ^ 2);
        let mut t = vec![0.5; cols];
        gemv_t_add(&x, rows, cols, &v, &mut t);
        for c in 0..cols {
            let naive: f64 = 0.5 + (0..rows).map(|r| x[r * cols + c] * v[r]).sum::<f64>();
            prop_assert!(close(t[c], naive));
        }
    }
}
