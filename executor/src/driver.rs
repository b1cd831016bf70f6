//! The driver's side of the wire: its service (registrations, heartbeats, task ends,
//! broadcasts) and the [`ExecutorTransport`] the engine's cluster backend launches tasks
//! through.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flint_engine::cluster::{DriverHandle, ExecutorInfo, ExecutorSettings, ExecutorTransport};
use flint_engine::{BroadcastId, ExecutorId, ShuffleId};
use futures::StreamExt;
use parking_lot::Mutex;
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};

use crate::local_cluster::Processes;
use crate::net::{self, CHUNK_BYTES};
use crate::protocol::{DriverService, ExecutorServiceClient, Hello, Registration, TaskResult};

/// Timeout of control calls (launch, kill, stop).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by the driver's service and its transport.
pub(crate) struct DriverSide {
    pub(crate) handle: DriverHandle,
    pub(crate) hello: Hello,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) address: SocketAddr,
    clients: Mutex<HashMap<ExecutorId, ExecutorServiceClient>>,
    /// Executors that registered (the others died before, or were refused).
    registered: Mutex<HashSet<ExecutorId>>,
    /// Registrations waiting for their executor's `ready`.
    pending: Mutex<HashMap<ExecutorId, ExecutorInfo>>,
    pub(crate) processes: Mutex<Option<Arc<Processes>>>,
    pub(crate) shutting_down: AtomicBool,
}

impl DriverSide {
    /// Starts the driver's service on `host` (an address of this machine), any free port.
    pub(crate) fn start(
        runtime: &tokio::runtime::Runtime,
        handle: DriverHandle,
        secret: &str,
        host: &str,
    ) -> std::io::Result<Arc<DriverSide>> {
        let bind = runtime
            .block_on(tokio::net::lookup_host((host, 0)))?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no address for {host}")))?;
        let (address, incoming) = runtime.block_on(net::listen::<tarpc::ClientMessage<_>, tarpc::Response<_>>(bind))?;
        let side = Arc::new(DriverSide {
            handle,
            hello: Hello::new(secret),
            runtime: runtime.handle().clone(),
            address,
            clients: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            processes: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&side);
        runtime.spawn(async move {
            let mut incoming = std::pin::pin!(incoming);
            while let Some(transport) = incoming.next().await {
                let Some(side) = weak.upgrade() else { break };
                let peer = transport.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                let server = DriverServer {
                    side: side.clone(),
                    executor: Arc::new(Mutex::new(None)),
                };
                let executor = server.executor.clone();
                tokio::spawn(async move {
                    BaseChannel::with_defaults(transport)
                        .execute(server.serve())
                        .for_each(|response| async move {
                            tokio::spawn(response);
                        })
                        .await;
                    // The connection is closed (or broke on a bad frame). When the process
                    // died, its exit status is the better reason: wait briefly for it.
                    let id = *executor.lock();
                    match id {
                        Some(id) => {
                            let processes = side.processes.lock().clone();
                            let reason = match processes {
                                Some(p) => {
                                    tokio::task::spawn_blocking(move || p.exit_reason(id, Duration::from_millis(500)))
                                        .await
                                        .ok()
                                        .flatten()
                                }
                                None => None,
                            };
                            let reason = reason.unwrap_or_else(|| "its connection to the driver closed".into());
                            side.executor_gone(id, &reason);
                        }
                        None => tracing::debug!(%peer, "connection without a registered executor closed"),
                    }
                });
            }
        });
        tracing::info!(%address, "driver service listening");
        Ok(side)
    }

    pub(crate) fn registered(&self, id: ExecutorId) -> bool {
        self.registered.lock().contains(&id)
    }

    /// An executor is gone: forget its client and tell the backend.
    pub(crate) fn executor_gone(&self, id: ExecutorId, reason: &str) {
        self.clients.lock().remove(&id);
        if !self.shutting_down.load(Ordering::Relaxed) {
            self.handle.executor_lost(id, reason);
        }
    }

    fn client(&self, id: ExecutorId) -> Option<ExecutorServiceClient> {
        self.clients.lock().get(&id).cloned()
    }

    /// Runs `call` against executor `id`'s client in the background; a failure means the
    /// executor is unreachable, hence lost.
    fn call<F, Fut>(self: &Arc<Self>, id: ExecutorId, what: &'static str, call: F)
    where
        F: FnOnce(ExecutorServiceClient) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Result<(), String>, tarpc::client::RpcError>> + Send,
    {
        let Some(client) = self.client(id) else {
            tracing::debug!(executor = %id, what, "no client for executor (lost)");
            return;
        };
        let side = self.clone();
        self.runtime.spawn(async move {
            match call(client).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => tracing::warn!(executor = %id, what, %refused, "executor refused a request"),
                Err(e) => {
                    if !side.shutting_down.load(Ordering::Relaxed) {
                        side.executor_gone(id, &format!("{what} failed: {e}"));
                    }
                }
            }
        });
    }
}

/// One connection's view of the driver service.
#[derive(Clone)]
struct DriverServer {
    side: Arc<DriverSide>,
    /// The executor that registered on this connection.
    executor: Arc<Mutex<Option<ExecutorId>>>,
}

impl DriverServer {
    fn registered_as(&self, claimed: ExecutorId) -> Result<(), String> {
        match *self.executor.lock() {
            Some(id) if id == claimed => Ok(()),
            Some(id) => Err(format!("this connection belongs to executor {id}, not {claimed}")),
            None => Err("register first".into()),
        }
    }
}

impl DriverService for DriverServer {
    async fn register(self, _: Context, registration: Registration) -> Result<ExecutorSettings, String> {
        let id = registration.info.id;
        if let Err(refusal) = self.side.hello.check(&registration.hello, &format!("executor {id}")) {
            let message = format!("refused executor {id} (pid {}): {refusal}", registration.info.pid);
            self.side.handle.executor_failed_to_start(message.clone());
            return Err(message);
        }
        if self.executor.lock().is_some() {
            return Err("this connection already registered an executor".into());
        }
        // The driver talks to the executor's own service for tasks.
        let transport = net::connect(&registration.info.address)
            .await
            .map_err(|e| format!("cannot connect to executor {id} at {}: {e}", registration.info.address))?;
        let client = ExecutorServiceClient::new(net::client_config(), transport).spawn();
        match client
            .hello(net::deadline(CONTROL_TIMEOUT), self.side.hello.clone())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return Err(format!("executor {id} refused the driver: {refusal}")),
            Err(e) => return Err(format!("cannot greet executor {id}: {e}")),
        }
        *self.executor.lock() = Some(id);
        self.side.clients.lock().insert(id, client);
        self.side.pending.lock().insert(id, registration.info);
        Ok(self.side.handle.executor_settings())
    }

    async fn ready(self, _: Context, executor: ExecutorId) -> Result<(), String> {
        self.registered_as(executor)?;
        let info = self
            .side
            .pending
            .lock()
            .remove(&executor)
            .ok_or_else(|| format!("executor {executor} is ready twice"))?;
        self.side.registered.lock().insert(executor);
        self.side.handle.executor_registered(info).map_err(|e| e.to_string())
    }

    async fn heartbeat(self, _: Context, executor: ExecutorId) -> bool {
        self.registered_as(executor).is_ok() && self.side.handle.heartbeat(executor)
    }

    async fn task_finished(
        self,
        _: Context,
        executor: ExecutorId,
        task_id: u64,
        result: TaskResult,
    ) -> Result<(), String> {
        self.registered_as(executor)?;
        let side = self.side.clone();
        let bytes = match result {
            TaskResult::Inline(bytes) => {
                if !side.handle.admit_result(task_id, bytes.len() as u64) {
                    return Ok(());
                }
                bytes
            }
            TaskResult::Stored { bytes } => {
                let client = side.client(executor).ok_or("executor is lost")?;
                let admitted = side.handle.admit_result(task_id, bytes);
                let fetched = if admitted {
                    Some(fetch_result(&client, task_id, bytes).await)
                } else {
                    None
                };
                let _ = client.release_result(net::deadline(CONTROL_TIMEOUT), task_id).await;
                match fetched {
                    None => return Ok(()),
                    Some(Ok(b)) => b,
                    Some(Err(e)) => {
                        side.executor_gone(executor, &format!("cannot fetch the result of task {task_id}: {e}"));
                        return Ok(());
                    }
                }
            }
        };
        // Decoding a result can take a while: not on the runtime's threads.
        tokio::task::spawn_blocking(move || side.handle.task_finished(executor, task_id, bytes))
            .await
            .map_err(|e| e.to_string())
    }

    async fn fetch_broadcast(self, _: Context, id: BroadcastId) -> Result<Vec<u8>, String> {
        if self.executor.lock().is_none() {
            return Err("register first".into());
        }
        self.side
            .handle
            .broadcast_bytes(id)
            .ok_or_else(|| format!("the driver has no broadcast {id}"))
    }
}

async fn fetch_result(client: &ExecutorServiceClient, task_id: u64, total: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let chunk = client
            .fetch_result_chunk(net::deadline(CONTROL_TIMEOUT), task_id, out.len() as u64, CHUNK_BYTES)
            .await
            .map_err(|e| e.to_string())??;
        if chunk.is_empty() {
            return Err(format!(
                "result of task {task_id} ended after {} of {total} bytes",
                out.len()
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The engine's transport: tasks and control messages to executors.
pub(crate) struct Transport {
    pub(crate) side: Arc<DriverSide>,
    /// Owns the runtime the services run on (dropped last).
    pub(crate) _runtime: tokio::runtime::Runtime,
}

impl ExecutorTransport for Transport {
    fn launch(&self, executor: ExecutorId, task_id: u64, envelope: Vec<u8>) {
        self.side.call(executor, "launching a task", move |c| async move {
            c.launch(net::deadline(CONTROL_TIMEOUT), task_id, envelope).await
        });
    }

    fn kill_task(&self, executor: ExecutorId, task_id: u64) {
        self.side.call(executor, "killing a task", move |c| async move {
            c.kill(net::deadline(CONTROL_TIMEOUT), task_id).await
        });
    }

    fn remove_shuffle(&self, shuffle: ShuffleId) {
        let ids: Vec<ExecutorId> = self.side.clients.lock().keys().copied().collect();
        for id in ids {
            self.side.call(id, "removing a shuffle", move |c| async move {
                c.remove_shuffle(net::deadline(CONTROL_TIMEOUT), shuffle).await
            });
        }
    }

    fn request_executors(&self, n: usize) -> flint_engine::Result<()> {
        let processes = self.side.processes.lock().clone();
        match processes {
            Some(p) => p.spawn_more(n),
            None => Err(flint_engine::EngineError::Cluster(
                "this cluster cannot start executors".into(),
            )),
        }
    }

    fn stop_executor(&self, executor: ExecutorId) {
        if let Some(p) = self.side.processes.lock().clone() {
            p.mark_stopped(executor);
        }
        self.side.call(executor, "stopping an executor", move |c| async move {
            c.stop(net::deadline(CONTROL_TIMEOUT)).await
        });
    }

    fn shutdown(&self) {
        self.side.shutting_down.store(true, Ordering::Relaxed);
        if let Some(p) = self.side.processes.lock().take() {
            p.kill_all();
        }
        self.side.clients.lock().clear();
    }

    fn driver_address(&self) -> String {
        self.side.address.to_string()
    }
}
