//! Where the dense kernels run: the CPU, or a GPU through wgpu compute shaders (WGSL, on
//! Vulkan, Metal or DX12), chosen by [`Device`] (the `flint.ml.device` setting).
//!
//! # Kernels
//!
//! Every kernel takes an instance block and the iteration's parameters and returns sums, so
//! that the estimators' per-iteration jobs stay one `tree_aggregate` whatever the device:
//!
//! | kernel | used by |
//! |---|---|
//! | `X·w`, `Xᵀ·v` | building blocks: parity-tested and timed ([`kernel_timings`]); the estimators use the fused kernels |
//! | fused binomial and multinomial logistic loss + gradient | `LogisticRegression` (L-BFGS / OWL-QN) |
//! | weighted Gram `Σ w a aᵀ`, `Σ w a z` (`a = [x, 1]`) | `GeneralizedLinearRegression` (each IRLS pass; `LinearRegression`'s normal equations stay on the CPU) |
//! | k-means distances, argmin, per-cluster sums, weights, counts and cost | `KMeans` (Lloyd passes) |
//!
//! The CPU implementations (`cpu.rs`) are the existing kernels of [`crate::linalg`],
//! [`crate::classification`] and [`crate::clustering`]: nothing is written twice. The GPU
//! implementations (`gpu/`) keep each block *resident*: uploaded once (as `f32`) the first
//! time a kernel sees it and kept while the block is alive (cached), keyed by the identity of
//! its `Arc`ed arrays; an iteration then sends only its parameters (coefficients, centers) and
//! reads back one row of partial sums per workgroup of 256 rows.
//!
//! # Precision
//!
//! The GPU stores the features, labels and weights as `f32` and computes in `f32`; each
//! workgroup's sums (a tree reduction over at most 256 rows) are read back and added on the
//! host in `f64`. Kernel results agree with the CPU path (all `f64`) to a relative 1e-5 on
//! sums of O(1) data (tested; see `device/tests.rs` for the stated tolerances), and models
//! fitted on the GPU agree with those fitted on the CPU to about 1e-4 (logistic coefficients)
//! and 1e-5 (k-means centers), not to the last bits: the `f64` CPU path stays the reference
//! for the scikit-learn fixtures.
//!
//! # Choosing a device
//!
//! [`Device::Auto`] (the default) uses a GPU only when an adapter exists, is a real GPU (not a
//! software rasterizer such as Mesa's lavapipe, `DeviceType::Cpu`) and the block has at least
//! [`AUTO_MIN_ELEMENTS`] features (`rows × cols`); otherwise the CPU. [`Device::Gpu`] uses any
//! adapter, software ones included (that is how CI runs the shaders on lavapipe), and fails
//! with [`crate::MlError::Device`] when there is none. [`Device::Cpu`] never touches wgpu.
//! The choice travels with each iteration's task state and every process (driver, executors)
//! resolves it against its own adapters, so that a cluster may mix machines with and without
//! GPUs.
//!
//! The GPU is a process resource: one wgpu instance, adapter, device and queue per process,
//! created on first use and kept in a `OnceLock` (`gpu/mod.rs`), with the pipelines and
//! the resident blocks. This is the deliberate exception to "no process-global state"
//! (STYLE.md §8): two contexts in one process share the one GPU as they share its cores.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::classification::loss::{LossSums, Shape};
use crate::clustering::distance::{Centers, NormedBlock};
use crate::data::InstanceBlock;
use crate::error::{MlError, Result};

mod bench;
mod cpu;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(all(test, feature = "gpu"))]
mod tests;

pub use bench::{KernelTiming, kernel_timings};

/// Environment variable holding the default device (the `flint.ml.device` setting).
pub const DEVICE_ENV: &str = "FLINT_ML_DEVICE";

/// Smallest block (`rows × cols` features) that [`Device::Auto`] sends to a GPU: below it, the
/// dispatch and read-back latency (tens of microseconds) exceeds what the CPU needs for the
/// whole block (4096 rows × 16 features is about 0.1 ms on one core).
pub const AUTO_MIN_ELEMENTS: usize = 1 << 16;

/// Rows per instance block when an estimator runs with [`Device::Gpu`] and its `block_rows`
/// is not set: each block costs one dispatch and one read-back per pass (tens of
/// microseconds on a discrete GPU), so GPU blocks are large (2¹⁸ rows of 50 features is 52 MB
/// of `f32`). `Auto` keeps [`crate::data::DEFAULT_BLOCK_ROWS`] (sized for the CPU's caches),
/// because the driver cannot know which device every executor will pick without starting a
/// GPU; set `block_rows` when `auto` runs on GPUs.
pub const GPU_BLOCK_ROWS: usize = 1 << 18;

/// Where the dense kernels of an estimator run (`flint.ml.device`).
///
/// ```
/// use flint_mllib::device::Device;
/// assert_eq!(Device::parse("gpu").unwrap(), Device::Gpu);
/// assert!(Device::parse("tpu").unwrap_err().to_string().contains("tpu"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    /// A GPU when one exists and the block is big enough to win, else the CPU (the default).
    #[default]
    Auto,
    /// The CPU, always.
    Cpu,
    /// A GPU (any wgpu adapter, software ones included); an error without one.
    Gpu,
}

impl Device {
    /// Parses `auto`, `cpu` or `gpu` (any case, surrounding blanks ignored).
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            _ => Err(MlError::param("flint.ml.device", format!("{s:?}"), "auto, cpu or gpu")),
        }
    }

    /// The device named by [`DEVICE_ENV`] (`FLINT_ML_DEVICE`), `Auto` when it is unset or
    /// empty; an error naming the variable when it holds anything else than a device.
    ///
    /// ```
    /// // Unless the environment says otherwise, estimators use `Auto`.
    /// let device = flint_mllib::device::Device::from_env().unwrap();
    /// # let _ = device;
    /// ```
    pub fn from_env() -> Result<Device> {
        match std::env::var(DEVICE_ENV) {
            Ok(v) if !v.trim().is_empty() => Device::parse(&v).map_err(|_| {
                MlError::param(
                    "flint.ml.device (environment variable FLINT_ML_DEVICE)",
                    format!("{v:?}"),
                    "auto, cpu or gpu",
                )
            }),
            _ => Ok(Device::Auto),
        }
    }

    /// `device` if set, else [`Device::from_env`]: what an estimator runs with.
    pub(crate) fn or_env(device: Option<Device>) -> Result<Device> {
        match device {
            Some(d) => Ok(d),
            None => Device::from_env(),
        }
    }

    /// Rows per block for an estimator whose `block_rows` is `explicit` (see
    /// [`GPU_BLOCK_ROWS`]).
    pub(crate) fn block_rows(self, explicit: Option<usize>) -> usize {
        match (explicit, self) {
            (Some(n), _) => n,
            (None, Device::Gpu) => GPU_BLOCK_ROWS,
            (None, _) => crate::data::DEFAULT_BLOCK_ROWS,
        }
    }

    /// The engine this process runs a block of `elements` features on (see the module doc).
    pub(crate) fn select(self, elements: usize) -> Result<Engine, String> {
        match self {
            Device::Cpu => Ok(Engine::Cpu),
            Device::Gpu => gpu_engine(),
            Device::Auto => Ok(auto_engine(elements)),
        }
    }

    /// Text for logs and reports: the device, and the adapter this process would use for it
    /// (`"gpu (llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu))"`, `"auto: cpu"`, `"cpu"`).
    /// Starts the GPU for `Gpu` and `Auto` (the first call takes a moment).
    ///
    /// ```
    /// use flint_mllib::device::Device;
    /// assert_eq!(Device::Cpu.describe(), "cpu");
    /// ```
    pub fn describe(self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Gpu => match gpu_engine() {
                Ok(e) => format!("gpu ({})", e.adapter()),
                Err(e) => format!("gpu (unavailable: {e})"),
            },
            Device::Auto => {
                let e = auto_engine(AUTO_MIN_ELEMENTS);
                if e.is_gpu() {
                    format!("auto: gpu ({})", e.adapter())
                } else {
                    "auto: cpu".into()
                }
            }
        }
    }
}

impl FromStr for Device {
    type Err = MlError;
    fn from_str(s: &str) -> Result<Device> {
        Device::parse(s)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        })
    }
}

/// The GPU adapter this process uses for [`Device::Gpu`] (`"name (backend, device type)"`),
/// or why there is none. Starts the GPU on the first call.
///
/// ```
/// match flint_mllib::device::gpu_adapter() {
///     Ok(adapter) => println!("kernels can run on {adapter}"),
///     Err(why) => println!("CPU only: {why}"),
/// }
/// ```
pub fn gpu_adapter() -> Result<String> {
    gpu_engine()
        .map(|e| e.adapter())
        .map_err(|why| device_error(Device::Gpu, why))
}

/// A resolved device: where one kernel call runs.
#[derive(Clone, Copy)]
pub(crate) enum Engine {
    /// The CPU kernels.
    Cpu,
    /// This process's GPU.
    #[cfg(feature = "gpu")]
    Gpu(&'static gpu::Gpu),
}

impl Engine {
    /// Whether this is a GPU.
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Engine::Cpu)
    }

    fn adapter(&self) -> String {
        match self {
            Engine::Cpu => "cpu".into(),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.describe(),
        }
    }

    /// `out = X · w` (`rows` values).
    pub fn gemv(&self, block: &InstanceBlock, w: &[f64]) -> Result<Vec<f64>, String> {
        match self {
            Engine::Cpu => Ok(cpu::gemv(block, w)),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.gemv(block, w),
        }
    }

    /// `out = Xᵀ · v` (`cols` values).
    pub fn gemv_t(&self, block: &InstanceBlock, v: &[f64]) -> Result<Vec<f64>, String> {
        match self {
            Engine::Cpu => Ok(cpu::gemv_t(block, v)),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.gemv_t(block, v),
        }
    }

    /// The block's logistic loss and gradient sums at `coefs` (binomial or multinomial as
    /// `shape` says).
    pub fn logistic(&self, shape: &Shape, coefs: &[f64], block: &InstanceBlock) -> Result<LossSums, String> {
        match self {
            Engine::Cpu => Ok(cpu::logistic(shape, coefs, block)),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.logistic(shape, coefs, block),
        }
    }

    /// `(Σ w a aᵀ packed, Σ w a z)` with `a = [x, 1]`, as
    /// [`crate::linalg::dense::gram_accumulate`] from zero.
    pub fn gram(&self, block: &InstanceBlock, w: &[f64], z: &[f64]) -> Result<(Vec<f64>, Vec<f64>), String> {
        match self {
            Engine::Cpu => Ok(cpu::gram(block, w, z)),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.gram(block, w, z),
        }
    }

    /// One Lloyd pass over the block: every row to its closest center, and the per-cluster
    /// sums.
    pub fn kmeans(&self, nb: &NormedBlock, centers: &Centers) -> Result<ClusterSums, String> {
        match self {
            Engine::Cpu => Ok(cpu::kmeans(nb, centers)),
            #[cfg(feature = "gpu")]
            Engine::Gpu(g) => g.kmeans(&nb.block, centers),
        }
    }
}

/// What a Lloyd pass sums per cluster over a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterSums {
    /// `k × d`: Σ w·x of the rows closest to each center.
    pub sums: Vec<f64>,
    /// Σ w per cluster.
    pub weights: Vec<f64>,
    /// Rows per cluster.
    pub counts: Vec<u64>,
    /// Σ w·d² to the closest center.
    pub cost: f64,
}

impl ClusterSums {
    /// Zeros for `k` centers of dimension `d`.
    pub fn zero(k: usize, d: usize) -> Self {
        ClusterSums {
            sums: vec![0.0; k * d],
            weights: vec![0.0; k],
            counts: vec![0; k],
            cost: 0.0,
        }
    }

    /// Adds row `r` of `b`, closest to center `j` at squared distance `dist`.
    #[inline(always)]
    pub fn add_row(&mut self, b: &crate::data::InstanceBlock, r: usize, j: usize, dist: f64) {
        let (d, w) = (b.cols, b.weights[r]);
        crate::linalg::kernels::axpy(w, b.row(r), &mut self.sums[j * d..(j + 1) * d]);
        self.weights[j] += w;
        self.counts[j] += 1;
        self.cost += w * dist;
    }

    /// Adds another block's sums.
    pub fn merge(&mut self, o: &ClusterSums) {
        self.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
        self.weights.iter_mut().zip(&o.weights).for_each(|(a, b)| *a += b);
        self.counts.iter_mut().zip(&o.counts).for_each(|(a, b)| *a += b);
        self.cost += o.cost;
    }
}

/// Logged once per process: what `Auto` chose.
static AUTO_LOGGED: AtomicBool = AtomicBool::new(false);

/// Logged once per process: that `Auto` kept a small block on the CPU without looking for a GPU.
static AUTO_SMALL_LOGGED: AtomicBool = AtomicBool::new(false);

fn auto_engine(elements: usize) -> Engine {
    if elements < AUTO_MIN_ELEMENTS {
        // Not worth a dispatch on any GPU: no need to start one.
        if !AUTO_SMALL_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "flint.ml.device = auto: using the CPU for blocks under {AUTO_MIN_ELEMENTS} values (rows × cols; this one has {elements})"
            );
        }
        return Engine::Cpu;
    }
    #[cfg(feature = "gpu")]
    {
        match gpu::Gpu::get() {
            Ok(g) if !g.is_software() => {
                if !AUTO_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(adapter = %g.describe(), "flint.ml.device = auto: using the GPU for blocks of at least {AUTO_MIN_ELEMENTS} features (rows × cols)");
                }
                if g.fits(elements) { Engine::Gpu(g) } else { Engine::Cpu }
            }
            Ok(g) => {
                if !AUTO_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(adapter = %g.describe(), "flint.ml.device = auto: using the CPU, the only adapter is a software one (flint.ml.device = gpu would use it)");
                }
                Engine::Cpu
            }
            Err(why) => {
                if !AUTO_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!("flint.ml.device = auto: using the CPU: {why}");
                }
                Engine::Cpu
            }
        }
    }
    #[cfg(not(feature = "gpu"))]
    {
        if !AUTO_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::info!("flint.ml.device = auto: using the CPU (built without the `gpu` feature)");
        }
        Engine::Cpu
    }
}

fn gpu_engine() -> Result<Engine, String> {
    #[cfg(feature = "gpu")]
    {
        gpu::Gpu::get().map(Engine::Gpu).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "gpu"))]
    {
        Err(
            "flint-mllib was built without its `gpu` feature (wgpu); rebuild with it or use flint.ml.device = cpu"
                .into(),
        )
    }
}

/// The error of a kernel that could not run on the requested device.
pub(crate) fn device_error(device: Device, why: String) -> MlError {
    MlError::Device { device, detail: why }
}
