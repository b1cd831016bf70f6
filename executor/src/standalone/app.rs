//! The driver's side of a `flint://` master: registers the application (uploading its binary
//! when the master lacks it), then lets executors come. They connect to the driver exactly
//! as `local-cluster` executors do, so the engine's cluster backend (placement, heartbeats,
//! executor loss, recomputation) is the same.

use std::sync::Arc;
use std::time::Duration;

use flint_engine::cluster::{ClusterLauncher, DriverHandle, ExecutorTransport};
use flint_engine::{Config, EngineError, ExecutorId, Master, ShuffleId};
use tokio::io::AsyncReadExt;

use super::protocol::{AUTO_HOST, AppRegistration, AppState, MasterServiceClient, STANDALONE_PROTOCOL, release};
use crate::driver::{DriverSide, Transport};
use crate::net::{self, CHUNK_BYTES};

/// The environment variable through which `flint-submit` tags the application it started.
pub const SUBMISSION_ENV: &str = "FLINT_SUBMISSION_ID";

/// How often the driver tells the master it is alive (and learns of kills and drains).
const APP_HEARTBEAT: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Registers applications with a standalone master.
#[derive(Debug, Default)]
pub struct StandaloneLauncher;

fn cluster_error(message: String) -> EngineError {
    EngineError::Cluster(message)
}

impl ClusterLauncher for StandaloneLauncher {
    fn start(&self, config: &Config, driver: DriverHandle) -> flint_engine::Result<Arc<dyn ExecutorTransport>> {
        let Master::Standalone { host, port } = &config.master else {
            return Err(cluster_error(format!(
                "the standalone launcher cannot start {:?}",
                config.master
            )));
        };
        let url = config.master.url();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flint-driver-net")
            .enable_all()
            .build()
            .map_err(|e| cluster_error(format!("cannot start the driver's network runtime: {e}")))?;
        let secret = format!("{:032x}", rand::random::<u128>());
        let settings = config.cluster.clone();
        // `auto`: every interface; the master fills in the address it sees us at.
        let auto = settings.driver_host == "auto";
        let bind = if auto { "0.0.0.0" } else { settings.driver_host.as_str() };
        let side = DriverSide::start(&runtime, driver.clone(), &secret, bind).map_err(|e| {
            cluster_error(format!(
                "cannot listen for executors on {bind} (driver_host {}): {e}",
                settings.driver_host
            ))
        })?;
        let program = std::env::current_exe()
            .map_err(|e| cluster_error(format!("cannot find this program's executable: {e}")))?;
        let build = crate::build_id::current();
        let binary_bytes = std::fs::metadata(&program)
            .map_err(|e| cluster_error(format!("cannot read {}: {e}", program.display())))?
            .len();
        let registration = AppRegistration {
            protocol: STANDALONE_PROTOCOL,
            release: release(),
            name: config.app_name.clone(),
            submission: std::env::var(SUBMISSION_ENV).ok(),
            binary_hash: build.hash.clone(),
            binary_bytes,
            executor_cores: settings.executor_cores,
            executor_memory_bytes: settings.executor_memory_bytes,
            total_cores: settings.total_executor_cores,
            driver_address: if auto {
                format!("{AUTO_HOST}:{}", side.address.port())
            } else {
                side.address.to_string()
            },
            secret,
            driver_pid: std::process::id(),
        };
        let address = format!("{host}:{port}");
        let (client, app, registered_address) = runtime.block_on(async {
            let transport = tokio::time::timeout(CALL_TIMEOUT, net::connect(&address))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connection timed out",
                    ))
                })
                .map_err(|e| cluster_error(format!("cannot reach the master at {url}: {e}")))?;
            let client = MasterServiceClient::new(net::client_config(), transport).spawn();
            let registered = client
                .register_app(net::deadline(CALL_TIMEOUT), registration)
                .await
                .map_err(|e| cluster_error(format!("the master at {url} did not answer the registration: {e}")))?
                .map_err(|e| cluster_error(format!("the master at {url} refused the application: {e}")))?;
            if registered.upload_binary {
                upload(&client, &registered.app, &program, binary_bytes)
                    .await
                    .map_err(|e| {
                        cluster_error(format!(
                            "cannot upload {} to the master at {url}: {e}",
                            program.display()
                        ))
                    })?;
            }
            Ok::<_, EngineError>((client, registered.app, registered.driver_address))
        })?;
        tracing::info!(%app, master = %url, driver = %registered_address, "application registered with the master");
        runtime.spawn(heartbeat(client.clone(), app.clone(), url, driver));
        Ok(Arc::new(StandaloneTransport {
            master: client,
            app,
            inner: Transport {
                side,
                _runtime: runtime,
            },
        }))
    }
}

async fn upload(client: &MasterServiceClient, app: &str, program: &std::path::Path, bytes: u64) -> Result<(), String> {
    let mut file = tokio::fs::File::open(program).await.map_err(|e| e.to_string())?;
    let mut offset = 0u64;
    while offset < bytes {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES as usize);
        (&mut file)
            .take(CHUNK_BYTES)
            .read_to_end(&mut chunk)
            .await
            .map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            return Err(format!("the file ended after {offset} of {bytes} bytes"));
        }
        let n = chunk.len() as u64;
        client
            .upload_binary(net::deadline(CALL_TIMEOUT), app.to_string(), offset, chunk.into())
            .await
            .map_err(|e| e.to_string())??;
        offset += n;
    }
    tracing::info!(%app, bytes, "application binary uploaded to the master");
    Ok(())
}

/// Tells the master the driver is alive; a killed or failed application gives up (its
/// waiting tasks fail), a drained worker's executors are decommissioned.
async fn heartbeat(client: MasterServiceClient, app: String, url: String, driver: DriverHandle) {
    loop {
        tokio::time::sleep(APP_HEARTBEAT).await;
        match client.app_heartbeat(net::deadline(CALL_TIMEOUT), app.clone()).await {
            Ok(reply) => {
                for executor in reply.decommission {
                    let driver = driver.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = driver.decommission(executor) {
                            tracing::warn!(%executor, error = %e, "cannot decommission executor");
                        }
                    });
                }
                match reply.state {
                    AppState::Killed => {
                        driver.give_up(format!("application {app} was killed through the master at {url}"));
                        return;
                    }
                    AppState::Failed(why) => {
                        driver.give_up(format!("the master at {url} failed application {app}: {why}"));
                        return;
                    }
                    _ => {}
                }
            }
            Err(tarpc::client::RpcError::Shutdown) => {
                tracing::error!(%app, master = %url, "lost the master: no executor can be added or replaced");
                return;
            }
            Err(e) => tracing::warn!(%app, master = %url, error = %e, "the master did not answer a heartbeat"),
        }
    }
}

/// The local-cluster transport, plus the master for what it decides (executors).
struct StandaloneTransport {
    master: MasterServiceClient,
    app: String,
    inner: Transport,
}

impl ExecutorTransport for StandaloneTransport {
    fn launch(&self, executor: ExecutorId, task_id: u64, envelope: Vec<u8>) {
        self.inner.launch(executor, task_id, envelope)
    }

    fn kill_task(&self, executor: ExecutorId, task_id: u64) {
        self.inner.kill_task(executor, task_id)
    }

    fn remove_shuffle(&self, shuffle: ShuffleId) {
        self.inner.remove_shuffle(shuffle)
    }

    fn request_executors(&self, _n: usize) -> flint_engine::Result<()> {
        Err(cluster_error(format!(
            "the master allocates the executors of {} (set total_executor_cores and executor_cores; \
             workers that join get executors)",
            self.app
        )))
    }

    fn stop_executor(&self, executor: ExecutorId) {
        self.inner.stop_executor(executor);
        let (master, app) = (self.master.clone(), self.app.clone());
        self.inner.side.runtime.spawn(async move {
            let _ = master
                .executor_stopped(net::deadline(CALL_TIMEOUT), app, executor)
                .await;
        });
    }

    fn shutdown(&self) {
        self.inner.shutdown();
        // Dropping the connection ends the application too; unregistering makes it prompt.
        let (master, app) = (self.master.clone(), self.app.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.inner.side.runtime.spawn(async move {
            let _ = master.unregister_app(net::deadline(Duration::from_secs(2)), app).await;
            let _ = done_tx.send(());
        });
        let _ = done_rx.recv_timeout(Duration::from_secs(2));
    }

    fn driver_address(&self) -> String {
        self.inner.driver_address()
    }
}
