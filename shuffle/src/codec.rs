//! Record encoding: the one place that knows records are bincode 1.x (fixed-width integers,
//! little endian), so that another format can replace it behind these three functions.

use std::io;

use bincode::BincodeRead;
use serde::Serialize;
use serde::de::{DeserializeOwned, Visitor};

use crate::error::{Result, ShuffleError};

/// Appends the encoding of `value` to `buf`.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<()> {
    bincode::serialize_into(buf, value).map_err(ShuffleError::Encode)
}

/// The encoded size of `value` in bytes (0 if it cannot be encoded; encoding will then
/// report the error).
#[inline]
pub(crate) fn encoded_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    bincode::serialized_size(value).unwrap_or(0)
}

/// Decodes one value starting at `*pos` in `buf` and moves `pos` past it.
///
/// Strings and byte buffers are copied straight out of `buf` (no intermediate buffer), so
/// a record costs only the allocations its own type needs.
#[inline]
pub(crate) fn decode_at<T: DeserializeOwned>(buf: &[u8], pos: &mut usize) -> bincode::Result<T> {
    let mut cursor = SliceCursor { rest: &buf[*pos..] };
    let value = bincode::deserialize_from_custom(&mut cursor)?;
    *pos = buf.len() - cursor.rest.len();
    Ok(value)
}

/// A reader over a byte slice that remembers how far it got (bincode's own slice reader
/// does not say where it stopped).
struct SliceCursor<'a> {
    rest: &'a [u8],
}

impl SliceCursor<'_> {
    #[inline]
    fn take(&mut self, len: usize) -> bincode::Result<&'_ [u8]> {
        if len > self.rest.len() {
            return Err(Box::new(bincode::ErrorKind::Io(io::ErrorKind::UnexpectedEof.into())));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }
}

impl io::Read for SliceCursor<'_> {
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }

    #[inline]
    fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        if out.len() > self.rest.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (head, tail) = self.rest.split_at(out.len());
        out.copy_from_slice(head);
        self.rest = tail;
        Ok(())
    }
}

impl<'a> BincodeRead<'a> for &mut SliceCursor<'a> {
    #[inline]
    fn forward_read_str<V: Visitor<'a>>(&mut self, length: usize, visitor: V) -> bincode::Result<V::Value> {
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_str(s),
            Err(e) => Err(Box::new(bincode::ErrorKind::InvalidUtf8Encoding(e))),
        }
    }

    #[inline]
    fn get_byte_buffer(&mut self, length: usize) -> bincode::Result<Vec<u8>> {
        self.take(length).map(<[u8]>::to_vec)
    }

    #[inline]
    fn forward_read_bytes<V: Visitor<'a>>(&mut self, length: usize, visitor: V) -> bincode::Result<V::Value> {
        visitor.visit_bytes(self.take(length)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_back_to_back_round_trip() {
        let records = vec![
            ("alpha".to_string(), vec![1u8, 2, 3], 7u64),
            (String::new(), vec![], 0),
            ("ünïcødé".to_string(), vec![255; 40], u64::MAX),
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode_into(&mut buf, r).expect("encodes");
            assert!(encoded_size(r) > 0);
        }
        assert_eq!(buf.len() as u64, records.iter().map(encoded_size).sum::<u64>());
        let mut pos = 0;
        let mut back = Vec::new();
        while pos < buf.len() {
            back.push(decode_at::<(String, Vec<u8>, u64)>(&buf, &mut pos).expect("decodes"));
        }
        assert_eq!(back, records);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &("hello".to_string(), 1u64)).expect("encodes");
        for cut in 0..buf.len() {
            let mut pos = 0;
            assert!(decode_at::<(String, u64)>(&buf[..cut], &mut pos).is_err());
        }
    }
}
