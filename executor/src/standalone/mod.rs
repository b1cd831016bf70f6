//! A standalone cluster, as Spark's: a master, workers, and `flint-submit`.
//!
//! ```text
//!  flint-submit ──runs──► driver (the application, client mode)
//!      │ status/kill          │ register_app, upload binary, app_heartbeat
//!      ▼                      ▼
//!  flint-master ◄── register_worker, worker_heartbeat (answers: launch/kill orders),
//!      ▲            executor_started/exited, fetch_binary ── flint-worker (one per machine)
//!      │                                                          │ spawns, watches
//!  GET /json (status page)                                        ▼
//!                                   executor = the application binary in executor mode,
//!                                   connected to the driver exactly as in local-cluster
//! ```
//!
//! - [`master`]: the master daemon and its one state struct (workers, applications,
//!   executors), which also answers `--status` and `GET /json`;
//! - [`worker`]: the worker daemon;
//! - `app`: the driver's launcher for `flint://` masters;
//! - [`protocol`]: the master's tarpc service and messages; `status_page`: `GET /json`;
//! - this module: what `flint-submit` does ([`submit`], [`status`], [`kill`], [`drain`]).

mod app;
pub mod master;
pub mod protocol;
mod status_page;
pub mod worker;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use app::{SUBMISSION_ENV, StandaloneLauncher};
use protocol::{MasterServiceClient, MasterStatus};

use crate::error::ClusterError;
use crate::net;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves on SIGTERM or SIGINT (daemons stop cleanly, so `docker compose down` is quick).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// A master URL parsed: `flint://host:port` and its `host:port`.
#[derive(Clone, Debug)]
pub struct MasterUrl {
    /// `flint://host:port`.
    pub url: String,
    /// `host:port` to connect to.
    pub address: String,
}

impl MasterUrl {
    /// Parses `flint://HOST:PORT`.
    pub fn parse(url: &str) -> Result<MasterUrl, ClusterError> {
        match flint_engine::Master::parse(url) {
            Ok(flint_engine::Master::Standalone { host, port }) => Ok(MasterUrl {
                url: flint_engine::Master::Standalone {
                    host: host.clone(),
                    port,
                }
                .url(),
                address: if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                },
            }),
            _ => Err(ClusterError::Usage(format!(
                "bad master URL {url:?}: expected flint://HOST:PORT, e.g. flint://127.0.0.1:7077"
            ))),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClusterError::Start {
            what: "start a runtime".into(),
            source,
        })
}

async fn connect(master: &MasterUrl) -> Result<MasterServiceClient, ClusterError> {
    let transport = tokio::time::timeout(CALL_TIMEOUT, net::connect(&master.address))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        })
        .map_err(|source| ClusterError::Unreachable {
            url: master.url.clone(),
            source,
        })?;
    Ok(MasterServiceClient::new(net::client_config(), transport).spawn())
}

async fn fetch_status(client: &MasterServiceClient, master: &MasterUrl) -> Result<MasterStatus, ClusterError> {
    client
        .status(net::deadline(CALL_TIMEOUT))
        .await
        .map_err(|source| ClusterError::Rpc {
            url: master.url.clone(),
            what: "a status request",
            source,
        })
}

/// Everything the master at `master` knows.
pub fn status(master: &MasterUrl) -> Result<MasterStatus, ClusterError> {
    runtime()?.block_on(async {
        let client = connect(master).await?;
        fetch_status(&client, master).await
    })
}

/// Kills application `app` (`app-0001`).
pub fn kill(master: &MasterUrl, app: &str) -> Result<(), ClusterError> {
    runtime()?.block_on(async {
        let client = connect(master).await?;
        client
            .kill_app(net::deadline(CALL_TIMEOUT), app.to_string())
            .await
            .map_err(|source| ClusterError::Rpc {
                url: master.url.clone(),
                what: "a kill request",
                source,
            })?
            .map_err(|reason| ClusterError::Refused {
                url: master.url.clone(),
                what: format!("to kill {app}"),
                reason,
            })
    })
}

/// Drains worker `worker` (`worker-3`).
pub fn drain(master: &MasterUrl, worker: &str) -> Result<(), ClusterError> {
    runtime()?.block_on(async {
        let client = connect(master).await?;
        client
            .drain_worker(net::deadline(CALL_TIMEOUT), worker.to_string())
            .await
            .map_err(|source| ClusterError::Rpc {
                url: master.url.clone(),
                what: "a drain request",
                source,
            })?
            .map_err(|reason| ClusterError::Refused {
                url: master.url.clone(),
                what: format!("to drain {worker}"),
                reason,
            })
    })
}

/// An application to run as a driver in client mode.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The master.
    pub master: MasterUrl,
    /// The application binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<std::ffi::OsString>,
    /// Extra environment for the driver (settings as `FLINT_*` variables).
    pub env: Vec<(String, String)>,
    /// The driver must register with the master within this long.
    pub register_timeout: Duration,
}

/// Runs a driver program in client mode against `submission.master` (its output goes to
/// this process's stdout and stderr) and returns its exit code. Fails if the master cannot be
/// reached, or if the program ends or runs past the deadline without registering an
/// application (not a flint program).
pub fn submit(submission: Submission, on_registered: impl Fn(&str)) -> Result<i32, ClusterError> {
    let master = &submission.master;
    let program = &submission.program;
    let meta = std::fs::metadata(program).map_err(|source| ClusterError::Io {
        what: "read the application binary",
        path: program.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ClusterError::Usage(format!(
            "{} is not a file (expected an application binary)",
            program.display()
        )));
    }
    let token = format!("{:032x}", rand::random::<u128>());
    runtime()?.block_on(async {
        let client = connect(master).await?;
        // Also proves that a flint master (not something else) listens there.
        fetch_status(&client, master).await?;
        let mut child = tokio::process::Command::new(program)
            .args(&submission.args)
            .envs(submission.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("FLINT_MASTER", &master.url)
            .env(SUBMISSION_ENV, &token)
            .stdin(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ClusterError::Io {
                what: "run",
                path: program.clone(),
                source,
            })?;
        let deadline = Instant::now() + submission.register_timeout;
        let signal = shutdown_signal();
        tokio::pin!(signal);
        // Until the driver registers: watch for it, for its exit, and for the deadline.
        loop {
            let status = fetch_status(&client, master).await?;
            if let Some(app) = status
                .apps
                .iter()
                .find(|a| a.submission.as_deref() == Some(token.as_str()))
            {
                on_registered(&app.id);
                break;
            }
            if let Some(exit) = child.try_wait().map_err(|source| ClusterError::Io {
                what: "wait for",
                path: program.clone(),
                source,
            })? {
                return Err(ClusterError::NotAFlintProgram {
                    program: program.clone(),
                    how: crate::local_cluster::describe(exit),
                    url: master.url.clone(),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(ClusterError::NeverRegistered {
                    program: program.clone(),
                    url: master.url.clone(),
                    seconds: submission.register_timeout.as_secs(),
                });
            }
            tokio::select! {
                _ = &mut signal => {
                    let _ = child.kill().await;
                    return Ok(130);
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let status = tokio::select! {
            status = child.wait() => status,
            _ = &mut signal => {
                // Stopping flint-submit stops the driver (and so the application).
                let _ = child.start_kill();
                child.wait().await
            }
        }
        .map_err(|source| ClusterError::Io {
            what: "wait for",
            path: program.clone(),
            source,
        })?;
        Ok(exit_code(status))
    })
}

/// A shell's view of an exit status: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
