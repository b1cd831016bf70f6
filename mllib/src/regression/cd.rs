//! Cyclic coordinate descent for the elastic net on the normal equations:
//! `min_β ½ βᵀAβ − bᵀβ + Σ_j l1_j |β_j|` for a symmetric positive semi-definite `A` with a
//! positive diagonal (the L2 part already on it). The same optimum as Spark's OWL-QN on its
//! normal equations, reached to machine precision.

/// Sweeps until no coefficient moves by more than `1e-12` (relative to the largest one),
/// at most 100 000 sweeps. Returns the optimum and the sweeps run.
pub(crate) fn minimize(a: &[f64], b: &[f64], l1: &[f64], k: usize) -> (Vec<f64>, usize) {
    let mut beta = vec![0.0; k];
    // grad_j = (Aβ)_j, kept up to date.
    let mut a_beta = vec![0.0; k];
    let mut sweeps = 0;
    while sweeps < 100_000 {
        sweeps += 1;
        let mut max_step: f64 = 0.0;
        for j in 0..k {
            let ajj = a[j * k + j];
            let rho = b[j] - (a_beta[j] - ajj * beta[j]);
            let new = soft_threshold(rho, l1[j]) / ajj;
            let step = new - beta[j];
            if step != 0.0 {
                for (i, ab) in a_beta.iter_mut().enumerate() {
                    *ab += a[i * k + j] * step;
                }
                beta[j] = new;
                max_step = max_step.max(step.abs() * ajj.sqrt());
            }
        }
        let scale = beta
            .iter()
            .enumerate()
            .map(|(j, v)| v.abs() * a[j * k + j].sqrt())
            .fold(0.0, f64::max);
        if max_step <= 1e-12 * scale.max(1e-300) {
            break;
        }
    }
    (beta, sweeps)
}

fn soft_threshold(x: f64, t: f64) -> f64 {
    if x > t {
        x - t
    } else if x < -t {
        x + t
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasso_on_an_orthogonal_design_soft_thresholds() {
        let a = vec![2.0, 0.0, 0.0, 1.0];
        let (beta, _) = minimize(&a, &[3.0, 0.2], &[1.0, 0.5], 2);
        assert!((beta[0] - 1.0).abs() < 1e-12 && beta[1] == 0.0, "{beta:?}");
    }
}
