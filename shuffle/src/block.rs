//! Decoding one stored block (one reduce partition of one map output) into records.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Result, ShuffleError};
use crate::frame::{self, FrameSlices};

/// Where a block came from, for error messages: displays as `"{path} block {reduce_id}"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOrigin {
    /// The data file the block was read from (or the remote location it was fetched from).
    pub path: PathBuf,
    /// The reduce partition.
    pub reduce_id: usize,
}

impl fmt::Display for BlockOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} block {}", self.path.display(), self.reduce_id)
    }
}

/// Verifies every frame checksum of a block, decompresses it, and returns its records.
///
/// All integrity checks happen here, before the first record is yielded, so a corrupt
/// block fails as a whole ([`ShuffleError::CorruptBlock`] naming `origin`) and never
/// yields part of its records. An empty block yields nothing.
///
/// ```
/// # fn main() -> flint_shuffle::Result<()> {
/// use flint_shuffle::{decode_block, BlockOrigin};
/// let origin = BlockOrigin { path: "nowhere.data".into(), reduce_id: 0 };
/// let mut records = decode_block::<String, u64>(&[], &origin)?;
/// assert!(records.next().is_none());
/// # Ok(()) }
/// ```
pub fn decode_block<K: DeserializeOwned, X: DeserializeOwned>(
    raw: &[u8],
    origin: &BlockOrigin,
) -> Result<BlockRecords<K, X>> {
    let corrupt = |detail: String| ShuffleError::corrupt(&origin.path, origin.reduce_id, detail);
    let mut total = 0usize;
    for f in FrameSlices::new(raw) {
        let (h, _) = f.map_err(corrupt)?;
        total += h.raw_len as usize;
    }
    let mut data = Vec::with_capacity(total);
    for f in FrameSlices::new(raw) {
        let (h, payload) = f.map_err(corrupt)?;
        frame::decode_payload(&h, payload, &mut data).map_err(corrupt)?;
    }
    Ok(BlockRecords::new(data, origin.path.clone()))
}

/// The records of one decoded block, streamed out of its decompressed bytes.
///
/// Yields `Err(ShuffleError::Decode)` (and then stops) if the bytes do not decode as
/// `(K, X)`, which means writer and reader disagree on the record type.
pub struct BlockRecords<K, X> {
    data: Vec<u8>,
    pos: usize,
    path: PathBuf,
    failed: bool,
    _records: PhantomData<fn() -> (K, X)>,
}

impl<K, X> BlockRecords<K, X> {
    pub(crate) fn new(data: Vec<u8>, path: PathBuf) -> Self {
        BlockRecords {
            data,
            pos: 0,
            path,
            failed: false,
            _records: PhantomData,
        }
    }

    /// Decompressed bytes not yet decoded.
    pub fn remaining_bytes(&self) -> usize {
        self.data.len() - self.pos
    }
}

impl<K: DeserializeOwned, X: DeserializeOwned> Iterator for BlockRecords<K, X> {
    type Item = Result<(K, X)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        match codec::decode_at(&self.data, &mut self.pos) {
            Ok(record) => Some(Ok(record)),
            Err(source) => {
                self.failed = true;
                Some(Err(ShuffleError::Decode {
                    path: self.path.clone(),
                    source,
                }))
            }
        }
    }
}

impl<K, X> fmt::Debug for BlockRecords<K, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockRecords")
            .field("path", &self.path)
            .field("bytes", &self.data.len())
            .field("pos", &self.pos)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn block_of(records: &[(String, u64)], per_frame: usize, compress: bool) -> Vec<u8> {
        let mut block = Vec::new();
        for chunk in records.chunks(per_frame) {
            let mut raw = Vec::new();
            for r in chunk {
                codec::encode_into(&mut raw, r).expect("encodes");
            }
            encode_frame(&raw, compress, &mut block).expect("frames");
        }
        block
    }

    fn origin() -> BlockOrigin {
        BlockOrigin {
            path: "m.data".into(),
            reduce_id: 4,
        }
    }

    #[test]
    fn multi_frame_blocks_decode_in_order() {
        let records: Vec<(String, u64)> = (0..1000).map(|i| (format!("k{}", i % 37), i)).collect();
        for compress in [false, true] {
            let block = block_of(&records, 77, compress);
            let back: Vec<(String, u64)> = decode_block(&block, &origin())
                .expect("valid")
                .collect::<Result<_>>()
                .expect("decodes");
            assert_eq!(back, records);
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_whole_block_naming_its_origin() {
        let records: Vec<(String, u64)> = (0..100).map(|i| (i.to_string(), i)).collect();
        let mut block = block_of(&records, 30, true);
        let mid = block.len() / 2;
        block[mid] ^= 0x40;
        let err = decode_block::<String, u64>(&block, &origin()).expect_err("corrupt");
        assert!(
            matches!(err, ShuffleError::CorruptBlock { ref path, reduce_id: 4, .. } if path.ends_with("m.data")),
            "{err:?}"
        );
        assert_eq!(origin().to_string(), "m.data block 4");
    }

    #[test]
    fn a_type_mismatch_is_a_decode_error_then_the_end() {
        let block = block_of(&[("x".to_string(), 1)], 10, false);
        let mut it = decode_block::<u64, String>(&block, &origin()).expect("frames are fine");
        assert!(matches!(it.next(), Some(Err(ShuffleError::Decode { .. }))));
        assert!(it.next().is_none());
    }
}
