//! Frames: the checksummed, optionally lz4-compressed unit that blocks and spill runs are made of.
//!
//! ```text
//! offset size  field
//!      0    1  magic 0xF1 (frame format version 1)
//!      1    1  flags: bit 0 = payload is an lz4 block; other bits must be 0
//!      2    4  raw length: bytes of records once decompressed (u32, little endian)
//!      6    4  stored length: bytes of payload that follow (u32 LE)
//!     10    4  crc32c of bytes 0..10 followed by the payload (u32 LE)
//!     14    n  payload: whole bincode records, lz4-compressed when the flag says so
//! ```
//!
//! A frame holds whole records (none straddles two frames) and about
//! [`FRAME_TARGET_BYTES`] of them, so that readers decompress in bounded pieces. A frame
//! whose data does not shrink under lz4 is stored raw.
//!
//! [`FramedWriter`] writes records as frames, segment by segment (the blocks of a data
//! file, the partitions of a spill run).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::codec;
use crate::error::{Result, ShuffleError};

/// First byte of every frame; a new layout gets a new magic.
pub(crate) const FRAME_MAGIC: u8 = 0xF1;
/// Flag bit: the payload is an lz4 block.
const FLAG_LZ4: u8 = 1;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 14;
/// Raw bytes collected before a frame is closed. lz4's window is 64 KiB, so larger frames
/// hardly compress better; smaller ones keep merge read buffers small (one frame per run).
pub(crate) const FRAME_TARGET_BYTES: usize = 256 * 1024;
/// lz4 cannot expand data by more than this factor; a header claiming more is corrupt.
const MAX_LZ4_RATIO: u64 = 256;

/// A parsed, not yet checksum-verified frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    lz4: bool,
    /// Uncompressed bytes of records.
    pub(crate) raw_len: u32,
    /// Bytes of payload after the header.
    pub(crate) stored_len: u32,
    crc: u32,
}

/// Why a frame could not be read: I/O, or bytes that fail a check (the detail).
#[derive(Debug)]
pub(crate) enum FrameError {
    Io(io::Error),
    Corrupt(String),
}

impl FrameError {
    /// Attaches the file and block the frame belongs to.
    pub(crate) fn at(self, path: &std::path::Path, block: usize) -> ShuffleError {
        match self {
            FrameError::Io(e) => ShuffleError::io(path, e),
            FrameError::Corrupt(detail) => ShuffleError::corrupt(path, block, detail),
        }
    }
}

/// Appends one frame holding `raw` (whole records) to `out`.
pub(crate) fn encode_frame(raw: &[u8], compress: bool, out: &mut Vec<u8>) -> crate::Result<()> {
    let raw_len = u32::try_from(raw.len()).map_err(|_| too_large(raw.len()))?;
    let start = out.len();
    let body = start + HEADER_LEN;
    out.resize(body, 0);
    let mut flags = 0;
    if compress && !raw.is_empty() {
        let max = lz4_flex::block::get_maximum_output_size(raw.len());
        out.resize(body + max, 0);
        let n = lz4_flex::block::compress_into(raw, &mut out[body..])
            .expect("output buffer sized by get_maximum_output_size");
        if n < raw.len() {
            out.truncate(body + n);
            flags = FLAG_LZ4;
        } else {
            out.truncate(body);
        }
    }
    if flags == 0 {
        out.extend_from_slice(raw);
    }
    let stored_len = (out.len() - body) as u32;
    let head = &mut out[start..body];
    head[0] = FRAME_MAGIC;
    head[1] = flags;
    head[2..6].copy_from_slice(&raw_len.to_le_bytes());
    head[6..10].copy_from_slice(&stored_len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 10]), &out[body..]);
    out[start + 10..body].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn too_large(len: usize) -> ShuffleError {
    ShuffleError::Encode(Box::new(bincode::ErrorKind::Custom(format!(
        "a single record of {len} bytes does not fit in a frame (4 GiB at most)"
    ))))
}

/// Parses and sanity-checks a header; `available` is how many bytes may follow it.
pub(crate) fn parse_header(h: &[u8; HEADER_LEN], available: u64) -> Result<FrameHeader, String> {
    if h[0] != FRAME_MAGIC {
        return Err(format!("bad frame magic {:#04x} (expected {FRAME_MAGIC:#04x})", h[0]));
    }
    if h[1] & !FLAG_LZ4 != 0 {
        return Err(format!("unknown frame flags {:#04x}", h[1]));
    }
    let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
    let header = FrameHeader {
        lz4: h[1] & FLAG_LZ4 != 0,
        raw_len: word(2),
        stored_len: word(6),
        crc: word(10),
    };
    if u64::from(header.stored_len) > available {
        return Err(format!(
            "frame claims {} payload bytes, only {available} left",
            header.stored_len
        ));
    }
    let plausible = if header.lz4 {
        u64::from(header.raw_len) <= u64::from(header.stored_len) * MAX_LZ4_RATIO
    } else {
        header.raw_len == header.stored_len
    };
    if !plausible {
        return Err(format!(
            "frame lengths {} raw / {} stored are impossible",
            header.raw_len, header.stored_len
        ));
    }
    Ok(header)
}

/// Checks the frame's checksum over its header bytes and payload.
pub(crate) fn verify(h: &FrameHeader, header_bytes: &[u8], payload: &[u8]) -> Result<(), String> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header_bytes[..10]), payload);
    if crc == h.crc {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch (stored {:#010x}, computed {crc:#010x})",
            h.crc
        ))
    }
}

/// Appends the records of a verified frame to `out`.
pub(crate) fn decode_payload(h: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if !h.lz4 {
        out.extend_from_slice(payload);
        return Ok(());
    }
    let start = out.len();
    let raw_len = h.raw_len as usize;
    out.resize(start + raw_len, 0);
    match lz4_flex::block::decompress_into(payload, &mut out[start..]) {
        Ok(n) if n == raw_len => Ok(()),
        Ok(n) => {
            out.truncate(start);
            Err(format!("lz4 payload holds {n} bytes, header says {raw_len}"))
        }
        Err(e) => {
            out.truncate(start);
            Err(format!("bad lz4 payload: {e}"))
        }
    }
}

/// Iterates over the verified frames of an in-memory block: yields `(header, payload)`.
pub(crate) struct FrameSlices<'a> {
    rest: &'a [u8],
}

impl<'a> FrameSlices<'a> {
    pub(crate) fn new(block: &'a [u8]) -> Self {
        FrameSlices { rest: block }
    }
}

impl<'a> Iterator for FrameSlices<'a> {
    type Item = Result<(FrameHeader, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((head, body)) = self.rest.split_first_chunk::<HEADER_LEN>() else {
            let n = self.rest.len();
            self.rest = &[];
            return Some(Err(format!("{n} trailing bytes are too short for a frame header")));
        };
        let item = parse_header(head, body.len() as u64).and_then(|h| {
            let payload = &body[..h.stored_len as usize];
            verify(&h, head, payload).map(|()| (h, payload))
        });
        match item {
            Ok((h, payload)) => {
                self.rest = &body[h.stored_len as usize..];
                Some(Ok((h, payload)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Reads the next frame of a stream into `frame` (header and payload, still encoded) and
/// verifies it. `remaining` is how many bytes of the current block are left; returns the
/// header, or `None` at the end of the block.
pub(crate) fn read_frame<R: Read>(
    r: &mut R,
    remaining: u64,
    frame: &mut Vec<u8>,
) -> Result<Option<FrameHeader>, FrameError> {
    if remaining == 0 {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_LEN];
    if remaining < HEADER_LEN as u64 {
        return Err(FrameError::Corrupt(format!(
            "{remaining} bytes left are too short for a frame header"
        )));
    }
    r.read_exact(&mut head).map_err(eof_is_corrupt)?;
    let h = parse_header(&head, remaining - HEADER_LEN as u64).map_err(FrameError::Corrupt)?;
    frame.clear();
    frame.extend_from_slice(&head);
    frame.resize(HEADER_LEN + h.stored_len as usize, 0);
    r.read_exact(&mut frame[HEADER_LEN..]).map_err(eof_is_corrupt)?;
    verify(&h, &head, &frame[HEADER_LEN..]).map_err(FrameError::Corrupt)?;
    Ok(Some(h))
}

fn eof_is_corrupt(e: io::Error) -> FrameError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FrameError::Corrupt("file ends inside a frame".into())
    } else {
        FrameError::Io(e)
    }
}

// Writing frames: the blocks of a data file, the segments of a spill run.

/// Encodes records into frames of about [`FRAME_TARGET_BYTES`] and writes them to `out`,
/// keeping track of where each segment (block) starts and how long it is.
#[derive(Debug)]
pub(crate) struct FramedWriter<W: Write> {
    out: W,
    path: PathBuf,
    compress: bool,
    /// Encoded records of the frame being filled.
    raw: Vec<u8>,
    /// The last encoded frame (reused between frames).
    frame: Vec<u8>,
    pos: u64,
    segment_start: u64,
}

impl<W: Write> FramedWriter<W> {
    /// A writer to `out`, which is the file at `path` (for error messages).
    pub(crate) fn new(out: W, path: &Path, compress: bool) -> Self {
        FramedWriter {
            out,
            path: path.to_path_buf(),
            compress,
            raw: Vec::new(),
            frame: Vec::new(),
            pos: 0,
            segment_start: 0,
        }
    }

    /// Appends one record to the current segment.
    #[inline]
    pub(crate) fn write_record<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        codec::encode_into(&mut self.raw, record)?;
        if self.raw.len() >= FRAME_TARGET_BYTES {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Appends already framed (and verified) bytes to the current segment.
    pub(crate) fn write_frames(&mut self, frames: &[u8]) -> Result<()> {
        self.flush_frame()?;
        self.write_out(frames)
    }

    fn write_out(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| ShuffleError::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn flush_frame(&mut self) -> Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        self.frame.clear();
        encode_frame(&self.raw, self.compress, &mut self.frame)?;
        self.raw.clear();
        let frame = std::mem::take(&mut self.frame);
        let written = self.write_out(&frame);
        self.frame = frame;
        written
    }

    /// Closes the current segment and returns its length in bytes (0 if it is empty).
    pub(crate) fn end_segment(&mut self) -> Result<u64> {
        self.flush_frame()?;
        let len = self.pos - self.segment_start;
        self.segment_start = self.pos;
        Ok(len)
    }

    /// Bytes written so far.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Flushes and returns the underlying writer. Records after the last
    /// [`end_segment`](FramedWriter::end_segment) belong to no segment: end it first.
    pub(crate) fn into_inner(mut self) -> Result<W> {
        debug_assert!(self.raw.is_empty(), "segment not ended");
        self.flush_frame()?;
        self.out.flush().map_err(|e| ShuffleError::io(&self.path, e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 7) as u8 * 3).collect()
    }

    fn decode_all(block: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for f in FrameSlices::new(block) {
            let (h, payload) = f?;
            decode_payload(&h, payload, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn frames_round_trip_compressed_raw_and_empty() {
        for compress in [false, true] {
            for len in [0, 1, 100, 70_000] {
                let raw = sample(len);
                let mut frame = vec![9, 9];
                encode_frame(&raw, compress, &mut frame).expect("encodes");
                assert_eq!(frame.drain(..2).collect::<Vec<_>>(), [9, 9], "appends");
                if compress && len >= 100 {
                    assert!(frame.len() < raw.len(), "repetitive data shrinks");
                }
                assert_eq!(decode_all(&frame).expect("decodes"), raw);
            }
        }
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let raw: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut frame = Vec::new();
        encode_frame(&raw, true, &mut frame).expect("encodes");
        assert_eq!(frame.len(), HEADER_LEN + raw.len());
        assert_eq!(frame[1], 0, "no lz4 flag");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for compress in [false, true] {
            let mut block = Vec::new();
            for part in [sample(300), sample(50)] {
                encode_frame(&part, compress, &mut block).expect("encodes");
            }
            for byte in 0..block.len() {
                for bit in [0, 3, 7] {
                    let mut bad = block.clone();
                    bad[byte] ^= 1 << bit;
                    assert!(decode_all(&bad).is_err(), "flip at {byte}:{bit} (compress {compress})");
                }
            }
        }
    }

    #[test]
    fn truncation_is_detected_in_memory_and_in_streams() {
        let mut frame = Vec::new();
        encode_frame(&sample(1000), true, &mut frame).expect("encodes");
        for cut in 1..frame.len() {
            assert!(decode_all(&frame[..cut]).is_err(), "cut at {cut}");
            // A stream that ends early, and a block length that says less than the frame.
            let mut buf = Vec::new();
            let short = read_frame(&mut &frame[..cut], frame.len() as u64, &mut buf);
            assert!(matches!(short, Err(FrameError::Corrupt(_))), "stream cut at {cut}");
            let small = read_frame(&mut &frame[..], cut as u64, &mut buf);
            assert!(matches!(small, Err(FrameError::Corrupt(_))), "limit {cut}");
        }
        let mut buf = Vec::new();
        let h = read_frame(&mut &frame[..], frame.len() as u64, &mut buf)
            .expect("reads")
            .expect("one frame");
        assert_eq!(buf, frame);
        assert_eq!(h.raw_len, 1000);
        assert!(read_frame(&mut &frame[..0], 0, &mut buf).expect("end").is_none());
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;
    use crate::block::{BlockOrigin, decode_block};

    #[test]
    fn segments_are_independent_blocks() {
        let mut w = FramedWriter::new(Vec::new(), Path::new("mem"), true);
        let mut lens = Vec::new();
        for seg in 0..4u64 {
            // Segment 2 is empty; segment 3 spans several frames.
            let n: u64 = [10, 1, 0, 100_000][seg as usize];
            for i in 0..n {
                w.write_record(&(seg, i)).expect("writes");
            }
            lens.push(w.end_segment().expect("ends"));
        }
        assert_eq!(lens[2], 0);
        assert_eq!(w.position(), lens.iter().sum::<u64>());
        let bytes = w.into_inner().expect("flushes");
        let mut at = 0usize;
        for (seg, len) in lens.into_iter().enumerate() {
            let origin = BlockOrigin {
                path: "mem".into(),
                reduce_id: seg,
            };
            let block = &bytes[at..at + len as usize];
            let records: Vec<(u64, u64)> = decode_block(block, &origin)
                .expect("valid")
                .collect::<Result<_>>()
                .expect("decodes");
            assert!(records.iter().all(|r| r.0 == seg as u64));
            assert_eq!(records.len(), [10, 1, 0, 100_000][seg]);
            at += len as usize;
        }
    }
}

/// The decoded frame a record reader works through, shared by spill-run readers and streamed
/// blocks, which differ only in where their next frame comes from.
#[derive(Debug, Default)]
pub(crate) struct DecodedFrame {
    data: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl DecodedFrame {
    /// Forgets the current frame (moving to another segment).
    pub(crate) fn reset(&mut self) {
        self.data.clear();
        self.pos = 0;
        self.failed = false;
    }

    /// The next record: from the current frame, else from the one `next_frame` decodes into
    /// the buffer it is given (returning false at the end). After an error, yields nothing more.
    #[inline]
    pub(crate) fn next_record<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &Path,
        mut next_frame: impl FnMut(&mut Vec<u8>) -> crate::Result<bool>,
    ) -> Option<crate::Result<T>> {
        while !self.failed {
            if self.pos < self.data.len() {
                let item =
                    crate::codec::decode_at(&self.data, &mut self.pos).map_err(|source| crate::ShuffleError::Decode {
                        path: path.to_path_buf(),
                        source,
                    });
                self.failed = item.is_err();
                return Some(item);
            }
            self.data.clear();
            self.pos = 0;
            match next_frame(&mut self.data) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
