//! The wgpu implementation of the device kernels: the process's GPU (instance, adapter,
//! device, queue, pipelines and resident blocks, created once on first use), and one method
//! per kernel that uploads the call's parameters, dispatches one workgroup per 256 rows, reads
//! back the per-workgroup partial sums and adds them in `f64`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use crate::classification::loss::{LossSums, Shape};
use crate::clustering::distance::Centers;
use crate::data::InstanceBlock;
use crate::device::ClusterSums;
use crate::linalg::dense::packed_len;

mod pipelines;
mod resident;

use pipelines::{Kernel, Pipelines, Slot};
use resident::{CallBuffers, MIN_BUFFER_BYTES, ResidentBlock, ResidentCache};

/// Rows per workgroup (`WG` in the shaders).
const WG: usize = 256;

/// Most workgroups along one dispatch dimension (WebGPU's guaranteed minimum); past it a
/// dispatch is 2-D. An atomic so that a test can lower it to exercise 2-D dispatches on small
/// blocks (any value gives the same results).
static MAX_GROUPS_X: AtomicUsize = AtomicUsize::new(65_535);

/// Sets the most workgroups along x (tests only).
#[cfg(test)]
pub(in crate::device) fn set_max_groups_x(n: usize) {
    MAX_GROUPS_X.store(n.clamp(1, 65_535), Ordering::Relaxed);
}

/// The process's GPU.
pub(crate) struct Gpu {
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Compiled on the first kernel call (`Auto` may probe the adapter and never use it).
    pipelines: OnceLock<Pipelines>,
    resident: ResidentCache,
}

/// The one GPU of this process, or why there is none (computed once).
static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();

impl Gpu {
    /// The process's GPU, started on the first call (instance, adapter, device, pipelines).
    pub fn get() -> Result<&'static Gpu, &'static str> {
        GPU.get_or_init(Gpu::start).as_ref().map_err(|e| e.as_str())
    }

    fn start() -> Result<Gpu, String> {
        // WGPU_BACKEND (e.g. `vulkan`) and WGPU_ADAPTER_NAME narrow the choice; the default
        // tries every backend compiled in and prefers a high-performance adapter.
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter =
            pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(&instance, None)).map_err(|e| {
                format!(
                    "no GPU adapter found: wgpu tried the backends {backends:?} ({e}); on Linux a Vulkan \
                     driver is needed (Debian: `libvulkan1` and a driver, e.g. `mesa-vulkan-drivers` \
                     for Mesa's software lavapipe)"
                )
            })?;
        let info = adapter.get_info();
        let downlevel = adapter.get_downlevel_capabilities();
        if !downlevel.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
            return Err(format!(
                "the GPU adapter {} ({:?}) cannot run compute shaders",
                info.name, info.backend
            ));
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("flint-mllib"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| {
            format!(
                "the GPU adapter {} ({:?}) refused a device: {e}",
                info.name, info.backend
            )
        })?;
        let gpu = Gpu {
            info,
            limits,
            device,
            queue,
            pipelines: OnceLock::new(),
            resident: ResidentCache::default(),
        };
        tracing::info!(adapter = %gpu.describe(), "ML kernels: GPU started");
        Ok(gpu)
    }

    fn pipelines(&self) -> &Pipelines {
        self.pipelines.get_or_init(|| Pipelines::new(&self.device))
    }

    /// `name (backend, device type)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the adapter is a software implementation on the CPU (Mesa's lavapipe).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether a block of `elements` features (and a per-row scratch of `elements` values)
    /// fits the adapter's buffer limits.
    pub fn fits(&self, elements: usize) -> bool {
        let bytes = 4 * elements as u64;
        bytes <= self.limits.max_storage_buffer_binding_size && bytes <= self.limits.max_buffer_size
    }

    pub(in crate::device) fn resident(&self, block: &InstanceBlock) -> Result<Arc<ResidentBlock>, String> {
        let elements = block.rows * block.cols;
        if !self.fits(elements) || block.rows > u32::MAX as usize / 2 {
            return Err(format!(
                "a block of {} × {} features does not fit the GPU's storage buffers ({} bytes at most); \
                 use smaller blocks (block_rows)",
                block.rows, block.cols, self.limits.max_storage_buffer_binding_size
            ));
        }
        self.resident.get(&self.device, block)
    }

    /// `X · w`.
    pub fn gemv(&self, block: &InstanceBlock, w: &[f64]) -> Result<Vec<f64>, String> {
        if block.rows == 0 {
            return Ok(Vec::new());
        }
        let res = self.resident(block)?;
        let w = to_f32(w);
        let out = self.run(
            &res,
            Call {
                kernel: &self.pipelines().gemv,
                params: [block.rows as u32, block.cols as u32, 0, 0, 0, 0, 0, 0],
                input: &w,
                input2: &[],
                out_floats: block.rows,
                scratch_floats: 0,
            },
        )?;
        Ok(out.iter().map(|v| f64::from(*v)).collect())
    }

    /// `Xᵀ · v`.
    pub fn gemv_t(&self, block: &InstanceBlock, v: &[f64]) -> Result<Vec<f64>, String> {
        let cols = block.cols;
        if block.rows == 0 || cols == 0 {
            return Ok(vec![0.0; cols]);
        }
        let res = self.resident(block)?;
        let v = to_f32(v);
        let groups = block.rows.div_ceil(WG);
        let out = self.run(
            &res,
            Call {
                kernel: &self.pipelines().gemv_t,
                params: [block.rows as u32, cols as u32, 0, 0, cols as u32, 0, 0, 0],
                input: &v,
                input2: &[],
                out_floats: groups * cols,
                scratch_floats: 0,
            },
        )?;
        Ok(sum_partials(&out, cols))
    }

    /// The fused logistic loss and gradient (binomial or multinomial).
    pub fn logistic(&self, shape: &Shape, coefs: &[f64], block: &InstanceBlock) -> Result<LossSums, String> {
        let (k, d) = (shape.k, shape.d);
        let mut sums = LossSums {
            grad: vec![0.0; shape.len()],
            ..LossSums::default()
        };
        if block.rows == 0 {
            return Ok(sums);
        }
        if !self.fits(block.rows * k) {
            return Err(format!(
                "{} rows × {k} classes do not fit the GPU's buffers",
                block.rows
            ));
        }
        let res = self.resident(block)?;
        let width = 2 + k * d + k;
        let coefs32 = to_f32(coefs);
        let out = self.run(
            &res,
            Call {
                kernel: if shape.multinomial {
                    &self.pipelines().multinomial
                } else {
                    &self.pipelines().binomial
                },
                params: [
                    block.rows as u32,
                    d as u32,
                    k as u32,
                    u32::from(shape.intercept),
                    width as u32,
                    0,
                    0,
                    0,
                ],
                input: &coefs32,
                input2: &[],
                out_floats: block.rows.div_ceil(WG) * width,
                scratch_floats: block.rows * k,
            },
        )?;
        let total = sum_partials(&out, width);
        sums.loss = total[0];
        sums.weight = total[1];
        sums.grad[..k * d].copy_from_slice(&total[2..2 + k * d]);
        if shape.intercept {
            sums.grad[k * d..].copy_from_slice(&total[2 + k * d..]);
        }
        Ok(sums)
    }

    /// `(Σ w a aᵀ packed, Σ w a z)`, `a = [x, 1]`.
    pub fn gram(&self, block: &InstanceBlock, w: &[f64], z: &[f64]) -> Result<(Vec<f64>, Vec<f64>), String> {
        let n = block.cols + 1;
        let packed = packed_len(n);
        if block.rows == 0 {
            return Ok((vec![0.0; packed], vec![0.0; n]));
        }
        let res = self.resident(block)?;
        let width = packed + n;
        let (w, z) = (to_f32(w), to_f32(z));
        let out = self.run(
            &res,
            Call {
                kernel: &self.pipelines().gram,
                params: [block.rows as u32, block.cols as u32, 0, 0, width as u32, 0, 0, 0],
                input: &w,
                input2: &z,
                out_floats: block.rows.div_ceil(WG) * width,
                scratch_floats: 0,
            },
        )?;
        let mut total = sum_partials(&out, width);
        let az = total.split_off(packed);
        Ok((total, az))
    }

    /// One Lloyd pass: closest centers, per-cluster sums, weights, counts and cost.
    pub fn kmeans(&self, block: &InstanceBlock, centers: &Centers) -> Result<ClusterSums, String> {
        let (k, d) = (centers.k, centers.d);
        let mut sums = ClusterSums::zero(k, d);
        if block.rows == 0 || k == 0 {
            return Ok(sums);
        }
        let res = self.resident(block)?;
        let width = k * d + 2 * k + 1;
        let c32 = to_f32(&centers.values);
        let out = self.run(
            &res,
            Call {
                kernel: &self.pipelines().kmeans,
                params: [block.rows as u32, d as u32, k as u32, 0, width as u32, 0, 0, 0],
                input: &c32,
                input2: &[],
                out_floats: block.rows.div_ceil(WG) * width,
                scratch_floats: 0,
            },
        )?;
        let total = sum_partials(&out, width);
        sums.sums.copy_from_slice(&total[..k * d]);
        sums.weights.copy_from_slice(&total[k * d..k * d + k]);
        for (c, t) in sums.counts.iter_mut().zip(&total[k * d + k..k * d + 2 * k]) {
            // Each workgroup's count is an exact small integer in f32 (at most 256).
            *c = t.round() as u64;
        }
        sums.cost = total[k * d + 2 * k];
        Ok(sums)
    }

    /// Runs `call` over `res` and returns the `out_floats` values of its output. wgpu errors
    /// (out of memory for the call's buffers, a validation error: a bug) fail the call rather
    /// than panic in wgpu's default handler.
    fn run(&self, res: &ResidentBlock, call: Call<'_>) -> Result<Vec<f32>, String> {
        let largest = call
            .out_floats
            .max(call.scratch_floats)
            .max(call.input.len())
            .max(call.input2.len());
        if !self.fits(largest) {
            return Err(format!(
                "a kernel call over {} rows needs a buffer of {} bytes, more than the GPU allows ({} bytes); \
                 use smaller blocks (block_rows) or flint.ml.device = cpu",
                res.rows,
                4 * largest,
                self.limits
                    .max_storage_buffer_binding_size
                    .min(self.limits.max_buffer_size)
            ));
        }
        // The block's call buffers are ours until the results are read back.
        let mut buffers = res.calls.lock().expect("call buffers lock is not poisoned");
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let submitted = self.submit(res, &call, &mut buffers);
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        if let Some(e) = oom {
            return Err(format!("the GPU is out of memory for a kernel call's buffers: {e}"));
        }
        if let Some(e) = validation {
            return Err(format!(
                "internal error, please report it: wgpu rejected a kernel call: {e}"
            ));
        }
        let (staging, out_bytes) = submitted;
        self.read_back(&staging, out_bytes)
    }

    /// Encodes and submits `call` with `buffers` (grown as needed); returns the read-back
    /// buffer and the bytes to read from it.
    fn submit(&self, res: &ResidentBlock, call: &Call<'_>, buffers: &mut CallBuffers) -> (wgpu::Buffer, u64) {
        let device = &self.device;
        let CallBuffers {
            input,
            input2,
            out,
            scratch,
            staging,
        } = buffers;
        use wgpu::BufferUsages as U;
        let input = grow(
            device,
            input,
            4 * call.input.len(),
            U::STORAGE | U::COPY_DST,
            "kernel input",
        );
        let input2 = grow(
            device,
            input2,
            4 * call.input2.len(),
            U::STORAGE | U::COPY_DST,
            "kernel input 2",
        );
        let out_bytes = 4 * call.out_floats as u64;
        let out = grow(
            device,
            out,
            out_bytes as usize,
            U::STORAGE | U::COPY_SRC,
            "kernel partial sums",
        );
        let scratch = grow(device, scratch, 4 * call.scratch_floats, U::STORAGE, "kernel scratch");
        let staging = grow(
            device,
            staging,
            out_bytes as usize,
            U::MAP_READ | U::COPY_DST,
            "read-back",
        );

        self.queue
            .write_buffer(&res.params, 0, bytemuck::cast_slice(&call.params));
        if !call.input.is_empty() {
            self.queue.write_buffer(input, 0, bytemuck::cast_slice(call.input));
        }
        if !call.input2.is_empty() {
            self.queue.write_buffer(input2, 0, bytemuck::cast_slice(call.input2));
        }
        let entries: Vec<wgpu::BindGroupEntry<'_>> = call
            .kernel
            .slots
            .iter()
            .map(|slot| wgpu::BindGroupEntry {
                binding: *slot as u32,
                resource: match slot {
                    Slot::Params => res.params.as_entire_binding(),
                    Slot::X => res.x.as_entire_binding(),
                    Slot::Labels => res.labels.as_entire_binding(),
                    Slot::Weights => res.weights.as_entire_binding(),
                    Slot::Input => input.as_entire_binding(),
                    Slot::Input2 => input2.as_entire_binding(),
                    Slot::Out => out.as_entire_binding(),
                    Slot::Scratch => scratch.as_entire_binding(),
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &call.kernel.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = res.rows.div_ceil(WG);
        let max_x = MAX_GROUPS_X.load(Ordering::Relaxed);
        let (gx, gy) = if groups <= max_x {
            (groups, 1)
        } else {
            (max_x, groups.div_ceil(max_x))
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&call.kernel.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx as u32, gy as u32, 1);
        }
        encoder.copy_buffer_to_buffer(out, 0, staging, 0, out_bytes);
        self.queue.submit([encoder.finish()]);
        (staging.clone(), out_bytes)
    }

    /// Waits for the submitted work and copies `out_bytes` of `staging` out.
    fn read_back(&self, staging: &wgpu::Buffer, out_bytes: u64) -> Result<Vec<f32>, String> {
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..out_bytes, move |r| {
            // The receiver waits below; a send cannot fail while it does.
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("waiting for the GPU failed: {e}"))?;
        rx.recv()
            .map_err(|_| "the GPU dropped a read-back request".to_string())?
            .map_err(|e| format!("reading results back from the GPU failed: {e}"))?;
        let values = {
            let view = staging
                .get_mapped_range(..out_bytes)
                .map_err(|e| format!("reading results back from the GPU failed: {e}"))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(values)
    }
}

/// One kernel call: the kernel, its `Params` (see `shaders/common.wgsl`), the per-call
/// inputs, and the sizes of its output and scratch.
struct Call<'a> {
    kernel: &'a Kernel,
    params: [u32; 8],
    input: &'a [f32],
    input2: &'a [f32],
    out_floats: usize,
    scratch_floats: usize,
}

/// `slot`'s buffer with at least `bytes` bytes (sizes go by powers of two, so that a block's
/// buffers are reallocated a few times at most).
fn grow<'b>(
    device: &wgpu::Device,
    slot: &'b mut Option<wgpu::Buffer>,
    bytes: usize,
    usage: wgpu::BufferUsages,
    label: &str,
) -> &'b wgpu::Buffer {
    let bytes = (bytes as u64).max(MIN_BUFFER_BYTES).next_power_of_two();
    if slot.as_ref().is_none_or(|b| b.size() < bytes) {
        *slot = Some(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        }));
    }
    slot.as_ref().expect("the buffer was just created")
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// Column sums in `f64` of `partials`, row-major `groups × width`.
fn sum_partials(partials: &[f32], width: usize) -> Vec<f64> {
    let mut total = vec![0.0f64; width];
    for row in partials.chunks_exact(width) {
        for (t, v) in total.iter_mut().zip(row) {
            *t += f64::from(*v);
        }
    }
    total
}
