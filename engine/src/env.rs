//! What tasks find where they run: shuffle files, cached blocks, map output locations.
//!
//! In local mode there is one `ExecutorEnv`, owned by the context; in distributed mode each
//! executor process will have its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flint_shuffle::ShuffleEnv;

use crate::broadcast::BroadcastCache;
use crate::failpoints::Failpoints;
use crate::shuffle_map::MapOutputTracker;
use crate::storage::BlockManager;

/// How an executor process reads map outputs that other executors hold.
pub(crate) struct RemoteShuffle {
    /// This executor: its own outputs are read from local files.
    pub(crate) me: crate::ids::ExecutorId,
    pub(crate) fetcher: Arc<dyn crate::cluster::BlockFetcher>,
}

/// Per-executor services used by running tasks.
pub(crate) struct ExecutorEnv {
    pub(crate) shuffle: ShuffleEnv,
    /// Set in executor processes (distributed mode); `None` in local mode.
    pub(crate) remote: Option<RemoteShuffle>,
    pub(crate) blocks: BlockManager,
    pub(crate) map_outputs: Arc<MapOutputTracker>,
    pub(crate) failpoints: Failpoints,
    /// Broadcast values decoded by this executor (shipped tasks only).
    pub(crate) broadcasts: BroadcastCache,
    attempt_files: AtomicU64,
    /// Told when a shuffle can be deleted everywhere (the driver's env in distributed mode).
    on_shuffle_removed: parking_lot::Mutex<Option<ShuffleRemoved>>,
}

type ShuffleRemoved = Arc<dyn Fn(crate::ids::ShuffleId) + Send + Sync>;

impl ExecutorEnv {
    pub(crate) fn new(shuffle: ShuffleEnv, blocks: BlockManager, map_outputs: Arc<MapOutputTracker>) -> Self {
        ExecutorEnv {
            shuffle,
            remote: None,
            blocks,
            map_outputs,
            failpoints: Failpoints::default(),
            broadcasts: BroadcastCache::default(),
            attempt_files: AtomicU64::new(0),
            on_shuffle_removed: parking_lot::Mutex::new(None),
        }
    }

    /// Calls `f` when a shuffle's files can be deleted everywhere.
    pub(crate) fn set_on_shuffle_removed(&self, f: ShuffleRemoved) {
        *self.on_shuffle_removed.lock() = Some(f);
    }

    /// A shuffle's files can be deleted everywhere.
    pub(crate) fn shuffle_removed(&self, shuffle: crate::ids::ShuffleId) {
        let f = self.on_shuffle_removed.lock().clone();
        if let Some(f) = f {
            f(shuffle);
        }
    }

    /// A number unique within this executor, naming one map task attempt's files.
    pub(crate) fn next_attempt_file_id(&self) -> u64 {
        self.attempt_files.fetch_add(1, Ordering::Relaxed)
    }
}
