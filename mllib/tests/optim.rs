//! The optimizers on functions with known minima: quadratics (also random ones, by property),
//! Rosenbrock, L1-regularised least squares (soft thresholding and the KKT conditions), and
//! mini-batch gradient descent over an RDD.

use flint_engine::{Context, Rdd, with};
use flint_mllib::optim::{GradientDescent, Lbfgs, OwlQn, StochasticGradient};
use flint_mllib::{LabeledPoint, Result};
use proptest::prelude::*;

/// `½ xᵀAx − bᵀx` for a dense symmetric `A` (row-major).
fn quadratic(a: Vec<f64>, b: Vec<f64>) -> impl FnMut(&[f64]) -> Result<(f64, Vec<f64>)> {
    let n = b.len();
    move |x: &[f64]| {
        let ax: Vec<f64> = (0..n).map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum()).collect();
        let f = 0.5 * x.iter().zip(&ax).map(|(u, v)| u * v).sum::<f64>()
            - x.iter().zip(&b).map(|(u, v)| u * v).sum::<f64>();
        let g = ax.iter().zip(&b).map(|(u, v)| u - v).collect();
        Ok((f, g))
    }
}

/// Solves `A x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x
}

#[test]
fn lbfgs_minimises_an_ill_conditioned_quadratic() {
    let a = vec![100.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.5, 0.3];
    let b = vec![1.0, -2.0, 0.3];
    let expected = solve(a.clone(), b.clone());
    let min = Lbfgs::new()
        .tol(1e-12)
        .max_iter(200)
        .minimize(&mut quadratic(a, b), vec![0.0; 3])
        .unwrap();
    assert!(min.converged);
    for (x, e) in min.x.iter().zip(&expected) {
        assert!((x - e).abs() < 1e-6 * e.abs().max(1.0), "{:?} vs {expected:?}", min.x);
    }
    assert_eq!(min.loss_history.len(), min.iterations + 1);
    assert!(
        min.loss_history.windows(2).all(|w| w[1] <= w[0]),
        "{:?}",
        min.loss_history
    );
}

#[test]
fn lbfgs_minimises_rosenbrock() {
    let mut f = |x: &[f64]| -> Result<(f64, Vec<f64>)> {
        let (a, b) = (x[0], x[1]);
        let v = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
        Ok((v, g))
    };
    let min = Lbfgs::new()
        .tol(1e-14)
        .max_iter(500)
        .minimize(&mut f, vec![-1.2, 1.0])
        .unwrap();
    assert!(
        (min.x[0] - 1.0).abs() < 1e-5 && (min.x[1] - 1.0).abs() < 1e-5,
        "{min:?}"
    );
    // The start, then at least one line-search trial per iteration, each timed.
    assert!(min.evaluation_seconds.len() > min.iterations, "{min:?}");
    assert!(min.evaluation_seconds.iter().all(|t| *t >= 0.0));
}

#[test]
fn lbfgs_stops_at_the_iteration_limit_and_says_so() {
    let a = vec![100.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.5, 0.3];
    let min = Lbfgs::new()
        .max_iter(2)
        .minimize(&mut quadratic(a, vec![1.0; 3]), vec![0.0; 3])
        .unwrap();
    assert_eq!(min.iterations, 2);
    assert!(!min.converged);
}

#[test]
fn owlqn_soft_thresholds_a_separable_problem() {
    // ½‖x − t‖² + Σ λ_i |x_i|: x_i = sign(t_i) max(|t_i| − λ_i, 0).
    let t = vec![3.0, -0.5, 0.2, -4.0, 1.0];
    let l1 = vec![1.0, 1.0, 0.1, 0.5, 0.0];
    let tt = t.clone();
    let mut f = move |x: &[f64]| -> Result<(f64, Vec<f64>)> {
        let g: Vec<f64> = x.iter().zip(&tt).map(|(a, b)| a - b).collect();
        Ok((0.5 * g.iter().map(|v| v * v).sum::<f64>(), g))
    };
    let min = OwlQn::new(l1.clone())
        .tol(1e-12)
        .minimize(&mut f, vec![0.0; 5])
        .unwrap();
    for i in 0..5 {
        let e = t[i].signum() * (t[i].abs() - l1[i]).max(0.0);
        assert!((min.x[i] - e).abs() < 1e-8, "{i}: {:?}", min.x);
    }
    assert_eq!(min.x[1], 0.0, "exact zero from the orthant projection");
}

/// Checks the optimality conditions of `f + Σ λ_i |x_i|` at `x` with smooth gradient `g`.
fn assert_kkt(x: &[f64], g: &[f64], l1: &[f64], tol: f64) {
    for i in 0..x.len() {
        if x[i] != 0.0 {
            assert!(
                (g[i] + l1[i] * x[i].signum()).abs() < tol,
                "coordinate {i}: x {} g {}",
                x[i],
                g[i]
            );
        } else {
            assert!(
                g[i].abs() <= l1[i] + tol,
                "coordinate {i} is 0 with |g| {} > {}",
                g[i].abs(),
                l1[i]
            );
        }
    }
}

#[test]
fn owlqn_solves_a_lasso_problem() {
    // (1/2n)‖Xw − y‖² + λ‖w‖₁ with correlated columns; an intercept-like coordinate with λ = 0.
    let n = 60;
    let rows: Vec<[f64; 4]> = (0..n)
        .map(|i| {
            let a = (i as f64 * 0.7).sin();
            let b = (i as f64 * 1.3).cos();
            [1.0, a, 0.6 * a + 0.4 * b, b * b]
        })
        .collect();
    let y: Vec<f64> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| 0.5 + 2.0 * r[1] - 0.01 * r[3] + 0.05 * (i as f64).sin())
        .collect();
    let (r2, y2) = (rows.clone(), y.clone());
    let mut f = move |w: &[f64]| -> Result<(f64, Vec<f64>)> {
        let mut g = vec![0.0; 4];
        let mut v = 0.0;
        for (r, t) in r2.iter().zip(&y2) {
            let e: f64 = r.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() - t;
            v += 0.5 * e * e / n as f64;
            for j in 0..4 {
                g[j] += e * r[j] / n as f64;
            }
        }
        Ok((v, g))
    };
    let l1 = vec![0.0, 0.05, 0.05, 0.05];
    let min = OwlQn::new(l1.clone())
        .tol(1e-14)
        .max_iter(500)
        .minimize(&mut f, vec![0.0; 4])
        .unwrap();
    let (_, g) = f(&min.x).unwrap();
    assert_kkt(&min.x, &g, &l1, 1e-7);
    assert!(min.x.contains(&0.0), "some coefficient is exactly 0: {:?}", min.x);
    assert!(min.loss_history.windows(2).all(|w| w[1] <= w[0] + 1e-15));
}

fn random_spd(n: usize, entries: &[f64], diag: &[f64]) -> Vec<f64> {
    // A = MᵀM + diag(d), d > 0.
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| entries[k * n + i] * entries[k * n + j]).sum();
        }
        a[i * n + i] += diag[i];
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lbfgs_finds_the_minimum_of_random_convex_quadratics(
        n in 1usize..6,
        entries in prop::collection::vec(-2.0f64..2.0, 36),
        diag in prop::collection::vec(0.1f64..3.0, 6),
        b in prop::collection::vec(-5.0f64..5.0, 6),
        x0 in prop::collection::vec(-5.0f64..5.0, 6),
    ) {
        let a = random_spd(n, &entries[..n * n], &diag[..n]);
        let b = b[..n].to_vec();
        let expected = solve(a.clone(), b.clone());
        let min = Lbfgs::new().tol(1e-13).max_iter(500).minimize(&mut quadratic(a, b), x0[..n].to_vec()).unwrap();
        for (x, e) in min.x.iter().zip(&expected) {
            prop_assert!((x - e).abs() < 1e-5 * e.abs().max(1.0), "{:?} vs {:?}", min.x, expected);
        }
    }

    #[test]
    fn owlqn_meets_the_optimality_conditions_of_random_l1_quadratics(
        n in 1usize..6,
        entries in prop::collection::vec(-2.0f64..2.0, 36),
        diag in prop::collection::vec(0.1f64..3.0, 6),
        b in prop::collection::vec(-5.0f64..5.0, 6),
        l1 in prop::collection::vec(0.0f64..3.0, 6),
    ) {
        let a = random_spd(n, &entries[..n * n], &diag[..n]);
        let mut f = quadratic(a, b[..n].to_vec());
        let l1 = l1[..n].to_vec();
        let min = OwlQn::new(l1.clone()).tol(1e-14).max_iter(1000).minimize(&mut f, vec![0.0; n]).unwrap();
        let (_, g) = f(&min.x).unwrap();
        assert_kkt(&min.x, &g, &l1, 1e-5);
    }
}

/// Least squares `½(wᵀx − y)²` over an RDD, sampled as Spark's `GradientDescent` does.
struct RddLeastSquares(Rdd<LabeledPoint>);

type Sums = (Vec<f64>, f64, f64);

impl StochasticGradient for RddLeastSquares {
    fn sample_gradient(&mut self, w: &[f64], fraction: f64, seed: u64) -> Result<Sums> {
        let b = self.0.context().broadcast(w.to_vec());
        let zero: Sums = (vec![0.0; w.len()], 0.0, 0.0);
        Ok(self.0.sample(false, fraction, seed).tree_aggregate(
            zero,
            with(
                b,
                |w: &flint_engine::Broadcast<Vec<f64>>, (mut g, l, c): Sums, p: LabeledPoint| {
                    let x = p.features.to_dense();
                    let e: f64 = x.iter().zip(w.value()).map(|(a, b)| a * b).sum::<f64>() - p.label;
                    g.iter_mut().zip(&x).for_each(|(gi, xi)| *gi += e * xi);
                    (g, l + 0.5 * e * e, c + 1.0)
                },
            ),
            |(mut g, l, c): Sums, (g2, l2, c2): Sums| {
                g.iter_mut().zip(&g2).for_each(|(a, b)| *a += b);
                (g, l + l2, c + c2)
            },
            2,
        )?)
    }
}

fn line_points() -> Vec<LabeledPoint> {
    (0..200)
        .map(|i| {
            let x = (i as f64 * 0.37).sin();
            LabeledPoint::new(1.0 + 2.0 * x + 0.01 * (i as f64 * 1.7).cos(), vec![1.0, x])
        })
        .collect()
}

#[test]
fn gradient_descent_fits_least_squares_over_an_rdd() {
    let ctx = Context::local(2).unwrap();
    let mut f = RddLeastSquares(ctx.parallelize(line_points(), 3).cache());
    let min = GradientDescent::new()
        .step_size(1.0)
        .num_iterations(3000)
        .convergence_tol(1e-9)
        .minimize(&mut f, vec![0.0, 0.0])
        .unwrap();
    assert!(
        (min.x[0] - 1.0).abs() < 0.01 && (min.x[1] - 2.0).abs() < 0.01,
        "{min:?}"
    );
    assert_eq!(min.loss_history.len(), min.iterations);
    assert!(min.loss_history.last().unwrap() < &min.loss_history[0]);

    // Mini-batches: seeded, so two runs agree; still close to the solution.
    let gd = GradientDescent::new()
        .mini_batch_fraction(0.5)
        .num_iterations(300)
        .convergence_tol(0.0);
    let a = gd.minimize(&mut f, vec![0.0, 0.0]).unwrap();
    let b = gd.minimize(&mut f, vec![0.0, 0.0]).unwrap();
    assert_eq!(
        (&a.x, &a.loss_history, a.iterations, a.converged),
        (&b.x, &b.loss_history, b.iterations, b.converged)
    );
    // One timed mini-batch per iteration.
    assert_eq!(a.evaluation_seconds.len(), a.iterations);
    assert!((a.x[0] - 1.0).abs() < 0.1 && (a.x[1] - 2.0).abs() < 0.1, "{a:?}");
}

#[test]
fn gradient_descent_with_l2_shrinks_the_weights_and_checks_its_parameters() {
    let ctx = Context::local(2).unwrap();
    let mut f = RddLeastSquares(ctx.parallelize(line_points(), 2));
    let plain = GradientDescent::new()
        .num_iterations(200)
        .minimize(&mut f, vec![0.0, 0.0])
        .unwrap();
    let l2 = GradientDescent::new()
        .num_iterations(200)
        .reg_param(0.5)
        .minimize(&mut f, vec![0.0, 0.0])
        .unwrap();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    assert!(norm(&l2.x) < norm(&plain.x), "{:?} vs {:?}", l2.x, plain.x);
    let e = GradientDescent::new()
        .mini_batch_fraction(0.0)
        .minimize(&mut f, vec![0.0, 0.0])
        .unwrap_err();
    assert!(e.to_string().contains("mini_batch_fraction"), "{e}");
}
