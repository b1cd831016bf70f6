//! CSV input: numeric rows into labelled points, and the input layout shared with the LIBSVM
//! reader (which file and which line a partition's lines come from).
//!
//! # Line numbers
//!
//! The engine's `text_file` yields bare lines: no file name and no offset per element. It cuts
//! every file into byte-range splits (Hadoop's rule: a line belongs to the split holding its
//! first byte), one partition each, in the order of the sorted file list. The readers list
//! the inputs on the driver the same way (a file, or the visible files of a directory) and
//! compute the same splits, checking that their number equals the RDD's partition count. A
//! task then knows, for its partition, the file and the split's start offset, and counts
//! lines within the partition. Only when a line is malformed does the task turn that into a
//! file line number, by counting the newlines of the file before the split's start (one read
//! of the file's prefix, on the error path only): the message is exact, `file:line: detail`.
//!
//! When the layout cannot be known (a glob pattern, or a partition count that differs from
//! the computed one because the engine changed its split rule), messages name the input
//! pattern, line 0, and say "line K of partition P" in the detail instead.
//!
//! # Headers
//!
//! With `header: true`, the first line of every *file* is dropped: with a known layout, the
//! first line of each partition whose split starts at byte 0 of its file (exact). Without a
//! known layout, as Spark's CSV reader does, every line equal to the first line of the input
//! is dropped.
//!
//! # Speed
//!
//! A line's fields are cut at the delimiter byte and parsed in place with `fast-float2` (no
//! allocation per field; the features vector is the only one per row). BENCHMARKS.md reports
//! the load of the ML benchmarks' CSV files (`load_seconds`: read, parse, block and cache).
//!
//! # Errors
//!
//! Parsing is lazy (it runs in the tasks of the first action). A malformed line fails its task
//! with a message formatted as [`MlError::Parse`] (`path:line: detail`); the action returns
//! `MlError::Engine` whose cause chain (`flint_engine::report`) holds that message.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flint_engine::{BoxIter, Context, EngineError, Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use crate::error::{MlError, Result};

/// The engine's largest split (`engine/src/rdd/text.rs`), mirrored to recompute its splits.
const MAX_SPLIT_BYTES: u64 = 32 << 20;

/// Options of [`read_csv`].
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// Column holding the label (0-based); `None`: every column is a feature and the label is
    /// 0 (k-means input). Default `Some(0)`.
    pub label_col: Option<usize>,
    /// Column holding each row's weight (Spark's `weightCol`), finite and ≥ 0; `None`: every
    /// row weighs 1. It is not a feature. Default `None`.
    pub weight_col: Option<usize>,
    /// Whether the first line of every file is a header to skip. Default false.
    pub header: bool,
    /// Field delimiter, an ASCII byte. Default `b','`.
    pub delimiter: u8,
    /// Minimum number of partitions (`text_file`'s). Default 2.
    pub min_partitions: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_col: Some(0),
            weight_col: None,
            header: false,
            delimiter: b',',
            min_partitions: 2,
        }
    }
}

/// Where one partition's lines come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SplitOrigin {
    path: String,
    start: u64,
}

/// Where every partition's lines come from, when it can be known (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct InputLayout {
    pattern: String,
    splits: Option<Vec<SplitOrigin>>,
}

impl InputLayout {
    /// Computes the layout of `lines = ctx.text_file(pattern, min_partitions)`.
    pub(crate) fn of(pattern: &str, min_partitions: usize, lines: &Rdd<String>) -> Result<Self> {
        let files = list_files(pattern)?;
        let splits = files.map(|files| make_splits(&files, min_partitions));
        let splits = match splits {
            Some(s) if s.len() == lines.num_partitions() => Some(s),
            Some(s) => {
                tracing::warn!(
                    computed = s.len(),
                    actual = lines.num_partitions(),
                    "input layout differs from the engine's; parse errors will name partitions"
                );
                None
            }
            None => None,
        };
        Ok(InputLayout {
            pattern: pattern.to_string(),
            splits,
        })
    }

    /// Whether partition `p` is known to start at the first byte of a file (`None`: unknown).
    pub(crate) fn starts_file(&self, p: usize) -> Option<bool> {
        self.splits.as_ref().map(|s| s[p].start == 0)
    }

    /// The error for line `k` (0-based) of partition `p`.
    pub(crate) fn error(&self, p: usize, k: usize, detail: String) -> MlError {
        match &self.splits {
            Some(splits) => {
                let s = &splits[p];
                let before = match lines_before(Path::new(&s.path), s.start) {
                    Ok(n) => n,
                    Err(e) => {
                        return MlError::Parse {
                            path: s.path.clone(),
                            line: 0,
                            detail: format!("{detail} (line {} of the split at byte {}; {e})", k + 1, s.start),
                        };
                    }
                };
                MlError::Parse {
                    path: s.path.clone(),
                    line: before + k as u64 + 1,
                    detail,
                }
            }
            None => MlError::Parse {
                path: self.pattern.clone(),
                line: 0,
                detail: format!("line {} of partition {p}: {detail}", k + 1),
            },
        }
    }
}

/// Fails the running task with `err` (its message is the task failure's).
pub(crate) fn fail_task(err: MlError) -> ! {
    panic!("{err}")
}

/// Number of lines starting before byte `start` of the file.
fn lines_before(path: &Path, start: u64) -> std::io::Result<u64> {
    if start == 0 {
        return Ok(0);
    }
    let file = fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 16, file.take(start - 1));
    let mut newlines = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        newlines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
    Ok(1 + newlines)
}

/// Files of a path as the engine lists them (sorted; a directory's visible files), with their
/// lengths; `None` for glob patterns (not mirrored).
fn list_files(pattern: &str) -> Result<Option<Vec<(PathBuf, u64)>>> {
    let path = Path::new(pattern);
    let read_err = |p: &Path, e: std::io::Error| MlError::Data(format!("cannot read {}: {e}", p.display()));
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| read_err(path, e))? {
            let entry = entry.map_err(|e| read_err(path, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(|e| read_err(&entry.path(), e))?;
            if meta.is_file() {
                files.push((entry.path(), meta.len()));
            }
        }
    } else if path.is_file() {
        let meta = fs::metadata(path).map_err(|e| read_err(path, e))?;
        files.push((path.to_path_buf(), meta.len()));
    } else if pattern.contains(['*', '?', '[']) {
        return Ok(None);
    } else {
        return Err(MlError::Engine(EngineError::InputNotFound {
            path: path.to_path_buf(),
        }));
    }
    files.sort();
    Ok(Some(files))
}

/// The engine's splits (`make_splits` of `engine/src/rdd/text.rs`).
fn make_splits(files: &[(PathBuf, u64)], min_partitions: usize) -> Vec<SplitOrigin> {
    let total: u64 = files.iter().map(|(_, len)| *len).sum();
    let min_partitions = min_partitions.max(1) as u64;
    let wanted = total.div_ceil(MAX_SPLIT_BYTES).max(min_partitions);
    let wanted = wanted.div_ceil(min_partitions) * min_partitions;
    let split_bytes = total.div_ceil(wanted).max(1);
    let mut splits = Vec::new();
    for (path, len) in files {
        let name = path.display().to_string();
        let gzip = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        let mut start = 0;
        if !gzip {
            while (*len - start) as f64 > split_bytes as f64 * 1.1 {
                splits.push(SplitOrigin {
                    path: name.clone(),
                    start,
                });
                start += split_bytes;
            }
        }
        splits.push(SplitOrigin { path: name, start });
    }
    splits
}

/// Parses a number (`fast_float2`, the whole field): finite, surrounding ASCII whitespace
/// allowed.
#[inline]
pub(crate) fn parse_number(field: &[u8], what: impl FnOnce() -> String) -> std::result::Result<f64, String> {
    let t = field.trim_ascii();
    match fast_float2::parse::<f64, _>(t) {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{} is {v}: values must be finite", what())),
        Err(_) => Err(format!("{} is {:?}, not a number", what(), String::from_utf8_lossy(t))),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CsvState {
    layout: InputLayout,
    label_col: Option<usize>,
    weight_col: Option<usize>,
    header: bool,
    /// The input's first line (a header, when `header`), for an unknown layout.
    first_line: Option<String>,
    delimiter: u8,
    columns: usize,
}

/// Parses one non-blank CSV line (fields cut at the delimiter byte, no allocation but the
/// features).
fn parse_csv_line(st: &CsvState, line: &str) -> std::result::Result<LabeledPoint, String> {
    let special = usize::from(st.label_col.is_some()) + usize::from(st.weight_col.is_some());
    let mut features = Vec::with_capacity(st.columns.saturating_sub(special));
    let (mut label, mut weight) = (0.0, 1.0);
    let mut n = 0;
    for field in line.as_bytes().split(|b| *b == st.delimiter) {
        if n < st.columns {
            let v = parse_number(field, || format!("column {}", n + 1))?;
            if Some(n) == st.label_col {
                label = v;
            } else if Some(n) == st.weight_col {
                if v < 0.0 {
                    return Err(format!("column {} (the weight) is {v}: weights must be ≥ 0", n + 1));
                }
                weight = v;
            } else {
                features.push(v);
            }
        }
        n += 1;
    }
    if n != st.columns {
        return Err(format!("{n} columns where the first row has {}", st.columns));
    }
    Ok(LabeledPoint::new(label, features).with_weight(weight))
}

fn parse_csv_partition(st: &Arc<CsvState>, p: usize, lines: BoxIter<String>) -> BoxIter<LabeledPoint> {
    let st = Arc::clone(st);
    let skip_first = st.header && st.layout.starts_file(p) == Some(true);
    let skip_equal_to_first = st.header && st.layout.starts_file(p).is_none();
    Box::new(lines.enumerate().filter_map(move |(k, line)| {
        if k == 0 && skip_first {
            return None;
        }
        if skip_equal_to_first && st.first_line.as_deref() == Some(line.as_str()) {
            return None;
        }
        if line.trim_ascii().is_empty() {
            return None;
        }
        match parse_csv_line(&st, &line) {
            Ok(point) => Some(point),
            Err(detail) => fail_task(st.layout.error(p, k, detail)),
        }
    }))
}

/// Reads numeric CSV files (a file or a directory's files) into labelled points with dense
/// features, weighted by the `weight_col` column when there is one (else weight 1). Blank lines are skipped; fields are not quoted; every row must have
/// the first row's number of columns. Parsing is lazy; see the module docs for where errors
/// of malformed lines surface and what they say.
///
/// Errors now: a missing input, a non-ASCII delimiter, a label or weight column outside the
/// first row, a weight column that is the label's. In the tasks: a malformed value, a row of
/// another width, a negative weight (`path:line: detail`).
pub fn read_csv(ctx: &Context, path: &str, options: CsvOptions) -> Result<Rdd<LabeledPoint>> {
    if !options.delimiter.is_ascii() || options.delimiter == b'\n' || options.delimiter == b'\r' {
        return Err(MlError::param(
            "delimiter",
            options.delimiter,
            "an ASCII byte other than a line end",
        ));
    }
    let lines = ctx.text_file(path, options.min_partitions);
    let layout = InputLayout::of(path, options.min_partitions, &lines)?;
    let head = lines.take(64)?;
    let first_line = head.first().cloned();
    let first_row = head
        .iter()
        .skip(usize::from(options.header))
        .find(|l| !l.trim_ascii().is_empty());
    let columns = first_row.map_or(0, |l| l.split(options.delimiter as char).count());
    if let (Some(c), Some(_)) = (options.label_col, first_row)
        && c >= columns
    {
        return Err(MlError::param(
            "label_col",
            c,
            format!("a column of the first row (it has {columns})"),
        ));
    }
    if let Some(w) = options.weight_col {
        if options.label_col == Some(w) {
            return Err(MlError::param("weight_col", w, "a column other than the label's"));
        }
        if first_row.is_some() && w >= columns {
            return Err(MlError::param(
                "weight_col",
                w,
                format!("a column of the first row (it has {columns})"),
            ));
        }
    }
    let state = Arc::new(CsvState {
        layout,
        label_col: options.label_col,
        weight_col: options.weight_col,
        header: options.header,
        first_line,
        delimiter: options.delimiter,
        columns: columns.max(usize::from(options.label_col.is_some()) + usize::from(options.weight_col.is_some())),
    });
    Ok(
        lines.map_partitions_with_index(with(state, |st: &Arc<CsvState>, p: usize, it: BoxIter<String>| {
            parse_csv_partition(st, p, it)
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_before_counts_line_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "a\nbb\n\nc\n").unwrap();
        // Line starts at 0, 2, 5, 6.
        for (start, expected) in [(0, 0), (1, 1), (2, 1), (3, 2), (5, 2), (6, 3), (7, 4)] {
            assert_eq!(lines_before(&path, start).unwrap(), expected, "start {start}");
        }
    }

    #[test]
    fn parse_number_rejects_non_finite_and_text() {
        assert_eq!(parse_number(b" 1.5e3 ", || "x".into()), Ok(1500.0));
        assert_eq!(parse_number(b"-7", || "x".into()), Ok(-7.0));
        assert!(parse_number(b"NaN", || "x".into()).unwrap_err().contains("finite"));
        assert!(parse_number(b"inf", || "x".into()).unwrap_err().contains("finite"));
        assert!(
            parse_number(b"abc", || "x".into())
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_number(b"1.5x", || "x".into())
                .unwrap_err()
                .contains("not a number")
        );
        assert!(parse_number(b"", || "x".into()).is_err());
    }
}
