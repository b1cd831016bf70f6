//! Where shuffle outputs and spill files live under one local root, and the guards that
//! delete temporary files.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ShuffleError};

/// Where one map task's output lives: one data file and one index file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapOutputFiles {
    /// Blocks of all reduce partitions, concatenated in partition order.
    pub data: PathBuf,
    /// Offsets and lengths of the blocks, checksummed (see the crate docs).
    pub index: PathBuf,
}

/// Directory layout of shuffle and spill files under one root (an executor's local dir):
///
/// ```text
/// {root}/shuffle_{s}/shuffle_{s}_{m}.data     map output m of shuffle s
/// {root}/shuffle_{s}/shuffle_{s}_{m}.index
/// {root}/spill/spill_{pid}_{n}                 spill runs, deleted when dropped
/// ```
#[derive(Debug)]
pub struct ShuffleDirs {
    root: PathBuf,
    spill_dir: PathBuf,
    /// Makes temporary and spill file names unique within this process.
    next_file: AtomicU64,
    /// Serialises the rename pair (data, then index) of map-output commits, so that two
    /// attempts of one task in this process cannot interleave their renames.
    pub(crate) commit_lock: Mutex<()>,
}

impl ShuffleDirs {
    /// Uses (and creates, with parents) `root` and its `spill/` subdirectory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let spill_dir = root.join("spill");
        fs::create_dir_all(&spill_dir).map_err(|e| ShuffleError::io(&spill_dir, e))?;
        Ok(ShuffleDirs {
            root,
            spill_dir,
            next_file: AtomicU64::new(0),
            commit_lock: Mutex::new(()),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files of map task `map_id` (the map partition index) of shuffle `shuffle_id`.
    /// Nothing is created until a writer commits them.
    pub fn map_output(&self, shuffle_id: u64, map_id: usize) -> MapOutputFiles {
        let dir = self.shuffle_dir(shuffle_id);
        MapOutputFiles {
            data: dir.join(format!("shuffle_{shuffle_id}_{map_id}.data")),
            index: dir.join(format!("shuffle_{shuffle_id}_{map_id}.index")),
        }
    }

    fn shuffle_dir(&self, shuffle_id: u64) -> PathBuf {
        self.root.join(format!("shuffle_{shuffle_id}"))
    }

    /// Deletes all map outputs of one shuffle (nothing to do if there are none).
    pub fn remove_shuffle(&self, shuffle_id: u64) -> Result<()> {
        let dir = self.shuffle_dir(shuffle_id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ShuffleError::io(dir, e)),
            _ => Ok(()),
        }
    }

    /// Creates a fresh, empty spill file under `{root}/spill/`; dropping the guard deletes it.
    pub fn spill_file(&self) -> Result<SpillFile> {
        let pid = std::process::id();
        loop {
            let n = self.next_file.fetch_add(1, Ordering::Relaxed);
            let path = self.spill_dir.join(format!("spill_{pid}_{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(SpillFile { path }),
                // Left by an earlier process with our pid, or another `ShuffleDirs` on the
                // same root: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ShuffleError::io(path, e)),
            }
        }
    }

    /// Number of spill files currently on disk (0 when every spill has been cleaned up).
    pub fn live_spill_files(&self) -> usize {
        fs::read_dir(&self.spill_dir).map_or(0, |entries| entries.filter(|e| e.is_ok()).count())
    }

    /// Creates a temporary file beside `dest` (same directory, so a rename is atomic),
    /// creating the directory if needed.
    pub(crate) fn temp_beside(&self, dest: &Path) -> Result<(TempFile, File)> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| ShuffleError::io(dir, e))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        let pid = std::process::id();
        loop {
            let n = self.next_file.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.tmp_{pid}_{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((TempFile { path: Some(path) }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ShuffleError::io(path, e)),
            }
        }
    }
}

/// A spill file on disk, deleted when this guard is dropped.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
}

impl SpillFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        remove_quietly(&self.path);
    }
}

/// A temporary output file, deleted on drop unless renamed into place with [`TempFile::persist`].
#[derive(Debug)]
pub(crate) struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("temp file not yet persisted")
    }

    /// Atomically renames the file to `dest`, replacing whatever is there.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        let path = self.path.take().expect("temp file not yet persisted");
        fs::rename(&path, dest).map_err(|e| {
            remove_quietly(&path);
            ShuffleError::io(dest, e)
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            remove_quietly(path);
        }
    }
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete temporary shuffle file");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_spill_guards() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = ShuffleDirs::new(tmp.path().join("a/b")).expect("creates");
        assert!(dirs.root().is_dir());
        let out = dirs.map_output(3, 7);
        assert!(out.data.ends_with("shuffle_3/shuffle_3_7.data"));
        assert!(out.index.ends_with("shuffle_3/shuffle_3_7.index"));

        let a = dirs.spill_file().expect("spill");
        let b = dirs.spill_file().expect("spill");
        assert_ne!(a.path(), b.path());
        assert!(a.path().exists());
        assert_eq!(dirs.live_spill_files(), 2);
        drop(a);
        assert_eq!(dirs.live_spill_files(), 1);
        drop(b);
        assert_eq!(dirs.live_spill_files(), 0);
    }

    #[test]
    fn temp_files_vanish_unless_persisted_and_shuffles_are_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = ShuffleDirs::new(tmp.path()).expect("creates");
        let out = dirs.map_output(1, 0);
        let (t, _) = dirs.temp_beside(&out.data).expect("temp");
        let dangling = t.path().to_path_buf();
        drop(t);
        assert!(!dangling.exists());

        let (t, _) = dirs.temp_beside(&out.data).expect("temp");
        t.persist(&out.data).expect("renames");
        assert!(out.data.exists());
        dirs.remove_shuffle(1).expect("removes");
        assert!(!out.data.exists());
        dirs.remove_shuffle(1).expect("removing twice is fine");
    }
}
