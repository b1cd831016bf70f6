//! Text inputs: `text_file` (lines, files cut into byte-range splits) and `whole_text_files`.
//!
//! As Hadoop's `TextInputFormat`: files are cut into splits of at most 32 MiB, at least
//! `min_partitions` of them, their number rounded up to a multiple of `min_partitions` so tasks
//! run in even rounds; a line belongs to the split that holds its
//! first byte, so a split skips the partial line it starts in and reads past its end to finish
//! its last line. Files ending in `.gz` are decompressed and read whole, one split each (gzip
//! cannot be entered in the middle). Inputs are listed on the driver when a job first needs them, so a missing
//! path is an error of the action, named with the path, before any task runs.

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode};
use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::task_context::{TaskContext, raise};
use crate::wire::{self, Encoded};

const MAX_SPLIT_BYTES: u64 = 32 << 20;
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Files named by a path: the file itself, the visible files of a directory (names starting
/// with `_` or `.` are skipped, as Hadoop does), or the files matching a glob; sorted by name.
pub(crate) fn list_input_files(pattern: &str) -> Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    let add_dir = |dir: &Path, files: &mut Vec<(PathBuf, u64)>| -> Result<()> {
        let entries = fs::read_dir(dir).map_err(|e| EngineError::read(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::read(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(|e| EngineError::read(entry.path(), e))?;
            if meta.is_file() {
                files.push((entry.path(), meta.len()));
            }
        }
        Ok(())
    };
    let path = Path::new(pattern);
    if path.is_dir() {
        add_dir(path, &mut files)?;
    } else if path.is_file() {
        let meta = fs::metadata(path).map_err(|e| EngineError::read(path, e))?;
        files.push((path.to_path_buf(), meta.len()));
    } else if pattern.contains(['*', '?', '[']) {
        let matches = glob::glob(pattern)
            .map_err(|e| EngineError::invalid("input path", pattern, &format!("not a valid glob: {e}")))?;
        for m in matches {
            let p = m.map_err(|e| EngineError::read(e.path().to_path_buf(), e.into()))?;
            if p.is_dir() {
                add_dir(&p, &mut files)?;
            } else {
                let meta = fs::metadata(&p).map_err(|e| EngineError::read(&p, e))?;
                files.push((p, meta.len()));
            }
        }
        if files.is_empty() {
            return Err(EngineError::InputNotFound {
                path: path.to_path_buf(),
            });
        }
    } else {
        // Distinguish "does not exist" from "cannot be read".
        return match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EngineError::InputNotFound {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(EngineError::read(path, e)),
            Ok(_) => Err(EngineError::invalid(
                "input path",
                pattern,
                "not a regular file or directory",
            )),
        };
    }
    files.sort();
    Ok(files)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileSplit {
    path: PathBuf,
    start: u64,
    end: u64,
}

fn make_splits(files: &[(PathBuf, u64)], min_partitions: usize) -> Vec<FileSplit> {
    let total: u64 = files.iter().map(|(_, len)| *len).sum();
    // As many splits as `min_partitions` asks, more when splits would exceed MAX_SPLIT_BYTES,
    // rounded up to a multiple of `min_partitions` so that the tasks come in even rounds (7
    // splits of a 200 MB file on 2 slots left one slot idle for the last round).
    let min_partitions = min_partitions.max(1) as u64;
    let wanted = total.div_ceil(MAX_SPLIT_BYTES).max(min_partitions);
    let wanted = wanted.div_ceil(min_partitions) * min_partitions;
    let split_bytes = total.div_ceil(wanted).max(1);
    let mut splits = Vec::new();
    for (path, len) in files {
        if is_gzip(path) {
            // A gzip stream cannot be entered in the middle: one split reads the whole file.
            splits.push(FileSplit {
                path: path.clone(),
                start: 0,
                end: u64::MAX,
            });
            continue;
        }
        if *len == 0 {
            splits.push(FileSplit {
                path: path.clone(),
                start: 0,
                end: 0,
            });
            continue;
        }
        let mut start = 0;
        // As Hadoop: do not leave a tail of less than 10% of a split on its own.
        while (*len - start) as f64 > split_bytes as f64 * 1.1 {
            splits.push(FileSplit {
                path: path.clone(),
                start,
                end: start + split_bytes,
            });
            start += split_bytes;
        }
        splits.push(FileSplit {
            path: path.clone(),
            start,
            end: *len,
        });
    }
    splits
}

/// Lines of text files. Ships with the splits listed on the driver (`prepare`).
#[derive(Serialize, Deserialize)]
pub(crate) struct TextFileNode {
    meta: NodeMeta,
    pattern: String,
    min_partitions: usize,
    #[serde(with = "wire::once_lock")]
    splits: OnceLock<Vec<FileSplit>>,
}

impl TextFileNode {
    fn splits(&self) -> Result<&Vec<FileSplit>> {
        if let Some(s) = self.splits.get() {
            return Ok(s);
        }
        let files = list_input_files(&self.pattern)?;
        Ok(self.splits.get_or_init(|| make_splits(&files, self.min_partitions)))
    }
}

impl RddNode for TextFileNode {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.splits().map(|s| s.len()).unwrap_or(0)
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn prepare(&self, _ctx: &Context) -> Result<()> {
        self.splits().map(|_| ())
    }
}

impl Compute<String> for TextFileNode {
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<String>> {
        let s = self.splits()?[split].clone();
        Ok(Box::new(LineReader::open(&s)?))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<String>>>> {
        wire::encode_node(self)
    }
}

/// Whether `path` names a gzip file (read whole and decompressed, as Hadoop does for `.gz`).
fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Reads the lines whose first byte lies in `[start, end)` (of the decompressed text, for gzip).
struct LineReader {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    /// Offset of the next byte `reader` returns.
    pos: u64,
    end: u64,
}

impl LineReader {
    fn open(split: &FileSplit) -> Result<Self> {
        let file = fs::File::open(&split.path).map_err(|e| EngineError::read(&split.path, e))?;
        if is_gzip(&split.path) {
            // Several concatenated gzip members read as one stream, as `zcat` does.
            let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
            return Ok(LineReader {
                path: split.path.clone(),
                reader: Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, decoder)),
                pos: 0,
                end: split.end,
            });
        }
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut pos = 0;
        if split.start > 0 {
            // Skip the line that started in the previous split (possibly just its newline).
            reader
                .seek(SeekFrom::Start(split.start - 1))
                .map_err(|e| EngineError::read(&split.path, e))?;
            let mut skipped = Vec::new();
            let n = reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| EngineError::read(&split.path, e))?;
            pos = split.start - 1 + n as u64;
        }
        Ok(LineReader {
            path: split.path.clone(),
            reader: Box::new(reader),
            pos,
            end: split.end,
        })
    }
}

impl Iterator for LineReader {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.pos >= self.end {
            return None;
        }
        let mut line = Vec::with_capacity(128);
        let n = match self.reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => raise(EngineError::read(&self.path, e)),
        };
        if n == 0 {
            return None;
        }
        let line_start = self.pos;
        self.pos += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        match String::from_utf8(line) {
            Ok(s) => Some(s),
            Err(_) => raise(EngineError::InvalidUtf8 {
                path: self.path.clone(),
                offset: line_start,
            }),
        }
    }
}

/// Whole files as (path, content) pairs. Ships with the file groups listed on the driver.
#[derive(Serialize, Deserialize)]
pub(crate) struct WholeTextFilesNode {
    meta: NodeMeta,
    pattern: String,
    min_partitions: usize,
    #[serde(with = "wire::once_lock")]
    groups: OnceLock<Vec<Vec<PathBuf>>>,
}

impl WholeTextFilesNode {
    fn groups(&self) -> Result<&Vec<Vec<PathBuf>>> {
        if let Some(g) = self.groups.get() {
            return Ok(g);
        }
        let files = list_input_files(&self.pattern)?;
        let n = self.min_partitions.max(1).min(files.len().max(1));
        let mut groups = vec![Vec::new(); n];
        // Balance by size: each file goes to the lightest group so far.
        let mut weights = vec![0u64; n];
        let mut by_size = files.clone();
        by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (path, len) in by_size {
            let lightest = (0..n).min_by_key(|i| weights[*i]).expect("at least one group");
            weights[lightest] += len.max(1);
            groups[lightest].push(path);
        }
        for g in &mut groups {
            g.sort();
        }
        Ok(self.groups.get_or_init(|| groups))
    }
}

impl RddNode for WholeTextFilesNode {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.groups().map(|g| g.len()).unwrap_or(0)
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn prepare(&self, _ctx: &Context) -> Result<()> {
        self.groups().map(|_| ())
    }
}

impl Compute<(String, String)> for WholeTextFilesNode {
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<(String, String)>> {
        let paths = self.groups()?[split].clone();
        Ok(Box::new(paths.into_iter().map(|path| {
            let mut content = String::new();
            let read = fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut content));
            match read {
                Ok(_) => (path.display().to_string(), content),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    raise(EngineError::InvalidUtf8 { path, offset: 0 })
                }
                Err(e) => raise(EngineError::read(path, e)),
            }
        })))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<(String, String)>>>> {
        wire::encode_node(self)
    }
}

impl Context {
    /// Lines of a text file, of the visible files of a directory, or of the files matching a
    /// glob, in at least `min_partitions` partitions (large files are split). Line ends
    /// (`\n`, `\r\n`) are removed.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
    /// let lines = ctx.text_file(dir.path().to_str().unwrap(), 2);
    /// assert_eq!(lines.collect().unwrap(), vec!["one", "two"]);
    /// ```
    #[track_caller]
    pub fn text_file(&self, path: &str, min_partitions: usize) -> Rdd<String> {
        let node = TextFileNode {
            meta: NodeMeta::new(self, "text_file", Location::caller()),
            pattern: path.to_string(),
            min_partitions: min_partitions.max(1),
            splits: OnceLock::new(),
        };
        Rdd::from_node(self, Arc::new(node))
    }

    /// Each file as one `(path, content)` pair.
    #[track_caller]
    pub fn whole_text_files(&self, path: &str, min_partitions: usize) -> Rdd<(String, String)> {
        let node = WholeTextFilesNode {
            meta: NodeMeta::new(self, "whole_text_files", Location::caller()),
            pattern: path.to_string(),
            min_partitions: min_partitions.max(1),
            groups: OnceLock::new(),
        };
        Rdd::from_node(self, Arc::new(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path, len: u64, parts: usize) -> Vec<String> {
        let splits = make_splits(&[(path.to_path_buf(), len)], parts);
        splits
            .iter()
            .flat_map(|s| LineReader::open(s).unwrap().collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn gzip_files_are_read_whole_and_decompressed() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt.gz");
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all((lines[..2500].join("\n") + "\n").as_bytes()).unwrap();
        let mut bytes = gz.finish().unwrap();
        // A second gzip member, as `cat a.gz b.gz` makes.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(lines[2500..].join("\n").as_bytes()).unwrap();
        bytes.extend(gz.finish().unwrap());
        fs::write(&path, &bytes).unwrap();
        let splits = make_splits(&[(path.clone(), bytes.len() as u64)], 4);
        assert_eq!(splits.len(), 1, "gzip is not splittable");
        let read: Vec<String> = LineReader::open(&splits[0]).unwrap().collect();
        assert_eq!(read, lines);
    }

    #[test]
    fn a_corrupt_gzip_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gz");
        fs::write(&path, b"\x1f\x8b\x08\x00 definitely not deflate data").unwrap();
        let split = FileSplit {
            path: path.clone(),
            start: 0,
            end: u64::MAX,
        };
        let out = crate::task_context::run_task_body(|| Ok(LineReader::open(&split)?.count()));
        match out.result {
            Err(crate::error::TaskFailure::Error(text)) => assert!(text.contains("bad.gz"), "{text}"),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn every_line_is_read_once_whatever_the_split_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let lines: Vec<String> = (0..200).map(|i| "x".repeat(i % 7) + &i.to_string()).collect();
        let text = lines.join("\n") + "\n";
        fs::write(&path, &text).unwrap();
        for parts in [1, 2, 3, 7, 50, 400] {
            let splits = make_splits(&[(path.clone(), text.len() as u64)], parts);
            if parts <= 50 {
                assert!(
                    splits.len() >= parts && splits.len().is_multiple_of(parts),
                    "{parts} parts: {} splits",
                    splits.len()
                );
            }
            assert_eq!(read_all(&path, text.len() as u64, parts), lines, "{parts} parts");
        }
        // No trailing newline, CRLF.
        fs::write(&path, "a\r\nb\r\nc").unwrap();
        assert_eq!(read_all(&path, 7, 3), vec!["a", "b", "c"]);
    }
}
