//! `flint-worker`: offers a machine's cores and memory to a master and runs the executors
//! the master places there.
//!
//! The worker registers, then heartbeats; each answer carries its orders (launch or kill an
//! executor). To launch, it fetches the application binary from the master once (kept under
//! `<work dir>/binaries/<hash>`, checked against the hash the driver declared: a mismatch is
//! refused), starts it in executor mode exactly as `local-cluster` does (environment variables
//! naming the driver, the secret, the executor id and its cores), logs its output to
//! `<work dir>/<app>/executor-<id>.log`, and reports its exit to the master, which replaces it.
//! On SIGTERM or SIGINT the worker kills its executors and exits.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use flint_engine::ExecutorId;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;

use super::protocol::{
    LaunchExecutor, MasterServiceClient, STANDALONE_PROTOCOL, WorkerCommand, WorkerHeartbeatReply, WorkerRegistration,
    release,
};
use crate::error::ClusterError;
use crate::executor::env_keys;
use crate::net::{self, CHUNK_BYTES};

/// How a worker runs (`flint-worker`'s flags).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The master, `flint://host:port`.
    pub master_url: String,
    /// The master's `host:port`.
    pub master_address: String,
    /// Host this worker's executors listen on and advertise; `auto` is the address this
    /// machine reaches the master from (a container's own address in a compose network).
    pub host: String,
    /// Cores offered.
    pub cores: usize,
    /// Memory offered, bytes.
    pub memory_bytes: u64,
    /// Binaries and executor logs.
    pub work_dir: PathBuf,
    /// How often to heartbeat (and pick up orders).
    pub heartbeat_interval: Duration,
}

/// Timeout of calls to the master.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a starting worker waits for its master to answer.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(30);

struct Running {
    pid: u32,
    /// Tells the executor's watcher to kill it.
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The worker's connection to the master, replaced when it reconnects.
#[derive(Clone)]
struct Link {
    client: MasterServiceClient,
    id: String,
    /// The host executors listen on and advertise.
    host: String,
}

struct Worker {
    config: WorkerConfig,
    link: Mutex<Option<Link>>,
    executors: Mutex<HashMap<(String, ExecutorId), Running>>,
    /// Executors killed before their process started (while their binary downloaded).
    cancelled: Mutex<HashSet<(String, ExecutorId)>>,
    /// Becomes true on SIGTERM or SIGINT.
    stop: tokio::sync::watch::Receiver<bool>,
    /// One download of a binary at a time.
    downloads: tokio::sync::Mutex<()>,
}

/// Runs a worker until SIGTERM or SIGINT; `registered` is called with the worker's id each
/// time it registers.
pub fn run(config: WorkerConfig, registered: impl Fn(&str) + Send + 'static) -> Result<(), ClusterError> {
    for dir in [config.work_dir.clone(), config.work_dir.join("binaries")] {
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::Io {
            what: "create the worker's directory",
            path: dir,
            source,
        })?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flint-worker")
        .enable_all()
        .build()
        .map_err(|source| ClusterError::Start {
            what: "start the worker's runtime".into(),
            source,
        })?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        super::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let worker = Arc::new(Worker {
        config,
        link: Mutex::new(None),
        executors: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(HashSet::new()),
        stop,
        downloads: tokio::sync::Mutex::new(()),
    });
    runtime.block_on(async move {
        // The master may still be starting (compose starts both at once): retry a while.
        let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
        let link = loop {
            match worker.connect().await {
                Ok(link) => break link,
                Err(e @ ClusterError::Unreachable { .. }) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %flint_engine::report(&e), "the master is not there yet; retrying");
                    let mut stop = worker.stop.clone();
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        };
        registered(&link.id);
        *worker.link.lock() = Some(link);
        let mut stop = worker.stop.clone();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(worker.config.heartbeat_interval) => {}
            }
            let Some(link) = worker.link.lock().clone() else {
                continue;
            };
            let timeout = (worker.config.heartbeat_interval * 4).max(Duration::from_secs(2));
            match link
                .client
                .worker_heartbeat(net::deadline(timeout), link.id.clone())
                .await
            {
                Ok(WorkerHeartbeatReply::Orders(orders)) => {
                    for order in orders {
                        worker.obey(order);
                    }
                }
                Ok(WorkerHeartbeatReply::Unknown) => {
                    tracing::warn!(worker = %link.id, "the master forgot this worker; registering again");
                    worker.reconnect(&registered).await;
                }
                Err(e) => {
                    tracing::warn!(worker = %link.id, error = %e, master = %worker.config.master_url,
                        "lost the master; reconnecting");
                    worker.reconnect(&registered).await;
                }
            }
        }
        tracing::info!("worker stopping: killing its executors");
        worker.kill_all().await;
        Ok(())
    })
}

impl Worker {
    async fn connect(&self) -> Result<Link, ClusterError> {
        let url = &self.config.master_url;
        let transport = tokio::time::timeout(CALL_TIMEOUT, net::connect(&self.config.master_address))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection timed out",
                ))
            })
            .map_err(|source| ClusterError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let host = if self.config.host == "auto" {
            let local = transport.local_addr().map_err(|source| ClusterError::Unreachable {
                url: url.clone(),
                source,
            })?;
            local.ip().to_string()
        } else {
            self.config.host.clone()
        };
        let client = MasterServiceClient::new(net::client_config(), transport).spawn();
        let registration = WorkerRegistration {
            protocol: STANDALONE_PROTOCOL,
            release: release(),
            host: host.clone(),
            cores: self.config.cores,
            memory_bytes: self.config.memory_bytes,
            pid: std::process::id(),
            work_dir: self.config.work_dir.display().to_string(),
        };
        let id = client
            .register_worker(net::deadline(CALL_TIMEOUT), registration)
            .await
            .map_err(|source| ClusterError::Rpc {
                url: url.clone(),
                what: "the worker's registration",
                source,
            })?
            .map_err(|reason| ClusterError::Refused {
                url: url.clone(),
                what: "this worker".into(),
                reason,
            })?;
        tracing::info!(worker = %id, master = %url, %host, cores = self.config.cores, "registered with the master");
        Ok(Link { client, id, host })
    }

    /// Registers again (every second until it works); the executors of the old registration
    /// are killed, since the master no longer counts them.
    async fn reconnect(&self, registered: &(impl Fn(&str) + Send)) {
        *self.link.lock() = None;
        self.kill_all().await;
        let mut stop = self.stop.clone();
        while !*stop.borrow() {
            match self.connect().await {
                Ok(link) => {
                    registered(&link.id);
                    *self.link.lock() = Some(link);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %flint_engine::report(&e), "cannot register with the master; retrying in 1 s");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    fn obey(self: &Arc<Self>, order: WorkerCommand) {
        match order {
            WorkerCommand::Launch(launch) => {
                let worker = self.clone();
                tokio::spawn(async move { worker.launch(launch).await });
            }
            WorkerCommand::Kill { app, executor } => {
                let mut executors = self.executors.lock();
                match executors.get_mut(&(app.clone(), executor)) {
                    Some(r) => {
                        if let Some(kill) = r.kill.take() {
                            tracing::info!(%app, %executor, pid = r.pid, "killing executor at the master's request");
                            let _ = kill.send(());
                        }
                    }
                    // Not started yet (its binary is still coming): it never will be.
                    None => {
                        self.cancelled.lock().insert((app, executor));
                    }
                }
            }
        }
    }

    async fn report_exit(&self, app: &str, executor: ExecutorId, how: String) {
        let Some(link) = self.link.lock().clone() else { return };
        let _ = link
            .client
            .executor_exited(net::deadline(CALL_TIMEOUT), link.id, app.to_string(), executor, how)
            .await;
    }

    async fn launch(self: Arc<Self>, order: LaunchExecutor) {
        let (app, executor) = (order.app.clone(), order.executor);
        match self.start(&order).await {
            Ok(()) => {}
            Err(why) => {
                tracing::error!(%app, %executor, %why, "cannot start executor");
                self.report_exit(&app, executor, format!("could not start: {why}"))
                    .await;
            }
        }
    }

    async fn start(self: &Arc<Self>, order: &LaunchExecutor) -> Result<(), String> {
        let host = self
            .link
            .lock()
            .as_ref()
            .map(|l| l.host.clone())
            .ok_or("not connected to the master")?;
        let program = self.binary(&order.binary_hash, order.binary_bytes).await?;
        if self.cancelled.lock().remove(&(order.app.clone(), order.executor)) || *self.stop.borrow() {
            return Err("killed before it started".into());
        }
        let app_dir = self.config.work_dir.join(&order.app);
        tokio::fs::create_dir_all(&app_dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", app_dir.display()))?;
        let log_path = app_dir.join(format!("executor-{}.log", order.executor));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;
        let mut child = tokio::process::Command::new(&program)
            .env(env_keys::DRIVER, &order.driver_address)
            .env(env_keys::ID, order.executor.0.to_string())
            .env(env_keys::CORES, order.cores.to_string())
            .env(env_keys::SECRET, &order.secret)
            .env(env_keys::LOCAL_DIR, &app_dir)
            .env(env_keys::HOST, &host)
            .env(env_keys::WORKER_PID, std::process::id().to_string())
            .current_dir(&app_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let pid = child.id().unwrap_or(0);
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
        {
            // Under the executors' lock, as `obey` decides under it whether a kill is early.
            let mut executors = self.executors.lock();
            let key = (order.app.clone(), order.executor);
            let killed_early = self.cancelled.lock().remove(&key);
            let kill = if killed_early {
                let _ = kill_tx.send(());
                None
            } else {
                Some(kill_tx)
            };
            executors.insert(key, Running { pid, kill });
        }
        tracing::info!(app = %order.app, executor = %order.executor, pid, cores = order.cores, "executor started");
        let link = self.link.lock().clone();
        if let Some(link) = link {
            let _ = link
                .client
                .executor_started(
                    net::deadline(CALL_TIMEOUT),
                    link.id,
                    order.app.clone(),
                    order.executor,
                    pid,
                )
                .await;
        }
        let worker = self.clone();
        let (app, executor) = (order.app.clone(), order.executor);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let how = match status {
                Ok(s) => format!("process {pid} {}", crate::local_cluster::describe(s)),
                Err(e) => format!("process {pid} cannot be waited for: {e}"),
            };
            tracing::info!(%app, %executor, %how, "executor ended");
            worker.executors.lock().remove(&(app.clone(), executor));
            remove_executor_dirs(&app_dir, executor).await;
            worker.report_exit(&app, executor, how).await;
        });
        Ok(())
    }

    /// The application binary with `hash`: from the cache, or fetched from the master and
    /// checked.
    async fn binary(&self, hash: &str, bytes: u64) -> Result<PathBuf, String> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hash:?} is not a blake3 hash"));
        }
        let path = self.config.work_dir.join("binaries").join(hash);
        let _one_at_a_time = self.downloads.lock().await;
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(path);
        }
        let link = self.link.lock().clone().ok_or("not connected to the master")?;
        let part = path.with_extension("part");
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        let mut offset = 0u64;
        while offset < bytes {
            let chunk = link
                .client
                .fetch_binary(net::deadline(CALL_TIMEOUT), hash.to_string(), offset, CHUNK_BYTES)
                .await
                .map_err(|e| format!("cannot fetch the binary from the master: {e}"))??;
            if chunk.is_empty() {
                return Err(format!(
                    "the master's binary {hash} ended after {offset} of {bytes} bytes"
                ));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
            offset += chunk.len() as u64;
        }
        file.flush()
            .await
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        drop(file);
        let check = part.clone();
        let got = tokio::task::spawn_blocking(move || crate::build_id::hash_file(&check))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot hash {}: {e}", part.display()))?;
        if got != hash {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(format!(
                "the binary fetched from the master has hash {got}, not the {hash} the application declared; \
                 refusing to run it"
            ));
        }
        tokio::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| format!("cannot make {} executable: {e}", part.display()))?;
        tokio::fs::rename(&part, &path)
            .await
            .map_err(|e| format!("cannot store {}: {e}", path.display()))?;
        tracing::info!(binary = %&hash[..16], bytes, path = %path.display(), "application binary fetched and verified");
        Ok(path)
    }

    /// Kills every executor and waits (up to 10 s) until their watchers saw them exit.
    async fn kill_all(&self) {
        for r in self.executors.lock().values_mut() {
            if let Some(kill) = r.kill.take() {
                let _ = kill.send(());
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.executors.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Deletes the files an executor left in its application's directory (a killed executor
/// cannot); the log stays.
async fn remove_executor_dirs(app_dir: &Path, executor: ExecutorId) {
    let prefix = format!("executor-{executor}-");
    let Ok(mut entries) = tokio::fs::read_dir(app_dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().starts_with(&prefix) && entry.file_type().await.is_ok_and(|t| t.is_dir())
        {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}
