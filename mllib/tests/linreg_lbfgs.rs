//! LinearRegression with solver l-bfgs: the numpy / scikit-learn / statsmodels fixtures of
//! the normal solver (`mllib/fixtures/gen_linreg.py`) reached by L-BFGS / OWL-QN, the choice
//! `auto` makes, bad parameters.

use flint_engine::Context;
use flint_mllib::LabeledPoint;
use flint_mllib::regression::linear::MAX_NORMAL_FEATURES;
use flint_mllib::regression::{LinearRegression, Solver};
use serde_json::Value;

mod common;
use common::{assert_close, floats, points, read_json};

fn estimator(f: &Value) -> LinearRegression {
    let p = &f["params"];
    LinearRegression::new()
        .reg_param(p["reg_param"].as_f64().unwrap())
        .elastic_net_param(p["elastic_net_param"].as_f64().unwrap())
        .fit_intercept(p["fit_intercept"].as_bool().unwrap())
        .standardization(p["standardization"].as_bool().unwrap())
}

fn fixtures() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("linreg_") && name.ends_with(".json")
        })
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), read_json(&p)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn lbfgs_reproduces_every_linreg_fixture() {
    let ctx = Context::local(2).unwrap();
    let all = fixtures();
    assert!(all.len() >= 8, "fixtures found: {}", all.len());
    for (name, f) in &all {
        let data = ctx.parallelize(points(f), 3);
        let model = estimator(f)
            .solver(Solver::LBfgs)
            .tol(1e-12)
            .max_iter(1000)
            .fit(&data)
            .unwrap();
        let e = &f["expected"];
        assert_close(
            &format!("{name} coefficients"),
            &model.coefficients,
            &floats(&e["coefficients"]),
            1e-5,
        );
        assert_close(
            &format!("{name} intercept"),
            &[model.intercept],
            &[e["intercept"].as_f64().unwrap()],
            1e-5,
        );
        let s = &model.summary;
        assert!(
            s.coefficient_standard_errors.is_none(),
            "{name}: no standard errors with l-bfgs"
        );
        let history = &s.training.loss_history;
        assert_eq!(history.len(), s.training.iterations + 1, "{name}: history {history:?}");
        assert!(history.len() > 2, "{name}: history {history:?}");
        assert!(
            s.training.pass_seconds.len() > s.training.iterations,
            "{name}: one timed pass per evaluation"
        );
        assert!(
            history.windows(2).all(|p| p[1] <= p[0] * (1.0 + 1e-12)),
            "{name}: objective not decreasing: {history:?}"
        );
        // The same objective as the normal equations: its single entry is our last.
        let normal = estimator(f).solver(Solver::Normal).fit(&data).unwrap();
        let want = normal.summary.training.loss_history[0];
        let got = *history.last().unwrap();
        assert!(
            (got - want).abs() <= 1e-8 * want.abs(),
            "{name}: objective {got} vs normal {want}"
        );
        if let Some(rmse) = e.get("rmse") {
            assert_close(
                &format!("{name} rmse"),
                &[s.root_mean_squared_error],
                &[rmse.as_f64().unwrap()],
                1e-6,
            );
        }
    }
}

#[test]
fn loose_tolerance_and_iteration_limit_stop_early() {
    let ctx = Context::local(2).unwrap();
    let (_, f) = fixtures().into_iter().find(|(n, _)| n == "linreg_ridge.json").unwrap();
    let data = ctx.parallelize(points(&f), 2);
    let m = estimator(&f).solver(Solver::LBfgs).max_iter(2).fit(&data).unwrap();
    assert_eq!(m.summary.training.iterations, 2);
    assert_eq!(m.summary.training.loss_history.len(), 3);
    assert!(!m.summary.training.converged);
}

#[test]
fn auto_picks_lbfgs_past_the_normal_equation_limit() {
    assert_eq!(MAX_NORMAL_FEATURES, 4096);
    let auto = LinearRegression::new();
    assert_eq!(auto.effective_solver(1), Solver::Normal);
    assert_eq!(auto.effective_solver(MAX_NORMAL_FEATURES), Solver::Normal);
    assert_eq!(auto.effective_solver(MAX_NORMAL_FEATURES + 1), Solver::LBfgs);
    let normal = LinearRegression::new().solver(Solver::Normal);
    assert_eq!(normal.effective_solver(MAX_NORMAL_FEATURES + 1), Solver::Normal);
    let lbfgs = LinearRegression::new().solver(Solver::LBfgs);
    assert_eq!(lbfgs.effective_solver(3), Solver::LBfgs);
}

#[test]
fn auto_fits_wide_data_with_lbfgs() {
    // 4,097 features, 40 rows, ridge: the normal equations would need a 4098² Gram matrix.
    let ctx = Context::local(2).unwrap();
    let d = MAX_NORMAL_FEATURES + 1;
    let rows: Vec<LabeledPoint> = (0..40)
        .map(|i| {
            let x: Vec<f64> = (0..d).map(|j| (((i * 31 + j * 17) % 23) as f64) / 23.0).collect();
            let y = 2.0 * x[0] - x[1] + 0.5;
            LabeledPoint::new(y, x)
        })
        .collect();
    let m = LinearRegression::new()
        .reg_param(0.1)
        .max_iter(5)
        .fit(&ctx.parallelize(rows, 2))
        .unwrap();
    assert_eq!(m.coefficients.len(), d);
    assert!(m.summary.coefficient_standard_errors.is_none());
    assert!(m.summary.training.loss_history.len() > 1);
    let h = &m.summary.training.loss_history;
    assert!(h.last().unwrap() < &h[0], "{h:?}");
}

#[test]
fn constant_features_and_labels_follow_the_normal_solver() {
    let ctx = Context::local(2).unwrap();
    let rows: Vec<LabeledPoint> = (0..20)
        .map(|i| LabeledPoint::new(3.0 * i as f64 + 1.0, vec![i as f64, 5.0]))
        .collect();
    let m = LinearRegression::new()
        .solver(Solver::LBfgs)
        .tol(1e-12)
        .fit(&ctx.parallelize(rows, 2))
        .unwrap();
    assert!(
        (m.coefficients[0] - 3.0).abs() < 1e-6 && m.coefficients[1] == 0.0,
        "{:?}",
        m.coefficients
    );
    assert!((m.intercept - 1.0).abs() < 1e-6);
    let rows: Vec<LabeledPoint> = (0..20).map(|i| LabeledPoint::new(2.5, vec![i as f64])).collect();
    let m = LinearRegression::new()
        .solver(Solver::LBfgs)
        .reg_param(0.3)
        .fit(&ctx.parallelize(rows, 2))
        .unwrap();
    assert_eq!(m.coefficients, vec![0.0]);
    assert!((m.intercept - 2.5).abs() < 1e-12);
}

#[test]
fn bad_parameters_are_clear_errors() {
    let ctx = Context::local(2).unwrap();
    let rows: Vec<LabeledPoint> = (0..10)
        .map(|i| LabeledPoint::new(i as f64, vec![i as f64, (i * i) as f64]))
        .collect();
    let data = ctx.parallelize(rows, 2);
    let lbfgs = || LinearRegression::new().solver(Solver::LBfgs);
    let cases = [
        (lbfgs().max_iter(0), "max_iter"),
        (lbfgs().tol(-1.0), "tol"),
        (lbfgs().tol(f64::NAN), "tol"),
        (lbfgs().tol(f64::INFINITY), "tol"),
        (lbfgs().reg_param(-0.1), "reg_param"),
        (lbfgs().elastic_net_param(2.0), "elastic_net_param"),
    ];
    for (lr, name) in cases {
        let e = lr.fit(&data).unwrap_err().to_string();
        assert!(e.contains(name), "{name}: {e}");
    }
    let e = Solver::parse("newton").unwrap_err().to_string();
    assert!(e.contains("solver") && e.contains("l-bfgs"), "{e}");
    assert_eq!(Solver::parse("sgd").unwrap(), Solver::Sgd);
    assert_eq!(Solver::parse("l-bfgs").unwrap(), Solver::LBfgs);
    let e = lbfgs().fit(&ctx.parallelize(Vec::new(), 2)).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn shipped_tasks_give_the_same_lbfgs_model() {
    let (_, f) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "linreg_elastic_net.json")
        .unwrap();
    let fit = |ctx: &Context| {
        estimator(&f)
            .solver(Solver::LBfgs)
            .tol(1e-12)
            .max_iter(1000)
            .fit(&ctx.parallelize(points(&f), 3))
            .unwrap()
    };
    let shipped = fit(&Context::builder().master("local[2]").ship_tasks(true).build().unwrap());
    let plain = fit(&Context::local(2).unwrap());
    assert_eq!(shipped.coefficients, plain.coefficients);
    assert_eq!(
        shipped.summary.training.loss_history,
        plain.summary.training.loss_history
    );
}
