//! Cached partitions: the block manager behind `persist` and `cache`.
//!
//! Blocks are whole partitions, keyed by (RDD, partition). Memory use is estimated from a sample
//! of serialised sizes and bounded by `storage_memory_bytes`; when a new block does not fit,
//! least-recently-used blocks of other RDDs are evicted (to disk for `MemoryAndDisk`, dropped
//! for `MemoryOnly`, so they are recomputed from lineage when needed again).

use std::any::Any;
use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::data::Data;
use crate::error::{EngineError, Result};
use crate::ids::RddId;

/// Where `persist` keeps an RDD's partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StorageLevel {
    /// Deserialised in memory; partitions that do not fit are recomputed when needed.
    MemoryOnly,
    /// In memory; partitions that do not fit are written to local disk.
    MemoryAndDisk,
    /// Serialised on local disk only.
    DiskOnly,
}

type BlockId = (RddId, usize);

thread_local! {
    /// Blocks cached by the task running on this thread, when an executor records them to
    /// tell the driver where they are (for locality).
    static RECORDED: std::cell::RefCell<Option<Vec<BlockId>>> = const { std::cell::RefCell::new(None) };
}

/// Starts recording the blocks this thread caches.
pub(crate) fn start_recording_cached() {
    RECORDED.with(|r| *r.borrow_mut() = Some(Vec::new()));
}

/// Stops recording and returns the blocks this thread cached since `start_recording_cached`.
pub(crate) fn take_recorded_cached() -> Vec<BlockId> {
    RECORDED.with(|r| r.borrow_mut().take()).unwrap_or_default()
}

fn record_cached(id: BlockId) {
    RECORDED.with(|r| {
        if let Some(v) = r.borrow_mut().as_mut() {
            v.push(id);
        }
    });
}

struct MemoryBlock {
    value: Arc<dyn Any + Send + Sync>,
    size_bytes: u64,
    level: StorageLevel,
    last_use: u64,
    /// Writes the block to disk when it is evicted (MemoryAndDisk); None when it may be dropped.
    spill: Option<Arc<dyn Fn(&Path) -> Result<()> + Send + Sync>>,
}

#[derive(Default)]
struct Blocks {
    memory: HashMap<BlockId, MemoryBlock>,
    disk: HashMap<BlockId, PathBuf>,
    used_bytes: u64,
    clock: u64,
}

/// Stores cached partitions of one executor (or of the local context).
pub(crate) struct BlockManager {
    limit_bytes: u64,
    dir: PathBuf,
    blocks: Mutex<Blocks>,
}

/// Estimated in-memory size of a partition: serialised size of a sample, extrapolated, plus
/// per-element overhead.
pub(crate) fn estimate_size<T: Serialize>(items: &[T]) -> u64 {
    if items.is_empty() {
        return 64;
    }
    let step = (items.len() / 64).max(1);
    let mut sampled = 0u64;
    let mut bytes = 0u64;
    for item in items.iter().step_by(step) {
        bytes += bincode::serialized_size(item).unwrap_or(16);
        sampled += 1;
    }
    let per_item = bytes / sampled.max(1) + std::mem::size_of::<T>() as u64 + 8;
    per_item * items.len() as u64 + 64
}

impl BlockManager {
    pub(crate) fn new(limit_bytes: u64, dir: PathBuf) -> Self {
        BlockManager {
            limit_bytes,
            dir,
            blocks: Mutex::new(Blocks::default()),
        }
    }

    fn block_path(&self, id: BlockId) -> PathBuf {
        self.dir.join(format!("rdd_{}_{}.block", id.0, id.1))
    }

    /// The cached partition, if any (memory first, then disk).
    pub(crate) fn get<T: Data>(&self, rdd: RddId, split: usize) -> Result<Option<Arc<Vec<T>>>> {
        let id = (rdd, split);
        let path = {
            let mut blocks = self.blocks.lock();
            blocks.clock += 1;
            let now = blocks.clock;
            if let Some(block) = blocks.memory.get_mut(&id) {
                block.last_use = now;
                if let Ok(v) = block.value.clone().downcast::<Vec<T>>() {
                    return Ok(Some(v));
                }
                return Err(EngineError::Internal(format!(
                    "cached block {rdd}/{split} has another type"
                )));
            }
            blocks.disk.get(&id).cloned()
        };
        match path {
            Some(path) => match read_block::<T>(&path) {
                Ok(v) => Ok(Some(Arc::new(v))),
                Err(err) => {
                    // A lost or corrupt disk block is recomputed from lineage.
                    tracing::warn!(path = %path.display(), error = %crate::error::report(&err), "dropping unreadable cached block");
                    self.blocks.lock().disk.remove(&id);
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    /// Stores a computed partition according to `level`. Never fails the task: a block that
    /// cannot be stored is simply not cached.
    pub(crate) fn put<T: Data>(&self, rdd: RddId, split: usize, level: StorageLevel, items: Arc<Vec<T>>) {
        let id = (rdd, split);
        record_cached(id);
        if level == StorageLevel::DiskOnly {
            self.put_disk(id, &items);
            return;
        }
        let size_bytes = estimate_size(&items);
        let mut evicted = Vec::new();
        {
            let mut blocks = self.blocks.lock();
            if blocks.memory.contains_key(&id) {
                return;
            }
            // Evict least-recently-used blocks of *other* RDDs until this one fits.
            while blocks.used_bytes + size_bytes > self.limit_bytes {
                let victim = blocks
                    .memory
                    .iter()
                    .filter(|(bid, _)| bid.0 != rdd)
                    .min_by_key(|(_, b)| b.last_use)
                    .map(|(bid, _)| *bid);
                let Some(victim) = victim else { break };
                let block = blocks.memory.remove(&victim).expect("victim is present");
                blocks.used_bytes -= block.size_bytes;
                evicted.push((victim, block));
            }
            if blocks.used_bytes + size_bytes <= self.limit_bytes {
                blocks.clock += 1;
                let last_use = blocks.clock;
                let spill: Option<Arc<dyn Fn(&Path) -> Result<()> + Send + Sync>> =
                    if level == StorageLevel::MemoryAndDisk {
                        let items = items.clone();
                        Some(Arc::new(move |path: &Path| write_block(path, &items)))
                    } else {
                        None
                    };
                blocks.used_bytes += size_bytes;
                blocks.memory.insert(
                    id,
                    MemoryBlock {
                        value: items.clone(),
                        size_bytes,
                        level,
                        last_use,
                        spill,
                    },
                );
            } else if level == StorageLevel::MemoryAndDisk {
                drop(blocks);
                self.put_disk(id, &items);
            }
        }
        for (victim, block) in evicted {
            tracing::debug!(rdd = %victim.0, partition = victim.1, bytes = block.size_bytes, "evicting cached block");
            if let (StorageLevel::MemoryAndDisk, Some(spill)) = (block.level, block.spill) {
                let path = self.block_path(victim);
                match spill(&path) {
                    Ok(()) => {
                        self.blocks.lock().disk.insert(victim, path);
                    }
                    Err(err) => {
                        tracing::warn!(error = %crate::error::report(&err), "cannot spill evicted block; it will be recomputed")
                    }
                }
            }
        }
    }

    fn put_disk<T: Data>(&self, id: BlockId, items: &[T]) {
        let path = self.block_path(id);
        match write_block(&path, items) {
            Ok(()) => {
                self.blocks.lock().disk.insert(id, path);
            }
            Err(err) => {
                tracing::warn!(error = %crate::error::report(&err), "cannot cache block on disk; it will be recomputed")
            }
        }
    }

    /// Drops every block of `rdd`.
    pub(crate) fn remove_rdd(&self, rdd: RddId) {
        let mut blocks = self.blocks.lock();
        let ids: Vec<BlockId> = blocks.memory.keys().filter(|id| id.0 == rdd).copied().collect();
        for id in ids {
            if let Some(b) = blocks.memory.remove(&id) {
                blocks.used_bytes -= b.size_bytes;
            }
        }
        let disk: Vec<BlockId> = blocks.disk.keys().filter(|id| id.0 == rdd).copied().collect();
        for id in disk {
            if let Some(path) = blocks.disk.remove(&id) {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Partitions of `rdd` currently cached (memory or disk).
    pub(crate) fn cached_partitions(&self, rdd: RddId) -> (usize, usize) {
        let blocks = self.blocks.lock();
        (
            blocks.memory.keys().filter(|id| id.0 == rdd).count(),
            blocks.disk.keys().filter(|id| id.0 == rdd).count(),
        )
    }

    /// Bytes of memory in use by cached blocks (estimated).
    pub(crate) fn memory_used_bytes(&self) -> u64 {
        self.blocks.lock().used_bytes
    }
}

/// Writes `items` to `path` atomically (temporary file, then rename).
///
/// Format (version 1): magic `FLBK`, version byte, crc32c of the payload (u32 LE), payload
/// length (u64 LE), then the bincode payload. The checksum makes a damaged file an error
/// instead of a silently different partition.
pub(crate) fn write_block<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let payload = bincode::serialize(items).map_err(|e| EngineError::codec(path.display().to_string(), e))?;
    let tmp = path.with_extension("tmp");
    let file = fs::File::create(&tmp).map_err(|e| EngineError::write(&tmp, e))?;
    let mut w = BufWriter::new(file);
    let header = block_header(&payload);
    w.write_all(&header)
        .and_then(|()| w.write_all(&payload))
        .and_then(|()| w.flush())
        .map_err(|e| EngineError::write(&tmp, e))?;
    drop(w);
    fs::rename(&tmp, path).map_err(|e| EngineError::write(path, e))
}

const BLOCK_MAGIC: &[u8; 4] = b"FLBK";
const BLOCK_VERSION: u8 = 1;
const BLOCK_HEADER_LEN: usize = 4 + 1 + 4 + 8;

fn block_header(payload: &[u8]) -> [u8; BLOCK_HEADER_LEN] {
    let mut h = [0u8; BLOCK_HEADER_LEN];
    h[..4].copy_from_slice(BLOCK_MAGIC);
    h[4] = BLOCK_VERSION;
    h[5..9].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    h[9..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h
}

/// Reads a block written by [`write_block`]; a damaged file is [`EngineError::CorruptFile`].
pub(crate) fn read_block<T: Data>(path: &Path) -> Result<Vec<T>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| BufReader::new(f).read_to_end(&mut bytes))
        .map_err(|e| EngineError::read(path, e))?;
    let corrupt = |detail: String| EngineError::CorruptFile {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.len() < BLOCK_HEADER_LEN || &bytes[..4] != BLOCK_MAGIC {
        return Err(corrupt("not a flint block file (bad header)".into()));
    }
    if bytes[4] != BLOCK_VERSION {
        return Err(corrupt(format!(
            "block format version {} (this build reads {BLOCK_VERSION})",
            bytes[4]
        )));
    }
    let crc = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(bytes[9..BLOCK_HEADER_LEN].try_into().expect("8 bytes"));
    let payload = &bytes[BLOCK_HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(corrupt(format!(
            "{} payload bytes, the header says {len}",
            payload.len()
        )));
    }
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    bincode::deserialize(payload).map_err(|e| EngineError::codec(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.block");
        let items: Vec<(String, u64)> = (0..500).map(|i| (format!("k{i}"), i)).collect();
        write_block(&path, &items).unwrap();
        assert_eq!(read_block::<(String, u64)>(&path).unwrap(), items);
        let good = fs::read(&path).unwrap();
        for at in [0, 4, 7, 12, BLOCK_HEADER_LEN, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let err = read_block::<(String, u64)>(&path).unwrap_err();
            assert!(matches!(err, EngineError::CorruptFile { .. }), "byte {at}: {err}");
            assert!(err.to_string().contains("b.block"), "{err}");
        }
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(matches!(
            read_block::<(String, u64)>(&path),
            Err(EngineError::CorruptFile { .. })
        ));
    }
}
