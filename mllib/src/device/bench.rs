//! Kernel timings on one block: what `examples/src/bin/mlkernels.rs` and
//! `benchmarks/run_gpu.sh` report (seconds per call and the bandwidth of reading the block).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{ClusterSums, Device, device_error};
use crate::classification::loss::Shape;
use crate::clustering::distance::{Bounds, Centers, NormedBlock, lloyd_block};
use crate::data::InstanceBlock;
use crate::error::{MlError, Result};

/// The timing of one kernel over one block.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTiming {
    /// `gemv` (`X·w`), `gemv_t` (`Xᵀ·v`), `logistic` (fused binomial loss and gradient),
    /// `softmax` (fused multinomial, 4 classes), `kmeans` (every row's closest of 10 centers
    /// and the clusters' sums, the device layer's pass), `kmeans_lloyd` (a CPU Lloyd pass
    /// without bounds: every row through the kernel, bounds and segment statistics written),
    /// `kmeans_bounded` (the same pass when the previous pass's bounds spare every row the
    /// distance kernel and no segment changes: a late pass; CPU only), `kmeans_moving` (centers
    /// moving back and forth between passes: most rows read, an early pass; CPU only) or `gram`
    /// (`XᵀWX`, only for at most 64 columns).
    pub kernel: &'static str,
    /// Where it ran: `cpu` (one core) or the GPU adapter.
    pub device: String,
    /// Rows of the block.
    pub rows: usize,
    /// Columns of the block.
    pub cols: usize,
    /// Timed calls (after one untimed call that uploads the block to a GPU).
    pub calls: usize,
    /// Mean wall-clock seconds per call: parameters in, kernel, partial sums back.
    pub seconds_per_call: f64,
    /// Bytes of the block's features one call reads (4 per value on a GPU, 8 on the CPU).
    pub bytes_per_call: u64,
    /// `bytes_per_call / seconds_per_call` in GB/s (10⁹ bytes): for the GEMV-like kernels,
    /// the achieved bandwidth to compare with the device's peak.
    pub gb_per_s: f64,
}

/// A deterministic `rows × cols` block with values in [−1, 1] and labels in `0..4`.
fn block(rows: usize, cols: usize) -> InstanceBlock {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    InstanceBlock {
        rows,
        cols,
        features: Arc::new((0..rows * cols).map(|_| 2.0 * next() - 1.0).collect()),
        labels: Arc::new((0..rows).map(|_| (next() * 4.0).floor().min(3.0)).collect()),
        weights: Arc::new(vec![1.0; rows]),
    }
}

/// Times each kernel (or only the one named `only`) `calls` times on one `rows × cols` block on
/// `device` (`Auto` as this process resolves it for that block).
///
/// ```
/// use flint_mllib::device::{Device, kernel_timings};
/// let t = kernel_timings(Device::Cpu, 1_000, 8, 2, None).unwrap();
/// assert_eq!(t.len(), 9); // gemv, gemv_t, logistic, softmax, kmeans, kmeans_lloyd, kmeans_bounded, kmeans_moving, gram
/// assert!(t.iter().all(|k| k.device == "cpu" && k.seconds_per_call > 0.0));
/// let t = kernel_timings(Device::Cpu, 1_000, 8, 2, Some("kmeans")).unwrap();
/// assert_eq!(t.len(), 1);
/// assert!(kernel_timings(Device::Cpu, 1_000, 8, 2, Some("gemm")).is_err());
/// ```
pub fn kernel_timings(
    device: Device,
    rows: usize,
    cols: usize,
    calls: usize,
    only: Option<&str>,
) -> Result<Vec<KernelTiming>> {
    const KERNELS: [&str; 9] = [
        "gemv",
        "gemv_t",
        "logistic",
        "softmax",
        "kmeans",
        "kmeans_lloyd",
        "kmeans_bounded",
        "kmeans_moving",
        "gram",
    ];
    if let Some(name) = only.filter(|n| !KERNELS.contains(n)) {
        return Err(MlError::param("kernel", name, format!("one of {}", KERNELS.join(", "))));
    }
    if rows == 0 || cols == 0 || calls == 0 {
        return Err(MlError::param(
            "rows, cols, calls",
            format!("{rows}, {cols}, {calls}"),
            "all >= 1",
        ));
    }
    let engine = device.select(rows * cols).map_err(|why| device_error(device, why))?;
    let name = engine.adapter();
    let b = block(rows, cols);
    let value_bytes: u64 = if engine.is_gpu() { 4 } else { 8 };
    let bytes = value_bytes * (rows * cols) as u64;
    let fail = |why: String| device_error(device, why);
    let w: Vec<f64> = (0..cols).map(|c| (c as f64 * 0.37).sin()).collect();
    let v: Vec<f64> = (0..rows).map(|r| (r as f64 * 0.11).cos()).collect();
    let binomial = Shape {
        d: cols,
        k: 1,
        intercept: true,
        multinomial: false,
    };
    let softmax = Shape {
        d: cols,
        k: 4,
        intercept: true,
        multinomial: true,
    };
    let coefs_b: Vec<f64> = (0..binomial.len()).map(|i| 0.01 * (i as f64).sin()).collect();
    let coefs_s: Vec<f64> = (0..softmax.len()).map(|i| 0.01 * (i as f64).cos()).collect();
    let centers: Vec<Vec<f64>> = (0..10.min(rows)).map(|j| b.row(j).to_vec()).collect();
    let centers = Centers::new(&centers, cols);
    let nb = NormedBlock::new(b.clone());
    let gw: Vec<f64> = vec![1.0; rows];

    let mut out = Vec::new();
    let mut time = |kernel: &'static str, f: &mut dyn FnMut() -> Result<(), String>| -> Result<()> {
        if only.is_some_and(|name| name != kernel) {
            return Ok(());
        }
        f().map_err(fail)?; // upload, pipeline compilation
        let start = Instant::now();
        for _ in 0..calls {
            f().map_err(fail)?;
        }
        let seconds = start.elapsed().as_secs_f64() / calls as f64;
        out.push(KernelTiming {
            kernel,
            device: name.clone(),
            rows,
            cols,
            calls,
            seconds_per_call: seconds,
            bytes_per_call: bytes,
            gb_per_s: bytes as f64 / seconds / 1e9,
        });
        Ok(())
    };
    time("gemv", &mut || engine.gemv(&b, &w).map(drop))?;
    time("gemv_t", &mut || engine.gemv_t(&b, &v).map(drop))?;
    time("logistic", &mut || engine.logistic(&binomial, &coefs_b, &b).map(drop))?;
    time("softmax", &mut || engine.logistic(&softmax, &coefs_s, &b).map(drop))?;
    time("kmeans", &mut || engine.kmeans(&nb, &centers).map(drop))?;
    if !engine.is_gpu() {
        let (mut bounds, drift) = (Bounds::default(), vec![0.0; centers.k]);
        let mut sums = ClusterSums::zero(centers.k, cols);
        let mut pass = |drift: Option<&[f64]>| {
            lloyd_block(&nb, &centers, &mut bounds, drift, &mut sums);
        };
        time("kmeans_lloyd", &mut || {
            pass(None);
            Ok(())
        })?;
        time("kmeans_bounded", &mut || {
            pass(Some(&drift));
            Ok(())
        })?;
        // Centers that move back and forth between passes (on this uniform data most rows are
        // read, a quarter go through the kernel and every segment changes: an early pass).
        let moved: Vec<Vec<f64>> = (0..centers.k)
            .map(|j| centers.row(j).iter().map(|x| x + 0.01).collect())
            .collect();
        let both = [centers.clone(), Centers::new(&moved, cols)];
        let step = vec![(cols as f64).sqrt() * 0.01 * (1.0 + 1e-9); centers.k];
        let mut turn = 0;
        time("kmeans_moving", &mut || {
            turn += 1;
            lloyd_block(&nb, &both[turn % 2], &mut bounds, Some(&step), &mut sums);
            Ok(())
        })?;
    }
    if cols <= 64 {
        time("gram", &mut || engine.gram(&b, &gw, &v).map(drop))?;
    }
    Ok(out)
}
