//! The compute pipelines, compiled once per process when the GPU is first used: one per
//! kernel, each from `shaders/common.wgsl` (and the helpers `shaders/column_sums.wgsl` and
//! `shaders/row_tiles.wgsl` for the kernels that call them) followed by the kernel's own source.

use std::borrow::Cow;

/// Binding slots shared by every kernel (see `shaders/common.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// 0: the `Params` uniform.
    Params = 0,
    /// 1: the block's features (resident).
    X = 1,
    /// 2: the block's labels (resident).
    Labels = 2,
    /// 3: the block's weights (resident).
    Weights = 3,
    /// 4: the per-call input vector.
    Input = 4,
    /// 5: the per-workgroup partial sums.
    Out = 5,
    /// 6: per-row values between the phases of a fused kernel.
    Scratch = 6,
    /// 7: the second per-call input vector.
    Input2 = 7,
}

/// A compiled kernel and the slots its shader binds.
pub(super) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub slots: &'static [Slot],
}

/// Every kernel.
pub(super) struct Pipelines {
    pub gemv: Kernel,
    pub gemv_t: Kernel,
    pub binomial: Kernel,
    pub multinomial: Kernel,
    pub gram: Kernel,
    pub kmeans: Kernel,
}

const COMMON: &str = include_str!("../shaders/common.wgsl");

/// The column-sum helper of `gemv_t` and `logistic`.
const COLUMN_SUMS: &str = include_str!("../shaders/column_sums.wgsl");

/// The row-staging helper of `gemv`, `logistic` and `kmeans`.
const ROW_TILES: &str = include_str!("../shaders/row_tiles.wgsl");

fn compile(device: &wgpu::Device, name: &str, source: &str, entry: &str, slots: &'static [Slot]) -> Kernel {
    // A helper is prepended to the kernels that call it (WGSL resolves every name in a
    // module, so it cannot go to kernels that lack the bindings it uses).
    let mut text = String::from(COMMON);
    for (call, helper) in [("column_sums(", COLUMN_SUMS), ("stage_rows(", ROW_TILES)] {
        if source.contains(call) {
            text.push('\n');
            text.push_str(helper);
        }
    }
    text.push('\n');
    text.push_str(source);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(Cow::Owned(text)),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    Kernel { pipeline, slots }
}

impl Pipelines {
    /// Compiles every kernel (a shader error is a bug: wgpu reports it as a panic naming the
    /// shader and line).
    pub fn new(device: &wgpu::Device) -> Self {
        use Slot::*;
        let logistic = include_str!("../shaders/logistic.wgsl");
        let logistic_slots: &'static [Slot] = &[Params, X, Labels, Weights, Input, Out, Scratch];
        Pipelines {
            gemv: compile(
                device,
                "gemv",
                include_str!("../shaders/gemv.wgsl"),
                "main",
                &[Params, X, Input, Out],
            ),
            gemv_t: compile(
                device,
                "gemv_t",
                include_str!("../shaders/gemv_t.wgsl"),
                "main",
                &[Params, X, Input, Out],
            ),
            binomial: compile(device, "logistic binomial", logistic, "binomial", logistic_slots),
            multinomial: compile(device, "logistic multinomial", logistic, "multinomial", logistic_slots),
            gram: compile(
                device,
                "gram",
                include_str!("../shaders/gram.wgsl"),
                "main",
                &[Params, X, Input, Out, Input2],
            ),
            kmeans: compile(
                device,
                "kmeans",
                include_str!("../shaders/kmeans.wgsl"),
                "main",
                &[Params, X, Weights, Input, Out],
            ),
        }
    }
}
