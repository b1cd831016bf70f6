//! Models trained with `Device::Gpu` against the same models trained with `Device::Cpu`:
//! logistic regression (binomial, multinomial) and k-means on the same data agree within
//! the tolerances of the GPU's `f32` storage (see `flint_mllib::device`):
//! - logistic regression: coefficients and intercepts to 1e-4 relative (to max(1, |cpu|)),
//!   the final objective to 1e-6 relative;
//! - GLM by IRLS (Poisson, log link; Gram matrices on the GPU): coefficients, intercept and
//!   standard errors to 1e-4 relative, the deviance to 1e-6 relative;
//! - k-means on well-separated blobs: the same cluster sizes, centers to 1e-5 relative and
//!   the cost to 1e-5 relative.
//!
//! Without a GPU adapter these tests FAIL with the reason unless `FLINT_SKIP_GPU_TESTS=1`
//! (CI installs Mesa's lavapipe with `scripts/install-deps.sh`).
#![cfg(feature = "gpu")]

use flint_engine::Context;
use flint_mllib::classification::{Family, LogisticRegression, LogisticRegressionModel};
use flint_mllib::clustering::KMeans;
use flint_mllib::device::{Device, gpu_adapter};
use flint_mllib::regression::{Family as GlmFamily, GeneralizedLinearRegression};
use flint_mllib::{LabeledPoint, MlError};

fn gpu_or_skip(test: &str) -> bool {
    match gpu_adapter() {
        Ok(adapter) => {
            eprintln!("{test}: GPU adapter {adapter}");
            true
        }
        Err(why) if std::env::var("FLINT_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("{test}: skipped (FLINT_SKIP_GPU_TESTS=1): {why}");
            false
        }
        Err(why) => panic!(
            "{test}: no GPU adapter: {why}\nInstall lavapipe (scripts/install-deps.sh) or set FLINT_SKIP_GPU_TESTS=1 to skip the GPU tests"
        ),
    }
}

/// Deterministic pseudo-random numbers in [0, 1).
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(6364136223846793005) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` points of `d` features in [−2, 2] with labels drawn from a softmax over `classes`
/// linear scores (noisy, so that the optimum is finite).
fn classification(rows: usize, d: usize, classes: usize, seed: u64) -> Vec<LabeledPoint> {
    let mut u = uniform(seed);
    let beta: Vec<Vec<f64>> = (0..classes)
        .map(|_| (0..d).map(|_| 2.0 * u() - 1.0).collect())
        .collect();
    (0..rows)
        .map(|_| {
            let x: Vec<f64> = (0..d).map(|_| 4.0 * u() - 2.0).collect();
            let scores: Vec<f64> = beta
                .iter()
                .map(|b| b.iter().zip(&x).map(|(b, x)| b * x).sum::<f64>())
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = e.iter().sum();
            let mut t = u() * total;
            let mut label = classes - 1;
            for (c, v) in e.iter().enumerate() {
                if t < *v {
                    label = c;
                    break;
                }
                t -= v;
            }
            LabeledPoint::new(label as f64, x).with_weight(0.5 + u())
        })
        .collect()
}

fn assert_close(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= tol * c.abs().max(1.0),
            "{what}[{i}]: gpu {g} vs cpu {c} (tolerance {tol} relative)\n gpu {gpu:?}\n cpu {cpu:?}"
        );
    }
}

fn fit_both(points: Vec<LabeledPoint>, lr: LogisticRegression) -> (LogisticRegressionModel, LogisticRegressionModel) {
    let ctx = Context::local(2).unwrap();
    let rdd = ctx.parallelize(points, 3);
    let cpu = lr.clone().device(Device::Cpu).fit(&rdd).unwrap();
    let gpu = lr.device(Device::Gpu).fit(&rdd).unwrap();
    (cpu, gpu)
}

fn compare(cpu: &LogisticRegressionModel, gpu: &LogisticRegressionModel) {
    assert_close("coefficients", gpu.coefficients(), cpu.coefficients(), 1e-4);
    assert_close("intercepts", gpu.intercepts(), cpu.intercepts(), 1e-4);
    let (lc, lg) = (
        cpu.summary().loss_history.last().unwrap(),
        gpu.summary().loss_history.last().unwrap(),
    );
    assert!((lc - lg).abs() <= 1e-6 * lc.abs(), "objective: gpu {lg} vs cpu {lc}");
}

#[test]
fn binomial_logistic_regression_on_the_gpu_matches_the_cpu() {
    if !gpu_or_skip("binomial_logistic_regression_on_the_gpu_matches_the_cpu") {
        return;
    }
    let lr = LogisticRegression::new().reg_param(0.01).block_rows(1000).tol(1e-9);
    let (cpu, gpu) = fit_both(classification(5_003, 7, 2, 1), lr);
    compare(&cpu, &gpu);
}

#[test]
fn multinomial_logistic_regression_on_the_gpu_matches_the_cpu() {
    if !gpu_or_skip("multinomial_logistic_regression_on_the_gpu_matches_the_cpu") {
        return;
    }
    let lr = LogisticRegression::new()
        .reg_param(0.01)
        .family(Family::Multinomial)
        .block_rows(700)
        .tol(1e-9);
    let (cpu, gpu) = fit_both(classification(4_001, 5, 3, 2), lr);
    compare(&cpu, &gpu);
}

/// `k` blobs in `d` dimensions, 40 apart, noise in [−1, 1].
fn blobs(rows: usize, d: usize, k: usize, seed: u64) -> Vec<LabeledPoint> {
    let mut u = uniform(seed);
    (0..rows)
        .map(|i| {
            let j = i % k;
            let x: Vec<f64> = (0..d)
                .map(|c| 40.0 * j as f64 - 7.0 * c as f64 + 2.0 * u() - 1.0)
                .collect();
            LabeledPoint::new(0.0, x).with_weight(0.5 + u())
        })
        .collect()
}

#[test]
fn kmeans_on_the_gpu_matches_the_cpu() {
    if !gpu_or_skip("kmeans_on_the_gpu_matches_the_cpu") {
        return;
    }
    let ctx = Context::local(2).unwrap();
    let rdd = ctx.parallelize(blobs(6_007, 6, 5, 3), 3);
    let km = KMeans::new().k(5).seed(7).max_iter(30).tol(1e-9).block_rows(1000);
    let cpu = km.clone().device(Device::Cpu).fit(&rdd).unwrap();
    let gpu = km.device(Device::Gpu).fit(&rdd).unwrap();
    assert_eq!(gpu.summary.cluster_sizes, cpu.summary.cluster_sizes, "cluster sizes");
    assert_eq!(
        gpu.summary.training.iterations, cpu.summary.training.iterations,
        "iterations"
    );
    for (g, c) in gpu.cluster_centers().iter().zip(cpu.cluster_centers()) {
        assert_close("center", g, c, 1e-5);
    }
    let (gc, cc) = (gpu.summary.training_cost, cpu.summary.training_cost);
    assert!((gc - cc).abs() <= 1e-5 * cc, "cost: gpu {gc} vs cpu {cc}");
}

#[test]
fn auto_and_cpu_give_the_cpu_model_on_a_software_adapter() {
    // Auto never picks a software adapter (lavapipe) and small blocks stay on the CPU anyway:
    // the model is bit-for-bit the CPU one.
    let ctx = Context::local(2).unwrap();
    let rdd = ctx.parallelize(classification(2_000, 4, 2, 5), 2);
    let lr = LogisticRegression::new().reg_param(0.1);
    let cpu = lr.clone().device(Device::Cpu).fit(&rdd).unwrap();
    let auto = lr.device(Device::Auto).fit(&rdd).unwrap();
    assert_eq!(cpu.coefficients(), auto.coefficients());
}

#[test]
fn device_names_in_errors() {
    let e = Device::parse("cuda").unwrap_err();
    assert!(matches!(e, MlError::Param { .. }), "{e:?}");
    assert!(e.to_string().contains("flint.ml.device"), "{e}");
}

#[test]
fn glm_irls_on_the_gpu_matches_the_cpu() {
    if !gpu_or_skip("glm_irls_on_the_gpu_matches_the_cpu") {
        return;
    }
    let mut u = uniform(9);
    let points: Vec<LabeledPoint> = (0..3_001)
        .map(|_| {
            let x: Vec<f64> = (0..4).map(|_| 2.0 * u() - 1.0).collect();
            let mean = (0.3 + 0.5 * x[0] - 0.25 * x[1] + 0.1 * x[3]).exp();
            // A rounded noisy mean: count-like labels, no need for a Poisson sampler.
            LabeledPoint::new((mean * (0.5 + u())).round(), x)
        })
        .collect();
    let ctx = Context::local(2).unwrap();
    let rdd = ctx.parallelize(points, 3);
    let glm = GeneralizedLinearRegression::new()
        .family(GlmFamily::Poisson)
        .reg_param(0.0);
    let cpu = glm.clone().device(Device::Cpu).fit(&rdd).unwrap();
    let gpu = glm.device(Device::Gpu).fit(&rdd).unwrap();
    assert_close("coefficients", &gpu.coefficients, &cpu.coefficients, 1e-4);
    assert_close("intercept", &[gpu.intercept], &[cpu.intercept], 1e-4);
    assert_close(
        "standard errors",
        &gpu.summary.coefficient_standard_errors,
        &cpu.summary.coefficient_standard_errors,
        1e-4,
    );
    let (dg, dc) = (gpu.summary.deviance, cpu.summary.deviance);
    assert!((dg - dc).abs() <= 1e-6 * dc, "deviance: gpu {dg} vs cpu {dc}");
}
