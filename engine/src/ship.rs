//! Tasks as bytes: what a driver sends an executor, and what comes back.
//!
//! - Driver: [`encode_task_kind`] turns a task's work ([`TaskKind`]) into bytes. A result task
//!   carries its result stage with the final RDD's lineage; a shuffle map task carries its
//!   shuffle dependency with the map side's lineage. Lineage stops at shuffle boundaries: a
//!   shuffled node carries its shuffle id, partitioner, aggregator spec and key ordering, never
//!   its map side. A checkpointed node travels as a reader of its files. Broadcast values
//!   travel as ids, user functions as their explicit state (their code is their type).
//! - Executor: [`decode_task_kind`] rebuilds the task in its process (same build: decoders are
//!   named by code offset, see `code_identity`), [`run_decoded_task`] runs it and returns a
//!   [`RemoteTaskEnd`] (result bytes or map output, accumulator updates as bytes, or the
//!   failure), which [`encode_task_end`] turns into bytes.
//! - Driver: [`decode_remote_task_end`] and [`decode_task_end`] turn those bytes back into the
//!   scheduler's `TaskEnd`, using the job's result stage to decode the result and the
//!   [`ShipRegistry`] to decode accumulator updates.
//!
//! Messages start with a magic number and a CRC-32C of their payload: a damaged message is a
//! clear error before any decoder is called. Every decoding error is an `EngineError::Codec`
//! naming what failed to decode.
//!
//! With `ship_tasks` set (`FLINT_SHIP_TASKS=1`), the local backend sends every task through
//! this whole round trip ([`run_shipped`]), which is how the test suite proves that every
//! operator ships.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::accumulator::{AccumulatorDecoders, AccumulatorUpdates};
use crate::broadcast::BroadcastRegistry;
use crate::env::ExecutorEnv;
use crate::error::{Result, TaskFailure, TaskRef, report};
use crate::ids::{AccumulatorId, BroadcastId};
use crate::rdd::ShuffleDep;
use crate::scheduler::{ResultStage, Task, TaskEnd, TaskKind, TaskOutput};
use crate::shuffle_map::MapOutput;
use crate::task_context::{TaskContext, run_task_body};
use crate::wire::{self, Encoded, codec_error};

const TASK_MAGIC: [u8; 4] = *b"FLT1";
const TASK_END_MAGIC: [u8; 4] = *b"FLE1";

/// A task's work on the wire.
#[derive(Serialize, Deserialize)]
enum KindWire {
    ShuffleMap(Encoded<Arc<dyn ShuffleDep>>),
    Result(Encoded<Arc<dyn ResultStage>>),
}

/// Encodes a task's work for an executor (driver side).
pub(crate) fn encode_task_kind(kind: &TaskKind) -> Result<Vec<u8>> {
    wire::encoding(|| {
        let wire = match kind {
            TaskKind::ShuffleMap(dep) => KindWire::ShuffleMap(dep.encode()?),
            TaskKind::Result(stage) => KindWire::Result(stage.encode()?),
        };
        seal(TASK_MAGIC, "task", &wire)
    })
}

/// Rebuilds a task's work from [`encode_task_kind`]'s bytes (executor side). Broadcast values
/// are taken from (or fetched into) `env.broadcasts`.
pub(crate) fn decode_task_kind(bytes: &[u8], env: &Arc<ExecutorEnv>) -> Result<TaskKind> {
    let wire: KindWire = unseal(TASK_MAGIC, "task", bytes)?;
    wire::decoding(env, || {
        Ok(match wire {
            KindWire::ShuffleMap(dep) => TaskKind::ShuffleMap(dep.decode()?),
            KindWire::Result(stage) => TaskKind::Result(stage.decode()?),
        })
    })
}

/// What a task produced, as it travels back to the driver.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteOutput {
    /// A shuffle map task's output files.
    MapOutput(MapOutput),
    /// A result task's partition, encoded (the driver's result stage decodes it).
    Result(#[serde(with = "wire::bytes")] Vec<u8>),
}

/// The end of a task attempt that ran away from the driver.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoteTaskEnd {
    pub(crate) result: std::result::Result<RemoteOutput, TaskFailure>,
    /// Accumulator updates, encoded (empty when the task failed).
    pub(crate) updates: Vec<(AccumulatorId, Vec<u8>)>,
}

impl RemoteTaskEnd {
    fn failed(error: &crate::error::EngineError) -> Self {
        RemoteTaskEnd {
            result: Err(TaskFailure::Error(report(error))),
            updates: Vec::new(),
        }
    }
}

/// Runs a decoded task (executor side): failures, panics and cancellation are caught as in
/// process; the result and the accumulator updates are encoded.
pub(crate) fn run_decoded_task(
    kind: &TaskKind,
    tref: TaskRef,
    killed: Arc<AtomicBool>,
    env: Arc<ExecutorEnv>,
) -> RemoteTaskEnd {
    let tc = TaskContext {
        task: tref,
        env,
        killed,
    };
    let partition = tc.task.partition;
    let outcome = run_task_body(|| {
        tc.check_killed();
        match kind {
            TaskKind::ShuffleMap(dep) => dep.run_map_task(partition, &tc).map(RemoteOutput::MapOutput),
            TaskKind::Result(stage) => stage.run_to_bytes(partition, &tc).map(RemoteOutput::Result),
        }
    });
    match outcome.result {
        Ok(output) => match outcome.updates.encode() {
            Ok(updates) => RemoteTaskEnd {
                result: Ok(output),
                updates,
            },
            Err(e) => RemoteTaskEnd::failed(&e),
        },
        Err(failure) => RemoteTaskEnd {
            result: Err(failure),
            updates: Vec::new(),
        },
    }
}

/// Encodes a task's end for the driver (executor side).
pub(crate) fn encode_task_end(end: &RemoteTaskEnd) -> Result<Vec<u8>> {
    seal(TASK_END_MAGIC, "task end", end)
}

/// Decodes [`encode_task_end`]'s bytes (driver side).
pub(crate) fn decode_remote_task_end(bytes: &[u8]) -> Result<RemoteTaskEnd> {
    unseal(TASK_END_MAGIC, "task end", bytes)
}

/// Turns a shipped task's end into the scheduler's [`TaskEnd`] (driver side). `kind` is the
/// work the driver launched (its result stage decodes the result). Whatever cannot be decoded
/// makes the attempt fail, with the codec error as its cause.
pub(crate) fn decode_task_end(tref: TaskRef, kind: &TaskKind, end: RemoteTaskEnd, registry: &ShipRegistry) -> TaskEnd {
    let output = match end.result {
        Ok(output) => output,
        Err(failure) => {
            return TaskEnd {
                tref,
                result: Err(failure),
                updates: AccumulatorUpdates::default(),
            };
        }
    };
    let decoded = match (output, kind) {
        (RemoteOutput::MapOutput(output), TaskKind::ShuffleMap(_)) => Ok(TaskOutput::MapOutput(output)),
        (RemoteOutput::Result(bytes), TaskKind::Result(stage)) => stage.decode_result(&bytes).map(TaskOutput::Result),
        _ => Err(codec_error(
            "task end",
            "its output does not match the kind of task launched",
        )),
    }
    .and_then(|output| Ok((output, AccumulatorUpdates::decode(end.updates, &registry.accumulators)?)));
    match decoded {
        Ok((output, updates)) => TaskEnd {
            tref,
            result: Ok(output),
            updates,
        },
        Err(e) => TaskEnd {
            tref,
            result: Err(TaskFailure::Error(report(&e))),
            updates: AccumulatorUpdates::default(),
        },
    }
}

/// What the driver serves to shipped tasks and needs to decode their ends: broadcast values,
/// and a decoder per accumulator.
#[derive(Default)]
pub(crate) struct ShipRegistry {
    pub(crate) broadcasts: BroadcastRegistry,
    pub(crate) accumulators: AccumulatorDecoders,
}

impl ShipRegistry {
    /// The encoded value of broadcast `id`, for an executor that fetches it.
    pub(crate) fn broadcast_bytes(&self, id: BroadcastId) -> Result<Vec<u8>> {
        self.broadcasts.bytes(id)
    }
}

/// The local backend in ship-everything mode: encodes `task`, decodes it as an executor would
/// (in `env`, broadcasts fetched from the driver's registry), runs it, encodes its end and
/// decodes that as the driver would.
pub(crate) fn run_shipped(task: Task, env: &Arc<ExecutorEnv>, registry: &ShipRegistry) -> TaskEnd {
    let Task { tref, kind, killed } = task;
    let end = match encode_task_kind(&kind).and_then(|bytes| decode_task_kind(&bytes, env)) {
        Ok(decoded) => run_decoded_task(&decoded, tref.clone(), killed, env.clone()),
        Err(e) => {
            tracing::warn!(task = %tref, error = %report(&e), "task cannot be shipped");
            RemoteTaskEnd::failed(&e)
        }
    };
    match encode_task_end(&end).and_then(|bytes| decode_remote_task_end(&bytes)) {
        Ok(end) => decode_task_end(tref, &kind, end, registry),
        Err(e) => TaskEnd {
            tref,
            result: Err(TaskFailure::Error(report(&e))),
            updates: AccumulatorUpdates::default(),
        },
    }
}

/// `magic`, CRC-32C of the payload (little endian), payload (bincode).
fn seal<X: Serialize>(magic: [u8; 4], what: &str, value: &X) -> Result<Vec<u8>> {
    let payload = wire::to_bytes(value).map_err(|e| crate::error::EngineError::codec(what, e))?;
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn unseal<X: serde::de::DeserializeOwned>(magic: [u8; 4], what: &str, bytes: &[u8]) -> Result<X> {
    if bytes.len() < 8 {
        return Err(codec_error(
            what,
            format!("message of {} bytes is truncated", bytes.len()),
        ));
    }
    if bytes[..4] != magic {
        return Err(codec_error(what, "not a message of this kind (bad magic number)"));
    }
    let expected = u32::from_le_bytes(bytes[4..8].try_into().expect("four bytes"));
    let payload = &bytes[8..];
    let actual = crc32c::crc32c(payload);
    if actual != expected {
        return Err(codec_error(
            what,
            format!(
                "checksum mismatch over {} bytes (truncated or damaged message)",
                payload.len()
            ),
        ));
    }
    wire::decode_value(what, payload)
}
