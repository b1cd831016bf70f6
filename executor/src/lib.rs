//! # flint-executor
//!
//! Distributed execution for flint: executor processes and the wire between them and the
//! driver. The engine (`flint-engine`) decides *what* runs *where* and survives failures
//! (`flint_engine::cluster`); this crate moves tasks, results and shuffle blocks over TCP with
//! [tarpc](https://docs.rs/tarpc) and starts and watches executor processes.
//!
//! - [`executor`]: an executor process: registers, runs tasks on its cores, serves its shuffle
//!   blocks, heartbeats, and exits when its driver is gone;
//! - `driver`: the driver's service and the transport the engine's cluster backend uses;
//! - `local_cluster`: `local-cluster[E,C]`, E executor processes of this program on loopback;
//! - [`standalone`]: `flint://HOST:PORT` clusters: the master and worker daemons, the
//!   driver's launcher for them, and what `flint-submit` does;
//! - [`error`]: [`ClusterError`], the errors of the standalone daemons and clients;
//! - [`protocol`]: the two tarpc services and the handshake (protocol version, build hash of
//!   the executable, application secret);
//! - [`build_id`]: the build hash; `net`: framing limits.
//!
//! A driver program enters here through `flint::init()`, which calls [`init`]: in a process
//! started as an executor it runs the executor and exits; otherwise it installs the
//! launcher of `local-cluster` and `flint://` masters and returns.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build_id;
mod driver;
pub mod error;
pub mod executor;
mod local_cluster;
mod net;
pub mod protocol;
pub mod standalone;

use std::sync::Arc;

use flint_engine::cluster::{ClusterLauncher, DriverHandle, ExecutorTransport};
use flint_engine::{Config, Master};

pub use error::ClusterError;
pub use local_cluster::LocalClusterLauncher;
pub use standalone::StandaloneLauncher;

/// Starts executors for whichever distributed master a context names.
#[derive(Debug, Default)]
pub struct Launcher;

impl ClusterLauncher for Launcher {
    fn start(&self, config: &Config, driver: DriverHandle) -> flint_engine::Result<Arc<dyn ExecutorTransport>> {
        match config.master {
            Master::Standalone { .. } => StandaloneLauncher.start(config, driver),
            _ => LocalClusterLauncher.start(config, driver),
        }
    }
}

/// Turns this process into an executor if it was started as one (never returns then), and
/// installs the launcher of `local-cluster` and `flint://` masters otherwise.
pub fn init() {
    if let Some(args) = executor::ExecutorArgs::from_env() {
        let code = match args {
            Ok(args) => executor::run(args),
            Err(message) => {
                eprintln!("flint executor: bad launch environment: {message}");
                2
            }
        };
        std::process::exit(code);
    }
    flint_engine::cluster::set_launcher(Arc::new(Launcher));
}
