//! One map task's output on disk: writing blocks in reduce-partition order into a
//! temporary data file, the index that locates them, the atomic commit of both, and
//! reading one block back through the index.
//!
//! Index layout:
//!
//! ```text
//! offset      size  field
//!      0         4  magic "FLIX"
//!      4         4  version (u32 LE) = 1
//!      8         8  num_partitions n (u64 LE)
//!     16      16*n  per partition: offset (u64 LE), length (u64 LE) of its block in the data file
//! 16+16n         4  crc32c of all preceding bytes (u32 LE)
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::ShuffleEnv;
use crate::dirs::{MapOutputFiles, TempFile};
use crate::error::{Result, ShuffleError};
use crate::frame::FramedWriter;

const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// What a map task reports: bytes stored per reduce partition (0 = empty block), records
/// written, and how many times it spilled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapStatus {
    /// Stored (framed, possibly compressed) bytes of each reduce partition's block.
    pub partition_lengths: Vec<u64>,
    /// Records in the data file (after map-side combine, if any).
    pub records_written: u64,
    /// Times the task's buffer was spilled to disk.
    pub spill_count: u32,
}

/// Writes the blocks of one map output, one after the other, then commits them.
#[derive(Debug)]
pub(crate) struct MapOutputWriter<'a> {
    out: &'a MapOutputFiles,
    env: &'a ShuffleEnv,
    temp: TempFile,
    data: FramedWriter<BufWriter<File>>,
    lengths: Vec<u64>,
    records: u64,
}

impl<'a> MapOutputWriter<'a> {
    /// Starts a temporary data file beside `out.data`.
    pub(crate) fn create(out: &'a MapOutputFiles, env: &'a ShuffleEnv) -> Result<Self> {
        let (temp, file) = env.dirs.temp_beside(&out.data)?;
        let data = FramedWriter::new(
            BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            temp.path(),
            env.compress,
        );
        Ok(MapOutputWriter {
            out,
            env,
            temp,
            data,
            lengths: Vec::new(),
            records: 0,
        })
    }

    /// Appends a record to the current block.
    #[inline]
    pub(crate) fn write_record<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        self.records += 1;
        self.data.write_record(record)
    }

    /// Appends verified frames to the current block; their records are counted with
    /// [`add_records`](MapOutputWriter::add_records).
    pub(crate) fn write_frames(&mut self, frames: &[u8]) -> Result<()> {
        self.data.write_frames(frames)
    }

    /// Counts records written as frames.
    pub(crate) fn add_records(&mut self, records: u64) {
        self.records += records;
    }

    /// Ends the current block: the next record belongs to the next reduce partition.
    pub(crate) fn end_block(&mut self) -> Result<()> {
        self.lengths.push(self.data.end_segment()?);
        Ok(())
    }

    /// Writes the index and moves both files into place: data first, then the index, so
    /// a reader that finds the index finds the data it describes. An older output of the
    /// same map task (an earlier attempt) is replaced; its index is removed first, so a
    /// concurrent reader sees a missing output rather than a mismatched pair.
    pub(crate) fn commit(self, spill_count: u32) -> Result<MapStatus> {
        let MapOutputWriter {
            out,
            env,
            temp,
            data,
            lengths,
            records,
        } = self;
        data.into_inner()?;
        let (index_temp, mut index_file) = env.dirs.temp_beside(&out.index)?;
        index_file
            .write_all(&encode_index(&lengths))
            .and_then(|()| index_file.flush())
            .map_err(|e| ShuffleError::io(index_temp.path(), e))?;
        drop(index_file);
        {
            let _one_commit_at_a_time = env.dirs.commit_lock.lock();
            match fs::remove_file(&out.index) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(ShuffleError::io(&out.index, e));
                }
                _ => {}
            }
            temp.persist(&out.data)?;
            index_temp.persist(&out.index)?;
        }
        let bytes: u64 = lengths.iter().sum();
        tracing::debug!(path = %out.data.display(), bytes, records, spills = spill_count, "committed map output");
        Ok(MapStatus {
            partition_lengths: lengths,
            records_written: records,
            spill_count,
        })
    }
}

// The index file.

const INDEX_MAGIC: [u8; 4] = *b"FLIX";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = 16;
const CRC_LEN: usize = 4;

/// Encodes the index of blocks of the given lengths, stored back to back from offset 0.
pub(crate) fn encode_index(lengths: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + ENTRY_LEN * lengths.len() + CRC_LEN);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&(lengths.len() as u64).to_le_bytes());
    let mut offset = 0u64;
    for &len in lengths {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        offset += len;
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `(offset, length)` of every block, from a verified index.
pub(crate) fn decode_index(bytes: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    if bytes.len() < INDEX_HEADER_LEN + CRC_LEN {
        return Err(format!("index of {} bytes is too short", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    if body[..4] != INDEX_MAGIC {
        return Err("bad index magic".into());
    }
    let version = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    if version != INDEX_VERSION {
        return Err(format!("index version {version}, expected {INDEX_VERSION}"));
    }
    let n = u64_at(8);
    let expected = n
        .checked_mul(ENTRY_LEN as u64)
        .and_then(|x| x.checked_add(INDEX_HEADER_LEN as u64));
    if expected != Some(body.len() as u64) {
        return Err(format!("index of {} bytes cannot list {n} partitions", bytes.len()));
    }
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "index checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    let mut next = 0u64;
    let mut ranges = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let (offset, len) = (
            u64_at(INDEX_HEADER_LEN + i * ENTRY_LEN),
            u64_at(INDEX_HEADER_LEN + i * ENTRY_LEN + 8),
        );
        if offset != next {
            return Err(format!("block {i} starts at {offset}, expected {next}"));
        }
        next = offset
            .checked_add(len)
            .ok_or_else(|| format!("block {i} length {len} overflows"))?;
        ranges.push((offset, len));
    }
    Ok(ranges)
}

/// Opens the data file of a map output at the start of block `reduce_id`, after checking the
/// index (its checksum, the data file's length). Returns the file, the block's offset and length.
pub fn locate_block(files: &MapOutputFiles, reduce_id: usize) -> Result<(File, u64, u64)> {
    let bytes = fs::read(&files.index).map_err(|e| ShuffleError::open(&files.index, e))?;
    let ranges = decode_index(&bytes).map_err(|d| ShuffleError::corrupt(&files.index, reduce_id, d))?;
    let Some(&(offset, len)) = ranges.get(reduce_id) else {
        return Err(ShuffleError::NoSuchBlock {
            path: files.index.clone(),
            reduce_id,
            num_partitions: ranges.len(),
        });
    };
    let data = File::open(&files.data).map_err(|e| ShuffleError::open(&files.data, e))?;
    let data_len = data.metadata().map_err(|e| ShuffleError::io(&files.data, e))?.len();
    let described = ranges.last().map_or(0, |&(o, l)| o + l);
    if data_len != described {
        return Err(ShuffleError::corrupt(
            &files.data,
            reduce_id,
            format!("data file has {data_len} bytes, its index describes {described}"),
        ));
    }
    Ok((data, offset, len))
}

/// Reads the stored (still compressed, checksummed) bytes of reduce partition
/// `reduce_id`'s block, through the map output's index.
///
/// Checks the index's own checksum and that the data file is exactly as long as the index
/// says. Errors: [`ShuffleError::MissingFile`] for a missing index or data file,
/// [`ShuffleError::CorruptBlock`] for a truncated or garbled index or a data file of the
/// wrong length, [`ShuffleError::NoSuchBlock`] for a `reduce_id` past the last partition.
/// An empty block is an empty `Vec`. Block contents are verified by
/// [`decode_block`](crate::decode_block).
pub fn read_block(files: &MapOutputFiles, reduce_id: usize) -> Result<Vec<u8>> {
    let (mut data, offset, len) = locate_block(files, reduce_id)?;
    let mut block = vec![0u8; len as usize];
    if len > 0 {
        data.seek(SeekFrom::Start(offset))
            .and_then(|_| data.read_exact(&mut block))
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    ShuffleError::corrupt(&files.data, reduce_id, "data file ends inside the block")
                }
                _ => ShuffleError::io(&files.data, e),
            })?;
    }
    tracing::trace!(path = %files.data.display(), partition = reduce_id, bytes = len, "read block");
    Ok(block)
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn index_round_trips_and_rejects_damage() {
        let lengths = [10, 0, 7, 1 << 40];
        let bytes = encode_index(&lengths);
        let ranges = decode_index(&bytes).expect("valid");
        assert_eq!(ranges, [(0, 10), (10, 0), (10, 7), (17, 1 << 40)]);
        assert_eq!(decode_index(&encode_index(&[])).expect("valid"), []);
        for cut in 0..bytes.len() {
            assert!(decode_index(&bytes[..cut]).is_err(), "truncated to {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_index(&bad).is_err(), "flipped byte {i}");
        }
    }
}
