//! Distributed mode, the engine's half: placing tasks on executors and surviving their loss
//! (driver side, `backend`), and running shipped tasks (executor side, [`ExecutorRuntime`]).
//!
//! The transport (tarpc over TCP, executor processes, handshakes) is `flint-executor`'s: it
//! implements [`ExecutorTransport`] and [`ClusterLauncher`], registers the launcher with
//! [`set_launcher`] (from `flint::init()`), and reports what happens on the wire through a
//! [`DriverHandle`]. This split keeps scheduling policy here, testable without sockets, and
//! keeps tokio and tarpc out of the engine.
//!
//! The items here are public for `flint-executor` only; programs do not use them.

mod backend;
mod runtime;
pub mod settings;
mod shipping;
mod wire;

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

pub(crate) use backend::ClusterBackend;
pub use backend::DriverHandle;
pub use runtime::{BlockFetcher, BroadcastSource, ExecutorRuntime, ExecutorSettings};
pub use settings::ClusterSettings;
pub use wire::{ShuffleChunk, ShuffleChunkRequest};

use crate::conf::Config;
use crate::error::Result;
use crate::ids::{ExecutorId, ShuffleId};

/// Version of the driver/executor protocol; a mismatch is refused at the handshake.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the driver knows about a registered executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// The executor.
    pub id: ExecutorId,
    /// Host it runs on.
    pub host: String,
    /// Its process id (on its host).
    pub pid: u32,
    /// Task slots.
    pub cores: usize,
    /// Address of its executor service (tasks, shuffle blocks, results).
    pub address: String,
}

/// Where a map output's files are: the executor that wrote them and its service address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLocation {
    /// The executor holding the files.
    pub executor: ExecutorId,
    /// Its executor service address.
    pub address: String,
}

/// How the driver reaches its executors; implemented by `flint-executor`.
///
/// Every method returns at once (the work happens on the transport's runtime); failures to
/// reach an executor are reported through [`DriverHandle::executor_lost`].
pub trait ExecutorTransport: Send + Sync {
    /// Sends one task (an encoded envelope) to `executor`.
    fn launch(&self, executor: ExecutorId, task_id: u64, envelope: Vec<u8>);
    /// Asks `executor` to stop a running task.
    fn kill_task(&self, executor: ExecutorId, task_id: u64);
    /// Tells every executor that `shuffle`'s files can be deleted.
    fn remove_shuffle(&self, shuffle: ShuffleId);
    /// Starts `n` more executors (elastic scaling).
    fn request_executors(&self, n: usize) -> Result<()>;
    /// Stops `executor` for good (it is not replaced).
    fn stop_executor(&self, executor: ExecutorId);
    /// Stops every executor; called when the context is dropped.
    fn shutdown(&self);
    /// Address of the driver's service (for tools and tests).
    fn driver_address(&self) -> String;
}

/// Starts the executors of a context: one implementation per deploy mode.
pub trait ClusterLauncher: Send + Sync {
    /// Starts executors for `config` (its master says how many), which report to `driver`.
    fn start(&self, config: &Config, driver: DriverHandle) -> Result<Arc<dyn ExecutorTransport>>;
}

static LAUNCHER: OnceLock<Arc<dyn ClusterLauncher>> = OnceLock::new();

/// Installs the launcher that `local-cluster` masters use (`flint::init()` does this).
/// The first one installed stays.
pub fn set_launcher(launcher: Arc<dyn ClusterLauncher>) {
    let _ = LAUNCHER.set(launcher);
}

pub(crate) fn launcher() -> Option<Arc<dyn ClusterLauncher>> {
    LAUNCHER.get().cloned()
}
