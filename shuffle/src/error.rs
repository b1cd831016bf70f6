//! The crate's one error type: every variant says which file (and block) failed.

use std::io;
use std::path::PathBuf;

/// `Result` with [`ShuffleError`] as the default error.
pub type Result<T, E = ShuffleError> = std::result::Result<T, E>;

/// Everything that can go wrong while writing, reading, spilling or merging shuffle data.
///
/// I/O and corruption name the file; corruption also names the block (the reduce partition
/// of a data file, or the segment of a spill file), so that the engine can report a fetch
/// failure for exactly that map output and recompute it.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// An operating-system error while touching `path`.
    #[error("i/o error on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A data or index file that should exist does not (a lost map output).
    #[error("missing shuffle file {}", path.display())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },

    /// Stored bytes fail their integrity checks: checksum mismatch, impossible length,
    /// undecodable lz4, or a truncated or garbled index.
    #[error("corrupt block {reduce_id} of {}: {detail}", path.display())]
    CorruptBlock {
        /// The data, index or spill file.
        path: PathBuf,
        /// The reduce partition (or, for spill files, the segment) whose bytes are bad.
        reduce_id: usize,
        /// What check failed.
        detail: String,
    },

    /// Intact bytes that do not decode as the requested record type (a type mismatch
    /// between writer and reader, which is a bug in the caller).
    #[error("cannot decode a record of {}", path.display())]
    Decode {
        /// The file (or block origin) the bytes came from.
        path: PathBuf,
        /// The cause.
        #[source]
        source: bincode::Error,
    },

    /// A record could not be serialized.
    #[error("cannot encode a record")]
    Encode(#[source] bincode::Error),

    /// The partitioner returned a partition outside `0..num_partitions`.
    #[error("partitioner returned partition {partition} of {num_partitions}")]
    BadPartition {
        /// What the partitioner returned.
        partition: usize,
        /// How many reduce partitions the shuffle has.
        num_partitions: usize,
    },

    /// A block was requested for a reduce partition the map output does not have.
    #[error("{} has {num_partitions} partitions, block {reduce_id} requested", path.display())]
    NoSuchBlock {
        /// The index file.
        path: PathBuf,
        /// The requested reduce partition.
        reduce_id: usize,
        /// How many partitions the index lists.
        num_partitions: usize,
    },

    /// A block held by another process could not be fetched from it.
    #[error("cannot fetch {} from {address}: {detail}", path.display())]
    Remote {
        /// Address of the process holding the block.
        address: String,
        /// The data file there.
        path: PathBuf,
        /// What went wrong (connection refused, missing file there...).
        detail: String,
    },
}

impl ShuffleError {
    /// Wraps an I/O error on `path`, turning "not found" into [`ShuffleError::MissingFile`].
    pub(crate) fn open(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::NotFound {
            ShuffleError::MissingFile { path }
        } else {
            ShuffleError::Io { path, source }
        }
    }

    /// Wraps an I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ShuffleError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption error for block `reduce_id` of `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reduce_id: usize, detail: impl Into<String>) -> Self {
        ShuffleError::CorruptBlock {
            path: path.into(),
            reduce_id,
            detail: detail.into(),
        }
    }

    /// Whether this error means the stored map output is unusable (missing or corrupt),
    /// so that the engine should treat it as a fetch failure and recompute the map task.
    pub fn is_lost_output(&self) -> bool {
        matches!(
            self,
            ShuffleError::MissingFile { .. } | ShuffleError::CorruptBlock { .. } | ShuffleError::Remote { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_name_the_file_and_keep_the_cause_apart() {
        let e = ShuffleError::io("/tmp/x.data", io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "i/o error on /tmp/x.data");
        assert_eq!(e.source().expect("has a source").to_string(), "disk on fire");

        let e = ShuffleError::corrupt("/tmp/x.data", 3, "checksum mismatch");
        assert_eq!(e.to_string(), "corrupt block 3 of /tmp/x.data: checksum mismatch");
        assert!(e.is_lost_output());

        let e = ShuffleError::open("/tmp/y.index", io::ErrorKind::NotFound.into());
        assert!(matches!(e, ShuffleError::MissingFile { ref path } if path.ends_with("y.index")));
        assert_eq!(e.to_string(), "missing shuffle file /tmp/y.index");
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ShuffleError>();
    }
}
