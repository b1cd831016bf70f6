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
                executor: None,
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
            executor: None,
        },
        Err(e) => TaskEnd {
            tref,
            result: Err(TaskFailure::Error(report(&e))),
            updates: AccumulatorUpdates::default(),
            executor: None,
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
    let Task { tref, kind, killed, .. } = task;
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
            executor: None,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::context::Context;
    use crate::data::Data;
    use crate::error::EngineError;
    use crate::ids::{JobId, StageId};
    use crate::rdd::Rdd;
    use crate::scheduler::CollectPartition;

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    fn ctx(ship: bool) -> Context {
        Context::builder()
            .master("local[2]")
            .show_progress(false)
            .ship_tasks(ship)
            .build()
            .unwrap()
    }

    fn tref(partition: usize) -> TaskRef {
        TaskRef {
            job: JobId(0),
            stage: StageId(0),
            stage_name: "test".into(),
            partition,
            attempt: 0,
        }
    }

    fn result_kind<T: Data>(rdd: &Rdd<T>) -> TaskKind {
        TaskKind::Result(Arc::new(CollectPartition::new(rdd.node.clone())))
    }

    /// Encodes, decodes and runs partition `p` of `rdd` as an executor would; returns its elements.
    fn ship_partition<T: Data>(rdd: &Rdd<T>, p: usize) -> Vec<T> {
        let env = rdd.ctx.env().clone();
        let kind = result_kind(rdd);
        let bytes = encode_task_kind(&kind).unwrap();
        let decoded = decode_task_kind(&bytes, &env).unwrap();
        let end = run_decoded_task(&decoded, tref(p), Arc::new(AtomicBool::new(false)), env);
        let end = decode_remote_task_end(&encode_task_end(&end).unwrap()).unwrap();
        let end = decode_task_end(tref(p), &kind, end, &ShipRegistry::default());
        match end.result {
            Ok(TaskOutput::Result(v)) => *v.downcast::<Vec<T>>().unwrap(),
            Ok(TaskOutput::MapOutput(_)) => panic!("a result task wrote a map output"),
            Err(f) => panic!("shipped task failed: {f}"),
        }
    }

    fn task_size<T: Data>(rdd: &Rdd<T>) -> usize {
        encode_task_kind(&result_kind(rdd)).unwrap().len()
    }

    #[test]
    fn shipped_mode_gives_the_answers_of_local_mode() {
        fn answers(ctx: &Context) -> Vec<String> {
            let nums = ctx.parallelize((0..200i64).collect(), 4);
            let pairs = nums.map(|x: i64| (x % 7, x));
            let words = ctx.parallelize(vec!["a b".to_string(), "b c".to_string()], 2);
            let mut sums = pairs.reduce_by_key(|a, b| a + b).collect().unwrap();
            sums.sort();
            let mut joined = pairs.join(&pairs.map_values(|v: i64| v * 2)).count().unwrap();
            joined += nums.zip(&nums.map(|x: i64| x + 1)).count().unwrap();
            vec![
                format!("{sums:?}"),
                format!("{joined}"),
                format!("{:?}", nums.sort_by(|x: &i64| -x, true, 3).take(5).unwrap()),
                format!(
                    "{:?}",
                    nums.tree_aggregate(0i64, |a: i64, x: i64| a + x, |a: i64, b: i64| a + b, 2)
                ),
                format!(
                    "{:?}",
                    nums.repartition(3).glom().map(|p: Vec<i64>| p.len()).collect().unwrap()
                ),
                format!("{:?}", nums.sample(false, 0.3, 9).zip_with_index().count().unwrap()),
                format!(
                    "{:?}",
                    words
                        .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
                        .distinct()
                        .count()
                ),
                format!("{:?}", nums.cartesian(&words).coalesce(3).count().unwrap()),
            ]
        }
        assert_eq!(answers(&ctx(true)), answers(&ctx(false)));
    }

    #[test]
    fn text_inputs_ship_with_their_splits_gzip_included() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
        std::fs::write(dir.path().join("a.txt"), lines[..1000].join("\n") + "\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all((lines[1000..].join("\n") + "\n").as_bytes()).unwrap();
        std::fs::write(dir.path().join("b.txt.gz"), gz.finish().unwrap()).unwrap();
        let path = dir.path().to_str().unwrap();
        let shipped = ctx(true);
        assert_eq!(shipped.text_file(path, 3).collect().unwrap(), lines);
        let plain = tempfile::tempdir().unwrap();
        std::fs::write(plain.path().join("x"), "one\ntwo\n").unwrap();
        std::fs::write(plain.path().join("y"), "three\n").unwrap();
        let sizes = shipped
            .whole_text_files(plain.path().to_str().unwrap(), 2)
            .map(|(_, content): (String, String)| content.len())
            .collect()
            .unwrap();
        assert_eq!(sorted(sizes), vec![6, 8]);
    }

    #[test]
    fn a_decoded_task_computes_the_same_partition() {
        let ctx = ctx(false);
        let rdd = ctx.range(0, 100, 4).filter(|x: &i64| x % 3 == 0).map(|x: i64| x * 10);
        let direct = rdd.ctx.run_job(&rdd, &[2]).unwrap().remove(0);
        assert_eq!(ship_partition(&rdd, 2), direct);
    }

    /// 20,000 numbers whose values travel with the tasks (captured state, `with`).
    fn heavy(ctx: &Context) -> Rdd<u64> {
        let table: Vec<u64> = (0..20_000).collect();
        ctx.range(0, 20_000, 2)
            .map(crate::func::with(table, |t: &Vec<u64>, x: i64| t[x as usize]))
    }

    #[test]
    fn parallelized_slices_travel_as_broadcast_ids() {
        // Shipping mode: the context serves its broadcasts to the tasks it decodes.
        let ctx = ctx(true);
        let big = ctx.parallelize((0..20_000u64).collect(), 2);
        assert!(task_size(&big) < 1_000, "{} bytes", task_size(&big));
        let fetched = || ctx.env().broadcasts.decoded_values();
        assert_eq!(ship_partition(&big, 1)[0], 10_000);
        assert_eq!(fetched(), 1, "only the slice the task computes");
        assert_eq!(ship_partition(&big, 1).len(), 10_000);
        assert_eq!(fetched(), 1, "once");
        assert_eq!(ship_partition(&big, 0).len(), 10_000);
        assert_eq!(fetched(), 2);
    }

    #[test]
    fn a_node_reached_twice_is_encoded_once() {
        let ctx = ctx(false);
        let big = heavy(&ctx);
        let once = task_size(&big);
        assert!(once > 100_000, "{once} bytes");
        let zipped = big.zip(&big.map(|x: u64| x + 1));
        assert!(task_size(&zipped) < once + once / 2, "{} vs {once}", task_size(&zipped));
        assert_eq!(ship_partition(&zipped, 1)[0], (10_000, 10_001));
    }

    #[test]
    fn a_reduce_task_carries_no_map_side_lineage() {
        let ctx = ctx(false);
        let big = ctx.parallelize((0..20_000u64).map(|x| (x % 10, x)).collect(), 2);
        let summed = big.reduce_by_key(|a, b| a + b);
        assert!(task_size(&summed) < 2_000, "{} bytes", task_size(&summed));
        summed.count().unwrap();
        let mut shipped: Vec<(u64, u64)> = (0..2).flat_map(|p| ship_partition(&summed, p)).collect();
        shipped.sort();
        let mut direct = summed.collect().unwrap();
        direct.sort();
        assert_eq!(shipped, direct);
    }

    #[test]
    fn a_written_checkpoint_ships_as_a_reader_of_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::builder()
            .master("local[2]")
            .show_progress(false)
            .checkpoint_dir(dir.path())
            .build()
            .unwrap();
        let big = heavy(&ctx).map(|x: u64| x * 2);
        big.checkpoint().unwrap();
        let before = task_size(&big);
        big.count().unwrap();
        assert!(big.is_checkpointed());
        assert!(task_size(&big) < before / 10, "{} bytes", task_size(&big));
        assert_eq!(ship_partition(&big, 1)[0], 20_000);
    }

    #[test]
    fn a_broadcast_is_decoded_once_per_executor_not_per_task() {
        let ctx = ctx(true);
        let table = ctx.broadcast((0..100u64).collect::<Vec<_>>());
        let looked_up = ctx
            .range(0, 1000, 8)
            .map(crate::func::with(table, |t: &crate::Broadcast<Vec<u64>>, x: i64| {
                t[x as usize % 100]
            }))
            .collect()
            .unwrap();
        assert_eq!(looked_up[150], 50);
        assert_eq!(ctx.env().broadcasts.decoded_values(), 1);
        let local = self::ctx(false);
        let table = local.broadcast(vec![1u8]);
        local
            .range(0, 10, 2)
            .map(crate::func::with(table, |t: &crate::Broadcast<Vec<u8>>, _x: i64| t[0]))
            .count()
            .unwrap();
        assert_eq!(
            local.env().broadcasts.decoded_values(),
            0,
            "local mode shares the driver's value"
        );
    }

    #[test]
    fn accumulator_updates_travel_as_bytes() {
        let ctx = ctx(true);
        let acc = ctx.accumulator(0u64);
        let seen = ctx.accumulator(Vec::<i64>::new());
        ctx.range(0, 100, 4)
            .foreach(crate::func::with(
                (acc.clone(), seen.clone()),
                |(a, s): &(crate::Accumulator<u64>, crate::Accumulator<Vec<i64>>), x: i64| {
                    a.add(1);
                    if x % 25 == 0 {
                        s.add(vec![x]);
                    }
                },
            ))
            .unwrap();
        assert_eq!(acc.value(), 100);
        let mut s = seen.value();
        s.sort();
        assert_eq!(s, vec![0, 25, 50, 75]);
    }

    fn codec_text(e: EngineError) -> String {
        assert!(matches!(e, EngineError::Codec { .. }), "{e:?}");
        report(&e)
    }

    #[test]
    fn truncated_or_damaged_task_bytes_are_clear_errors() {
        let ctx = ctx(false);
        let rdd = ctx.range(0, 10, 2).map(|x: i64| (x % 3, x)).reduce_by_key(|a, b| a + b);
        let bytes = encode_task_kind(&result_kind(&rdd)).unwrap();
        for len in [0, 3, 7, 8, 9, bytes.len() / 2, bytes.len() - 1] {
            let text = codec_text(decode_task_kind(&bytes[..len], ctx.env()).err().expect("truncated"));
            assert!(text.contains("task"), "{text}");
            assert!(text.contains("truncated"), "{len}: {text}");
        }
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x40;
        let text = codec_text(decode_task_kind(&damaged, ctx.env()).err().expect("damaged"));
        assert!(text.contains("checksum mismatch"), "{text}");
        let text = codec_text(decode_task_kind(b"nonsense", ctx.env()).err().expect("not a task"));
        assert!(text.contains("magic"), "{text}");
        let text = codec_text(decode_remote_task_end(&bytes).expect_err("a task is not a task end"));
        assert!(text.contains("task end"), "{text}");
    }

    #[test]
    fn a_truncated_node_names_what_failed_to_decode() {
        let ctx = ctx(false);
        let rdd = ctx.range(0, 10, 2).map(|x: i64| x + 1);
        let mut encoded = rdd.node.encode().unwrap();
        let n = encoded.len();
        encoded.truncate(n - 3);
        let text = codec_text(encoded.decode().err().expect("truncated node"));
        assert!(text.contains("lineage node"), "{text}");
        assert!(text.contains("MapPartitionsNode"), "{text}");
    }

    #[test]
    fn the_driver_serves_broadcast_values_as_bytes() {
        let ctx = ctx(false);
        let b = ctx.broadcast(vec![3u16, 4]);
        let bytes = ctx.broadcast_bytes(b.id()).unwrap();
        assert_eq!(bincode::deserialize::<Vec<u16>>(&bytes).unwrap(), vec![3, 4]);
        let id = b.id();
        drop(b);
        let text = codec_text(ctx.broadcast_bytes(BroadcastId(id.0 + 1)).unwrap_err());
        assert!(text.contains("no such broadcast"), "{text}");
    }

    #[test]
    fn an_unknown_broadcast_or_missing_source_is_an_error_not_a_panic() {
        let registry = ShipRegistry::default();
        let text = codec_text(registry.broadcast_bytes(BroadcastId(7)).unwrap_err());
        assert!(text.contains("broadcast 7"), "{text}");
        let ctx = ctx(false);
        let b = ctx.broadcast(5u32);
        let rdd = ctx
            .range(0, 4, 1)
            .map(crate::func::with(b, |b: &crate::Broadcast<u32>, x: i64| x + **b as i64));
        let bytes = encode_task_kind(&result_kind(&rdd)).unwrap();
        // This context's executor environment has no broadcast source (ship_tasks is off).
        let text = codec_text(decode_task_kind(&bytes, ctx.env()).err().expect("no source"));
        assert!(text.contains("broadcast"), "{text}");
        assert!(text.contains("no broadcast source"), "{text}");
    }
}
