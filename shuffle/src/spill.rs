//! Spill runs: sorted records written to a spill file in frames, one segment per reduce
//! partition (or a single segment), and read back segment by segment.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dirs::{ShuffleDirs, SpillFile};
use crate::error::{Result, ShuffleError};
use crate::frame::FramedWriter;
use crate::frame::{self, DecodedFrame, HEADER_LEN};

const WRITE_BUFFER_BYTES: usize = 256 * 1024;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A run on disk: the file (deleted when the run is dropped) and `(offset, length)` of
/// each segment. Segment boundaries live only in memory: spill files never outlive the
/// process that wrote them.
#[derive(Debug)]
pub(crate) struct SpillRun {
    file: SpillFile,
    segments: Vec<(u64, u64)>,
}

impl SpillRun {
    /// Bytes on disk.
    pub(crate) fn len_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }
}

/// Writes one run; segments are written in order and each is ended explicitly.
#[derive(Debug)]
pub(crate) struct RunWriter {
    file: SpillFile,
    out: FramedWriter<BufWriter<File>>,
    segments: Vec<(u64, u64)>,
}

impl RunWriter {
    /// Starts a run in a fresh spill file.
    pub(crate) fn create(dirs: &ShuffleDirs, compress: bool) -> Result<Self> {
        let file = dirs.spill_file()?;
        let handle = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(file.path())
            .map_err(|e| ShuffleError::io(file.path(), e))?;
        let out = FramedWriter::new(
            BufWriter::with_capacity(WRITE_BUFFER_BYTES, handle),
            file.path(),
            compress,
        );
        Ok(RunWriter {
            file,
            out,
            segments: Vec::new(),
        })
    }

    /// Appends a record to the current segment.
    #[inline]
    pub(crate) fn write_record<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        self.out.write_record(record)
    }

    /// Appends verified frames to the current segment.
    pub(crate) fn write_frames(&mut self, frames: &[u8]) -> Result<()> {
        self.out.write_frames(frames)
    }

    /// Ends the current segment; the next record starts the next one.
    pub(crate) fn end_segment(&mut self) -> Result<()> {
        let len = self.out.end_segment()?;
        let end = self.out.position();
        self.segments.push((end - len, len));
        Ok(())
    }

    /// Flushes the file and returns the run.
    pub(crate) fn finish(self) -> Result<SpillRun> {
        self.out.into_inner()?;
        Ok(SpillRun {
            file: self.file,
            segments: self.segments,
        })
    }
}

/// Sequential access to the frames of a run's segments.
#[derive(Debug)]
struct RunCursor {
    run: SpillRun,
    input: BufReader<File>,
    file_pos: u64,
    segment: usize,
    remaining: u64,
    frame: Vec<u8>,
}

impl RunCursor {
    fn open(run: SpillRun) -> Result<Self> {
        let path = run.file.path();
        let file = File::open(path).map_err(|e| ShuffleError::io(path, e))?;
        Ok(RunCursor {
            input: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            run,
            file_pos: 0,
            segment: 0,
            remaining: 0,
            frame: Vec::new(),
        })
    }

    fn begin_segment(&mut self, segment: usize) -> Result<()> {
        let (offset, len) = self.run.segments.get(segment).copied().unwrap_or((self.file_pos, 0));
        if offset != self.file_pos {
            let path = self.run.file.path();
            self.input
                .seek(SeekFrom::Start(offset))
                .map_err(|e| ShuffleError::io(path, e))?;
            self.file_pos = offset;
        }
        self.segment = segment;
        self.remaining = len;
        Ok(())
    }

    /// Reads and verifies the next frame of the segment into `self.frame`.
    fn next_frame(&mut self) -> Result<Option<frame::FrameHeader>> {
        let header = frame::read_frame(&mut self.input, self.remaining, &mut self.frame)
            .map_err(|e| e.at(self.run.file.path(), self.segment))?;
        let n = self.frame.len() as u64;
        self.remaining -= n.min(self.remaining);
        self.file_pos += n;
        Ok(header)
    }
}

/// A run opened for copying its frames without decoding them.
#[derive(Debug)]
pub(crate) struct RunFrames(RunCursor);

impl RunFrames {
    pub(crate) fn open(run: SpillRun) -> Result<Self> {
        RunCursor::open(run).map(RunFrames)
    }

    /// Hands each frame of `segment` to `out`, verifying its checksum first.
    pub(crate) fn copy_segment(&mut self, segment: usize, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.0.begin_segment(segment)?;
        while self.0.next_frame()?.is_some() {
            out(&self.0.frame)?;
        }
        Ok(())
    }
}

/// Writes records already in spill order as a run of one segment (the spill of an
/// aggregation or sort buffer).
pub(crate) fn write_sorted_run<T: Serialize>(
    env: &crate::ShuffleEnv,
    records: impl Iterator<Item = T>,
) -> Result<SpillRun> {
    let mut run = RunWriter::create(&env.dirs, env.compress)?;
    for record in records {
        run.write_record(&record)?;
    }
    run.end_segment()?;
    run.finish()
}

/// Reads the records of one segment at a time; iterating yields the records of the
/// current segment (segment 0 after opening).
#[derive(Debug)]
pub(crate) struct RunReader<T> {
    cursor: RunCursor,
    path: PathBuf,
    frame: DecodedFrame,
    _records: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> RunReader<T> {
    /// Opens a run, positioned at segment 0.
    pub(crate) fn open(run: SpillRun) -> Result<Self> {
        let mut cursor = RunCursor::open(run)?;
        cursor.begin_segment(0)?;
        let path = cursor.run.file.path().to_path_buf();
        Ok(RunReader {
            cursor,
            path,
            frame: DecodedFrame::default(),
            _records: PhantomData,
        })
    }

    /// Moves to `segment`; segments must be visited in increasing order for sequential I/O
    /// (any order works, with seeks).
    pub(crate) fn begin_segment(&mut self, segment: usize) -> Result<()> {
        self.frame.reset();
        self.cursor.begin_segment(segment)
    }
}

impl<T: DeserializeOwned> Iterator for RunReader<T> {
    type Item = Result<T>;

    #[inline]
    fn next(&mut self) -> Option<Result<T>> {
        let cursor = &mut self.cursor;
        self.frame.next_record(&self.path, |data| {
            let Some(h) = cursor.next_frame()? else {
                return Ok(false);
            };
            frame::decode_payload(&h, &cursor.frame[HEADER_LEN..], data)
                .map_err(|d| ShuffleError::corrupt(cursor.run.file.path(), cursor.segment, d))?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn run_of(dirs: &ShuffleDirs, segments: &[Vec<(u32, String)>]) -> SpillRun {
        let mut w = RunWriter::create(dirs, true).expect("creates");
        for seg in segments {
            for r in seg {
                w.write_record(r).expect("writes");
            }
            w.end_segment().expect("ends");
        }
        w.finish().expect("finishes")
    }

    fn segments() -> Vec<Vec<(u32, String)>> {
        vec![
            (0..5000).map(|i| (i, format!("a{i}"))).collect(),
            vec![],
            (0..3).map(|i| (i, "b".repeat(i as usize))).collect(),
        ]
    }

    #[test]
    fn segments_read_back_in_order_and_out_of_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = ShuffleDirs::new(tmp.path()).expect("dirs");
        let segs = segments();
        let mut r = RunReader::<(u32, String)>::open(run_of(&dirs, &segs)).expect("opens");
        for order in [[0, 1, 2], [2, 0, 1]] {
            for s in order {
                r.begin_segment(s).expect("seeks");
                let got: Vec<_> = r.by_ref().collect::<Result<_>>().expect("reads");
                assert_eq!(got, segs[s]);
            }
        }
        assert_eq!(dirs.live_spill_files(), 1);
        drop(r);
        assert_eq!(dirs.live_spill_files(), 0, "the reader owns the run, and deletes it");
    }

    #[test]
    fn a_flipped_byte_in_a_spill_file_is_a_corrupt_block_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = ShuffleDirs::new(tmp.path()).expect("dirs");
        let run = run_of(&dirs, &segments());
        let path = run.file.path().to_path_buf();
        let mut bytes = fs::read(&path).expect("reads");
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0x01;
        fs::write(&path, bytes).expect("writes");
        let results: Vec<Result<(u32, String)>> = RunReader::open(run).expect("opens").collect();
        let err = results.into_iter().find_map(|r| r.err()).expect("an error");
        assert!(
            matches!(err, ShuffleError::CorruptBlock { path: ref p, reduce_id: 0, .. } if *p == path),
            "{err:?}"
        );
    }

    #[test]
    fn a_truncated_spill_file_is_detected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = ShuffleDirs::new(tmp.path()).expect("dirs");
        let run = run_of(&dirs, &segments());
        let len = fs::metadata(run.file.path()).expect("exists").len();
        fs::OpenOptions::new()
            .write(true)
            .open(run.file.path())
            .and_then(|f| f.set_len(len - 5))
            .expect("truncates");
        let mut r = RunReader::<(u32, String)>::open(run).expect("opens");
        r.begin_segment(2).expect("seeks");
        assert!(r.any(|x| matches!(x, Err(ShuffleError::CorruptBlock { reduce_id: 2, .. }))));
    }
}
