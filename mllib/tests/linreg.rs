//! LinearRegression against numpy / scikit-learn / statsmodels fixtures
//! (`mllib/fixtures/gen_linreg.py`), bad input, persistence, shipped tasks.

use flint_engine::{Context, Rdd};
use flint_mllib::regression::{LinearRegression, LinearRegressionModel, Solver};
use flint_mllib::{LabeledPoint, MlError, Vector};
use serde_json::Value;

mod common;
use common::{assert_close, floats, points};

fn fixture(name: &str) -> Value {
    common::fixture(&format!("linreg_{name}"))
}

fn estimator(f: &Value) -> LinearRegression {
    let p = &f["params"];
    LinearRegression::new()
        .reg_param(p["reg_param"].as_f64().unwrap())
        .elastic_net_param(p["elastic_net_param"].as_f64().unwrap())
        .fit_intercept(p["fit_intercept"].as_bool().unwrap())
        .standardization(p["standardization"].as_bool().unwrap())
}

fn check(ctx: &Context, name: &str) -> LinearRegressionModel {
    let f = fixture(name);
    let data = ctx.parallelize(points(&f), 3);
    let model = estimator(&f).fit(&data).unwrap();
    let e = &f["expected"];
    assert_close(
        &format!("{name} coefficients"),
        &model.coefficients,
        &floats(&e["coefficients"]),
        1e-6,
    );
    assert_close(
        &format!("{name} intercept"),
        &[model.intercept],
        &[e["intercept"].as_f64().unwrap()],
        1e-6,
    );
    if let Some(se) = e.get("standard_errors") {
        let s = &model.summary;
        assert_close(
            &format!("{name} se"),
            s.coefficient_standard_errors.as_ref().unwrap(),
            &floats(se),
            1e-6,
        );
        assert_close(
            &format!("{name} p"),
            s.p_values.as_ref().unwrap(),
            &floats(&e["p_values"]),
            1e-4,
        );
    }
    if let Some(rmse) = e.get("rmse") {
        let s = &model.summary;
        assert_close("rmse", &[s.root_mean_squared_error], &[rmse.as_f64().unwrap()], 1e-8);
        assert_close("r2", &[s.r2], &[e["r2"].as_f64().unwrap()], 1e-8);
    }
    model
}

#[test]
fn least_squares_matches_numpy_and_statsmodels() {
    let ctx = Context::local(2).unwrap();
    for name in ["ols", "ols_no_intercept", "ols_weighted"] {
        check(&ctx, name);
    }
}

#[test]
fn ridge_matches_sparks_standardised_normal_equations() {
    let ctx = Context::local(2).unwrap();
    for name in [
        "ridge",
        "ridge_no_standardization",
        "ridge_no_intercept",
        "ridge_weighted",
    ] {
        check(&ctx, name);
    }
}

#[test]
fn elastic_net_matches_scikit_learn() {
    let ctx = Context::local(2).unwrap();
    let m = check(&ctx, "elastic_net");
    assert!(m.summary.coefficient_standard_errors.is_none());
    // A strong lasso zeroes coefficients.
    let f = fixture("elastic_net");
    let lasso = LinearRegression::new()
        .reg_param(1.0)
        .elastic_net_param(1.0)
        .fit(&ctx.parallelize(points(&f), 2))
        .unwrap();
    assert!(lasso.coefficients.contains(&0.0), "{:?}", lasso.coefficients);
}

#[test]
fn lasso_matches_scikit_learn_and_its_zeros() {
    let ctx = Context::local(2).unwrap();
    let m = check(&ctx, "lasso");
    let want = floats(&fixture("lasso")["expected"]["coefficients"]);
    let zeros = |c: &[f64]| c.iter().map(|&v| v == 0.0).collect::<Vec<_>>();
    assert!(want.contains(&0.0));
    assert_eq!(zeros(&m.coefficients), zeros(&want));
}

#[test]
fn shipped_tasks_give_the_same_model_and_models_round_trip() {
    let ctx = Context::builder().master("local[2]").ship_tasks(true).build().unwrap();
    let shipped = check(&ctx, "ridge_weighted");
    let plain = check(&Context::local(2).unwrap(), "ridge_weighted");
    assert_eq!(shipped.coefficients, plain.coefficients);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lr.json");
    shipped.save(&path).unwrap();
    let back = LinearRegressionModel::load(&path).unwrap();
    // serde_json (without its float_roundtrip feature) may move the last bit of a float.
    assert_close("loaded", &back.coefficients, &shipped.coefficients, 1e-15);
    assert_eq!(back.summary.num_instances, shipped.summary.num_instances);
    let x = Vector::Dense(vec![1.0, 2.0, 3.0, 4.0]);
    assert_close("loaded predict", &[back.predict(&x)], &[shipped.predict(&x)], 1e-14);
    let pairs = back
        .transform(&ctx.parallelize(points(&fixture("ridge_weighted")), 2))
        .collect()
        .unwrap();
    assert_eq!(pairs.len(), 300);
}

fn err(data: Rdd<LabeledPoint>, lr: LinearRegression) -> String {
    lr.fit(&data).unwrap_err().to_string()
}

#[test]
fn bad_input_is_a_clear_error() {
    let ctx = Context::local(2).unwrap();
    let good = |n: usize| -> Vec<LabeledPoint> {
        (0..n)
            .map(|i| LabeledPoint::new(i as f64, vec![i as f64, (i * i) as f64]))
            .collect()
    };
    let mut rows = good(10);
    rows[3].features = Vector::Dense(vec![f64::NAN, 1.0]);
    assert!(err(ctx.parallelize(rows, 2), LinearRegression::new()).contains("NaN"));
    let mut rows = good(10);
    rows[4].label = f64::INFINITY;
    assert!(err(ctx.parallelize(rows, 2), LinearRegression::new()).contains("label"));
    let mut rows = good(10);
    rows[5].features = Vector::Dense(vec![1.0]);
    assert!(err(ctx.parallelize(rows, 2), LinearRegression::new()).contains("features"));
    let mut rows = good(10);
    rows[1].weight = -1.0;
    assert!(err(ctx.parallelize(rows, 2), LinearRegression::new()).contains("weight"));
    assert!(err(ctx.parallelize(Vec::new(), 2), LinearRegression::new()).contains("empty"));
    let e = err(ctx.parallelize(good(10), 2), LinearRegression::new().reg_param(-1.0));
    assert!(e.contains("reg_param"), "{e}");
    let e = err(
        ctx.parallelize(good(10), 2),
        LinearRegression::new().elastic_net_param(1.5),
    );
    assert!(e.contains("elastic_net_param"), "{e}");
    let e = err(
        ctx.parallelize(good(10), 2),
        LinearRegression::new().solver(Solver::LBfgs).max_iter(0),
    );
    assert!(e.contains("max_iter"), "{e}");
    // Collinear features without a penalty.
    let rows: Vec<LabeledPoint> = (0..10)
        .map(|i| LabeledPoint::new(i as f64 + (i % 3) as f64, vec![i as f64, 2.0 * i as f64]))
        .collect();
    let e = err(ctx.parallelize(rows, 2), LinearRegression::new());
    assert!(e.contains("collinear"), "{e}");
    assert!(matches!(
        LinearRegression::new()
            .reg_param(f64::NAN)
            .fit(&ctx.parallelize(good(3), 1)),
        Err(MlError::Param { name: "reg_param", .. })
    ));
}

#[test]
fn constant_features_and_labels_follow_spark() {
    let ctx = Context::local(2).unwrap();
    // A constant feature gets coefficient 0.
    let rows: Vec<LabeledPoint> = (0..20)
        .map(|i| LabeledPoint::new(3.0 * i as f64 + 1.0, vec![i as f64, 5.0]))
        .collect();
    let m = LinearRegression::new().fit(&ctx.parallelize(rows, 2)).unwrap();
    assert!(
        (m.coefficients[0] - 3.0).abs() < 1e-9 && m.coefficients[1] == 0.0,
        "{:?}",
        m.coefficients
    );
    assert!((m.intercept - 1.0).abs() < 1e-9);
    // A constant label: coefficients 0, intercept the label.
    let rows: Vec<LabeledPoint> = (0..20).map(|i| LabeledPoint::new(2.5, vec![i as f64])).collect();
    let m = LinearRegression::new()
        .reg_param(0.3)
        .fit(&ctx.parallelize(rows, 2))
        .unwrap();
    assert_eq!(m.coefficients, vec![0.0]);
    assert!((m.intercept - 2.5).abs() < 1e-12);
}
