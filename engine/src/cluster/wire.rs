//! What travels between the driver's backend and an executor's runtime, inside the transport's
//! messages. Encoded with bincode; the protocol version in the handshake covers these shapes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result, TaskFailure, TaskRef};
use crate::ids::{RddId, ShuffleId};
use crate::shuffle_map::MapOutput;

/// One task as shipped: who it is, what it runs, and where its shuffle inputs are.
#[derive(Serialize, Deserialize)]
pub(crate) struct TaskEnvelope {
    pub(crate) tref: TaskRef,
    /// The encoded task kind (`shipping::encode_kind`).
    pub(crate) kind: Vec<u8>,
    /// Map outputs of the shuffles the task reads, as the driver knew them at launch.
    pub(crate) inputs: Vec<(ShuffleId, Vec<Option<MapOutput>>)>,
}

/// A finished task as an executor reports it.
#[derive(Serialize, Deserialize)]
pub(crate) struct ExecutorTaskEnd {
    /// The encoded task end (`shipping::run_encoded`), or why the task could not even start.
    pub(crate) outcome: std::result::Result<Vec<u8>, TaskFailure>,
    /// Partitions the task cached in the executor's block manager.
    pub(crate) cached: Vec<(RddId, usize)>,
}

/// Asks an executor for part of one block of one of its map outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShuffleChunkRequest {
    /// The map output's data file (on the executor).
    pub data: PathBuf,
    /// The map output's index file (on the executor).
    pub index: PathBuf,
    /// The block (reduce partition).
    pub reduce_id: u64,
    /// Offset within the block.
    pub offset: u64,
    /// At most this many bytes.
    pub max_bytes: u64,
}

/// Part of a block, and the whole block's length.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShuffleChunk {
    /// The bytes from the requested offset.
    pub bytes: Vec<u8>,
    /// Length of the whole block.
    pub block_len: u64,
}

pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| EngineError::codec(what, e))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| EngineError::codec(what, e))
}
