//! The seam between the cluster code and task encoding (`crate::ship`).
//! PLACEHOLDER until task encoding lands: every function fails clearly.

use std::sync::Arc;

use super::BroadcastSource;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result, TaskRef};
use crate::scheduler::{Task, TaskEnd, TaskKind};

fn not_yet() -> EngineError {
    EngineError::Cluster("task shipping is not built yet".into())
}

pub(crate) fn encode_kind(_kind: &TaskKind) -> Result<Vec<u8>> {
    Err(not_yet())
}

pub(crate) fn decode_kind(_bytes: &[u8], _env: &Arc<ExecutorEnv>) -> Result<TaskKind> {
    Err(not_yet())
}

pub(crate) fn run_encoded(_task: Task, _env: Arc<ExecutorEnv>) -> Vec<u8> {
    Vec::new()
}

pub(crate) fn decode_end(_kind: &TaskKind, _tref: TaskRef, _bytes: &[u8]) -> Result<TaskEnd> {
    Err(not_yet())
}

pub(crate) fn install_broadcast_source(_env: &mut ExecutorEnv, _source: Arc<dyn BroadcastSource>) {}
