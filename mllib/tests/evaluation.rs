//! Evaluators against scikit-learn / numpy references (`mllib/fixtures/gen_evaluation.py`).

use flint_engine::Context;
use flint_mllib::Vector;
use flint_mllib::evaluation::{
    BinaryClassificationEvaluator, ClusteringEvaluator, MulticlassClassificationEvaluator, RegressionEvaluator,
};
use serde_json::Value;

mod common;
use common::floats;

fn fixture(name: &str) -> Value {
    common::fixture(&format!("evaluation_{name}"))
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-10 * expected.abs().max(1.0),
        "{what}: {actual} vs expected {expected}"
    );
}

fn triples(f: &Value, a: &str, b: &str) -> (Vec<(f64, f64)>, Vec<(f64, f64, f64)>) {
    let (x, y, w) = (floats(&f[a]), floats(&f[b]), floats(&f["w"]));
    let pairs = x.iter().zip(&y).map(|(a, b)| (*a, *b)).collect();
    let weighted = x.iter().zip(&y).zip(&w).map(|((a, b), w)| (*a, *b, *w)).collect();
    (pairs, weighted)
}

#[test]
fn binary_areas_match_spark_definitions() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("binary");
    let e = &f["expected"];
    let (pairs, weighted) = triples(&f, "score", "label");
    let ev = BinaryClassificationEvaluator::new();
    let m = ev.evaluate(&ctx.parallelize(pairs, 3)).unwrap();
    close(m.area_under_roc, e["area_under_roc"].as_f64().unwrap(), "AUC ROC");
    close(m.area_under_pr, e["area_under_pr"].as_f64().unwrap(), "AUC PR");
    let sk_ap = e["sklearn_average_precision_differs"].as_f64().unwrap();
    assert!(
        (m.area_under_pr - sk_ap).abs() > 1e-4,
        "PR area is Spark's trapezoids, not AP"
    );
    let m = ev.evaluate_weighted(&ctx.parallelize(weighted, 4)).unwrap();
    close(
        m.area_under_roc,
        e["weighted_area_under_roc"].as_f64().unwrap(),
        "weighted AUC ROC",
    );
    close(
        m.area_under_pr,
        e["weighted_area_under_pr"].as_f64().unwrap(),
        "weighted AUC PR",
    );
    assert_eq!(m.roc.first(), Some(&(0.0, 0.0)));
    assert_eq!(m.roc.last(), Some(&(1.0, 1.0)));
    assert_eq!(m.pr[0].0, 0.0);
    assert_eq!(m.pr[0].1, m.pr[1].1);
}

#[test]
fn binary_bad_input_is_an_error() {
    let ctx = Context::local(2).unwrap();
    let ev = BinaryClassificationEvaluator::new();
    let one_class = ctx.parallelize(vec![(0.3, 1.0), (0.7, 1.0)], 2);
    assert!(
        ev.evaluate(&one_class)
            .unwrap_err()
            .to_string()
            .contains("both classes")
    );
    let nan = ctx.parallelize(vec![(f64::NAN, 1.0), (0.7, 0.0)], 2);
    assert!(ev.evaluate(&nan).unwrap_err().to_string().contains("NaN"));
    let empty = ctx.parallelize(Vec::<(f64, f64)>::new(), 2);
    assert!(ev.evaluate(&empty).is_err());
}

#[test]
fn multiclass_metrics_match_scikit_learn() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("multiclass");
    let e = &f["expected"];
    let (pairs, weighted) = triples(&f, "prediction", "label");
    let ev = MulticlassClassificationEvaluator::new();
    for (prefix, m) in [
        ("", ev.evaluate(&ctx.parallelize(pairs, 3)).unwrap()),
        (
            "weighted_",
            ev.evaluate_weighted(&ctx.parallelize(weighted, 3)).unwrap(),
        ),
    ] {
        let get = |k: &str| e[format!("{prefix}{k}")].as_f64().unwrap();
        close(m.accuracy, get("accuracy"), "accuracy");
        close(m.weighted_f1, get("f1"), "f1");
        close(m.weighted_precision, get("precision"), "precision");
        close(m.weighted_recall, get("recall"), "recall");
    }
    let probs: Vec<Vec<f64>> = f["probability"].as_array().unwrap().iter().map(floats).collect();
    let labels = floats(&f["label"]);
    let w = floats(&f["w"]);
    let rows: Vec<(Vec<f64>, f64)> = probs.iter().cloned().zip(labels.iter().copied()).collect();
    close(
        ev.log_loss(&ctx.parallelize(rows, 2)).unwrap(),
        e["log_loss"].as_f64().unwrap(),
        "log-loss",
    );
    let rows: Vec<(Vec<f64>, f64, f64)> = probs
        .into_iter()
        .zip(labels)
        .zip(w)
        .map(|((p, l), w)| (p, l, w))
        .collect();
    close(
        ev.log_loss_weighted(&ctx.parallelize(rows, 2)).unwrap(),
        e["weighted_log_loss"].as_f64().unwrap(),
        "weighted log-loss",
    );
    let bad = ctx.parallelize(vec![(vec![0.5, 0.5], 2.0)], 1);
    assert!(ev.log_loss(&bad).unwrap_err().to_string().contains("class index"));
}

#[test]
fn regression_metrics_match_scikit_learn() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("regression");
    let e = &f["expected"];
    let (pairs, weighted) = triples(&f, "prediction", "label");
    let ev = RegressionEvaluator::new();
    for (prefix, m) in [
        ("", ev.evaluate(&ctx.parallelize(pairs, 3)).unwrap()),
        (
            "weighted_",
            ev.evaluate_weighted(&ctx.parallelize(weighted, 5)).unwrap(),
        ),
    ] {
        let get = |k: &str| e[format!("{prefix}{k}")].as_f64().unwrap();
        close(m.mse, get("mse"), "mse");
        close(m.rmse, get("rmse"), "rmse");
        close(m.mae, get("mae"), "mae");
        close(m.r2, get("r2"), "r2");
    }
    let nan = ctx.parallelize(vec![(1.0, f64::NAN)], 1);
    assert!(ev.evaluate(&nan).is_err());
    assert!(ev.evaluate(&ctx.parallelize(Vec::new(), 1)).is_err());
}

#[test]
fn silhouette_matches_scikit_learn_sqeuclidean() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("clustering");
    let xs: Vec<Vec<f64>> = f["x"].as_array().unwrap().iter().map(floats).collect();
    let clusters: Vec<usize> = f["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    let rows: Vec<(Vector, usize)> = xs.into_iter().map(Vector::Dense).zip(clusters).collect();
    let ev = ClusteringEvaluator::new();
    let s = ev.silhouette(&ctx.parallelize(rows.clone(), 3)).unwrap();
    close(s, f["expected"]["silhouette"].as_f64().unwrap(), "silhouette");
    // Weight 2 on every row is the same as weight 1.
    let doubled: Vec<(Vector, usize, f64)> = rows.iter().cloned().map(|(x, c)| (x, c, 2.0)).collect();
    let sw = ev.silhouette_weighted(&ctx.parallelize(doubled, 2)).unwrap();
    assert!((sw - s).abs() < 1e-9, "{sw} vs {s}");
    let one: Vec<(Vector, usize)> = rows.into_iter().map(|(x, _)| (x, 0)).collect();
    assert!(
        ev.silhouette(&ctx.parallelize(one, 2))
            .unwrap_err()
            .to_string()
            .contains("two clusters")
    );
}
