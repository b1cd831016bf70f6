//! The first pass of every regressor: check the rows (finite features, labels and weights,
//! one feature count, labels in the family's range) and count them, then stack them into
//! cached instance blocks.

use flint_engine::{Rdd, with};
use serde::{Deserialize, Serialize};

use super::family::Family;
use crate::data::{InstanceBlock, LabeledPoint, to_blocks};
use crate::error::{MlError, Result};

/// What the scan found: rows, features per row, and the first problem met.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Scan {
    rows: u64,
    cols: Option<usize>,
    weight_sum: f64,
    weighted_label_sum: f64,
    problem: Option<String>,
}

impl Scan {
    fn add(mut self, family: Option<Family>, p: &LabeledPoint) -> Self {
        if self.problem.is_some() {
            return self;
        }
        self.rows += 1;
        let n = p.features.len();
        match self.cols {
            None => self.cols = Some(n),
            Some(c) if c != n => {
                self.problem = Some(format!(
                    "rows have {c} and {n} features: every row needs the same count"
                ));
                return self;
            }
            _ => {}
        }
        let bad_feature = match &p.features {
            crate::linalg::Vector::Dense(v) => v.iter().position(|x| !x.is_finite()),
            crate::linalg::Vector::Sparse(s) => s
                .values
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| s.indices[i] as usize),
        };
        self.problem = if let Some(j) = bad_feature {
            Some(format!("feature {j} of a row (label {}) is NaN or infinite", p.label))
        } else if !p.label.is_finite() {
            Some(format!("a label is {}", p.label))
        } else if !p.weight.is_finite() || p.weight < 0.0 {
            Some(format!("a weight is {}: weights must be finite and >= 0", p.weight))
        } else if let Some(Err(why)) = family.map(|f| f.check_label(p.label)) {
            Some(format!("label {}: {why}", p.label))
        } else {
            None
        };
        self.weight_sum += p.weight;
        self.weighted_label_sum += p.weight * p.label;
        self
    }

    fn merge(mut self, o: Scan) -> Self {
        if self.problem.is_some() {
            return self;
        }
        if o.problem.is_some() {
            return o;
        }
        self.rows += o.rows;
        self.weight_sum += o.weight_sum;
        self.weighted_label_sum += o.weighted_label_sum;
        match (self.cols, o.cols) {
            (Some(a), Some(b)) if a != b => {
                self.problem = Some(format!(
                    "rows have {a} and {b} features: every row needs the same count"
                ));
            }
            (None, b) => self.cols = b,
            _ => {}
        }
        self
    }
}

/// Checked, cached training data.
pub(crate) struct Prepared {
    /// The cached blocks (unpersist them when done).
    pub blocks: Rdd<InstanceBlock>,
    /// Features per row.
    pub cols: usize,
    /// Rows.
    pub rows: u64,
    /// `Σ w y / Σ w`.
    pub label_mean: f64,
}

/// Checks `data` in one job (labels against `family`'s range when given) and caches it as blocks.
/// Blocks have `block_rows` rows.
pub(crate) fn prepare(data: &Rdd<LabeledPoint>, family: Option<Family>, block_rows: usize) -> Result<Prepared> {
    // The points borrowed where they are cached (no point cloned).
    let scan = data
        .map_partitions_borrowed(with(family, |f: &Option<Family>, ps: &[LabeledPoint]| {
            [ps.iter().fold(Scan::default(), |s, p| s.add(*f, p))]
        }))
        .tree_aggregate(
            Scan::default(),
            |a: Scan, b: Scan| a.merge(b),
            |a: Scan, b: Scan| a.merge(b),
            2,
        )?;
    if let Some(problem) = scan.problem {
        return Err(MlError::Data(problem));
    }
    if scan.rows > 0 && scan.weight_sum <= 0.0 {
        return Err(MlError::Data("every weight is 0".into()));
    }
    let cols = match scan.cols {
        Some(c) if scan.rows > 0 => c,
        _ => return Err(MlError::Data("the training data is empty".into())),
    };
    let blocks = to_blocks(data, cols, block_rows).cache();
    Ok(Prepared {
        blocks,
        cols,
        rows: scan.rows,
        label_mean: scan.weighted_label_sum / scan.weight_sum,
    })
}
