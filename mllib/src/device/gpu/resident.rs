//! Resident blocks: the GPU copies of instance blocks, uploaded once and reused by every
//! kernel call while the block lives.
//!
//! The cache is keyed by the address of the block's `features` array and holds `Weak`
//! references to its three arrays: a hit needs all three to be the very arrays uploaded (an
//! `Arc` alive at that address is the same allocation), and an entry whose arrays were
//! dropped (the block was unpersisted or evicted) is swept, its GPU buffers freed, on the next
//! lookup. Each resident block also owns the buffers of its calls (parameters in, partial sums
//! out, read-back), grown on demand and reused, behind a mutex (one call per block at a time).
//!
//! When the GPU runs out of memory for an upload, the blocks no kernel is using are evicted
//! (they are uploaded again when next used: slower, still correct) and the upload is tried
//! once more; if it fails again the kernel call fails with the sizes involved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use wgpu::util::DeviceExt;

use crate::data::InstanceBlock;

/// The buffers of one kernel call, grown on demand (never shrunk while the block lives).
#[derive(Default)]
pub(in crate::device) struct CallBuffers {
    pub input: Option<wgpu::Buffer>,
    pub input2: Option<wgpu::Buffer>,
    pub out: Option<wgpu::Buffer>,
    pub scratch: Option<wgpu::Buffer>,
    pub staging: Option<wgpu::Buffer>,
}

/// One block on the GPU.
pub(in crate::device) struct ResidentBlock {
    pub rows: usize,
    /// `rows × cols` features, row-major, `f32`.
    pub x: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    pub weights: wgpu::Buffer,
    /// The `Params` uniform (32 bytes).
    pub params: wgpu::Buffer,
    pub calls: Mutex<CallBuffers>,
}

impl ResidentBlock {
    /// Bytes held on the GPU by the block's own arrays.
    pub fn bytes(&self) -> u64 {
        self.x.size() + self.labels.size() + self.weights.size()
    }
}

struct Entry {
    features: Weak<Vec<f64>>,
    labels: Weak<Vec<f64>>,
    weights: Weak<Vec<f64>>,
    block: Arc<ResidentBlock>,
}

impl Entry {
    fn is_alive(&self) -> bool {
        self.features.strong_count() > 0 && self.labels.strong_count() > 0 && self.weights.strong_count() > 0
    }

    fn holds(&self, b: &InstanceBlock) -> bool {
        Weak::ptr_eq(&self.features, &Arc::downgrade(&b.features))
            && Weak::ptr_eq(&self.labels, &Arc::downgrade(&b.labels))
            && Weak::ptr_eq(&self.weights, &Arc::downgrade(&b.weights))
    }
}

/// The per-process cache of resident blocks.
#[derive(Default)]
pub(super) struct ResidentCache {
    entries: Mutex<HashMap<usize, Entry>>,
}

/// Storage buffers are at least this long (a zero-sized binding is invalid).
pub(super) const MIN_BUFFER_BYTES: u64 = 16;

fn upload(device: &wgpu::Device, label: &str, values: &[f64]) -> wgpu::Buffer {
    let mut v: Vec<f32> = values.iter().map(|x| *x as f32).collect();
    if v.len() < 4 {
        v.resize(4, 0.0);
    }
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(&v),
        usage: wgpu::BufferUsages::STORAGE,
    })
}

/// Uploads `block`, or returns the out-of-memory error of the upload.
fn upload_block(device: &wgpu::Device, block: &InstanceBlock) -> Result<ResidentBlock, wgpu::Error> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let resident = ResidentBlock {
        rows: block.rows,
        x: upload(device, "block features", &block.features),
        labels: upload(device, "block labels", &block.labels),
        weights: upload(device, "block weights", &block.weights),
        params: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel params"),
            size: 32,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        calls: Mutex::new(CallBuffers::default()),
    };
    match pollster::block_on(scope.pop()) {
        None => Ok(resident),
        Some(e) => Err(e),
    }
}

impl ResidentCache {
    /// Drops the resident blocks no kernel call is using; returns how many and their bytes.
    fn evict_idle(&self) -> (usize, u64) {
        let mut entries = self.entries.lock().expect("resident cache lock is not poisoned");
        let (mut count, mut bytes) = (0, 0);
        entries.retain(|_, e| {
            let idle = Arc::strong_count(&e.block) == 1;
            if idle {
                count += 1;
                bytes += e.block.bytes();
            }
            !idle
        });
        (count, bytes)
    }

    /// The resident copy of `block`, uploading it on a miss. Sweeps the entries of dropped
    /// blocks first.
    pub fn get(&self, device: &wgpu::Device, block: &InstanceBlock) -> Result<Arc<ResidentBlock>, String> {
        let key = Arc::as_ptr(&block.features) as usize;
        {
            let mut entries = self.entries.lock().expect("resident cache lock is not poisoned");
            let before = entries.len();
            entries.retain(|_, e| e.is_alive());
            if entries.len() < before {
                tracing::trace!(freed = before - entries.len(), "resident blocks freed");
            }
            if let Some(e) = entries.get(&key).filter(|e| e.holds(block)) {
                return Ok(e.block.clone());
            }
        }
        // Upload outside the lock: other threads keep using their blocks meanwhile.
        let resident = match upload_block(device, block) {
            Ok(r) => r,
            Err(first) => {
                let (count, bytes) = self.evict_idle();
                tracing::warn!(
                    evicted = count,
                    bytes,
                    "GPU out of memory: evicted the idle resident blocks ({first})"
                );
                // Dropped buffers are freed when the device is next maintained.
                let _ = device.poll(wgpu::PollType::wait_indefinitely());
                upload_block(device, block).map_err(|e| {
                    format!(
                        "the GPU is out of memory for a block of {} × {} features ({} bytes as f32), even after \
                         evicting {count} idle resident blocks ({bytes} bytes): {e}; use smaller blocks or \
                         flint.ml.device = cpu",
                        block.rows,
                        block.cols,
                        4 * block.features.len()
                    )
                })?
            }
        };
        let resident = Arc::new(resident);
        tracing::trace!(rows = block.rows, bytes = resident.bytes(), "block uploaded to the GPU");
        let mut entries = self.entries.lock().expect("resident cache lock is not poisoned");
        let entry = entries.entry(key).or_insert_with(|| Entry {
            features: Arc::downgrade(&block.features),
            labels: Arc::downgrade(&block.labels),
            weights: Arc::downgrade(&block.weights),
            block: resident.clone(),
        });
        if !entry.holds(block) {
            *entry = Entry {
                features: Arc::downgrade(&block.features),
                labels: Arc::downgrade(&block.labels),
                weights: Arc::downgrade(&block.weights),
                block: resident.clone(),
            };
        }
        Ok(entry.block.clone())
    }
}
