//! Spark-like sort-based shuffle files, plus external (spilling) aggregation and sorting
//! under a shared memory budget.
//!
//! `flint-shuffle` owns the bytes of a shuffle: how a map task writes its output (one
//! data file and one index file), how a reducer reads and verifies one block, and how
//! aggregation and sorting spill to disk when their buffers outgrow the memory budget.
//! It knows nothing about RDDs, stages or executors: records are any serde types
//! `(K, V)`, partitioning is a function the caller passes, and where files live is a
//! [`ShuffleDirs`]. Fetching blocks over the network and tracking map outputs belong to
//! `flint-engine`.
//!
//! # Main types
//!
//! - Map side: [`write_plain`] (no combine) and [`write_combined`] (map-side combine with
//!   an [`Aggregator`]) return a [`MapStatus`].
//! - Reduce side: [`read_block`] returns a block's stored bytes (what would travel over
//!   the network), [`decode_block`] verifies and decodes them into [`BlockRecords`].
//! - [`ExternalAggregator`] and [`ExternalSorter`]: aggregation and sorting that spill.
//! - [`MemoryBudget`] is shared by all of them; [`ShuffleEnv`] bundles budget, directories
//!   and the compression switch.
//!
//! # Example
//!
//! ```
//! # fn main() -> flint_shuffle::Result<()> {
//! use flint_shuffle::*;
//! let tmp = tempfile::tempdir().unwrap();
//! let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path())?, MemoryBudget::new(64 << 20), true);
//! let sum = Aggregator::new(|v: u64| v, |c, v| c + v, |a, b| a + b);
//! let by_len = |w: &String| w.len() % 2;
//!
//! // Two map tasks, two reduce partitions.
//! let inputs = ["to be or not to be", "that is the question"];
//! for (map_id, text) in inputs.iter().enumerate() {
//!     let words = text.split(' ').map(|w| (w.to_string(), 1u64));
//!     write_combined(words, &by_len, 2, &sum, &env.dirs.map_output(7, map_id), &env)?;
//! }
//!
//! // Reduce partition 0 (even-length words): fetch its block from every map output.
//! let mut counts = ExternalAggregator::new(sum.clone(), env.clone());
//! for map_id in 0..inputs.len() {
//!     let files = env.dirs.map_output(7, map_id);
//!     let origin = BlockOrigin { path: files.data.clone(), reduce_id: 0 };
//!     for record in decode_block::<String, u64>(&read_block(&files, 0)?, &origin)? {
//!         let (word, n) = record?;
//!         counts.insert_combiner(word, n)?;
//!     }
//! }
//! let mut counts: Vec<(String, u64)> = counts.into_iter()?.collect::<Result<_>>()?;
//! counts.sort();
//! let expected = [("be", 2), ("is", 1), ("or", 1), ("question", 1), ("that", 1), ("to", 2)];
//! assert_eq!(counts, expected.map(|(w, n)| (w.to_string(), n)));
//! env.dirs.remove_shuffle(7)?;
//! # Ok(()) }
//! ```
//!
//! # Formats (version 1)
//!
//! All integers are little endian. Records are bincode 1.x with fixed-width integers
//! (`bincode::serialize`), written back to back with no per-record framing.
//!
//! **Frame** (`frame.rs`): the unit of compression and checksumming.
//!
//! ```text
//! magic 0xF1 (u8) | flags (u8, bit 0 = lz4) | raw length (u32) | stored length (u32)
//!     | crc32c (u32) of the 10 bytes before it and the payload | payload (stored length bytes)
//! ```
//!
//! A frame holds whole records, about 256 KiB of them before compression; the payload is
//! an lz4 block when compression is on and it helps, the raw records otherwise.
//!
//! **Block**: the records of one reduce partition from one map task, as a sequence of
//! zero or more frames (several when the partition is large; none when it is empty).
//!
//! **Data file** (`shuffle_{s}_{m}.data`): the blocks of partitions `0..n`, back to back.
//!
//! **Index file** (`shuffle_{s}_{m}.index`): `"FLIX"`, version (u32) = 1, `n` (u64), then
//! `(offset u64, length u64)` per partition, then a crc32c (u32) of everything before it.
//! Offsets must be contiguous from 0 and the data file exactly as long as the blocks.
//!
//! So a flipped byte anywhere in a data file fails its frame's checksum, and a truncated
//! or garbled index fails the index checksum or length checks: both are
//! [`ShuffleError::CorruptBlock`], naming the file and the block.
//!
//! **Spill runs** use the same frames, one segment per reduce partition (map side) or a
//! single segment (aggregation, sorting); segment offsets are kept in memory, since spill
//! files never outlive their writer. Corrupt spill bytes are detected like data bytes.
//!
//! # Invariants
//!
//! - A map output is committed atomically: the data file is renamed into place before the
//!   index, both from temporary files, so an index on disk always describes a complete
//!   data file. Outputs are immutable once committed; a re-run replaces them.
//! - Memory: consumers reserve from the [`MemoryBudget`] as their (exactly measured or
//!   sampled) size grows and spill when refused; each may always keep
//!   [`MIN_CONSUMER_BYTES`] so that it makes progress under any budget. At most
//!   64 runs are merged at once (more are merged in passes); the merge's read buffers
//!   (one frame per run) are not counted against the budget.
//! - Spill files are deleted when the run, or the iterator that reads it, is dropped.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The combine functions and the key hash that orders aggregation spills.
mod aggregator;
/// Decoding a stored block into records.
mod block;
/// Streaming one local block's records frame by frame.
mod block_stream;
/// Record encoding (bincode), behind three functions.
mod codec;
/// Directory layout; guards that delete spill and temporary files.
mod dirs;
/// The error type.
mod error;
/// Reduce-side aggregation with spill.
mod external_aggregator;
/// Sorting with spill.
mod external_sorter;
/// Frames: layout, checksums, compression; writing records as frames.
mod frame;
/// One map output on disk: data file, index, commit, reading a block.
mod map_output;
/// The shared memory budget, per-consumer reservations, size estimates.
mod memory_budget;
/// k-way merge, combining merge, multi-pass merging of runs.
mod merge;
/// Spill runs on disk.
mod spill;
/// Map side with combine.
mod write_combined;
/// Map side without combine.
mod write_plain;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use aggregator::Aggregator;
pub use block::{BlockOrigin, BlockRecords, decode_block};
pub use block_stream::{StreamedBlock, open_block};
pub use dirs::{MapOutputFiles, ShuffleDirs, SpillFile};
pub use error::{Result, ShuffleError};
pub use external_aggregator::{ExternalAggregator, RecordIter};
pub use external_sorter::{ExternalSorter, KeyOrdering};
pub use map_output::MapStatus;
pub use map_output::{locate_block, read_block};
pub use memory_budget::{MIN_CONSUMER_BYTES, MemoryBudget, MemoryReservation};
pub use write_combined::write_combined;
pub use write_plain::write_plain;

/// Everything a writer, aggregator or sorter needs from its environment.
#[derive(Clone, Debug)]
pub struct ShuffleEnv {
    /// Where map outputs and spill files go.
    pub dirs: Arc<ShuffleDirs>,
    /// The memory budget shared by all buffers of this process (or executor).
    pub budget: Arc<MemoryBudget>,
    /// Whether frames are lz4-compressed (readers handle both).
    pub compress: bool,
}

impl ShuffleEnv {
    /// An environment over `dirs` and `budget`.
    pub fn new(dirs: ShuffleDirs, budget: Arc<MemoryBudget>, compress: bool) -> Self {
        ShuffleEnv {
            dirs: Arc::new(dirs),
            budget,
            compress,
        }
    }
}
