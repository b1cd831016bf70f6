//! LogisticRegression against scikit-learn / exact references (fixtures written by
//! `mllib/fixtures/gen_logreg.py`), bad input, save/load, and shipped tasks.

use flint_engine::Context;
use flint_mllib::classification::{Family, LogisticRegression, LogisticRegressionModel};
use flint_mllib::{LabeledPoint, MlError, Vector};
use serde_json::Value;

struct Fixture {
    points: Vec<LabeledPoint>,
    params: Value,
    expected: Value,
}

fn fixture(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/logreg_{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let x = doc["x"].as_array().unwrap();
    let y = doc["y"].as_array().unwrap();
    let points = x
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let feats: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let p = LabeledPoint::new(y[i].as_f64().unwrap(), feats);
            match doc.get("w") {
                Some(w) => p.with_weight(w[i].as_f64().unwrap()),
                None => p,
            }
        })
        .collect();
    Fixture {
        points,
        params: doc["params"].clone(),
        expected: doc["expected"].clone(),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        let ok = (g - w).abs() <= 1e-4 * w.abs() || (g - w).abs() <= 1e-6;
        assert!(ok, "{what}: got {got:?}, want {want:?}");
    }
}

fn estimator(f: &Fixture) -> LogisticRegression {
    let family = match f.params["family"].as_str().unwrap() {
        "binomial" => Family::Binomial,
        _ => Family::Multinomial,
    };
    LogisticRegression::new()
        .family(family)
        .reg_param(f.params["reg_param"].as_f64().unwrap())
        .elastic_net_param(f.params["elastic_net_param"].as_f64().unwrap())
        .tol(1e-10)
        .max_iter(500)
        .block_rows(64)
}

fn fit(ctx: &Context, name: &str) -> (Fixture, LogisticRegressionModel) {
    let f = fixture(name);
    let model = estimator(&f).fit(&ctx.parallelize(f.points.clone(), 3)).unwrap();
    (f, model)
}

/// Which coefficients are exactly zero (an L1 penalty's zeros are exact, in the reference and
/// in the fit).
fn zeros(c: &[f64]) -> Vec<bool> {
    c.iter().map(|&v| v == 0.0).collect()
}

fn check_binary(name: &str) -> LogisticRegressionModel {
    let ctx = Context::local(2).unwrap();
    let (f, m) = fit(&ctx, name);
    assert!(!m.is_multinomial() && m.num_classes() == 2);
    let want = floats(&f.expected["coefficients"]);
    assert_close(m.coefficients(), &want, name);
    assert_eq!(zeros(m.coefficients()), zeros(&want), "{name}: zero coefficients");
    assert_close(&[m.intercept()], &[f.expected["intercept"].as_f64().unwrap()], name);
    let objective = *m.summary().loss_history.last().unwrap();
    assert_close(&[objective], &[f.expected["objective"].as_f64().unwrap()], "objective");
    assert!(m.summary().converged, "{:?}", m.summary());
    m
}

#[test]
fn binary_without_regularization_matches_sklearn() {
    check_binary("binary_noreg");
}

#[test]
fn binary_l2_matches_sklearn() {
    check_binary("binary_l2");
}

#[test]
fn binary_elastic_net_matches_the_exact_solution() {
    check_binary("binary_elasticnet");
}

#[test]
fn binary_lasso_matches_the_exact_solution_and_its_zeros() {
    let m = check_binary("binary_lasso");
    assert!(m.coefficients().contains(&0.0), "{:?}", m.coefficients());
}

#[test]
fn multinomial_elastic_net_matches_the_exact_solution_and_its_zeros() {
    let m = check_multinomial("multinomial_elasticnet");
    assert!(m.coefficients().contains(&0.0), "{:?}", m.coefficients());
}

#[test]
fn weighted_binary_matches_sklearn() {
    check_binary("binary_weighted");
}

fn check_multinomial(name: &str) -> LogisticRegressionModel {
    let ctx = Context::local(2).unwrap();
    let (f, m) = fit(&ctx, name);
    assert!(m.is_multinomial() && m.num_classes() == 3);
    let want: Vec<f64> = f.expected["coefficient_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    assert_close(m.coefficients(), &want, "coefficients");
    assert_eq!(zeros(m.coefficients()), zeros(&want), "{name}: zero coefficients");
    assert_close(m.intercepts(), &floats(&f.expected["intercepts"]), "intercepts");
    let objective = *m.summary().loss_history.last().unwrap();
    assert_close(&[objective], &[f.expected["objective"].as_f64().unwrap()], "objective");
    assert!(m.summary().converged, "{:?}", m.summary());
    m
}

#[test]
fn multinomial_without_regularization_matches_sklearn_centred() {
    let m = check_multinomial("multinomial_noreg");
    for j in 0..3 {
        let column: f64 = m.coefficient_matrix().iter().map(|row| row[j]).sum();
        assert!(column.abs() < 1e-12, "feature {j}: coefficients sum to {column}");
    }
}

#[test]
fn multinomial_l2_matches_sklearn() {
    let m = check_multinomial("multinomial_l2");
    let p = m.predict_proba(&Vector::Dense(vec![1.0, 4.0, -0.5]));
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(m.predict(&Vector::Dense(vec![1.0, 4.0, -0.5])), 1.0);
    assert_eq!(m.coefficient_matrix().len(), 3);
}

#[test]
fn each_pass_over_the_data_is_one_job() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("binary_l2");
    let data = ctx.parallelize(f.points.clone(), 3).cache();
    // (jobs, passes) of a fit: the set-up's jobs are the same for every iteration limit, and
    // each pass (a loss and gradient evaluation: one per iteration, more in a line search)
    // is one job: broadcast, per-block sums, tree aggregation.
    let fit = |iters: usize| {
        let before = ctx.jobs_started();
        let m = LogisticRegression::new()
            .reg_param(0.1)
            .tol(0.0)
            .max_iter(iters)
            .fit(&data)
            .unwrap();
        (ctx.jobs_started() - before, m.summary().pass_seconds.len() as u64)
    };
    let (few, many) = (fit(2), fit(8));
    assert!(many.1 > few.1, "{few:?} {many:?}");
    assert_eq!(many.0 - few.0, many.1 - few.1, "jobs and passes: {few:?} {many:?}");
}

#[test]
fn defaults_converge_and_predict_sensibly() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("binary_l2");
    let data = ctx.parallelize(f.points.clone(), 2);
    let m = LogisticRegression::new().reg_param(0.1).fit(&data).unwrap();
    assert_close(
        m.coefficients(),
        &floats(&f.expected["coefficients"]),
        "default tolerance",
    );
    let h = &m.summary().loss_history;
    assert!(h.windows(2).all(|w| w[1] <= w[0]), "{h:?}");
    // One timed evaluation at the start and at least one per iteration (line searches may
    // take more), each part of the training time.
    let passes = &m.summary().pass_seconds;
    assert!(passes.len() > m.summary().iterations, "{passes:?}");
    assert!(passes.iter().all(|t| *t > 0.0), "{passes:?}");
    assert!(passes.iter().sum::<f64>() <= m.summary().train_seconds);
    let pairs = m.transform(&data).collect().unwrap();
    let correct = pairs.iter().filter(|(y, p)| y == p).count();
    assert!(correct * 10 >= pairs.len() * 7, "accuracy {correct}/{}", pairs.len());
    let raw = m.predict_raw(&f.points[0].features);
    let p = m.predict_proba(&f.points[0].features);
    assert!((raw[1] + raw[0]).abs() < 1e-15 && (p[1] - 1.0 / (1.0 + (-raw[1]).exp())).abs() < 1e-12);
    // Threshold 1: never class 1; threshold 0: always (probabilities are in (0, 1)).
    let never = m.clone().with_threshold(1.0);
    let always = m.with_threshold(0.0);
    assert!(
        f.points
            .iter()
            .all(|p| never.predict(&p.features) == 0.0 && always.predict(&p.features) == 1.0)
    );
}

#[test]
fn standardization_off_and_no_intercept_are_supported() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("binary_noreg");
    let data = ctx.parallelize(f.points.clone(), 2);
    // Without regularization standardization changes nothing.
    let m = LogisticRegression::new()
        .standardization(false)
        .tol(1e-10)
        .fit(&data)
        .unwrap();
    assert_close(
        m.coefficients(),
        &floats(&f.expected["coefficients"]),
        "no standardization",
    );
    let m = LogisticRegression::new()
        .fit_intercept(false)
        .reg_param(0.01)
        .fit(&data)
        .unwrap();
    assert_eq!(m.intercept(), 0.0);
    let l1 = LogisticRegression::new()
        .standardization(false)
        .reg_param(0.05)
        .elastic_net_param(1.0)
        .fit(&data)
        .unwrap();
    assert!(l1.coefficients().iter().all(|c| c.is_finite()));
}

#[test]
fn elastic_net_with_a_strong_l1_part_zeroes_coefficients() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("binary_l2");
    let m = LogisticRegression::new()
        .reg_param(0.08)
        .elastic_net_param(1.0)
        .fit(&ctx.parallelize(f.points, 2))
        .unwrap();
    assert!(m.coefficients().contains(&0.0), "{:?}", m.coefficients());
}

#[test]
fn constant_features_get_coefficient_zero() {
    let ctx = Context::local(2).unwrap();
    let pts: Vec<LabeledPoint> = fixture("binary_l2")
        .points
        .into_iter()
        .map(|mut p| {
            let mut x = p.features.to_dense();
            x.push(7.0);
            p.features = Vector::Dense(x);
            p
        })
        .collect();
    let m = LogisticRegression::new()
        .reg_param(0.1)
        .fit(&ctx.parallelize(pts, 2))
        .unwrap();
    assert_eq!(m.coefficients()[4], 0.0);
}

fn fit_err(points: Vec<LabeledPoint>, lr: LogisticRegression) -> String {
    let ctx = Context::local(2).unwrap();
    let e = lr.fit(&ctx.parallelize(points, 2)).unwrap_err();
    assert!(matches!(e, MlError::Data(_) | MlError::Param { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn bad_input_is_a_clear_error() {
    let ok = || fixture("binary_l2").points;
    let mut nan = ok();
    nan[17].features = Vector::Dense(vec![1.0, f64::NAN, 0.0, 0.0]);
    let e = fit_err(nan, LogisticRegression::new());
    assert!(e.contains("NaN") && e.contains("feature 1"), "{e}");

    let one_class: Vec<LabeledPoint> = ok().into_iter().map(|p| LabeledPoint { label: 1.0, ..p }).collect();
    let e = fit_err(one_class, LogisticRegression::new());
    assert!(e.contains("one class"), "{e}");

    for bad in [0.5, -1.0, f64::INFINITY] {
        let mut pts = ok();
        pts[3].label = bad;
        let e = fit_err(pts, LogisticRegression::new());
        assert!(e.contains("label") && e.contains("0, 1, ..., K-1"), "{e}");
    }

    let mut three = ok();
    three[0].label = 2.0;
    let e = fit_err(three, LogisticRegression::new().family(Family::Binomial));
    assert!(e.contains("binomial"), "{e}");

    let e = fit_err(Vec::new(), LogisticRegression::new());
    assert!(e.contains("empty"), "{e}");

    let e = fit_err(ok(), LogisticRegression::new().elastic_net_param(1.5));
    assert!(e.contains("elastic_net_param"), "{e}");
    let e = fit_err(ok(), LogisticRegression::new().reg_param(-1.0));
    assert!(e.contains("reg_param"), "{e}");

    let mut ragged = ok();
    ragged[5].features = Vector::Dense(vec![1.0, 2.0]);
    let e = fit_err(ragged, LogisticRegression::new());
    assert!(e.contains("features"), "{e}");
}

#[test]
fn linear_svc_bad_input_is_a_clear_error() {
    use flint_mllib::classification::LinearSvc;
    let ctx = Context::local(2).unwrap();
    let err = |points: Vec<LabeledPoint>, svc: LinearSvc| {
        let e = svc.fit(&ctx.parallelize(points, 2)).unwrap_err();
        assert!(matches!(e, MlError::Data(_) | MlError::Param { .. }), "{e:?}");
        e.to_string()
    };
    let ok = || fixture("linearsvc").points;
    let mut nan = ok();
    nan[11].features = Vector::Dense(vec![1.0, 0.0, f64::NAN]);
    let e = err(nan, LinearSvc::new());
    assert!(e.contains("NaN") && e.contains("feature 2"), "{e}");
    let e = err(Vec::new(), LinearSvc::new());
    assert!(e.contains("empty"), "{e}");
    let mut two = ok();
    two[4].label = 2.0;
    let e = err(two, LinearSvc::new());
    assert!(e.contains("label"), "{e}");
    let mut ragged = ok();
    ragged[5].features = Vector::Dense(vec![1.0]);
    let e = err(ragged, LinearSvc::new());
    assert!(e.contains("features"), "{e}");
    let e = err(ok(), LinearSvc::new().reg_param(-1.0));
    assert!(e.contains("reg_param"), "{e}");
}

#[test]
fn models_save_and_load() {
    let ctx = Context::local(2).unwrap();
    let (_, m) = fit(&ctx, "multinomial_l2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lr.json");
    m.save(&path).unwrap();
    let back = LogisticRegressionModel::load(&path).unwrap();
    assert_eq!(back, m);
}

#[test]
fn shipped_tasks_give_the_same_model() {
    let local = Context::local(2).unwrap();
    let shipped = Context::builder().master("local[2]").ship_tasks(true).build().unwrap();
    for name in ["binary_elasticnet", "multinomial_l2"] {
        let (_, a) = fit(&local, name);
        let (_, b) = fit(&shipped, name);
        assert_eq!(a.coefficients(), b.coefficients(), "{name}");
        assert_eq!(a.intercepts(), b.intercepts(), "{name}");
    }
}

#[test]
fn linear_svc_approaches_the_exact_svm() {
    use flint_mllib::classification::{LinearSvc, LinearSvcModel};
    let ctx = Context::local(2).unwrap();
    let f = fixture("linearsvc");
    let data = ctx.parallelize(f.points.clone(), 3);
    let m = LinearSvc::new()
        .reg_param(f.params["reg_param"].as_f64().unwrap())
        .tol(1e-12)
        .max_iter(500)
        .block_rows(64)
        .fit(&data)
        .unwrap();
    // The hinge has kinks: quasi-Newton gets close to the exact (libsvm) minimum (here to about
    // 2e-5 in the coefficients and 1e-9 in the objective), not to machine precision.
    let objective = *m.summary().loss_history.last().unwrap();
    let want = f.expected["objective"].as_f64().unwrap();
    assert!((objective - want).abs() <= 1e-7 * want, "{objective} vs {want}");
    let passes = &m.summary().pass_seconds;
    assert!(passes.len() > m.summary().iterations, "{passes:?}");
    assert!(passes.iter().all(|t| *t > 0.0), "{passes:?}");
    let want_coef = floats(&f.expected["coefficients"]);
    for (g, w) in m.coefficients().iter().zip(&want_coef) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "{:?} vs {want_coef:?}",
            m.coefficients()
        );
    }
    let b = f.expected["intercept"].as_f64().unwrap();
    assert!((m.intercept() - b).abs() <= 1e-4 * b.abs(), "{} vs {b}", m.intercept());
    let correct = m
        .transform(&data)
        .collect()
        .unwrap()
        .iter()
        .filter(|(y, p)| y == p)
        .count();
    assert!(correct >= 140, "accuracy {correct}/200");
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path().join("svc.json")).unwrap();
    assert_eq!(LinearSvcModel::load(dir.path().join("svc.json")).unwrap(), m);
    let mut three = f.points;
    three[0].label = 2.0;
    let e = LinearSvc::new()
        .fit(&ctx.parallelize(three, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 or 1"), "{e}");
}
