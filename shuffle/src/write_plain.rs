//! The map side without combine: records go straight into per-partition buffers of
//! encoded frames, which spill as partition-segmented runs and are concatenated into
//! the data file without decoding.
//!
//! Unlike Spark's sort shuffle, nothing is sorted: a record is encoded once, into the
//! buffer of its partition, and memory is measured exactly (buffer capacities) rather
//! than estimated. This is Spark's "bypass merge sort" writer with the per-partition
//! files replaced by in-memory frame buffers under the budget.

use serde::Serialize;

use crate::codec;
use crate::error::{Result, ShuffleError};
use crate::frame::{self, FRAME_TARGET_BYTES};
use crate::map_output::{MapOutputWriter, MapStatus};
use crate::memory_budget::MemoryReservation;
use crate::merge::{merge_fan_in, reduce_runs};
use crate::spill::{RunFrames, RunWriter, SpillRun};
use crate::{MapOutputFiles, ShuffleEnv};

/// Map side without combine: routes each record to `partition_of(&k)` (which must be
/// `< num_partitions`), buffers, spills past the memory budget, then writes one data file
/// with one block per reduce partition and one index file (both committed atomically).
/// Replaces an existing output of the same map task. Records of a block keep their
/// input order.
///
/// ```
/// # fn main() -> flint_shuffle::Result<()> {
/// use flint_shuffle::*;
/// let tmp = tempfile::tempdir().unwrap();
/// let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path())?, MemoryBudget::new(1 << 20), true);
/// let out = env.dirs.map_output(0, 0);
/// let status = write_plain((0..10u64).map(|i| (i, i * i)), &|k: &u64| (k % 2) as usize, 2, &out, &env)?;
/// assert_eq!(status.records_written, 10);
/// let odd: Vec<(u64, u64)> = decode_block(&read_block(&out, 1)?, &BlockOrigin { path: out.data.clone(), reduce_id: 1 })?
///     .collect::<Result<_>>()?;
/// assert_eq!(odd, [(1, 1), (3, 9), (5, 25), (7, 49), (9, 81)]);
/// # Ok(()) }
/// ```
pub fn write_plain<K: Serialize, V: Serialize>(
    records: impl Iterator<Item = (K, V)>,
    partition_of: &dyn Fn(&K) -> usize,
    num_partitions: usize,
    out: &MapOutputFiles,
    env: &ShuffleEnv,
) -> Result<MapStatus> {
    write_plain_with(
        records,
        partition_of,
        num_partitions,
        out,
        env,
        merge_fan_in(&env.budget),
    )
}

pub(crate) fn write_plain_with<K: Serialize, V: Serialize>(
    records: impl Iterator<Item = (K, V)>,
    partition_of: &dyn Fn(&K) -> usize,
    num_partitions: usize,
    out: &MapOutputFiles,
    env: &ShuffleEnv,
    fan_in: usize,
) -> Result<MapStatus> {
    let mut buffers = PartitionBuffers::new(num_partitions, env.compress);
    let mut reservation = MemoryReservation::new(env.budget.clone());
    let mut runs = Vec::new();
    let mut count = 0u64;
    for (k, v) in records {
        let p = partition_of(&k);
        if p >= num_partitions {
            return Err(ShuffleError::BadPartition {
                partition: p,
                num_partitions,
            });
        }
        buffers.push(p, &(k, v))?;
        count += 1;
        if !reservation.try_cover(buffers.bytes) {
            runs.push(buffers.spill(env)?);
            reservation.release_all();
        }
    }
    let spill_count = runs.len() as u32;
    let runs = reduce_runs(runs, fan_in, fan_in, |group| concat_runs(group, num_partitions, env))?;
    let mut opened = runs.into_iter().map(RunFrames::open).collect::<Result<Vec<_>>>()?;
    let mut writer = MapOutputWriter::create(out, env)?;
    writer.add_records(count);
    buffers.write_blocks(&mut opened, &mut writer)?;
    drop(opened);
    writer.commit(spill_count)
}

/// Concatenates the segments of several runs into one run (a multi-pass merge step).
fn concat_runs(group: Vec<SpillRun>, num_partitions: usize, env: &ShuffleEnv) -> Result<SpillRun> {
    let mut opened = group.into_iter().map(RunFrames::open).collect::<Result<Vec<_>>>()?;
    let mut merged = RunWriter::create(&env.dirs, env.compress)?;
    for p in 0..num_partitions {
        for run in &mut opened {
            run.copy_segment(p, |frames| merged.write_frames(frames))?;
        }
        merged.end_segment()?;
    }
    merged.finish()
}

/// Encoded records of one partition: sealed frames, and the frame being filled.
#[derive(Debug, Default)]
struct PartBuf {
    raw: Vec<u8>,
    sealed: Vec<u8>,
}

impl PartBuf {
    fn capacity(&self) -> usize {
        self.raw.capacity() + self.sealed.capacity()
    }

    /// Closes the frame being filled (if any) into `sealed`.
    fn seal(&mut self, compress: bool) -> Result<()> {
        if !self.raw.is_empty() {
            frame::encode_frame(&self.raw, compress, &mut self.sealed)?;
            self.raw.clear();
        }
        Ok(())
    }
}

/// One buffer of encoded frames per reduce partition, with their total capacity (what
/// they hold in memory).
#[derive(Debug)]
pub(crate) struct PartitionBuffers {
    parts: Vec<PartBuf>,
    compress: bool,
    bytes: u64,
}

impl PartitionBuffers {
    pub(crate) fn new(num_partitions: usize, compress: bool) -> Self {
        PartitionBuffers {
            parts: (0..num_partitions).map(|_| PartBuf::default()).collect(),
            compress,
            bytes: 0,
        }
    }

    /// Appends a record to partition `p`'s buffer.
    #[inline]
    pub(crate) fn push<T: Serialize>(&mut self, p: usize, record: &T) -> Result<()> {
        let part = &mut self.parts[p];
        let before = part.capacity();
        codec::encode_into(&mut part.raw, record)?;
        if part.raw.len() >= FRAME_TARGET_BYTES {
            part.seal(self.compress)?;
        }
        // Buffers only grow between spills.
        self.bytes += (part.capacity() - before) as u64;
        Ok(())
    }

    /// Writes every partition's frames as one segment of a new run and frees the buffers.
    fn spill(&mut self, env: &ShuffleEnv) -> Result<SpillRun> {
        let mut run = RunWriter::create(&env.dirs, env.compress)?;
        for part in &mut self.parts {
            part.seal(self.compress)?;
            run.write_frames(&part.sealed)?;
            run.end_segment()?;
            *part = PartBuf::default();
        }
        let run = run.finish()?;
        tracing::debug!(
            bytes = run.len_bytes(),
            memory = self.bytes,
            "spilled map output buffers"
        );
        self.bytes = 0;
        Ok(run)
    }

    /// Writes one block per partition: the partition's segments of `runs` (older data),
    /// then its buffer, which is freed as soon as it is written.
    pub(crate) fn write_blocks(mut self, runs: &mut [RunFrames], writer: &mut MapOutputWriter<'_>) -> Result<()> {
        for (p, part) in self.parts.iter_mut().enumerate() {
            for run in runs.iter_mut() {
                run.copy_segment(p, |frames| writer.write_frames(frames))?;
            }
            part.seal(self.compress)?;
            writer.write_frames(&part.sealed)?;
            *part = PartBuf::default();
            writer.end_block()?;
        }
        Ok(())
    }
}
