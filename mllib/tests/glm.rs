//! GeneralizedLinearRegression against statsmodels fixtures (`mllib/fixtures/gen_glm.py`),
//! bad input, persistence, shipped tasks.

use flint_engine::Context;
use flint_mllib::regression::{
    Family, GeneralizedLinearRegression, GeneralizedLinearRegressionModel, LinearRegression, Link,
};
use flint_mllib::{LabeledPoint, MlError, Vector};

mod common;
use common::{fixture, floats, points};

fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs(),
            "{what}[{i}]: got {g}, want {w} (rel {rel})"
        );
    }
}

fn check(ctx: &Context, name: &str) -> GeneralizedLinearRegressionModel {
    let f = fixture(name);
    let p = &f["params"];
    let family = match p["variance_power"].as_f64() {
        Some(variance_power) => Family::Tweedie { variance_power },
        None => Family::parse(p["family"].as_str().unwrap()).unwrap(),
    };
    let glr = GeneralizedLinearRegression::new()
        .family(family)
        .link(Link::parse(p["link"].as_str().unwrap()).unwrap())
        .fit_intercept(p["fit_intercept"].as_bool().unwrap());
    let m = glr.fit(&ctx.parallelize(points(&f), 3)).unwrap();
    let e = &f["expected"];
    let s = &m.summary;
    assert!(s.training.converged, "{name}");
    assert_close(
        &format!("{name} coefficients"),
        &m.coefficients,
        &floats(&e["coefficients"]),
        1e-6,
    );
    assert_close(
        &format!("{name} intercept"),
        &[m.intercept],
        &[e["intercept"].as_f64().unwrap()],
        1e-6,
    );
    assert_close(
        &format!("{name} se"),
        &s.coefficient_standard_errors,
        &floats(&e["standard_errors"]),
        1e-6,
    );
    assert_close(&format!("{name} t"), &s.t_values, &floats(&e["t_values"]), 1e-6);
    assert_close(&format!("{name} p"), &s.p_values, &floats(&e["p_values"]), 1e-4);
    let scalar = |k: &str| e[k].as_f64().unwrap();
    assert_close(
        &format!("{name} dispersion"),
        &[s.dispersion],
        &[scalar("dispersion")],
        1e-6,
    );
    assert_close(&format!("{name} deviance"), &[s.deviance], &[scalar("deviance")], 1e-8);
    assert_close(
        &format!("{name} null deviance"),
        &[s.null_deviance],
        &[scalar("null_deviance")],
        1e-8,
    );
    if e["aic"].is_null() {
        assert!(s.aic.is_nan(), "{name}: Spark has no AIC here");
    } else {
        assert_close(&format!("{name} aic"), &[s.aic], &[scalar("aic")], 1e-8);
    }
    assert_eq!(
        s.residual_degree_of_freedom,
        e["residual_degree_of_freedom"].as_i64().unwrap()
    );
    m
}

#[test]
fn gaussian_matches_statsmodels() {
    let ctx = Context::local(2).unwrap();
    check(&ctx, "glm_gaussian_identity");
    check(&ctx, "glm_gaussian_weighted");
}

#[test]
fn binomial_matches_statsmodels() {
    let ctx = Context::local(2).unwrap();
    check(&ctx, "glm_binomial_logit");
    check(&ctx, "glm_binomial_probit");
}

#[test]
fn poisson_matches_statsmodels() {
    let ctx = Context::local(2).unwrap();
    for name in [
        "glm_poisson_log",
        "glm_poisson_log_weighted",
        "glm_poisson_log_no_intercept",
    ] {
        let m = check(&ctx, name);
        assert!(m.summary.training.iterations >= 2 && m.summary.training.iterations <= 25);
        // One timed IRLS pass per iteration.
        assert_eq!(m.summary.training.pass_seconds.len(), m.summary.training.iterations);
    }
}

#[test]
fn gamma_matches_statsmodels() {
    let ctx = Context::local(2).unwrap();
    check(&ctx, "glm_gamma_inverse");
    check(&ctx, "glm_gamma_log");
}

#[test]
fn tweedie_matches_statsmodels() {
    let ctx = Context::local(2).unwrap();
    check(&ctx, "glm_tweedie_log");
    // The default link of the Tweedie family is the power link 1 - p; power 0 is the log.
    let f = fixture("glm_tweedie_log");
    let m = GeneralizedLinearRegression::new()
        .family(Family::Tweedie { variance_power: 1.0 })
        .fit(&ctx.parallelize(points(&f), 2))
        .unwrap();
    assert_eq!(m.link, Link::Power(0.0));
    let e = GeneralizedLinearRegression::new()
        .family(Family::Tweedie { variance_power: 0.5 })
        .fit(&ctx.parallelize(points(&f), 2))
        .unwrap_err();
    assert!(
        matches!(
            e,
            MlError::Param {
                name: "variance_power",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn non_canonical_links_match_statsmodels() {
    let ctx = Context::local(2).unwrap();
    for name in [
        "glm_gaussian_log",
        "glm_gaussian_inverse",
        "glm_binomial_cloglog",
        "glm_poisson_identity",
        "glm_poisson_sqrt",
        "glm_gamma_identity",
    ] {
        check(&ctx, name);
    }
}

#[test]
fn gaussian_ridge_is_sparks_standardised_ridge() {
    // Spark solves gaussian/identity GLR with the standardised weighted least squares that
    // LinearRegression uses: the same optimum.
    let ctx = Context::local(2).unwrap();
    let f = fixture("linreg_ridge_weighted");
    let data = ctx.parallelize(points(&f), 2);
    let glm = GeneralizedLinearRegression::new().reg_param(0.1).fit(&data).unwrap();
    let want = floats(&f["expected"]["coefficients"]);
    assert_close("glm ridge", &glm.coefficients, &want, 1e-6);
    let lr = LinearRegression::new().reg_param(0.1).fit(&data).unwrap();
    assert_close("glm vs lr", &glm.coefficients, &lr.coefficients, 1e-12);
    // IRLS with a penalty shrinks the coefficients of a Poisson model.
    let f = fixture("glm_poisson_log");
    let data = ctx.parallelize(points(&f), 2);
    let free = GeneralizedLinearRegression::new()
        .family(Family::Poisson)
        .fit(&data)
        .unwrap();
    let ridge = GeneralizedLinearRegression::new()
        .family(Family::Poisson)
        .reg_param(0.5)
        .fit(&data)
        .unwrap();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    assert!(norm(&ridge.coefficients) < norm(&free.coefficients));
}

#[test]
fn shipped_tasks_give_the_same_model_and_models_round_trip() {
    let shipped_ctx = Context::builder().master("local[2]").ship_tasks(true).build().unwrap();
    let shipped = check(&shipped_ctx, "glm_poisson_log_weighted");
    let plain = check(&Context::local(2).unwrap(), "glm_poisson_log_weighted");
    assert_eq!(shipped.coefficients, plain.coefficients);
    assert_eq!(shipped.intercept, plain.intercept);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glm.json");
    shipped.save(&path).unwrap();
    let back = GeneralizedLinearRegressionModel::load(&path).unwrap();
    assert_eq!((back.family, back.link), (Family::Poisson, Link::Log));
    let x = Vector::Dense(vec![0.1, -0.2, 0.3]);
    let (a, b) = (back.predict(&x), shipped.predict(&x));
    assert!((a - b).abs() <= 1e-14 * b.abs());
    assert!((b - (shipped.predict_link(&x)).exp()).abs() < 1e-12);
    let f = fixture("glm_poisson_log_weighted");
    let pairs = back
        .transform(&shipped_ctx.parallelize(points(&f), 2))
        .collect()
        .unwrap();
    assert_eq!(pairs.len(), 300);
}

#[test]
fn labels_outside_the_family_and_bad_parameters_are_clear_errors() {
    let ctx = Context::local(2).unwrap();
    let rows = |label: f64| -> Vec<LabeledPoint> {
        (0..10)
            .map(|i| LabeledPoint::new(if i == 4 { label } else { 1.0 }, vec![i as f64]))
            .collect()
    };
    let fit = |family: Family, label: f64| {
        GeneralizedLinearRegression::new()
            .family(family)
            .fit(&ctx.parallelize(rows(label), 2))
            .unwrap_err()
            .to_string()
    };
    assert!(fit(Family::Binomial, 2.0).contains("binomial family needs labels in [0, 1]"));
    assert!(fit(Family::Poisson, -1.0).contains("poisson family needs labels >= 0"));
    assert!(fit(Family::Gamma, 0.0).contains("gamma family needs labels > 0"));
    assert!(fit(Family::Gaussian, f64::NAN).contains("label"));
    let e = GeneralizedLinearRegression::new()
        .family(Family::Poisson)
        .link(Link::Logit)
        .fit(&ctx.parallelize(rows(1.0), 2))
        .unwrap_err();
    assert!(matches!(e, MlError::Param { name: "link", .. }), "{e}");
    assert!(
        e.to_string().contains("poisson family supports log, identity, sqrt"),
        "{e}"
    );
    let e = GeneralizedLinearRegression::new()
        .reg_param(-0.1)
        .fit(&ctx.parallelize(rows(1.0), 2))
        .unwrap_err();
    assert!(matches!(e, MlError::Param { name: "reg_param", .. }), "{e}");
    let e = GeneralizedLinearRegression::new()
        .max_iter(0)
        .fit(&ctx.parallelize(rows(1.0), 2))
        .unwrap_err();
    assert!(matches!(e, MlError::Param { name: "max_iter", .. }), "{e}");
    let e = GeneralizedLinearRegression::new()
        .fit(&ctx.parallelize(Vec::<LabeledPoint>::new(), 2))
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(Family::parse("weibull").is_err());
}

#[test]
fn iteration_limits_and_separable_data() {
    let ctx = Context::local(2).unwrap();
    let f = fixture("glm_poisson_log");
    let m = GeneralizedLinearRegression::new()
        .family(Family::Poisson)
        .max_iter(1)
        .fit(&ctx.parallelize(points(&f), 2))
        .unwrap();
    assert_eq!(m.summary.training.iterations, 1);
    assert!(!m.summary.training.converged);
    assert_eq!(m.summary.training.loss_history.len(), 2);
    // Perfectly separable classes: the coefficient runs away and IRLS stops unconverged.
    let rows: Vec<LabeledPoint> = (0..20)
        .map(|i| LabeledPoint::new(f64::from(u8::from(i >= 10)), vec![i as f64]))
        .collect();
    let m = GeneralizedLinearRegression::new()
        .family(Family::Binomial)
        .fit(&ctx.parallelize(rows, 2))
        .unwrap();
    assert!(
        !m.summary.training.converged && m.coefficients[0] > 10.0,
        "{:?}",
        m.coefficients
    );
}
