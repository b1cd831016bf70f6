//! Parity of the GPU kernels with the CPU kernels on random blocks (any row count, including
//! 1 and counts that are not multiples of the 256-row workgroup; column counts past 256).
//!
//! Tolerances (the GPU stores `f32` and sums each workgroup in `f32`; the host adds the
//! partials in `f64`): every sum agrees to `TOL = 1e-5` relative to the sum of the absolute
//! values of its terms (the scale its rounding is proportional to); cluster counts exactly
//! (well-separated blobs, so that no row is near a tie).
//!
//! Without a GPU adapter these tests FAIL, naming what was tried, unless
//! `FLINT_SKIP_GPU_TESTS=1` (then they print why they skip): CI installs Mesa's lavapipe
//! (`scripts/install-deps.sh`), so a silent pass would hide a broken setup.

use std::sync::Arc;

use proptest::prelude::*;

use super::{Device, Engine};
use crate::classification::loss::Shape;
use crate::clustering::distance::{Centers, NormedBlock};
use crate::data::InstanceBlock;
use crate::linalg::dense::packed_index;

/// Relative tolerance of a GPU sum, against the sum of its terms' absolute values.
const TOL: f64 = 1e-5;

/// The GPU engine, or `None` (skip) when `FLINT_SKIP_GPU_TESTS=1` and there is no adapter;
/// panics with the reason otherwise.
pub(crate) fn gpu_or_skip(test: &str) -> Option<Engine> {
    match Device::Gpu.select(usize::MAX) {
        Ok(e) => Some(e),
        Err(why) if std::env::var("FLINT_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("{test}: skipped (FLINT_SKIP_GPU_TESTS=1): {why}");
            None
        }
        Err(why) => panic!(
            "{test}: no GPU adapter: {why}\nInstall lavapipe (scripts/install-deps.sh) or set FLINT_SKIP_GPU_TESTS=1 to skip the GPU tests"
        ),
    }
}

/// A deterministic pseudo-random block: features in [−1, 1], weights in [0.5, 2], labels in
/// `0..classes`.
fn block(rows: usize, cols: usize, classes: usize, seed: u64) -> InstanceBlock {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let features: Vec<f64> = (0..rows * cols).map(|_| 2.0 * next() - 1.0).collect();
    let labels: Vec<f64> = (0..rows)
        .map(|_| ((next() * classes as f64) as usize).min(classes - 1) as f64)
        .collect();
    let weights: Vec<f64> = (0..rows).map(|_| 0.5 + 1.5 * next()).collect();
    InstanceBlock {
        rows,
        cols,
        features: Arc::new(features),
        labels: Arc::new(labels),
        weights: Arc::new(weights),
    }
}

fn vector(n: usize, seed: u64) -> Vec<f64> {
    (0..n).map(|i| ((i as f64 + 1.0) * 0.7 + seed as f64).sin()).collect()
}

#[track_caller]
fn close(what: &str, gpu: f64, cpu: f64, scale: f64) {
    assert!(
        (gpu - cpu).abs() <= TOL * scale + 1e-12,
        "{what}: gpu {gpu} vs cpu {cpu} (scale {scale}, tolerance {})",
        TOL * scale
    );
}

fn check_gemv(g: &Engine, b: &InstanceBlock, seed: u64) {
    let w = vector(b.cols, seed);
    let (got, want) = (g.gemv(b, &w).unwrap(), Engine::Cpu.gemv(b, &w).unwrap());
    assert_eq!(got.len(), b.rows);
    for r in 0..b.rows {
        let scale: f64 = b.row(r).iter().zip(&w).map(|(x, w)| (x * w).abs()).sum();
        close(&format!("X·w row {r}"), got[r], want[r], scale);
    }
    let v = vector(b.rows, seed + 1);
    let (got, want) = (g.gemv_t(b, &v).unwrap(), Engine::Cpu.gemv_t(b, &v).unwrap());
    assert_eq!(got.len(), b.cols);
    for c in 0..b.cols {
        let scale: f64 = (0..b.rows).map(|r| (b.row(r)[c] * v[r]).abs()).sum();
        close(&format!("Xᵀ·v column {c}"), got[c], want[c], scale);
    }
}

fn check_logistic(g: &Engine, b: &InstanceBlock, k: usize, multinomial: bool, intercept: bool, seed: u64) {
    let shape = Shape {
        d: b.cols,
        k,
        intercept,
        multinomial,
    };
    let coefs = vector(shape.len(), seed);
    let got = g.logistic(&shape, &coefs, b).unwrap();
    let want = Engine::Cpu.logistic(&shape, &coefs, b).unwrap();
    close("loss", got.loss, want.loss, want.loss.abs());
    close("weight", got.weight, want.weight, want.weight);
    assert_eq!(got.grad.len(), want.grad.len());
    let wsum: f64 = b.weights.iter().sum();
    for (i, (x, y)) in got.grad.iter().zip(&want.grad).enumerate() {
        // |g_rk| ≤ w_r, so Σ_r w_r |x_rc| bounds the terms of coordinate (k, c).
        let scale = if i < k * b.cols {
            let c = i % b.cols;
            (0..b.rows).map(|r| b.weights[r] * b.row(r)[c].abs()).sum()
        } else {
            wsum
        };
        close(&format!("gradient {i}"), *x, *y, scale);
    }
}

fn check_gram(g: &Engine, b: &InstanceBlock, seed: u64) {
    let w: Vec<f64> = vector(b.rows, seed).iter().map(|v| v.abs() + 0.1).collect();
    let z = vector(b.rows, seed + 3);
    let (gp, gz) = g.gram(b, &w, &z).unwrap();
    let (cp, cz) = Engine::Cpu.gram(b, &w, &z).unwrap();
    let n = b.cols + 1;
    let a = |r: usize, i: usize| if i == b.cols { 1.0 } else { b.row(r)[i] };
    for i in 0..n {
        for j in 0..=i {
            let scale: f64 = (0..b.rows).map(|r| (w[r] * a(r, i) * a(r, j)).abs()).sum();
            let p = packed_index(i, j);
            close(&format!("gram ({i}, {j})"), gp[p], cp[p], scale);
        }
        let scale: f64 = (0..b.rows).map(|r| (w[r] * z[r] * a(r, i)).abs()).sum();
        close(&format!("az {i}"), gz[i], cz[i], scale);
    }
}

/// Rows around `k` well-separated centers (center `j` at `10·j + 3·c`, noise in [−1, 1]).
fn blobs(rows: usize, cols: usize, k: usize, seed: u64) -> (NormedBlock, Centers) {
    let mut b = block(rows, cols, k, seed);
    let centers: Vec<Vec<f64>> = (0..k)
        .map(|j| (0..cols).map(|c| 10.0 * j as f64 + 3.0 * c as f64).collect())
        .collect();
    let labels = b.labels.clone();
    let f = Arc::make_mut(&mut b.features);
    for r in 0..rows {
        let j = labels[r] as usize;
        for c in 0..cols {
            f[r * cols + c] += centers[j][c];
        }
    }
    // Centers nudged off the blob means, as during training.
    let nudged: Vec<Vec<f64>> = centers.iter().map(|c| c.iter().map(|x| x + 0.25).collect()).collect();
    (NormedBlock::new(b), Centers::new(&nudged, cols))
}

fn check_kmeans(g: &Engine, nb: &NormedBlock, centers: &Centers) {
    let got = g.kmeans(nb, centers).unwrap();
    let want = Engine::Cpu.kmeans(nb, centers).unwrap();
    assert_eq!(got.counts, want.counts, "cluster sizes");
    let b = &nb.block;
    let d = b.cols;
    for j in 0..centers.k {
        close(
            &format!("weight of cluster {j}"),
            got.weights[j],
            want.weights[j],
            want.weights[j],
        );
        for c in 0..d {
            let scale: f64 = (0..b.rows).map(|r| b.weights[r] * b.row(r)[c].abs()).sum();
            close(
                &format!("sum {j}, {c}"),
                got.sums[j * d + c],
                want.sums[j * d + c],
                scale,
            );
        }
    }
    // The cost is a sum of small squared distances of large coordinates: f32 storage of the
    // coordinates (relative 6e-8 of |x| ≈ 10·k) bounds its accuracy, not the sum.
    let coord_scale: f64 = (0..b.rows)
        .map(|r| b.weights[r] * b.row(r).iter().map(|x| x.abs()).sum::<f64>())
        .sum();
    close("cost", got.cost, want.cost, want.cost + coord_scale);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gpu_gemv_and_gemv_t_match_the_cpu(rows in 1usize..700, cols in 1usize..40, seed in 0u64..1000) {
        if let Some(g) = gpu_or_skip("gpu_gemv_and_gemv_t_match_the_cpu") {
            check_gemv(&g, &block(rows, cols, 2, seed), seed);
        }
    }

    #[test]
    fn gpu_binomial_loss_and_gradient_match_the_cpu(rows in 1usize..700, cols in 1usize..40, intercept: bool, seed in 0u64..1000) {
        if let Some(g) = gpu_or_skip("gpu_binomial_loss_and_gradient_match_the_cpu") {
            check_logistic(&g, &block(rows, cols, 2, seed), 1, false, intercept, seed);
        }
    }

    #[test]
    fn gpu_multinomial_loss_and_gradient_match_the_cpu(rows in 1usize..700, cols in 1usize..30, k in 2usize..6, intercept: bool, seed in 0u64..1000) {
        if let Some(g) = gpu_or_skip("gpu_multinomial_loss_and_gradient_match_the_cpu") {
            check_logistic(&g, &block(rows, cols, k, seed), k, true, intercept, seed);
        }
    }

    #[test]
    fn gpu_gram_matches_the_cpu(rows in 1usize..600, cols in 1usize..20, seed in 0u64..1000) {
        if let Some(g) = gpu_or_skip("gpu_gram_matches_the_cpu") {
            check_gram(&g, &block(rows, cols, 2, seed), seed);
        }
    }

    #[test]
    fn gpu_kmeans_pass_matches_the_cpu(rows in 1usize..700, cols in 1usize..20, k in 1usize..8, seed in 0u64..1000) {
        if let Some(g) = gpu_or_skip("gpu_kmeans_pass_matches_the_cpu") {
            let (nb, centers) = blobs(rows, cols, k, seed);
            check_kmeans(&g, &nb, &centers);
        }
    }
}

#[test]
fn gpu_kernels_handle_wide_blocks_and_many_workgroups() {
    let Some(g) = gpu_or_skip("gpu_kernels_handle_wide_blocks_and_many_workgroups") else {
        return;
    };
    // More columns than invocations per workgroup (the column loops stride), 3 workgroups
    // with a partial last one.
    let b = block(513, 300, 3, 7);
    check_gemv(&g, &b, 7);
    check_logistic(&g, &b, 1, false, true, 7);
    check_logistic(&g, &b, 3, true, true, 7);
    check_gram(&g, &block(600, 40, 2, 8), 8);
    // Exactly one full workgroup, and many.
    check_gemv(&g, &block(256, 5, 2, 9), 9);
    check_logistic(&g, &block(20_000, 10, 2, 10), 1, false, true, 10);
    let (nb, centers) = blobs(10_007, 12, 10, 11);
    check_kmeans(&g, &nb, &centers);
    // More centers than the per-invocation sums hold (16): the other phase-2 path.
    let (nb, centers) = blobs(1_001, 5, 20, 13);
    check_kmeans(&g, &nb, &centers);
    // Rows staged one per round (1,536 values: one fits the 3,072-value tile), and rows longer
    // than the tile (read from global memory).
    for (rows, cols) in [(300, 1_536), (5, 3_100)] {
        let b = block(rows, cols, 3, 12);
        check_gemv(&g, &b, 12);
        check_logistic(&g, &b, 1, false, true, 12);
        check_logistic(&g, &b, 3, true, false, 12);
        let (nb, centers) = blobs(rows, cols, 3, 12);
        check_kmeans(&g, &nb, &centers);
    }
}

#[test]
fn gpu_blocks_stay_resident_and_are_freed_with_the_block() {
    let Some(Engine::Gpu(gpu)) = gpu_or_skip("gpu_blocks_stay_resident_and_are_freed_with_the_block") else {
        return;
    };
    let b = block(300, 4, 2, 1);
    let first = gpu.resident(&b).unwrap();
    let again = gpu.resident(&b.clone()).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "a second use of the same block must not upload it again"
    );
    // Same values, other arrays: another block.
    let copy = InstanceBlock {
        features: Arc::new((*b.features).clone()),
        ..b.clone()
    };
    assert!(!Arc::ptr_eq(&first, &gpu.resident(&copy).unwrap()));
    let weak = Arc::downgrade(&first);
    drop((first, again, b));
    // Any lookup sweeps the entries of dropped blocks.
    gpu.resident(&copy).unwrap();
    assert_eq!(
        weak.strong_count(),
        0,
        "the GPU buffers of a dropped block must be freed"
    );
}

#[test]
fn auto_stays_on_the_cpu_for_small_blocks_and_software_adapters() {
    assert!(
        !Device::Auto.select(10).unwrap().is_gpu(),
        "a tiny block is not worth a dispatch"
    );
    if let Some(Engine::Gpu(g)) = gpu_or_skip("auto_stays_on_the_cpu_for_small_blocks_and_software_adapters") {
        assert_eq!(
            Device::Auto.select(super::AUTO_MIN_ELEMENTS).unwrap().is_gpu(),
            !g.is_software(),
            "{}",
            g.describe()
        );
    }
    assert!(!Device::Cpu.select(usize::MAX).unwrap().is_gpu());
}

#[test]
fn device_names_parse_and_bad_ones_are_named() {
    assert_eq!(Device::parse(" GPU ").unwrap(), Device::Gpu);
    assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
    assert_eq!(Device::parse("auto").unwrap(), Device::Auto);
    let e = Device::parse("cuda").unwrap_err().to_string();
    assert!(e.contains("\"cuda\"") && e.contains("auto, cpu or gpu"), "{e}");
    assert_eq!(Device::Gpu.to_string(), "gpu");
}

#[test]
fn gpu_kernels_are_right_with_2d_dispatches() {
    let Some(g) = gpu_or_skip("gpu_kernels_are_right_with_2d_dispatches") else {
        return;
    };
    // 3 workgroups per row of the grid: 2,001 rows are 8 workgroups, a 3 × 3 grid whose last
    // workgroup has no rows (it must write nothing). Other tests running meanwhile get 2-D
    // dispatches too, which changes nothing but the grid.
    super::gpu::set_max_groups_x(3);
    let b = block(2_001, 7, 3, 21);
    check_gemv(&g, &b, 21);
    check_logistic(&g, &b, 1, false, true, 21);
    check_logistic(&g, &b, 3, true, true, 21);
    check_gram(&g, &b, 21);
    let (nb, centers) = blobs(2_001, 7, 4, 21);
    check_kmeans(&g, &nb, &centers);
    super::gpu::set_max_groups_x(65_535);
}
