//! The master's service (tarpc) and what workers, drivers and tools exchange with it.
//!
//! Workers pull their orders: every heartbeat's answer carries the executors to launch or
//! kill, so the master never connects to a worker (a worker behind NAT or in a container
//! works as long as it reaches the master). Drivers keep one connection open for the life of
//! the application; its closing ends the application.

use flint_engine::ExecutorId;
use serde::{Deserialize, Serialize};
/// Bytes that bincode copies whole, not element by element (binaries are hundreds of MiB).
pub use serde_bytes::ByteBuf;

/// Version of the master/worker/driver protocol; a mismatch is refused at registration.
pub const STANDALONE_PROTOCOL: u32 = 1;

/// The host part of a driver address the master replaces with the address it sees the
/// driver connect from (`driver_host = auto`).
pub const AUTO_HOST: &str = "0.0.0.0";

/// The flint release of this process (workers and drivers of another one are refused).
pub fn release() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A worker introducing itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// [`STANDALONE_PROTOCOL`] of the worker.
    pub protocol: u32,
    /// Its flint release ([`release`]).
    pub release: String,
    /// Host its executors listen on (drivers and other executors connect there).
    pub host: String,
    /// Cores it offers.
    pub cores: usize,
    /// Memory it offers for executors, in bytes.
    pub memory_bytes: u64,
    /// Its process id (for tools and tests).
    pub pid: u32,
    /// Its work directory (binaries, executor logs).
    pub work_dir: String,
}

/// A driver registering its application.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppRegistration {
    /// [`STANDALONE_PROTOCOL`] of the driver.
    pub protocol: u32,
    /// Its flint release.
    pub release: String,
    /// Application name.
    pub name: String,
    /// The token `flint-submit` gave the driver (`FLINT_SUBMISSION_ID`), if it was submitted.
    pub submission: Option<String>,
    /// blake3 hash of the application binary (executors run exactly this build).
    pub binary_hash: String,
    /// Its length in bytes.
    pub binary_bytes: u64,
    /// Task slots per executor; `None` takes all free cores of a worker (one executor per worker).
    pub executor_cores: Option<usize>,
    /// Memory reserved per executor, in bytes.
    pub executor_memory_bytes: u64,
    /// Most cores of all executors together; `None` is no limit.
    pub total_cores: Option<usize>,
    /// `host:port` of the driver's service (executors connect there); a host of
    /// [`AUTO_HOST`] is replaced by the address the master sees the driver at.
    pub driver_address: String,
    /// The application's secret (executors present it to the driver).
    pub secret: String,
    /// The driver's process id and host (for tools).
    pub driver_pid: u32,
}

/// The master's answer to [`AppRegistration`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppRegistered {
    /// The application's id (`app-<n>`).
    pub app: String,
    /// The master has no binary with this hash: upload it ([`MasterService::upload_binary`]).
    pub upload_binary: bool,
    /// Where executors will reach the driver (the registration's, or the one the master
    /// filled in).
    pub driver_address: String,
}

/// An order for a worker: start one executor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchExecutor {
    /// The application.
    pub app: String,
    /// The executor's id (unique within the application).
    pub executor: ExecutorId,
    /// Its task slots.
    pub cores: usize,
    /// Memory reserved for it, in bytes.
    pub memory_bytes: u64,
    /// Where its driver listens.
    pub driver_address: String,
    /// The application's secret.
    pub secret: String,
    /// The application binary to run (fetched from the master, verified against this hash).
    pub binary_hash: String,
    /// Its length in bytes.
    pub binary_bytes: u64,
}

/// What a worker must do, returned by its heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkerCommand {
    /// Start an executor.
    Launch(LaunchExecutor),
    /// Stop an executor (its application ended, was killed, or asked for it).
    Kill {
        /// The application.
        app: String,
        /// The executor.
        executor: ExecutorId,
    },
}

/// The answer to a worker's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkerHeartbeatReply {
    /// Known: here are its orders.
    Orders(Vec<WorkerCommand>),
    /// The master forgot this worker (it was silent too long, or the master restarted):
    /// kill every executor and register again.
    Unknown,
}

/// An application's state, as the master sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppState {
    /// Registered; no executor yet.
    Waiting,
    /// At least one executor was launched.
    Running,
    /// The driver unregistered or disconnected.
    Finished,
    /// Killed by `flint-submit --kill`.
    Killed,
    /// Its executors failed too often.
    Failed(String),
}

impl std::fmt::Display for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppState::Waiting => f.write_str("WAITING"),
            AppState::Running => f.write_str("RUNNING"),
            AppState::Finished => f.write_str("FINISHED"),
            AppState::Killed => f.write_str("KILLED"),
            AppState::Failed(why) => write!(f, "FAILED ({why})"),
        }
    }
}

/// The answer to a driver's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppHeartbeatReply {
    /// The application's state (a driver whose application was killed gives up).
    pub state: AppState,
    /// Executors to decommission (their worker is being drained).
    pub decommission: Vec<ExecutorId>,
}

/// Everything the master knows: what `--status`, `/json` and a future web UI show.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MasterStatus {
    /// `flint://host:port`.
    pub url: String,
    /// `http://host:port/json`, if the status page is served.
    pub web_url: Option<String>,
    /// Live workers.
    pub workers: Vec<WorkerStatus>,
    /// Applications, running and recent.
    pub apps: Vec<AppStatus>,
}

/// One worker in [`MasterStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// `worker-<n>`.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// `ALIVE`, `DRAINING` or `DRAINED`.
    pub state: String,
    /// Cores offered.
    pub cores: usize,
    /// Cores given to executors.
    pub cores_used: usize,
    /// Memory offered, bytes.
    pub memory_bytes: u64,
    /// Memory given to executors, bytes.
    pub memory_used_bytes: u64,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// One application in [`MasterStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppStatus {
    /// `app-<n>`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its state ([`AppState`], displayed).
    pub state: String,
    /// The `flint-submit` token, if submitted through it.
    pub submission: Option<String>,
    /// Where its driver listens.
    pub driver_address: String,
    /// The driver's process id.
    pub driver_pid: u32,
    /// Cores per executor asked for (`None`: all of a worker's).
    pub executor_cores: Option<usize>,
    /// Memory per executor, bytes.
    pub executor_memory_bytes: u64,
    /// Most cores asked for in total (`None`: no limit).
    pub total_cores: Option<usize>,
    /// Cores its live executors hold.
    pub cores_granted: usize,
    /// Executors that exited without being asked to.
    pub executor_failures: u32,
    /// Why it has fewer cores than it asked for, when it does.
    pub waiting_reason: Option<String>,
    /// Its executors, live and recently ended.
    pub executors: Vec<ExecutorStatus>,
}

/// One executor in [`AppStatus`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutorStatus {
    /// Its id within the application.
    pub id: ExecutorId,
    /// The worker running it.
    pub worker: String,
    /// Its process id once started.
    pub pid: Option<u32>,
    /// Task slots.
    pub cores: usize,
    /// `LAUNCHING`, `RUNNING`, `STOPPING`, or how it ended (`EXITED: ...`, `LOST: ...`).
    pub state: String,
}

/// The master's service: workers, drivers and tools (`flint-submit`) call it.
#[tarpc::service]
pub trait MasterService {
    /// Registers a worker (first call on its connection); returns its id.
    async fn register_worker(registration: WorkerRegistration) -> Result<String, String>;
    /// A worker is alive; returns its orders.
    async fn worker_heartbeat(worker: String) -> WorkerHeartbeatReply;
    /// An executor's process started.
    async fn executor_started(worker: String, app: String, executor: ExecutorId, pid: u32);
    /// An executor's process ended (or could not start): `how` says why.
    async fn executor_exited(worker: String, app: String, executor: ExecutorId, how: String);
    /// Part of an application binary (for workers).
    async fn fetch_binary(hash: String, offset: u64, max_bytes: u64) -> Result<ByteBuf, String>;
    /// Registers an application (first call on a driver's connection).
    async fn register_app(registration: AppRegistration) -> Result<AppRegistered, String>;
    /// The next part of the application binary, at `offset` of `total` bytes.
    async fn upload_binary(app: String, offset: u64, bytes: ByteBuf) -> Result<(), String>;
    /// The driver is alive; returns its application's state and executors to decommission.
    async fn app_heartbeat(app: String) -> AppHeartbeatReply;
    /// The driver stopped one of its executors on purpose (not to be replaced on that worker).
    async fn executor_stopped(app: String, executor: ExecutorId);
    /// The application ended.
    async fn unregister_app(app: String);
    /// Everything the master knows.
    async fn status() -> MasterStatus;
    /// Kills an application (its executors; its driver is told and gives up).
    async fn kill_app(app: String) -> Result<(), String>;
    /// Drains a worker: no new executors there; its executors are decommissioned by their
    /// drivers (tasks finish, outputs are recomputed elsewhere when needed).
    async fn drain_worker(worker: String) -> Result<(), String>;
}
