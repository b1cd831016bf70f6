//! Multiclass classification metrics.

use std::collections::BTreeMap;

use flint_engine::Rdd;

use crate::error::{MlError, Result};

/// Metrics of a classifier's predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct MulticlassMetrics {
    /// Weighted fraction of correct predictions.
    pub accuracy: f64,
    /// F1 of each true label, averaged with the labels' weights as weights.
    pub weighted_f1: f64,
    /// Precision of each true label (0 when never predicted), averaged likewise.
    pub weighted_precision: f64,
    /// Recall of each true label, averaged likewise (equals the accuracy).
    pub weighted_recall: f64,
}

/// Spark's `MulticlassClassificationEvaluator` (`MulticlassMetrics`): rows are
/// `(prediction, label)`; the (weighted) confusion counts are aggregated by a shuffle keyed by
/// (label, prediction) and the metrics computed on the driver. The per-label averages run
/// over the labels that occur as true labels (as scikit-learn's `average="weighted"`).
#[derive(Clone, Debug, Default)]
pub struct MulticlassClassificationEvaluator;

/// Spark's `logLoss` clipping of probabilities.
const LOG_LOSS_EPS: f64 = 1e-15;

impl MulticlassClassificationEvaluator {
    /// The evaluator.
    pub fn new() -> Self {
        MulticlassClassificationEvaluator
    }

    /// Metrics of `(prediction, label)` rows.
    pub fn evaluate(&self, data: &Rdd<(f64, f64)>) -> Result<MulticlassMetrics> {
        self.evaluate_weighted(&data.map(|(p, l): (f64, f64)| (p, l, 1.0)))
    }

    /// Metrics of `(prediction, label, weight)` rows.
    pub fn evaluate_weighted(&self, data: &Rdd<(f64, f64, f64)>) -> Result<MulticlassMetrics> {
        let cells = data
            .map(|(p, l, w): (f64, f64, f64)| {
                if p.is_nan() || l.is_nan() || !super::good_weight(w) {
                    ((f64::NAN.to_bits(), 0u64), -1.0)
                } else {
                    (((l + 0.0).to_bits(), (p + 0.0).to_bits()), w)
                }
            })
            .reduce_by_key(|a: f64, b: f64| a + b)
            .collect()?;
        let mut support: BTreeMap<u64, f64> = BTreeMap::new();
        let mut predicted: BTreeMap<u64, f64> = BTreeMap::new();
        let mut correct: BTreeMap<u64, f64> = BTreeMap::new();
        for ((l, p), w) in cells {
            if f64::from_bits(l).is_nan() {
                return Err(MlError::Data(format!(
                    "multiclass evaluation: {} rows have a NaN prediction or label or a bad weight",
                    -w
                )));
            }
            *support.entry(l).or_default() += w;
            *predicted.entry(p).or_default() += w;
            if l == p {
                *correct.entry(l).or_default() += w;
            }
        }
        let total: f64 = support.values().sum();
        super::check_total("multiclass evaluation", total, 0)?;
        let (mut f1, mut precision, mut recall) = (0.0, 0.0, 0.0);
        for (l, s) in &support {
            let tp = correct.get(l).copied().unwrap_or(0.0);
            let pred = predicted.get(l).copied().unwrap_or(0.0);
            let p = if pred > 0.0 { tp / pred } else { 0.0 };
            let r = if *s > 0.0 { tp / s } else { 0.0 };
            let f = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
            let share = s / total;
            f1 += share * f;
            precision += share * p;
            recall += share * r;
        }
        Ok(MulticlassMetrics {
            accuracy: correct.values().sum::<f64>() / total,
            weighted_f1: f1,
            weighted_precision: precision,
            weighted_recall: recall,
        })
    }

    /// Mean log-loss of `(class probabilities, label)` rows: `−ln max(p[label], 1e−15)`,
    /// as Spark. Labels must index the probabilities.
    pub fn log_loss(&self, data: &Rdd<(Vec<f64>, f64)>) -> Result<f64> {
        self.log_loss_weighted(&data.map(|(p, l): (Vec<f64>, f64)| (p, l, 1.0)))
    }

    /// Weighted mean log-loss of `(class probabilities, label, weight)` rows.
    pub fn log_loss_weighted(&self, data: &Rdd<(Vec<f64>, f64, f64)>) -> Result<f64> {
        let (loss, w, bad) = data.tree_aggregate(
            (0.0, 0.0, 0u64),
            |(loss, tw, bad): (f64, f64, u64), (probs, l, w): (Vec<f64>, f64, f64)| {
                let ok = l >= 0.0 && l.fract() == 0.0 && (l as usize) < probs.len() && super::good_weight(w);
                let p = if ok { probs[l as usize] } else { f64::NAN };
                if !ok || !(0.0..=1.0).contains(&p) {
                    return (loss, tw, bad + 1);
                }
                (loss - w * p.max(LOG_LOSS_EPS).ln(), tw + w, bad)
            },
            |a: (f64, f64, u64), b: (f64, f64, u64)| (a.0 + b.0, a.1 + b.1, a.2 + b.2),
            2,
        )?;
        if bad > 0 {
            return Err(MlError::Data(format!(
                "log-loss: {bad} rows have a label that is not a class index of their probabilities, \
                 a probability outside [0, 1], or a bad weight"
            )));
        }
        super::check_total("log-loss", w, 0)?;
        Ok(loss / w)
    }
}
