//! Binary classification: areas under the ROC and precision-recall curves.

use flint_engine::Rdd;

use crate::error::{MlError, Result};

/// Areas under the curves of a binary classifier's scores.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryMetrics {
    /// Area under the ROC curve (false positive rate, true positive rate).
    pub area_under_roc: f64,
    /// Area under the precision-recall curve (recall, precision).
    pub area_under_pr: f64,
    /// The ROC curve: `(0, 0)`, one point per distinct score (descending), `(1, 1)`.
    pub roc: Vec<(f64, f64)>,
    /// The PR curve: `(0, precision of the first point)`, then one point per distinct score.
    pub pr: Vec<(f64, f64)>,
}

/// Spark's `BinaryClassificationMetrics` with `numBins = 0` (exact curves; Spark's evaluator
/// defaults to `numBins = 1000`, which down-samples the curves only when there are at least
/// 2000 distinct scores, grouping by its sorted partitions, so it is not reproduced): rows are
/// `(score, label)`, positive when `label > 0.5`. Scores are sorted descending and equal
/// scores grouped into one threshold; each threshold gives a point with the cumulative
/// (weighted) true and false positives of the scores at or above it; areas by trapezoids.
/// Precision is 1 where nothing is predicted positive. The distinct scores' counts are
/// aggregated by a shuffle and the curve is built on the driver (one entry per distinct
/// score).
#[derive(Clone, Debug, Default)]
pub struct BinaryClassificationEvaluator;

impl BinaryClassificationEvaluator {
    /// The evaluator.
    pub fn new() -> Self {
        BinaryClassificationEvaluator
    }

    /// Metrics of `(score, label)` rows.
    pub fn evaluate(&self, data: &Rdd<(f64, f64)>) -> Result<BinaryMetrics> {
        self.evaluate_weighted(&data.map(|(s, l): (f64, f64)| (s, l, 1.0)))
    }

    /// Metrics of `(score, label, weight)` rows.
    pub fn evaluate_weighted(&self, data: &Rdd<(f64, f64, f64)>) -> Result<BinaryMetrics> {
        let counts = data
            .map(|(s, l, w): (f64, f64, f64)| {
                // One key per score value (-0 and 0 together); bad rows under a NaN key.
                let bad = s.is_nan() || !super::good_weight(w) || l.is_nan();
                let key = if bad { f64::NAN.to_bits() } else { (s + 0.0).to_bits() };
                let (p, n) = if bad {
                    (1.0, 0.0)
                } else if l > 0.5 {
                    (w, 0.0)
                } else {
                    (0.0, w)
                };
                (key, (p, n))
            })
            .reduce_by_key(|a: (f64, f64), b: (f64, f64)| (a.0 + b.0, a.1 + b.1))
            .collect()?;
        let mut points: Vec<(f64, f64, f64)> = Vec::with_capacity(counts.len());
        for (key, (p, n)) in counts {
            let score = f64::from_bits(key);
            if score.is_nan() {
                return Err(MlError::Data(format!(
                    "binary evaluation: {p} rows have a NaN score or label or a bad weight"
                )));
            }
            points.push((score, p, n));
        }
        points.sort_by(|a, b| b.0.total_cmp(&a.0));
        Self::from_sorted(&points)
    }

    /// Curves and areas from `(score, positive weight, negative weight)` by descending score.
    fn from_sorted(points: &[(f64, f64, f64)]) -> Result<BinaryMetrics> {
        let positives: f64 = points.iter().map(|p| p.1).sum();
        let negatives: f64 = points.iter().map(|p| p.2).sum();
        if positives <= 0.0 || negatives <= 0.0 {
            return Err(MlError::Data(format!(
                "binary evaluation needs both classes: positive weight {positives}, negative weight {negatives}"
            )));
        }
        let mut roc = Vec::with_capacity(points.len() + 2);
        let mut pr = Vec::with_capacity(points.len() + 1);
        roc.push((0.0, 0.0));
        let (mut tp, mut fp) = (0.0, 0.0);
        for (_, p, n) in points {
            tp += p;
            fp += n;
            roc.push((fp / negatives, tp / positives));
            let precision = if tp + fp == 0.0 { 1.0 } else { tp / (tp + fp) };
            pr.push((tp / positives, precision));
        }
        roc.push((1.0, 1.0));
        pr.insert(0, (0.0, pr[0].1));
        Ok(BinaryMetrics {
            area_under_roc: trapezoid(&roc),
            area_under_pr: trapezoid(&pr),
            roc,
            pr,
        })
    }
}

/// Area under a piecewise linear curve.
fn trapezoid(curve: &[(f64, f64)]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_tied_scores() {
        let m = BinaryClassificationEvaluator::from_sorted(&[(0.9, 1.0, 0.0), (0.1, 0.0, 1.0)]).unwrap();
        assert_eq!(m.area_under_roc, 1.0);
        assert_eq!(m.area_under_pr, 1.0);
        // One threshold for everything: the diagonal, PR from (0, 0.5) to (1, 0.5).
        let m = BinaryClassificationEvaluator::from_sorted(&[(0.5, 1.0, 1.0)]).unwrap();
        assert_eq!(m.area_under_roc, 0.5);
        assert_eq!(m.area_under_pr, 0.5);
        assert!(BinaryClassificationEvaluator::from_sorted(&[(0.5, 1.0, 0.0)]).is_err());
    }
}
