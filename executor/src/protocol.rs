//! The driver and executor services (tarpc) and what they exchange.
//!
//! Both directions start with a [`Hello`]: protocol version, build hash and the application's
//! secret. A connection that has not said hello successfully gets nothing but a refusal, so a
//! stray client (or garbage on the port) can neither run code nor read shuffle files.

use flint_engine::cluster::{ExecutorInfo, ExecutorSettings, PROTOCOL_VERSION, ShuffleChunk, ShuffleChunkRequest};
use flint_engine::{BroadcastId, ExecutorId, ShuffleId};
use serde::{Deserialize, Serialize};

use crate::build_id;

/// The handshake both sides check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// Build hash of the sender's executable.
    pub build: String,
    /// The sender's executable (for messages).
    pub executable: String,
    /// The application's shared secret.
    pub secret: String,
}

impl Hello {
    /// This process's hello for an application with `secret`.
    pub fn new(secret: &str) -> Self {
        let id = build_id::current();
        Hello {
            protocol: PROTOCOL_VERSION,
            build: id.hash.clone(),
            executable: id.executable.display().to_string(),
            secret: secret.to_string(),
        }
    }

    /// Checks a peer's hello against this process; the error says what differs, naming both
    /// executables and hashes.
    pub fn check(&self, peer: &Hello, peer_role: &str) -> Result<(), String> {
        if peer.secret != self.secret {
            return Err(format!("{peer_role} presented the wrong application secret"));
        }
        if peer.protocol != self.protocol {
            return Err(format!(
                "{peer_role} speaks protocol {} but this process speaks {}",
                peer.protocol, self.protocol
            ));
        }
        if peer.build != self.build {
            return Err(format!(
                "mismatched binary: {peer_role} runs {} (build {}) but this process runs {} (build {}); \
                 executors must run the same build as the driver",
                peer.executable,
                short(&peer.build),
                self.executable,
                short(&self.build)
            ));
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    &hash[..16.min(hash.len())]
}

/// An executor's registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registration {
    /// Handshake.
    pub hello: Hello,
    /// Who it is and where its service listens.
    pub info: ExecutorInfo,
}

/// A finished task's result: small ones inline, large ones kept on the executor to be fetched.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskResult {
    /// The encoded task end.
    Inline(Vec<u8>),
    /// The encoded task end is this long and waits on the executor (`fetch_result_chunk`).
    Stored {
        /// Its length.
        bytes: u64,
    },
}

/// The driver's service, called by executors.
#[tarpc::service]
pub trait DriverService {
    /// Registers an executor (first call on a connection); returns its settings.
    async fn register(registration: Registration) -> Result<ExecutorSettings, String>;
    /// The executor is ready for tasks.
    async fn ready(executor: ExecutorId) -> Result<(), String>;
    /// Keeps the executor alive; false means the driver forgot it (it should exit).
    async fn heartbeat(executor: ExecutorId) -> bool;
    /// A task ended.
    async fn task_finished(executor: ExecutorId, task_id: u64, result: TaskResult) -> Result<(), String>;
    /// The encoded value of a broadcast variable.
    async fn fetch_broadcast(id: BroadcastId) -> Result<Vec<u8>, String>;
}

/// An executor's service, called by the driver and by other executors.
#[tarpc::service]
pub trait ExecutorService {
    /// Handshake (first call on a connection).
    async fn hello(hello: Hello) -> Result<(), String>;
    /// Runs a task (returns once it is queued).
    async fn launch(task_id: u64, envelope: Vec<u8>) -> Result<(), String>;
    /// Stops a running task.
    async fn kill(task_id: u64) -> Result<(), String>;
    /// Part of a stored task result.
    async fn fetch_result_chunk(task_id: u64, offset: u64, max_bytes: u64) -> Result<Vec<u8>, String>;
    /// Forgets a stored task result.
    async fn release_result(task_id: u64) -> Result<(), String>;
    /// Part of a block of one of this executor's map outputs.
    async fn fetch_shuffle_chunk(request: ShuffleChunkRequest) -> Result<ShuffleChunk, String>;
    /// Deletes a shuffle's files.
    async fn remove_shuffle(shuffle: ShuffleId) -> Result<(), String>;
    /// Exits the process.
    async fn stop() -> Result<(), String>;
}
