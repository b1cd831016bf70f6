//! One pass over the training points that checks them (finite features and weights, one
//! dimension) and counts rows and total weight, before anything is cached.

use flint_engine::Rdd;
use serde::{Deserialize, Serialize};

use crate::data::LabeledPoint;
use crate::error::{MlError, Result};

/// What the checking pass learned.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InputInfo {
    /// Number of rows.
    pub rows: u64,
    /// Number of features.
    pub dim: usize,
    /// Σ weights.
    pub weight_sum: f64,
}

/// Partial result of the pass; merged first-problem-wins.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Scan {
    rows: u64,
    dim: Option<usize>,
    /// Two different feature counts met.
    mismatch: Option<(usize, usize)>,
    /// (label, feature index, value) of a non-finite feature.
    bad_value: Option<(f64, usize, f64)>,
    /// (label, weight) of a negative or non-finite weight.
    bad_weight: Option<(f64, f64)>,
    weight_sum: f64,
}

impl Scan {
    fn add(mut self, p: &LabeledPoint) -> Scan {
        self.rows += 1;
        let n = p.features.len();
        match self.dim {
            None => self.dim = Some(n),
            Some(d) if d != n && self.mismatch.is_none() => self.mismatch = Some((d, n)),
            _ => {}
        }
        if self.bad_value.is_none() {
            let bad = match &p.features {
                crate::linalg::Vector::Dense(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i])),
                crate::linalg::Vector::Sparse(s) => s
                    .values
                    .iter()
                    .position(|x| !x.is_finite())
                    .map(|i| (s.indices[i] as usize, s.values[i])),
            };
            self.bad_value = bad.map(|(i, v)| (p.label, i, v));
        }
        if self.bad_weight.is_none() && !(p.weight.is_finite() && p.weight >= 0.0) {
            self.bad_weight = Some((p.label, p.weight));
        }
        self.weight_sum += p.weight;
        self
    }

    fn merge(mut self, o: Scan) -> Scan {
        self.rows += o.rows;
        self.weight_sum += o.weight_sum;
        match (self.dim, o.dim) {
            (None, d) => self.dim = d,
            (Some(a), Some(b)) if a != b && self.mismatch.is_none() => self.mismatch = Some((a, b)),
            _ => {}
        }
        self.mismatch = self.mismatch.or(o.mismatch);
        self.bad_value = self.bad_value.or(o.bad_value);
        self.bad_weight = self.bad_weight.or(o.bad_weight);
        self
    }
}

/// Checks `data` in one job: not empty, one feature count (at least 1), finite features,
/// finite non-negative weights with a positive sum.
pub(crate) fn scan(data: &Rdd<LabeledPoint>) -> Result<InputInfo> {
    // The points borrowed where they are cached (no point cloned).
    let s = data
        .map_partitions_borrowed(|ps: &[LabeledPoint]| [ps.iter().fold(Scan::default(), Scan::add)])
        .tree_aggregate(
            Scan::default(),
            |a: Scan, b: Scan| a.merge(b),
            |a: Scan, b: Scan| a.merge(b),
            2,
        )?;
    if s.rows == 0 {
        return Err(MlError::Data("the training data is empty (no rows)".into()));
    }
    if let Some((a, b)) = s.mismatch {
        return Err(MlError::Data(format!(
            "rows have different numbers of features ({a} and {b}); every row needs the same"
        )));
    }
    let dim = s.dim.unwrap_or(0);
    if dim == 0 {
        return Err(MlError::Data("rows have no features".into()));
    }
    if let Some((label, i, v)) = s.bad_value {
        return Err(MlError::Data(format!(
            "feature {i} of a row (label {label}) is {v}; features must be finite"
        )));
    }
    if let Some((label, w)) = s.bad_weight {
        return Err(MlError::Data(format!(
            "a row (label {label}) has weight {w}; weights must be finite and non-negative"
        )));
    }
    if s.weight_sum <= 0.0 {
        return Err(MlError::Data("the rows' weights sum to 0".into()));
    }
    Ok(InputInfo {
        rows: s.rows,
        dim,
        weight_sum: s.weight_sum,
    })
}
