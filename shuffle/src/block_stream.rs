//! Reading one block of a local map output as a stream of records, frame by frame.
//!
//! [`read_block`](crate::read_block) + [`decode_block`](crate::decode_block) hold a whole block
//! (stored and decompressed) in memory, which is right for a block that crossed the network but
//! not for a large local block: a reduce partition of a 1 GB sort is hundreds of megabytes.
//! [`open_block`] reads the block's frames one at a time from the data file, verifying each
//! frame's checksum before decoding it, so a reader holds one frame (~256 KiB) at a time. A
//! corrupt frame is reported when it is reached, after the records before it were yielded: the
//! caller must treat the block's records as void on error (the engine fails the task, whose
//! partial output is discarded).

use std::fs::File;
use std::io::Read;
use std::io::{BufReader, Seek, SeekFrom, Take};
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::MapOutputFiles;
use crate::error::{Result, ShuffleError};
use crate::frame::{self, DecodedFrame, HEADER_LEN};
use crate::map_output::locate_block;

/// Read buffer of the data file (one frame is ~256 KiB).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The records of one local block, read frame by frame. See [`open_block`].
pub struct StreamedBlock<K, X> {
    path: PathBuf,
    reduce_id: usize,
    reader: Take<BufReader<File>>,
    remaining: u64,
    frame: Vec<u8>,
    decoded: DecodedFrame,
    _records: PhantomData<fn() -> (K, X)>,
}

/// Opens block `reduce_id` of a local map output for streaming. Index errors (missing files,
/// corrupt index, wrong data file length, no such block) are reported here; frame errors as
/// the stream reaches them.
pub fn open_block<K: DeserializeOwned, X: DeserializeOwned>(
    files: &MapOutputFiles,
    reduce_id: usize,
) -> Result<StreamedBlock<K, X>> {
    let (mut data, offset, len) = locate_block(files, reduce_id)?;
    data.seek(SeekFrom::Start(offset))
        .map_err(|e| ShuffleError::io(&files.data, e))?;
    Ok(StreamedBlock {
        path: files.data.clone(),
        reduce_id,
        reader: BufReader::with_capacity(READ_BUFFER_BYTES, data).take(len),
        remaining: len,
        frame: Vec::new(),
        decoded: DecodedFrame::default(),
        _records: PhantomData,
    })
}

impl<K: DeserializeOwned, X: DeserializeOwned> Iterator for StreamedBlock<K, X> {
    type Item = Result<(K, X)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (reader, remaining, frame) = (&mut self.reader, &mut self.remaining, &mut self.frame);
        let (path, reduce_id) = (&self.path, self.reduce_id);
        self.decoded.next_record(path, |data| {
            let header = frame::read_frame(reader, *remaining, frame).map_err(|e| e.at(path, reduce_id))?;
            let Some(h) = header else {
                return Ok(false);
            };
            *remaining -= (HEADER_LEN + h.stored_len as usize) as u64;
            frame::decode_payload(&h, &frame[HEADER_LEN..], data)
                .map_err(|d| ShuffleError::corrupt(path, reduce_id, d))?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryBudget, ShuffleDirs, ShuffleEnv, write_plain};

    fn write(records: &[(u64, String)], parts: usize) -> (tempfile::TempDir, MapOutputFiles) {
        let tmp = tempfile::tempdir().unwrap();
        let env = ShuffleEnv::new(ShuffleDirs::new(tmp.path()).unwrap(), MemoryBudget::new(1 << 30), true);
        let out = env.dirs.map_output(0, 0);
        let n = parts;
        write_plain(
            records.iter().cloned(),
            &move |k: &u64| (*k as usize) % n,
            n,
            &out,
            &env,
        )
        .unwrap();
        (tmp, out)
    }

    #[test]
    fn streams_the_same_records_as_decoding_the_whole_block() {
        // Big enough for several frames per block.
        let records: Vec<(u64, String)> = (0..60_000u64)
            .map(|i| (i, format!("value {i} {}", "x".repeat(i as usize % 40))))
            .collect();
        let (_tmp, out) = write(&records, 3);
        for p in 0..3 {
            let streamed: Vec<(u64, String)> = open_block(&out, p).unwrap().collect::<Result<_>>().unwrap();
            let origin = crate::BlockOrigin {
                path: out.data.clone(),
                reduce_id: p,
            };
            let whole: Vec<(u64, String)> = crate::decode_block(&crate::read_block(&out, p).unwrap(), &origin)
                .unwrap()
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(streamed, whole);
            assert_eq!(streamed.len(), 20_000);
        }
    }

    #[test]
    fn a_corrupt_frame_is_reported_with_file_and_block() {
        let records: Vec<(u64, String)> = (0..60_000u64).map(|i| (i, format!("value {i}"))).collect();
        let (_tmp, out) = write(&records, 2);
        let mut bytes = std::fs::read(&out.data).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0x5A;
        std::fs::write(&out.data, &bytes).unwrap();
        let err = open_block::<u64, String>(&out, 1)
            .unwrap()
            .find_map(|r| r.err())
            .expect("corruption found");
        match err {
            ShuffleError::CorruptBlock { path, reduce_id, .. } => {
                assert_eq!(path, out.data);
                assert_eq!(reduce_id, 1);
            }
            other => panic!("expected CorruptBlock, got {other:?}"),
        }
        std::fs::remove_file(&out.data).unwrap();
        assert!(matches!(
            open_block::<u64, String>(&out, 0),
            Err(ShuffleError::MissingFile { .. })
        ));
    }
}
