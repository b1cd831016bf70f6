//! `flint-master`: knows the workers, the applications and their executors, and decides
//! where executors run.
//!
//! All of it lives in one struct, `MasterState`, behind one lock: the tarpc service, the
//! heartbeat monitor and the status page (`GET /json`) read and change that struct only, so
//! what a tool or a future web UI shows is exactly what the scheduler decides from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flint_engine::ExecutorId;
use futures::StreamExt;
use parking_lot::Mutex;
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::protocol::{
    AUTO_HOST, AppHeartbeatReply, AppRegistered, AppRegistration, AppState, AppStatus, ByteBuf, ExecutorStatus,
    LaunchExecutor, MasterService, MasterStatus, STANDALONE_PROTOCOL, WorkerCommand, WorkerHeartbeatReply,
    WorkerRegistration, WorkerStatus, release,
};
use crate::error::ClusterError;
use crate::net::{self, CHUNK_BYTES};

/// How a master runs (`flint-master`'s flags).
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Address to listen on (workers, drivers and tools connect to it).
    pub host: String,
    /// Port (`0`: any free port).
    pub port: u16,
    /// Port of the status page (`GET /json`); `None` serves none, `Some(0)` any free port.
    pub web_port: Option<u16>,
    /// Where uploaded application binaries are kept.
    pub work_dir: PathBuf,
    /// A worker silent this long is forgotten (its executors are lost).
    pub worker_timeout: Duration,
    /// Spread an application's executors over as many workers as possible (Spark's default);
    /// `false` packs them onto as few as possible.
    pub spread: bool,
    /// Executors of one application that may exit unasked before it gets no more.
    pub max_executor_failures: u32,
}

/// Ended applications and executors kept for the status page.
const KEEP_ENDED: usize = 50;

/// A started master: its addresses; it runs until dropped.
pub struct RunningMaster {
    /// Where it listens.
    pub address: SocketAddr,
    /// Where its status page listens.
    pub web_address: Option<SocketAddr>,
    /// Its state (for tests in this crate).
    #[allow(dead_code)]
    state: Arc<Mutex<MasterState>>,
    _runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RunningMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningMaster")
            .field("address", &self.address)
            .field("web_address", &self.web_address)
            .finish_non_exhaustive()
    }
}

impl RunningMaster {
    /// `flint://host:port` of this master.
    pub fn url(&self) -> String {
        format!("flint://{}", self.address)
    }

    /// Blocks until SIGTERM or SIGINT.
    pub fn wait_for_signal(&self) {
        self._runtime.block_on(super::shutdown_signal());
    }
}

/// Starts a master: binds its ports and serves on its own runtime.
pub fn start(config: MasterConfig) -> Result<RunningMaster, ClusterError> {
    let binaries = config.work_dir.join("binaries");
    std::fs::create_dir_all(&binaries).map_err(|source| ClusterError::Io {
        what: "create the master's binary directory",
        path: binaries.clone(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flint-master")
        .enable_all()
        .build()
        .map_err(|source| ClusterError::Start {
            what: "start the master's runtime".into(),
            source,
        })?;
    let listen = format!("{}:{}", config.host, config.port);
    let bind: SocketAddr = runtime
        .block_on(tokio::net::lookup_host(&listen))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ClusterError::Usage(format!("cannot resolve the master's address {listen}")))?;
    let (address, incoming) = runtime
        .block_on(net::listen::<tarpc::ClientMessage<_>, tarpc::Response<_>>(bind))
        .map_err(|source| ClusterError::Start {
            what: format!("listen on {listen}"),
            source,
        })?;
    let web = match config.web_port {
        Some(port) => {
            let web_bind = SocketAddr::new(bind.ip(), port);
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(web_bind))
                .map_err(|source| ClusterError::Start {
                    what: format!("listen on {web_bind} (status page)"),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| ClusterError::Start {
                what: "read the status page's address".into(),
                source,
            })?;
            Some((listener, local))
        }
        None => None,
    };
    let state = Arc::new(Mutex::new(MasterState::new(
        format!("flint://{address}"),
        web.as_ref().map(|(_, a)| format!("http://{a}/json")),
        config.clone(),
        binaries,
    )));
    let serving = state.clone();
    runtime.spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        while let Some(transport) = incoming.next().await {
            let server = MasterServer {
                state: serving.clone(),
                role: Arc::new(Mutex::new(Role::Unknown)),
                peer: transport.peer_addr().ok(),
            };
            let role = server.role.clone();
            let state = serving.clone();
            tokio::spawn(async move {
                BaseChannel::with_defaults(transport)
                    .execute(server.serve())
                    .for_each(|response| async move {
                        tokio::spawn(response);
                    })
                    .await;
                let role = role.lock().clone();
                let mut state = state.lock();
                match role {
                    Role::Worker(id) => state.worker_lost(id, "its connection to the master closed"),
                    Role::App(id) => state.app_ended(id, AppState::Finished, "its driver disconnected"),
                    Role::Unknown => {}
                }
            });
        }
    });
    let monitored = Arc::downgrade(&state);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(state) = monitored.upgrade() else { return };
            state.lock().forget_silent_workers(Instant::now());
        }
    });
    let web_address = web.as_ref().map(|(_, a)| *a);
    if let Some((listener, _)) = web {
        runtime.spawn(super::status_page::serve(listener, Arc::downgrade(&state)));
    }
    tracing::info!(%address, web = ?web_address, "master listening");
    Ok(RunningMaster {
        address,
        web_address,
        state,
        _runtime: runtime,
    })
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
enum Role {
    Unknown,
    Worker(u64),
    App(u64),
}

struct WorkerEntry {
    registration: WorkerRegistration,
    last_heard: Instant,
    draining: bool,
    cores_used: usize,
    memory_used: u64,
    /// Orders waiting for its next heartbeat.
    orders: Vec<WorkerCommand>,
}

struct AppEntry {
    registration: AppRegistration,
    state: AppState,
    /// The master holds the application binary (uploaded, hash checked).
    binary_ready: bool,
    /// Bytes of the binary received so far (while uploading).
    uploaded: u64,
    next_executor: u64,
    failures: u32,
    /// Executors whose driver must decommission them (drained worker).
    decommission: Vec<ExecutorId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ExecutorState {
    Launching,
    Running,
    /// Asked to stop: its exit is not a failure.
    Stopping,
    Ended(String),
}

struct ExecutorEntry {
    worker: u64,
    cores: usize,
    memory: u64,
    pid: Option<u32>,
    state: ExecutorState,
}

impl ExecutorEntry {
    fn is_live(&self) -> bool {
        !matches!(self.state, ExecutorState::Ended(_))
    }
}

/// The master's whole state: workers, applications, executors. Everything the master
/// decides and shows comes from here.
pub(crate) struct MasterState {
    url: String,
    web_url: Option<String>,
    config: MasterConfig,
    binaries: PathBuf,
    workers: BTreeMap<u64, WorkerEntry>,
    apps: BTreeMap<u64, AppEntry>,
    executors: BTreeMap<(u64, ExecutorId), ExecutorEntry>,
    next_worker: u64,
    next_app: u64,
}

fn worker_name(id: u64) -> String {
    format!("worker-{id}")
}

fn app_name(id: u64) -> String {
    format!("app-{id:04}")
}

fn parse_id(prefix: &str, s: &str) -> Result<u64, String> {
    s.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no such {}: {s}", prefix.trim_end_matches('-')))
}

/// A blake3 hex digest, and nothing that could name another file.
fn valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a peer's protocol and release against this master's.
pub(crate) fn check_release(role: &str, protocol: u32, peer_release: &str) -> Result<(), String> {
    if protocol != STANDALONE_PROTOCOL || peer_release != release() {
        return Err(format!(
            "mismatched build: this {role} is flint {peer_release} (protocol {protocol}) but the master is \
             flint {} (protocol {STANDALONE_PROTOCOL}); run the same flint release everywhere",
            release()
        ));
    }
    Ok(())
}

impl MasterState {
    fn new(url: String, web_url: Option<String>, config: MasterConfig, binaries: PathBuf) -> Self {
        MasterState {
            url,
            web_url,
            config,
            binaries,
            workers: BTreeMap::new(),
            apps: BTreeMap::new(),
            executors: BTreeMap::new(),
            next_worker: 1,
            next_app: 1,
        }
    }

    fn binary_path(&self, hash: &str) -> PathBuf {
        self.binaries.join(hash)
    }

    pub(crate) fn register_worker(&mut self, registration: WorkerRegistration) -> Result<u64, String> {
        check_release("worker", registration.protocol, &registration.release)?;
        if registration.cores == 0 {
            return Err("a worker must offer at least one core".into());
        }
        let id = self.next_worker;
        self.next_worker += 1;
        tracing::info!(worker = %worker_name(id), host = %registration.host, cores = registration.cores,
            memory_bytes = registration.memory_bytes, "worker registered");
        self.workers.insert(
            id,
            WorkerEntry {
                registration,
                last_heard: Instant::now(),
                draining: false,
                cores_used: 0,
                memory_used: 0,
                orders: Vec::new(),
            },
        );
        // Running applications get executors on the newcomer (elastic scaling).
        self.schedule();
        Ok(id)
    }

    fn worker_heartbeat(&mut self, id: u64) -> WorkerHeartbeatReply {
        match self.workers.get_mut(&id) {
            Some(w) => {
                w.last_heard = Instant::now();
                WorkerHeartbeatReply::Orders(std::mem::take(&mut w.orders))
            }
            None => WorkerHeartbeatReply::Unknown,
        }
    }

    /// Forgets a worker: its executors are lost (their drivers notice on their own, as their
    /// connections close) and their applications get executors elsewhere.
    pub(crate) fn worker_lost(&mut self, id: u64, reason: &str) {
        let Some(worker) = self.workers.remove(&id) else { return };
        tracing::warn!(worker = %worker_name(id), host = %worker.registration.host, %reason, "worker lost");
        for ((app, executor), e) in self.executors.iter_mut() {
            if e.worker == id && e.is_live() {
                tracing::warn!(app = %app_name(*app), %executor, "executor lost with its worker");
                e.state = ExecutorState::Ended(format!("LOST: {} lost ({reason})", worker_name(id)));
            }
        }
        self.schedule();
    }

    fn forget_silent_workers(&mut self, now: Instant) {
        let timeout = self.config.worker_timeout;
        let silent: Vec<(u64, Duration)> = self
            .workers
            .iter()
            .map(|(id, w)| (*id, now.duration_since(w.last_heard)))
            .filter(|(_, quiet)| *quiet > timeout)
            .collect();
        for (id, quiet) in silent {
            self.worker_lost(id, &format!("no heartbeat for {:.1} s", quiet.as_secs_f64()));
        }
    }

    fn register_app(&mut self, registration: AppRegistration) -> Result<(u64, bool), String> {
        check_release("driver", registration.protocol, &registration.release)?;
        if !valid_hash(&registration.binary_hash) {
            return Err(format!("{:?} is not a blake3 hash", registration.binary_hash));
        }
        if registration.executor_cores == Some(0) || registration.total_cores == Some(0) {
            return Err("executor cores and total executor cores must be at least 1".into());
        }
        let id = self.next_app;
        self.next_app += 1;
        let binary_ready = self.binary_path(&registration.binary_hash).is_file();
        tracing::info!(app = %app_name(id), name = %registration.name, driver = %registration.driver_address,
            binary = %&registration.binary_hash[..16], binary_ready, "application registered");
        self.apps.insert(
            id,
            AppEntry {
                registration,
                state: AppState::Waiting,
                binary_ready,
                uploaded: 0,
                next_executor: 0,
                failures: 0,
                decommission: Vec::new(),
            },
        );
        self.schedule();
        Ok((id, !binary_ready))
    }

    /// Ends an application: its executors are killed; it stays listed as ended.
    pub(crate) fn app_ended(&mut self, id: u64, state: AppState, reason: &str) {
        let Some(app) = self.apps.get_mut(&id) else { return };
        if !matches!(app.state, AppState::Waiting | AppState::Running) {
            return;
        }
        tracing::info!(app = %app_name(id), %state, %reason, "application ended");
        app.state = state;
        let _ = std::fs::remove_file(self.binaries.join(format!(
            "{}.{}.part",
            app.registration.binary_hash,
            app_name(id)
        )));
        for ((a, executor), e) in self.executors.iter_mut() {
            if *a == id && e.is_live() {
                e.state = ExecutorState::Stopping;
                if let Some(w) = self.workers.get_mut(&e.worker) {
                    w.orders.push(WorkerCommand::Kill {
                        app: app_name(id),
                        executor: *executor,
                    });
                }
            }
        }
        self.prune();
        self.schedule();
    }

    fn executor_started(&mut self, worker: u64, app: u64, executor: ExecutorId, pid: u32) {
        if let Some(e) = self.executors.get_mut(&(app, executor))
            && e.worker == worker
        {
            e.pid = Some(pid);
            if e.state == ExecutorState::Launching {
                e.state = ExecutorState::Running;
            }
        }
    }

    pub(crate) fn executor_exited(&mut self, worker: u64, app: u64, executor: ExecutorId, how: &str) {
        let Some(e) = self.executors.get_mut(&(app, executor)) else {
            return;
        };
        if e.worker != worker || !e.is_live() {
            return;
        }
        let asked = e.state == ExecutorState::Stopping;
        e.state = ExecutorState::Ended(format!("EXITED: {how}"));
        let (cores, memory) = (e.cores, e.memory);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.cores_used -= cores;
            w.memory_used -= memory;
        }
        let live_left = self.executors.iter().any(|((a, _), e)| *a == app && e.is_live());
        let max = self.config.max_executor_failures;
        if let Some(a) = self.apps.get_mut(&app)
            && matches!(a.state, AppState::Waiting | AppState::Running)
            && !asked
        {
            a.failures += 1;
            tracing::warn!(app = %app_name(app), %executor, worker = %worker_name(worker), %how,
                failures = a.failures, "executor exited; the master replaces it");
            if a.failures >= max && !live_left {
                let why = format!("{} executors exited unasked, the last one {how}", a.failures);
                tracing::error!(app = %app_name(app), %why, "application failed");
                a.state = AppState::Failed(why);
            }
        }
        self.prune();
        self.schedule();
    }

    fn executor_stopped(&mut self, app: u64, executor: ExecutorId) {
        if let Some(e) = self.executors.get_mut(&(app, executor))
            && e.is_live()
        {
            e.state = ExecutorState::Stopping;
            if let Some(w) = self.workers.get_mut(&e.worker) {
                w.orders.push(WorkerCommand::Kill {
                    app: app_name(app),
                    executor,
                });
            }
        }
    }

    fn drain_worker(&mut self, id: u64) -> Result<(), String> {
        let w = self
            .workers
            .get_mut(&id)
            .ok_or_else(|| format!("no such worker: {}", worker_name(id)))?;
        w.draining = true;
        tracing::info!(worker = %worker_name(id), "draining worker");
        for ((app, executor), e) in self.executors.iter() {
            if e.worker == id
                && e.is_live()
                && e.state != ExecutorState::Stopping
                && let Some(a) = self.apps.get_mut(app)
            {
                a.decommission.push(*executor);
            }
        }
        Ok(())
    }

    /// Drops the oldest ended applications and executors past [`KEEP_ENDED`].
    fn prune(&mut self) {
        let ended_apps: Vec<u64> = self
            .apps
            .iter()
            .filter(|(_, a)| !matches!(a.state, AppState::Waiting | AppState::Running))
            .map(|(id, _)| *id)
            .collect();
        if ended_apps.len() > KEEP_ENDED {
            for id in &ended_apps[..ended_apps.len() - KEEP_ENDED] {
                self.apps.remove(id);
                self.executors.retain(|(a, _), e| a != id || e.is_live());
            }
        }
        let ended: Vec<(u64, ExecutorId)> = self
            .executors
            .iter()
            .filter(|(_, e)| !e.is_live())
            .map(|(k, _)| *k)
            .collect();
        if ended.len() > KEEP_ENDED {
            for k in &ended[..ended.len() - KEEP_ENDED] {
                self.executors.remove(k);
            }
        }
    }

    fn cores_granted(&self, app: u64) -> usize {
        self.executors
            .iter()
            .filter(|((a, _), e)| *a == app && e.is_live() && e.state != ExecutorState::Stopping)
            .map(|(_, e)| e.cores)
            .sum()
    }

    /// Gives waiting applications executors where workers have room, oldest application
    /// first: spread over workers (the one with the most free cores first) or packed.
    pub(crate) fn schedule(&mut self) {
        let apps: Vec<u64> = self
            .apps
            .iter()
            .filter(|(_, a)| {
                matches!(a.state, AppState::Waiting | AppState::Running)
                    && a.binary_ready
                    && a.failures < self.config.max_executor_failures
            })
            .map(|(id, _)| *id)
            .collect();
        for app in apps {
            loop {
                let granted = self.cores_granted(app);
                let a = &self.apps[&app];
                let want = a
                    .registration
                    .total_cores
                    .map_or(usize::MAX, |t| t.saturating_sub(granted));
                let fixed = a.registration.executor_cores;
                let memory = a.registration.executor_memory_bytes;
                if want == 0 || fixed.is_some_and(|c| c > want) {
                    break;
                }
                let has_executor_on = |worker: u64| {
                    self.executors
                        .iter()
                        .any(|((a, _), e)| *a == app && e.worker == worker && e.is_live())
                };
                let candidates = self.workers.iter().filter(|(id, w)| {
                    let free = w.registration.cores - w.cores_used;
                    !w.draining
                        && free >= fixed.unwrap_or(1)
                        && w.registration.memory_bytes - w.memory_used >= memory
                        // Without a fixed size, one executor per worker takes its free cores.
                        && (fixed.is_some() || !has_executor_on(**id))
                });
                let free_of = |w: &WorkerEntry| w.registration.cores - w.cores_used;
                let chosen = if self.config.spread {
                    // Most free cores first; the lowest id among equals.
                    candidates.max_by(|(ia, a), (ib, b)| free_of(a).cmp(&free_of(b)).then(ib.cmp(ia)))
                } else {
                    candidates.min_by_key(|(id, _)| **id)
                };
                let Some((&worker, w)) = chosen else { break };
                let cores = fixed.unwrap_or_else(|| free_of(w).min(want));
                self.launch(app, worker, cores, memory);
            }
        }
    }

    fn launch(&mut self, app: u64, worker: u64, cores: usize, memory: u64) {
        let a = self.apps.get_mut(&app).expect("scheduled applications exist");
        let executor = ExecutorId(a.next_executor);
        a.next_executor += 1;
        a.state = AppState::Running;
        let order = LaunchExecutor {
            app: app_name(app),
            executor,
            cores,
            memory_bytes: memory,
            driver_address: a.registration.driver_address.clone(),
            secret: a.registration.secret.clone(),
            binary_hash: a.registration.binary_hash.clone(),
            binary_bytes: a.registration.binary_bytes,
        };
        let w = self.workers.get_mut(&worker).expect("chosen workers exist");
        w.cores_used += cores;
        w.memory_used += memory;
        w.orders.push(WorkerCommand::Launch(order));
        tracing::info!(app = %app_name(app), %executor, worker = %worker_name(worker), cores, "launching executor");
        self.executors.insert(
            (app, executor),
            ExecutorEntry {
                worker,
                cores,
                memory,
                pid: None,
                state: ExecutorState::Launching,
            },
        );
    }

    fn waiting_reason(&self, id: u64, a: &AppEntry) -> Option<String> {
        if !matches!(a.state, AppState::Waiting | AppState::Running) {
            return None;
        }
        let granted = self.cores_granted(id);
        if granted > 0 && a.registration.total_cores.is_none_or(|t| granted >= t) {
            return None;
        }
        let need = a.registration.executor_cores.unwrap_or(1);
        let memory = a.registration.executor_memory_bytes;
        let live: Vec<&WorkerEntry> = self.workers.values().filter(|w| !w.draining).collect();
        Some(if !a.binary_ready {
            "the application binary is still being uploaded".into()
        } else if a.failures >= self.config.max_executor_failures {
            format!("{} executors exited unasked; no more are launched", a.failures)
        } else if live.is_empty() {
            "no worker is registered".into()
        } else if let Some(largest) = live.iter().map(|w| w.registration.cores).max()
            && largest < need
        {
            format!("each executor needs {need} cores but the largest worker has {largest}")
        } else if let Some(largest) = live.iter().map(|w| w.registration.memory_bytes).max()
            && largest < memory
        {
            format!("each executor needs {memory} bytes of memory but the largest worker offers {largest}")
        } else if granted == 0 {
            "every worker's cores or memory are taken by other applications".into()
        } else {
            return None;
        })
    }

    /// The status snapshot (`--status`, `/json`).
    pub(crate) fn status(&self) -> MasterStatus {
        let now = Instant::now();
        let workers = self
            .workers
            .iter()
            .map(|(id, w)| {
                let busy = self.executors.values().any(|e| e.worker == *id && e.is_live());
                WorkerStatus {
                    id: worker_name(*id),
                    host: w.registration.host.clone(),
                    pid: w.registration.pid,
                    state: match (w.draining, busy) {
                        (false, _) => "ALIVE",
                        (true, true) => "DRAINING",
                        (true, false) => "DRAINED",
                    }
                    .into(),
                    cores: w.registration.cores,
                    cores_used: w.cores_used,
                    memory_bytes: w.registration.memory_bytes,
                    memory_used_bytes: w.memory_used,
                    last_heartbeat_ms: now.duration_since(w.last_heard).as_millis() as u64,
                }
            })
            .collect();
        let apps = self
            .apps
            .iter()
            .map(|(id, a)| AppStatus {
                id: app_name(*id),
                name: a.registration.name.clone(),
                state: a.state.to_string(),
                submission: a.registration.submission.clone(),
                driver_address: a.registration.driver_address.clone(),
                driver_pid: a.registration.driver_pid,
                executor_cores: a.registration.executor_cores,
                executor_memory_bytes: a.registration.executor_memory_bytes,
                total_cores: a.registration.total_cores,
                cores_granted: self.cores_granted(*id),
                executor_failures: a.failures,
                waiting_reason: self.waiting_reason(*id, a),
                executors: self
                    .executors
                    .iter()
                    .filter(|((app, _), _)| app == id)
                    .map(|((_, executor), e)| ExecutorStatus {
                        id: *executor,
                        worker: worker_name(e.worker),
                        pid: e.pid,
                        cores: e.cores,
                        state: match &e.state {
                            ExecutorState::Launching => "LAUNCHING".into(),
                            ExecutorState::Running => "RUNNING".into(),
                            ExecutorState::Stopping => "STOPPING".into(),
                            ExecutorState::Ended(how) => how.clone(),
                        },
                    })
                    .collect(),
            })
            .collect();
        MasterStatus {
            url: self.url.clone(),
            web_url: self.web_url.clone(),
            workers,
            apps,
        }
    }
}

/// One connection's view of the master service.
#[derive(Clone)]
struct MasterServer {
    state: Arc<Mutex<MasterState>>,
    role: Arc<Mutex<Role>>,
    /// The other end of the connection (fills in `driver_host = auto` drivers' address).
    peer: Option<SocketAddr>,
}

impl MasterServer {
    fn worker(&self, claimed: &str) -> Result<u64, String> {
        let id = parse_id("worker-", claimed)?;
        match *self.role.lock() {
            Role::Worker(w) if w == id => Ok(id),
            _ => Err(format!("this connection is not {claimed}'s")),
        }
    }

    fn app(&self, claimed: &str) -> Result<u64, String> {
        let id = parse_id("app-", claimed)?;
        match *self.role.lock() {
            Role::App(a) if a == id => Ok(id),
            _ => Err(format!("this connection is not the driver of {claimed}")),
        }
    }
}

impl MasterService for MasterServer {
    async fn register_worker(self, _: Context, registration: WorkerRegistration) -> Result<String, String> {
        if !matches!(*self.role.lock(), Role::Unknown) {
            return Err("this connection already registered".into());
        }
        let id = self.state.lock().register_worker(registration)?;
        *self.role.lock() = Role::Worker(id);
        Ok(worker_name(id))
    }

    async fn worker_heartbeat(self, _: Context, worker: String) -> WorkerHeartbeatReply {
        match self.worker(&worker) {
            Ok(id) => self.state.lock().worker_heartbeat(id),
            Err(_) => WorkerHeartbeatReply::Unknown,
        }
    }

    async fn executor_started(self, _: Context, worker: String, app: String, executor: ExecutorId, pid: u32) {
        if let (Ok(w), Ok(a)) = (self.worker(&worker), parse_id("app-", &app)) {
            self.state.lock().executor_started(w, a, executor, pid);
        }
    }

    async fn executor_exited(self, _: Context, worker: String, app: String, executor: ExecutorId, how: String) {
        if let (Ok(w), Ok(a)) = (self.worker(&worker), parse_id("app-", &app)) {
            self.state.lock().executor_exited(w, a, executor, &how);
        }
    }

    async fn fetch_binary(self, _: Context, hash: String, offset: u64, max_bytes: u64) -> Result<ByteBuf, String> {
        if !matches!(*self.role.lock(), Role::Worker(_)) {
            return Err("only registered workers fetch binaries".into());
        }
        if !valid_hash(&hash) {
            return Err(format!("{hash:?} is not a blake3 hash"));
        }
        let path = self.state.lock().binary_path(&hash);
        read_chunk(&path, offset, max_bytes.min(CHUNK_BYTES))
            .await
            .map(ByteBuf::from)
            .map_err(|e| format!("cannot read binary {} on the master: {e}", path.display()))
    }

    async fn register_app(self, _: Context, mut registration: AppRegistration) -> Result<AppRegistered, String> {
        if !matches!(*self.role.lock(), Role::Unknown) {
            return Err("this connection already registered".into());
        }
        if let Some(port) = registration.driver_address.strip_prefix(&format!("{AUTO_HOST}:")) {
            let peer = self
                .peer
                .ok_or("cannot tell the driver's address (driver_host = auto)")?;
            registration.driver_address =
                SocketAddr::new(peer.ip(), port.parse().map_err(|_| "bad driver port")?).to_string();
        }
        let driver_address = registration.driver_address.clone();
        let (id, upload_binary) = self.state.lock().register_app(registration)?;
        *self.role.lock() = Role::App(id);
        Ok(AppRegistered {
            app: app_name(id),
            upload_binary,
            driver_address,
        })
    }

    async fn upload_binary(self, _: Context, app: String, offset: u64, bytes: ByteBuf) -> Result<(), String> {
        let bytes = bytes.into_vec();
        let id = self.app(&app)?;
        let (hash, total, uploaded, dir) = {
            let state = self.state.lock();
            let a = state
                .apps
                .get(&id)
                .ok_or_else(|| format!("no such application: {app}"))?;
            if a.binary_ready {
                return Ok(());
            }
            (
                a.registration.binary_hash.clone(),
                a.registration.binary_bytes,
                a.uploaded,
                state.binaries.clone(),
            )
        };
        if offset != uploaded || offset + bytes.len() as u64 > total {
            return Err(format!(
                "upload of {app}'s binary: got bytes {offset}..{} but expected {uploaded}.. of {total}",
                offset + bytes.len() as u64
            ));
        }
        let part = dir.join(format!("{hash}.{app}.part"));
        append(&part, offset, &bytes)
            .await
            .map_err(|e| format!("cannot write {} on the master: {e}", part.display()))?;
        let done = offset + bytes.len() as u64 == total;
        if done {
            let path = part.clone();
            let got = tokio::task::spawn_blocking(move || crate::build_id::hash_file(&path))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot hash {}: {e}", part.display()))?;
            if got != hash {
                let _ = tokio::fs::remove_file(&part).await;
                if let Some(a) = self.state.lock().apps.get_mut(&id) {
                    a.uploaded = 0;
                }
                return Err(format!(
                    "the uploaded binary of {app} has hash {got}, not the {hash} its driver declared; refused"
                ));
            }
            tokio::fs::rename(&part, dir.join(&hash))
                .await
                .map_err(|e| format!("cannot store {}: {e}", part.display()))?;
        }
        let mut state = self.state.lock();
        if let Some(a) = state.apps.get_mut(&id) {
            a.uploaded = offset + bytes.len() as u64;
            if done {
                tracing::info!(app = %app, bytes = total, "application binary uploaded");
                a.binary_ready = true;
            }
        }
        if done {
            state.schedule();
        }
        Ok(())
    }

    async fn app_heartbeat(self, _: Context, app: String) -> AppHeartbeatReply {
        let id = match self.app(&app) {
            Ok(id) => id,
            Err(e) => {
                return AppHeartbeatReply {
                    state: AppState::Failed(e),
                    decommission: Vec::new(),
                };
            }
        };
        let mut state = self.state.lock();
        match state.apps.get_mut(&id) {
            Some(a) => AppHeartbeatReply {
                state: a.state.clone(),
                decommission: std::mem::take(&mut a.decommission),
            },
            None => AppHeartbeatReply {
                state: AppState::Failed(format!("the master forgot {app}")),
                decommission: Vec::new(),
            },
        }
    }

    async fn executor_stopped(self, _: Context, app: String, executor: ExecutorId) {
        if let Ok(id) = self.app(&app) {
            self.state.lock().executor_stopped(id, executor);
        }
    }

    async fn unregister_app(self, _: Context, app: String) {
        if let Ok(id) = self.app(&app) {
            self.state
                .lock()
                .app_ended(id, AppState::Finished, "its driver stopped");
        }
    }

    async fn status(self, _: Context) -> MasterStatus {
        self.state.lock().status()
    }

    async fn kill_app(self, _: Context, app: String) -> Result<(), String> {
        let id = parse_id("app-", &app)?;
        let mut state = self.state.lock();
        match state.apps.get(&id).map(|a| a.state.clone()) {
            None => Err(format!("no such application: {app}")),
            Some(AppState::Waiting | AppState::Running) => {
                state.app_ended(id, AppState::Killed, "killed on request");
                Ok(())
            }
            Some(other) => Err(format!("{app} is not running (it is {other})")),
        }
    }

    async fn drain_worker(self, _: Context, worker: String) -> Result<(), String> {
        let id = parse_id("worker-", &worker)?;
        self.state.lock().drain_worker(id)
    }
}

async fn read_chunk(path: &Path, offset: u64, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut out = Vec::with_capacity(max as usize);
    file.take(max).read_to_end(&mut out).await?;
    Ok(out)
}

async fn append(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(offset == 0)
        .open(path)
        .await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    file.write_all(bytes).await?;
    file.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(spread: bool) -> MasterState {
        let config = MasterConfig {
            host: "127.0.0.1".into(),
            port: 0,
            web_port: None,
            work_dir: std::env::temp_dir(),
            worker_timeout: Duration::from_secs(5),
            spread,
            max_executor_failures: 3,
        };
        MasterState::new("flint://test".into(), None, config, std::env::temp_dir())
    }

    fn worker(cores: usize) -> WorkerRegistration {
        WorkerRegistration {
            protocol: STANDALONE_PROTOCOL,
            release: release(),
            host: "127.0.0.1".into(),
            cores,
            memory_bytes: 8 << 30,
            pid: 1,
            work_dir: "/tmp".into(),
        }
    }

    fn app(executor_cores: Option<usize>, total: Option<usize>) -> AppRegistration {
        AppRegistration {
            protocol: STANDALONE_PROTOCOL,
            release: release(),
            name: "t".into(),
            submission: None,
            binary_hash: "0".repeat(64),
            binary_bytes: 1,
            executor_cores,
            executor_memory_bytes: 1 << 30,
            total_cores: total,
            driver_address: "127.0.0.1:1".into(),
            secret: "s".into(),
            driver_pid: 1,
        }
    }

    fn ready(s: &mut MasterState, reg: AppRegistration) -> u64 {
        let (id, _) = s.register_app(reg).unwrap();
        s.apps.get_mut(&id).unwrap().binary_ready = true;
        s.schedule();
        id
    }

    fn placement(s: &MasterState, app: u64) -> Vec<(u64, usize)> {
        s.executors
            .iter()
            .filter(|((a, _), e)| *a == app && e.is_live())
            .map(|(_, e)| (e.worker, e.cores))
            .collect()
    }

    #[test]
    fn spread_uses_every_worker_and_pack_fills_one_first() {
        let mut s = state(true);
        for _ in 0..3 {
            s.register_worker(worker(4)).unwrap();
        }
        let a = ready(&mut s, app(Some(1), Some(3)));
        let mut workers: Vec<u64> = placement(&s, a).iter().map(|p| p.0).collect();
        workers.sort();
        assert_eq!(workers, vec![1, 2, 3]);

        let mut s = state(false);
        for _ in 0..3 {
            s.register_worker(worker(4)).unwrap();
        }
        let a = ready(&mut s, app(Some(1), Some(3)));
        assert!(placement(&s, a).iter().all(|p| p.0 == 1));
    }

    #[test]
    fn without_executor_cores_one_executor_per_worker_takes_its_cores() {
        let mut s = state(true);
        s.register_worker(worker(2)).unwrap();
        s.register_worker(worker(3)).unwrap();
        let a = ready(&mut s, app(None, None));
        let mut p = placement(&s, a);
        p.sort();
        assert_eq!(p, vec![(1, 2), (2, 3)]);
        // A worker joining later gets an executor for the running application.
        s.register_worker(worker(1)).unwrap();
        assert_eq!(placement(&s, a).len(), 3);
    }

    #[test]
    fn a_dead_executor_is_replaced_until_the_failure_limit() {
        let mut s = state(true);
        s.register_worker(worker(1)).unwrap();
        let a = ready(&mut s, app(Some(1), None));
        for round in 0..3u64 {
            assert_eq!(placement(&s, a).len(), 1, "round {round}");
            s.executor_exited(1, a, ExecutorId(round), "was killed by signal 9 (SIGKILL)");
        }
        assert!(placement(&s, a).is_empty());
        assert!(matches!(s.apps[&a].state, AppState::Failed(_)), "{}", s.apps[&a].state);
    }

    #[test]
    fn a_lost_worker_moves_executors_and_too_big_apps_say_why() {
        let mut s = state(true);
        s.register_worker(worker(2)).unwrap();
        s.register_worker(worker(2)).unwrap();
        let a = ready(&mut s, app(Some(2), Some(2)));
        let first = placement(&s, a)[0].0;
        s.worker_lost(first, "test");
        let p = placement(&s, a);
        assert_eq!(p.len(), 1);
        assert_ne!(p[0].0, first);
        let big = ready(&mut s, app(Some(64), None));
        let status = s.status();
        let reason = status
            .apps
            .iter()
            .find(|x| x.id == app_name(big))
            .unwrap()
            .waiting_reason
            .clone();
        assert!(reason.unwrap().contains("needs 64 cores"));
    }

    #[test]
    fn workers_and_drivers_of_another_release_are_refused() {
        let mut s = state(true);
        let mut w = worker(1);
        w.release = "0.0.0-other".into();
        let e = s.register_worker(w).unwrap_err();
        assert!(e.contains("mismatched build") && e.contains("0.0.0-other"), "{e}");
        let mut d = app(None, None);
        d.protocol = STANDALONE_PROTOCOL + 1;
        assert!(s.register_app(d).unwrap_err().contains("mismatched build"));
    }

    #[test]
    fn draining_asks_drivers_to_decommission_and_places_nothing_new() {
        let mut s = state(true);
        s.register_worker(worker(1)).unwrap();
        let a = ready(&mut s, app(Some(1), None));
        s.drain_worker(1).unwrap();
        assert_eq!(s.apps[&a].decommission, vec![ExecutorId(0)]);
        s.executor_stopped(a, ExecutorId(0));
        s.executor_exited(1, a, ExecutorId(0), "exited with status 0");
        assert!(placement(&s, a).is_empty());
        assert_eq!(s.apps[&a].failures, 0);
        assert_eq!(s.status().workers[0].state, "DRAINED");
    }
}
