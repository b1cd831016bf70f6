//! The seam between the cluster code and task encoding (`crate::ship`).

use std::sync::Arc;

use super::BroadcastSource;
use crate::env::ExecutorEnv;
use crate::error::{Result, TaskRef};
use crate::scheduler::{Task, TaskEnd, TaskKind};
use crate::ship::{self, ShipRegistry};

/// A task's work as bytes (driver side).
pub(crate) fn encode_kind(kind: &TaskKind) -> Result<Vec<u8>> {
    ship::encode_task_kind(kind)
}

/// A task's work from bytes (executor side).
pub(crate) fn decode_kind(bytes: &[u8], env: &Arc<ExecutorEnv>) -> Result<TaskKind> {
    ship::decode_task_kind(bytes, env)
}

/// Runs a decoded task and encodes its end (executor side).
pub(crate) fn run_encoded(task: Task, env: Arc<ExecutorEnv>) -> Result<Vec<u8>> {
    let end = ship::run_decoded_task(&task.kind, task.tref, task.killed, env);
    ship::encode_task_end(&end)
}

/// A task end from an executor's bytes (driver side); `kind` is what was launched.
pub(crate) fn decode_end(kind: &TaskKind, tref: TaskRef, bytes: &[u8], registry: &ShipRegistry) -> Result<TaskEnd> {
    let end = ship::decode_remote_task_end(bytes)?;
    Ok(ship::decode_task_end(tref, kind, end, registry))
}

/// Broadcast values this executor has not seen come from `source` (the driver).
pub(crate) fn install_broadcast_source(env: &mut ExecutorEnv, source: Arc<dyn BroadcastSource>) {
    env.broadcasts.set_source(Arc::new(move |id| source.fetch(id)));
}
