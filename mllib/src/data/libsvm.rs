//! LIBSVM input: `label index:value ...` lines (1-based, strictly increasing indices) into
//! labelled points with sparse features.
//!
//! As Spark's `loadLibSVMFile`: lines are trimmed, blank lines and lines starting with `#` are
//! skipped, indices are stored 0-based. Line numbers in errors and their limits are those of
//! the CSV reader (see [`crate::data::csv`]).

use std::sync::Arc;

use flint_engine::{BoxIter, Context, Rdd, with};
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use crate::data::csv::{InputLayout, fail_task, parse_number};
use crate::error::{MlError, Result};
use crate::linalg::{SparseVector, Vector};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LibsvmState {
    layout: InputLayout,
    num_features: usize,
}

/// Whether a line carries no example (blank or a comment).
fn skipped(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Parses one trimmed, non-skipped line.
fn parse_libsvm_line(line: &str, num_features: usize) -> std::result::Result<LabeledPoint, String> {
    let mut tokens = line.split_ascii_whitespace();
    let label = parse_number(tokens.next().unwrap_or("").as_bytes(), || "the label".to_string())?;
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut previous = 0u64;
    for token in tokens {
        let (index, value) = token
            .split_once(':')
            .ok_or_else(|| format!("{token:?} is not index:value"))?;
        let index: u64 = index
            .parse()
            .map_err(|_| format!("index {index:?} is not a positive integer"))?;
        if index == 0 {
            return Err("index 0: indices are 1-based".to_string());
        }
        if index <= previous {
            return Err(format!("index {index} after {previous}: indices must increase"));
        }
        if index > num_features as u64 {
            return Err(format!("index {index} is larger than num_features = {num_features}"));
        }
        previous = index;
        indices.push((index - 1) as u32);
        values.push(parse_number(value.as_bytes(), || {
            format!("the value of index {index}")
        })?);
    }
    Ok(LabeledPoint {
        label,
        features: Vector::Sparse(SparseVector {
            size: num_features,
            indices,
            values,
        }),
        weight: 1.0,
    })
}

fn parse_libsvm_partition(st: &Arc<LibsvmState>, p: usize, lines: BoxIter<String>) -> BoxIter<LabeledPoint> {
    let st = Arc::clone(st);
    Box::new(lines.enumerate().filter_map(move |(k, line)| {
        let line = line.trim_ascii();
        if skipped(line) {
            return None;
        }
        match parse_libsvm_line(line, st.num_features) {
            Ok(point) => Some(point),
            Err(detail) => fail_task(st.layout.error(p, k, detail)),
        }
    }))
}

/// The last index of a line (0 when there is none or it does not parse: the full parse
/// reports malformed lines).
fn last_index(line: &str) -> u64 {
    let line = line.trim_ascii();
    if skipped(line) {
        return 0;
    }
    line.rsplit_once(':')
        .and_then(|(head, _)| {
            let start = head.rfind(|c: char| c.is_ascii_whitespace()).map_or(0, |i| i + 1);
            head[start..].parse().ok()
        })
        .unwrap_or(0)
}

/// Reads LIBSVM files (a file or a directory's files) into labelled points with sparse
/// features of size `num_features`; when `None`, one job first finds the largest index
/// (scanning only each line's last index). Parsing is lazy; a malformed line (a label or
/// value that is not a finite number, an index that is not a positive integer, not
/// increasing, or above `num_features`) fails the job with `path:line: detail` (see
/// [`crate::data::csv`]).
pub fn read_libsvm(
    ctx: &Context,
    path: &str,
    num_features: Option<usize>,
    min_partitions: usize,
) -> Result<Rdd<LabeledPoint>> {
    let lines = ctx.text_file(path, min_partitions);
    let layout = InputLayout::of(path, min_partitions, &lines)?;
    let num_features = match num_features {
        Some(0) => return Err(MlError::param("num_features", 0, "at least 1, or None")),
        Some(n) => n,
        None => lines.aggregate(
            0u64,
            |m: u64, line: String| m.max(last_index(&line)),
            |a: u64, b: u64| a.max(b),
        )? as usize,
    };
    tracing::debug!(path, num_features, "reading LIBSVM");
    let state = Arc::new(LibsvmState { layout, num_features });
    Ok(
        lines.map_partitions_with_index(with(state, |st: &Arc<LibsvmState>, p: usize, it: BoxIter<String>| {
            parse_libsvm_partition(st, p, it)
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_index_of_lines() {
        assert_eq!(last_index("1 3:0.5 10:2"), 10);
        assert_eq!(last_index("  0 2:1e-3  "), 2);
        assert_eq!(last_index("1"), 0);
        assert_eq!(last_index("# 7:1"), 0);
    }

    #[test]
    fn lines_parse_into_sparse_points() {
        let p = parse_libsvm_line("-1 1:0.5 4:2", 5).unwrap();
        assert_eq!(p.label, -1.0);
        assert_eq!(p.features.to_dense(), vec![0.5, 0.0, 0.0, 2.0, 0.0]);
        assert!(parse_libsvm_line("1 2:1 2:3", 5).unwrap_err().contains("increase"));
        assert!(parse_libsvm_line("1 0:1", 5).unwrap_err().contains("1-based"));
        assert!(parse_libsvm_line("1 6:1", 5).unwrap_err().contains("num_features"));
        assert!(parse_libsvm_line("x 1:1", 5).unwrap_err().contains("label"));
        assert!(parse_libsvm_line("1 1:nan", 5).unwrap_err().contains("finite"));
        assert!(parse_libsvm_line("1 a:1", 5).unwrap_err().contains("positive integer"));
    }
}
