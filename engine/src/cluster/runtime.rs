//! The executor side of the engine: runs shipped tasks against this process's own shuffle
//! files, block manager and map-output view, and serves its shuffle blocks to other executors.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use flint_shuffle::{MapOutputFiles, MemoryBudget, ShuffleDirs, ShuffleEnv};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::shipping;
use super::wire::{self, ExecutorTaskEnd, ShuffleChunk, ShuffleChunkRequest, TaskEnvelope};
use crate::env::{ExecutorEnv, RemoteShuffle};
use crate::error::{EngineError, Result, TaskFailure};
use crate::ids::{BroadcastId, ExecutorId, ShuffleId};
use crate::scheduler::Task;
use crate::shuffle_map::MapOutputTracker;
use crate::storage::{self, BlockManager};

/// What an executor needs to know from the driver's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSettings {
    /// Shuffle/aggregation memory of this executor (shared by its running tasks).
    pub memory_limit_bytes: u64,
    /// Cache memory of this executor.
    pub storage_memory_bytes: u64,
    /// Compress shuffle blocks.
    pub shuffle_compress: bool,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
    /// How long the driver may be unreachable before the executor gives up and exits.
    pub heartbeat_timeout: Duration,
}

/// Fetches one block of a map output held by another executor.
pub trait BlockFetcher: Send + Sync {
    /// The stored (compressed, checksummed) bytes of block `reduce_id` of `files`, from the
    /// executor at `address`. The error says what failed (it becomes a fetch failure).
    fn fetch_block(
        &self,
        address: &str,
        files: &MapOutputFiles,
        reduce_id: usize,
    ) -> std::result::Result<Vec<u8>, String>;
}

/// Where an executor gets broadcast values it has not seen yet (the driver).
pub trait BroadcastSource: Send + Sync {
    /// The encoded value of broadcast `id`.
    fn fetch(&self, id: BroadcastId) -> Result<Vec<u8>>;
}

/// One executor's engine: decodes and runs tasks, serves its shuffle files.
pub struct ExecutorRuntime {
    id: ExecutorId,
    env: Arc<ExecutorEnv>,
    kills: Mutex<HashMap<u64, Arc<AtomicBool>>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for ExecutorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorRuntime")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ExecutorRuntime {
    /// An executor runtime whose files live in a fresh directory under `local_dir`.
    pub fn new(
        id: ExecutorId,
        settings: &ExecutorSettings,
        local_dir: &Path,
        fetcher: Arc<dyn BlockFetcher>,
        broadcasts: Arc<dyn BroadcastSource>,
    ) -> Result<Self> {
        crate::task_context::install_panic_hook();
        std::fs::create_dir_all(local_dir).map_err(|e| EngineError::write(local_dir, e))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("executor-{id}-"))
            .tempdir_in(local_dir)
            .map_err(|e| EngineError::write(local_dir, e))?;
        let dirs = ShuffleDirs::new(dir.path().join("shuffle")).map_err(|source| EngineError::Shuffle {
            shuffle: ShuffleId(0),
            source,
        })?;
        let blocks_dir = dir.path().join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(|e| EngineError::write(&blocks_dir, e))?;
        let shuffle = ShuffleEnv {
            dirs: Arc::new(dirs),
            budget: MemoryBudget::new(settings.memory_limit_bytes),
            compress: settings.shuffle_compress,
        };
        let mut env = ExecutorEnv::new(
            shuffle,
            BlockManager::new(settings.storage_memory_bytes, blocks_dir),
            Arc::new(MapOutputTracker::default()),
        );
        env.remote = Some(RemoteShuffle { me: id, fetcher });
        shipping::install_broadcast_source(&mut env, broadcasts);
        Ok(ExecutorRuntime {
            id,
            env: Arc::new(env),
            kills: Mutex::new(HashMap::new()),
            _dir: dir,
        })
    }

    /// This executor.
    pub fn id(&self) -> ExecutorId {
        self.id
    }

    /// The directory of this executor's files (removed when it exits normally).
    pub fn local_dir(&self) -> &Path {
        self._dir.path()
    }

    /// The root of this executor's shuffle files.
    pub fn shuffle_dir(&self) -> &Path {
        self.env.shuffle.dirs.root()
    }

    /// Runs one shipped task on the calling thread and returns its encoded end (never fails:
    /// a task that cannot be decoded ends as a task failure).
    pub fn run_task(&self, task_id: u64, envelope: &[u8]) -> Vec<u8> {
        let killed = Arc::new(AtomicBool::new(false));
        self.kills.lock().insert(task_id, killed.clone());
        storage::start_recording_cached();
        let outcome = self.run_envelope(envelope, killed);
        let cached = storage::take_recorded_cached();
        self.kills.lock().remove(&task_id);
        let end = ExecutorTaskEnd { outcome, cached };
        wire::encode("task end", &end).unwrap_or_else(|e| {
            let fallback = ExecutorTaskEnd {
                outcome: Err(TaskFailure::Error(format!(
                    "cannot encode the task end: {}",
                    crate::error::report(&e)
                ))),
                cached: Vec::new(),
            };
            wire::encode("task end", &fallback).expect("a failure always encodes")
        })
    }

    fn run_envelope(&self, envelope: &[u8], killed: Arc<AtomicBool>) -> std::result::Result<Vec<u8>, TaskFailure> {
        let failed = |what: &str, e: EngineError| TaskFailure::Error(format!("{what}: {}", crate::error::report(&e)));
        let envelope: TaskEnvelope =
            wire::decode("task envelope", envelope).map_err(|e| failed("cannot decode the task", e))?;
        for (shuffle, outputs) in envelope.inputs {
            self.env.map_outputs.set_outputs(shuffle, outputs);
        }
        let kind = shipping::decode_kind(&envelope.kind, &self.env).map_err(|e| failed("cannot decode the task", e))?;
        let task = Task {
            tref: envelope.tref,
            kind,
            killed,
            node: None,
            inputs: Vec::new(),
        };
        shipping::run_encoded(task, self.env.clone()).map_err(|e| failed("cannot encode the task's end", e))
    }

    /// Asks a running task to stop (it ends as killed).
    pub fn kill_task(&self, task_id: u64) {
        if let Some(flag) = self.kills.lock().get(&task_id) {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Part of one block of one of this executor's map outputs, for another executor.
    /// Only files under this executor's shuffle directory are served.
    pub fn read_shuffle_chunk(&self, req: &ShuffleChunkRequest) -> Result<ShuffleChunk> {
        let root = self.env.shuffle.dirs.root();
        for path in [&req.data, &req.index] {
            if !path.starts_with(root) || path.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(EngineError::Cluster(format!(
                    "{} is not a shuffle file of executor {}",
                    path.display(),
                    self.id
                )));
            }
        }
        let files = MapOutputFiles {
            data: req.data.clone(),
            index: req.index.clone(),
        };
        let shuffle_err = |source| EngineError::Shuffle {
            shuffle: ShuffleId(0),
            source,
        };
        let (mut file, offset, len) =
            flint_shuffle::locate_block(&files, req.reduce_id as usize).map_err(shuffle_err)?;
        let start = req.offset.min(len);
        let take = (len - start).min(req.max_bytes);
        let mut bytes = vec![0u8; take as usize];
        file.seek(SeekFrom::Start(offset + start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| EngineError::read(&req.data, e))?;
        Ok(ShuffleChunk { bytes, block_len: len })
    }

    /// Deletes a shuffle's files (the driver no longer needs them).
    pub fn remove_shuffle(&self, shuffle: ShuffleId) {
        self.env.map_outputs.remove_shuffle(shuffle);
        if let Err(e) = self.env.shuffle.dirs.remove_shuffle(shuffle.0) {
            tracing::warn!(%shuffle, error = %e, "cannot delete shuffle files");
        }
    }
}
