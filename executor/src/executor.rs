//! An executor process: the driver program started in executor mode.
//!
//! It serves its executor service (tasks from the driver, shuffle blocks to other executors),
//! registers with the driver (handshake: protocol, build hash, secret), runs tasks on `cores`
//! threads, heartbeats, and exits when the driver is gone or says so: an executor never
//! outlives its driver by more than the heartbeat timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use flint_engine::cluster::{
    BlockFetcher, BroadcastSource, ExecutorInfo, ExecutorRuntime, ShuffleChunk, ShuffleChunkRequest,
};
use flint_engine::{BroadcastId, EngineError, ExecutorId, ShuffleId};
use flint_shuffle::MapOutputFiles;
use futures::StreamExt;
use parking_lot::Mutex;
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};

use crate::net::{self, CHUNK_BYTES, INLINE_RESULT_BYTES};
use crate::protocol::{DriverServiceClient, ExecutorService, ExecutorServiceClient, Hello, Registration, TaskResult};

/// Environment variables through which a launcher starts a process as an executor.
pub mod env_keys {
    /// `host:port` of the driver's service; its presence means "run as an executor".
    pub const DRIVER: &str = "FLINT_EXECUTOR_DRIVER";
    /// The executor's id.
    pub const ID: &str = "FLINT_EXECUTOR_ID";
    /// Task slots.
    pub const CORES: &str = "FLINT_EXECUTOR_CORES";
    /// The application's secret (handshakes).
    pub const SECRET: &str = "FLINT_APP_SECRET";
    /// Directory for the executor's files.
    pub const LOCAL_DIR: &str = "FLINT_EXECUTOR_LOCAL_DIR";
    /// Host (name or address) the executor listens on and advertises; default `127.0.0.1`.
    pub const HOST: &str = "FLINT_EXECUTOR_HOST";
    /// Process id of the standalone worker that started the executor: it exits when that
    /// process is gone (as Spark's worker watcher), so a dead worker's executors die too.
    pub const WORKER_PID: &str = "FLINT_EXECUTOR_WORKER_PID";
}

/// Timeout of calls between executors and to the driver.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How this process was asked to run as an executor.
#[derive(Clone, Debug)]
pub struct ExecutorArgs {
    driver: String,
    id: ExecutorId,
    cores: usize,
    secret: String,
    local_dir: PathBuf,
    host: String,
    worker_pid: Option<u32>,
}

impl ExecutorArgs {
    /// Reads the launcher's environment variables; `None` when this process is not an executor.
    pub fn from_env() -> Option<Result<ExecutorArgs, String>> {
        let driver = std::env::var(env_keys::DRIVER).ok()?;
        let get = |key: &str| std::env::var(key).map_err(|_| format!("{key} is not set"));
        let parse = || -> Result<ExecutorArgs, String> {
            Ok(ExecutorArgs {
                driver,
                id: ExecutorId(
                    get(env_keys::ID)?
                        .parse()
                        .map_err(|e| format!("{}: {e}", env_keys::ID))?,
                ),
                cores: get(env_keys::CORES)?
                    .parse()
                    .map_err(|e| format!("{}: {e}", env_keys::CORES))?,
                secret: get(env_keys::SECRET)?,
                local_dir: PathBuf::from(
                    get(env_keys::LOCAL_DIR).unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
                ),
                host: get(env_keys::HOST).unwrap_or_else(|_| "127.0.0.1".into()),
                worker_pid: match std::env::var(env_keys::WORKER_PID) {
                    Ok(pid) => Some(pid.parse().map_err(|e| format!("{}: {e}", env_keys::WORKER_PID))?),
                    Err(_) => None,
                },
            })
        };
        Some(parse())
    }
}

/// Runs this process as an executor until the driver is gone; returns the exit status.
pub fn run(args: ExecutorArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flint-executor-net")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flint executor {}: cannot start its network runtime: {e}", args.id);
            return 2;
        }
    };
    match runtime.block_on(serve(args.clone(), runtime.handle().clone())) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("flint executor {}: {message}", args.id);
            tracing::error!(executor = %args.id, %message, "executor stopped");
            3
        }
    }
}

/// What the executor's service needs; the runtime exists once registration is done.
struct Shared {
    args: ExecutorArgs,
    hello: Hello,
    runtime: OnceLock<Arc<ExecutorRuntime>>,
    tasks: Sender<(u64, Vec<u8>)>,
    /// Large task results waiting for the driver to fetch them.
    results: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    exit: tokio::sync::mpsc::UnboundedSender<i32>,
}

async fn serve(args: ExecutorArgs, handle: tokio::runtime::Handle) -> Result<i32, String> {
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    let (task_tx, task_rx) = unbounded::<(u64, Vec<u8>)>();
    let shared = Arc::new(Shared {
        hello: Hello::new(&args.secret),
        args: args.clone(),
        runtime: OnceLock::new(),
        tasks: task_tx,
        results: Mutex::new(HashMap::new()),
        exit: exit_tx,
    });
    let listen: SocketAddr = tokio::net::lookup_host((args.host.as_str(), 0))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve this executor's host {}", args.host))?;
    let (address, incoming) = net::listen(listen)
        .await
        .map_err(|e| format!("cannot listen for tasks: {e}"))?;
    let serving = shared.clone();
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        while let Some(transport) = incoming.next().await {
            let server = ExecutorServer {
                shared: serving.clone(),
                greeted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            };
            tokio::spawn(BaseChannel::with_defaults(transport).execute(server.serve()).for_each(
                |response| async move {
                    tokio::spawn(response);
                },
            ));
        }
    });

    // Register: the driver checks the handshake and connects back to this service.
    let transport = net::connect(&args.driver)
        .await
        .map_err(|e| format!("cannot connect to the driver at {}: {e}", args.driver))?;
    let driver = DriverServiceClient::new(net::client_config(), transport).spawn();
    let info = ExecutorInfo {
        id: args.id,
        host: args.host.clone(),
        pid: std::process::id(),
        cores: args.cores,
        address: address.to_string(),
    };
    let registration = Registration {
        hello: shared.hello.clone(),
        info,
    };
    let settings = driver
        .register(net::deadline(CALL_TIMEOUT), registration)
        .await
        .map_err(|e| format!("cannot register with the driver: {e}"))?
        .map_err(|refusal| format!("the driver refused this executor: {refusal}"))?;

    let fetcher = Arc::new(Fetcher {
        handle: handle.clone(),
        hello: shared.hello.clone(),
        clients: tokio::sync::Mutex::new(HashMap::new()),
    });
    let broadcasts = Arc::new(DriverBroadcasts {
        handle: handle.clone(),
        driver: driver.clone(),
    });
    let runtime = ExecutorRuntime::new(args.id, &settings, &args.local_dir, fetcher, broadcasts)
        .map_err(|e| format!("cannot set up: {}", flint_engine::report(&e)))?;
    let runtime = Arc::new(runtime);
    let _ = shared.runtime.set(runtime.clone());
    for i in 0..args.cores {
        let rx = task_rx.clone();
        let runtime = runtime.clone();
        let shared = shared.clone();
        let driver = driver.clone();
        let handle = handle.clone();
        std::thread::Builder::new()
            .name(format!("flint-task-{i}"))
            .spawn(move || task_loop(rx, runtime, shared, driver, handle))
            .map_err(|e| format!("cannot start task threads: {e}"))?;
    }
    driver
        .ready(net::deadline(CALL_TIMEOUT), args.id)
        .await
        .map_err(|e| format!("cannot tell the driver it is ready: {e}"))??;
    tracing::info!(executor = %args.id, %address, cores = args.cores, "executor ready");

    // Heartbeats; the driver's silence for the timeout, or its connection closing, ends us.
    let interval = settings.heartbeat_interval;
    let timeout = settings.heartbeat_timeout;
    let mut last_ok = Instant::now();
    let code = loop {
        tokio::select! {
            code = exit_rx.recv() => break code.unwrap_or(0),
            _ = tokio::time::sleep(interval) => {}
        }
        if let Some(pid) = args.worker_pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            tracing::warn!(executor = %args.id, worker_pid = pid, "the worker that started this executor is gone; exiting");
            break 0;
        }
        match driver
            .heartbeat(net::deadline(interval.max(Duration::from_millis(200)) * 2), args.id)
            .await
        {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                tracing::warn!(executor = %args.id, "the driver no longer knows this executor; exiting");
                break 0;
            }
            Err(tarpc::client::RpcError::Shutdown) => {
                tracing::info!(executor = %args.id, "the driver's connection closed; exiting");
                break 0;
            }
            Err(e) => {
                if last_ok.elapsed() > timeout {
                    tracing::warn!(executor = %args.id, error = %e, "no answer from the driver within the heartbeat timeout; exiting");
                    break 0;
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(runtime.local_dir());
    Ok(code)
}

fn task_loop(
    rx: Receiver<(u64, Vec<u8>)>,
    runtime: Arc<ExecutorRuntime>,
    shared: Arc<Shared>,
    driver: DriverServiceClient,
    handle: tokio::runtime::Handle,
) {
    while let Ok((task_id, envelope)) = rx.recv() {
        let end = runtime.run_task(task_id, &envelope);
        let result = if end.len() <= INLINE_RESULT_BYTES {
            TaskResult::Inline(end)
        } else {
            let bytes = end.len() as u64;
            shared.results.lock().insert(task_id, Arc::new(end));
            TaskResult::Stored { bytes }
        };
        let sent = handle.block_on(driver.task_finished(net::deadline(CALL_TIMEOUT), runtime.id(), task_id, result));
        if let Err(e) = sent {
            tracing::warn!(executor = %runtime.id(), task_id, error = %e, "cannot report a task end to the driver");
            if matches!(e, tarpc::client::RpcError::Shutdown) {
                let _ = shared.exit.send(0);
                return;
            }
        }
    }
}

/// One connection's view of the executor service.
#[derive(Clone)]
struct ExecutorServer {
    shared: Arc<Shared>,
    greeted: Arc<std::sync::atomic::AtomicBool>,
}

impl ExecutorServer {
    fn check(&self) -> Result<&Arc<ExecutorRuntime>, String> {
        if !self.greeted.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("say hello first".into());
        }
        self.shared
            .runtime
            .get()
            .ok_or_else(|| "the executor is still starting".to_string())
    }
}

impl ExecutorService for ExecutorServer {
    async fn hello(self, _: Context, hello: Hello) -> Result<(), String> {
        match self.shared.hello.check(&hello, "the caller") {
            Ok(()) => {
                self.greeted.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(refusal) => {
                tracing::error!(executor = %self.shared.args.id, %refusal, "refused a connection");
                Err(refusal)
            }
        }
    }

    async fn launch(self, _: Context, task_id: u64, envelope: Vec<u8>) -> Result<(), String> {
        self.check()?;
        self.shared
            .tasks
            .send((task_id, envelope))
            .map_err(|_| "the executor is stopping".to_string())
    }

    async fn kill(self, _: Context, task_id: u64) -> Result<(), String> {
        self.check()?.kill_task(task_id);
        Ok(())
    }

    async fn fetch_result_chunk(
        self,
        _: Context,
        task_id: u64,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Vec<u8>, String> {
        self.check()?;
        let result = self
            .shared
            .results
            .lock()
            .get(&task_id)
            .cloned()
            .ok_or_else(|| format!("no stored result of task {task_id}"))?;
        let start = (offset as usize).min(result.len());
        let end = (start + max_bytes.min(CHUNK_BYTES) as usize).min(result.len());
        Ok(result[start..end].to_vec())
    }

    async fn release_result(self, _: Context, task_id: u64) -> Result<(), String> {
        self.check()?;
        self.shared.results.lock().remove(&task_id);
        Ok(())
    }

    async fn fetch_shuffle_chunk(self, _: Context, request: ShuffleChunkRequest) -> Result<ShuffleChunk, String> {
        let runtime = self.check()?.clone();
        tokio::task::spawn_blocking(move || {
            runtime
                .read_shuffle_chunk(&request)
                .map_err(|e| flint_engine::report(&e))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn remove_shuffle(self, _: Context, shuffle: ShuffleId) -> Result<(), String> {
        let runtime = self.check()?.clone();
        tokio::task::spawn_blocking(move || runtime.remove_shuffle(shuffle))
            .await
            .map_err(|e| e.to_string())
    }

    async fn stop(self, _: Context) -> Result<(), String> {
        self.check()?;
        tracing::info!(executor = %self.shared.args.id, "stopping at the driver's request");
        let _ = self.shared.exit.send(0);
        Ok(())
    }
}

/// Fetches shuffle blocks from other executors, one connection per peer, chunk by chunk:
/// at most one chunk per fetching task is in flight.
struct Fetcher {
    handle: tokio::runtime::Handle,
    hello: Hello,
    clients: tokio::sync::Mutex<HashMap<String, ExecutorServiceClient>>,
}

impl Fetcher {
    async fn client(&self, address: &str) -> Result<ExecutorServiceClient, String> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let transport = net::connect(address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let client = ExecutorServiceClient::new(net::client_config(), transport).spawn();
        client
            .hello(net::deadline(CALL_TIMEOUT), self.hello.clone())
            .await
            .map_err(|e| format!("handshake failed: {e}"))??;
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }

    async fn fetch(&self, address: &str, files: &MapOutputFiles, reduce_id: usize) -> Result<Vec<u8>, String> {
        let client = self.client(address).await?;
        let mut block = Vec::new();
        loop {
            let request = ShuffleChunkRequest {
                data: files.data.clone(),
                index: files.index.clone(),
                reduce_id: reduce_id as u64,
                offset: block.len() as u64,
                max_bytes: CHUNK_BYTES,
            };
            let chunk = match client.fetch_shuffle_chunk(net::deadline(CALL_TIMEOUT), request).await {
                Ok(r) => r?,
                Err(e) => {
                    // A broken connection is not reused.
                    self.clients.lock().await.remove(address);
                    return Err(e.to_string());
                }
            };
            if block.is_empty() {
                block.reserve_exact(chunk.block_len as usize);
            }
            block.extend_from_slice(&chunk.bytes);
            if block.len() as u64 >= chunk.block_len {
                return Ok(block);
            }
            if chunk.bytes.is_empty() {
                return Err(format!(
                    "block ended after {} of {} bytes",
                    block.len(),
                    chunk.block_len
                ));
            }
        }
    }
}

impl BlockFetcher for Fetcher {
    fn fetch_block(&self, address: &str, files: &MapOutputFiles, reduce_id: usize) -> Result<Vec<u8>, String> {
        self.handle.block_on(self.fetch(address, files, reduce_id))
    }
}

/// Broadcast values come from the driver.
struct DriverBroadcasts {
    handle: tokio::runtime::Handle,
    driver: DriverServiceClient,
}

impl BroadcastSource for DriverBroadcasts {
    fn fetch(&self, id: BroadcastId) -> flint_engine::Result<Vec<u8>> {
        self.handle
            .block_on(self.driver.fetch_broadcast(net::deadline(CALL_TIMEOUT), id))
            .map_err(|e| EngineError::Cluster(format!("cannot fetch broadcast {id} from the driver: {e}")))?
            .map_err(|e| EngineError::Cluster(format!("broadcast {id}: {e}")))
    }
}
