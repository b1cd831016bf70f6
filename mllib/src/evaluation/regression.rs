//! Regression metrics.

use flint_engine::Rdd;

use crate::error::Result;

/// Errors of a regressor's predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct RegressionMetrics {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, `1 − SS_res / SS_tot` (around the label mean).
    pub r2: f64,
}

/// Spark's `RegressionEvaluator` (`RegressionMetrics` without `throughOrigin`): weighted
/// means over `(prediction, label)` rows, in one job.
#[derive(Clone, Debug, Default)]
pub struct RegressionEvaluator;

/// Weighted sums: weight, squared and absolute errors, label mean and m2 (Welford), bad rows.
type Sums = (f64, f64, f64, f64, f64, u64);

fn add(s: Sums, (pred, label, w): (f64, f64, f64)) -> Sums {
    let (tw, se, ae, mean, m2, bad) = s;
    if !(pred.is_finite() && label.is_finite() && super::good_weight(w)) {
        return (tw, se, ae, mean, m2, bad + 1);
    }
    if w == 0.0 {
        return s;
    }
    let e = pred - label;
    let tw2 = tw + w;
    let delta = label - mean;
    let mean2 = mean + delta * (w / tw2);
    (
        tw2,
        se + w * e * e,
        ae + w * e.abs(),
        mean2,
        m2 + w * delta * (label - mean2),
        bad,
    )
}

fn merge(a: Sums, b: Sums) -> Sums {
    let w = a.0 + b.0;
    let (mean, m2) = if b.0 == 0.0 {
        (a.3, a.4)
    } else {
        let delta = b.3 - a.3;
        (a.3 + delta * (b.0 / w), a.4 + b.4 + delta * delta * (a.0 * b.0 / w))
    };
    (w, a.1 + b.1, a.2 + b.2, mean, m2, a.5 + b.5)
}

impl RegressionEvaluator {
    /// The evaluator.
    pub fn new() -> Self {
        RegressionEvaluator
    }

    /// Metrics of `(prediction, label)` rows.
    pub fn evaluate(&self, data: &Rdd<(f64, f64)>) -> Result<RegressionMetrics> {
        self.evaluate_weighted(&data.map(|(p, l): (f64, f64)| (p, l, 1.0)))
    }

    /// Metrics of `(prediction, label, weight)` rows.
    pub fn evaluate_weighted(&self, data: &Rdd<(f64, f64, f64)>) -> Result<RegressionMetrics> {
        let zero: Sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0);
        let (w, se, ae, _, m2, bad) = data.tree_aggregate(zero, add, merge, 2)?;
        super::check_total("regression evaluation", w, bad)?;
        let mse = se / w;
        Ok(RegressionMetrics {
            rmse: mse.sqrt(),
            mse,
            mae: ae / w,
            r2: 1.0 - se / m2,
        })
    }
}
