//! Summarizer and scalers against direct two-pass computations; pipeline of a scaler and a
//! trivial estimator.

use flint_engine::{Context, Rdd};
use flint_mllib::feature::{MinMaxScaler, StandardScaler, summarize};
use flint_mllib::linalg::SparseVector;
use flint_mllib::pipeline::{Estimator, Pipeline, Predictor};
use flint_mllib::{LabeledPoint, MlError, Result, Vector};
use serde::{Deserialize, Serialize};

/// 300 rows, 4 features: a shifted large-offset column (stability), a sparse-ish one, a
/// constant one and a plain one; weights in [0.5, 2.5).
fn points() -> Vec<LabeledPoint> {
    (0..300)
        .map(|i| {
            let t = i as f64;
            let x = vec![
                1e9 + (t * 0.37).sin() * 3.0,
                if i % 3 == 0 { t / 7.0 } else { 0.0 },
                4.0,
                (t * 1.3).cos() - 0.5,
            ];
            LabeledPoint::new((i % 3) as f64, x).with_weight(0.5 + (i % 5) as f64 * 0.5)
        })
        .collect()
}

/// Weighted mean and unbiased variance, two passes.
fn reference(rows: &[LabeledPoint], j: usize) -> (f64, f64) {
    let w: f64 = rows.iter().map(|p| p.weight).sum();
    let w2: f64 = rows.iter().map(|p| p.weight * p.weight).sum();
    let mean = rows.iter().map(|p| p.weight * p.features.to_dense()[j]).sum::<f64>() / w;
    let ss: f64 = rows
        .iter()
        .map(|p| p.weight * (p.features.to_dense()[j] - mean).powi(2))
        .sum();
    (mean, ss / (w - w2 / w))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn summary_matches_two_pass_statistics_dense_and_sparse() {
    let ctx = Context::local(2).unwrap();
    let rows = points();
    let sparse: Vec<LabeledPoint> = rows
        .iter()
        .map(|p| {
            let d = p.features.to_dense();
            let (indices, values): (Vec<u32>, Vec<f64>) = d
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(i, v)| (i as u32, *v))
                .unzip();
            LabeledPoint {
                features: Vector::Sparse(SparseVector {
                    size: d.len(),
                    indices,
                    values,
                }),
                ..p.clone()
            }
        })
        .collect();
    for data in [rows.clone(), sparse] {
        let s = summarize(&ctx.parallelize(data, 7)).unwrap();
        assert_eq!(s.count, 300);
        assert_eq!(s.num_features(), 4);
        assert_eq!(s.num_classes(), Some(3));
        assert_eq!(s.num_nonzeros, vec![300, 99, 300, 300]);
        for j in 0..4 {
            let (mean, var) = reference(&rows, j);
            assert!(rel(s.mean[j], mean) < 1e-12, "mean {j}: {} vs {mean}", s.mean[j]);
            if var == 0.0 {
                assert!(s.variance[j] < 1e-12, "variance {j}: {}", s.variance[j]);
            } else {
                assert!(
                    rel(s.variance[j], var) < 1e-7,
                    "variance {j}: {} vs {var}",
                    s.variance[j]
                );
            }
        }
        assert_eq!(s.min[1], 0.0);
        assert_eq!(s.max[1], 297.0 / 7.0);
        assert_eq!((s.min[2], s.max[2]), (4.0, 4.0));
    }
}

#[test]
fn summary_rejects_bad_rows() {
    let ctx = Context::local(2).unwrap();
    let mut rows = points();
    rows[10].features = Vector::Dense(vec![1.0, f64::NAN, 0.0, 0.0]);
    let err = summarize(&ctx.parallelize(rows, 3)).unwrap_err();
    assert!(
        matches!(err, MlError::Data(ref m) if m.contains("1 rows have a NaN")),
        "{err}"
    );
    let mut rows = points();
    rows[200] = LabeledPoint::new(0.0, vec![1.0]);
    let err = summarize(&ctx.parallelize(rows, 3)).unwrap_err();
    assert!(err.to_string().contains("another number of features"), "{err}");
    let err = summarize(&ctx.parallelize(Vec::new(), 2)).unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");
}

#[test]
fn standard_scaler_matches_spark_semantics() {
    let ctx = Context::local(2).unwrap();
    let rows: Vec<LabeledPoint> = points().into_iter().map(|p| p.with_weight(1.0)).collect();
    let data = ctx.parallelize(rows.clone(), 3);
    let model = StandardScaler::new().fit(&data).unwrap();
    let out = model.transform(&data).collect().unwrap();
    for j in [0, 1, 3] {
        let (mean, var) = reference(&rows, j);
        let x = rows[5].features.to_dense()[j];
        assert!(rel(out[5].features.to_dense()[j], x / var.sqrt()) < 1e-7);
        let centred = StandardScaler::new().with_mean(true).fit(&data).unwrap();
        let y = centred.transform_vector(&rows[5].features).to_dense()[j];
        assert!((y - (x - mean) / var.sqrt()).abs() < 1e-6, "{y}");
    }
    // Constant feature: std 0 maps to 0; labels and weights unchanged.
    assert_eq!(out[5].features.to_dense()[2], 0.0);
    assert_eq!((out[5].label, out[5].weight), (rows[5].label, rows[5].weight));
    // Sparse stays sparse without centring.
    let v = Vector::Sparse(SparseVector {
        size: 4,
        indices: vec![1],
        values: vec![2.0],
    });
    assert!(matches!(model.transform_vector(&v), Vector::Sparse(_)));
}

#[test]
fn min_max_scaler_maps_to_range_and_constants_to_the_middle() {
    let ctx = Context::local(2).unwrap();
    let data = ctx.parallelize(
        vec![
            LabeledPoint::new(0.0, vec![1.0, 5.0, -2.0]),
            LabeledPoint::new(0.0, vec![3.0, 5.0, 2.0]),
            LabeledPoint::new(0.0, vec![2.0, 5.0, 0.0]),
        ],
        2,
    );
    let model = MinMaxScaler::new().fit(&data).unwrap();
    let out: Vec<Vec<f64>> = model
        .transform(&data)
        .collect()
        .unwrap()
        .iter()
        .map(|p| p.features.to_dense())
        .collect();
    assert_eq!(out, vec![vec![0.0, 0.5, 0.0], vec![1.0, 0.5, 1.0], vec![0.5, 0.5, 0.5]]);
    let model = MinMaxScaler::new().min(-1.0).max(3.0).fit(&data).unwrap();
    assert_eq!(
        model.transform_vector(&Vector::Dense(vec![3.0, 5.0, -2.0])).to_dense(),
        vec![3.0, 1.0, -1.0]
    );
    assert!(matches!(
        MinMaxScaler::new().min(2.0).fit(&data),
        Err(MlError::Param { .. })
    ));
}

/// Predicts the mean of the features it was fitted on, plus the first feature.
struct ShiftByMean;

#[derive(Clone, Serialize, Deserialize)]
struct ShiftModel {
    mean_first: f64,
}

impl Estimator for ShiftByMean {
    type Model = ShiftModel;
    fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<ShiftModel> {
        Ok(ShiftModel {
            mean_first: summarize(data)?.mean[0],
        })
    }
}

impl Predictor for ShiftModel {
    fn predict(&self, features: &Vector) -> f64 {
        self.mean_first + features.to_dense()[0]
    }
}

#[test]
fn pipeline_fits_scaler_then_estimator_on_scaled_data() {
    let ctx = Context::local(2).unwrap();
    let data = ctx.parallelize(
        (0..10)
            .map(|i| LabeledPoint::new(i as f64, vec![i as f64 * 2.0]))
            .collect(),
        3,
    );
    let model = Pipeline::new(ShiftByMean)
        .stage(StandardScaler::new().with_mean(true))
        .fit(&data)
        .unwrap();
    // Centred features have mean 0, so the final model saw mean 0.
    assert!(model.model.mean_first.abs() < 1e-12);
    let std = summarize(&data).unwrap().std[0];
    let x = Vector::Dense(vec![18.0]);
    assert!((model.predict(&x) - (18.0 - 9.0) / std).abs() < 1e-12);
    let pairs = model.transform(&data).unwrap().collect().unwrap();
    assert_eq!(pairs.len(), 10);
    assert!((pairs[9].1 - (18.0 - 9.0) / std).abs() < 1e-12);
    assert_eq!(pairs[9].0, 9.0);
    let scaled = model.transform_features(&data).unwrap().collect().unwrap();
    assert!((scaled[0].features.to_dense()[0] + 9.0 / std).abs() < 1e-12);
    assert_eq!(model.transformers.len(), 1);
    let _ = model.transformers[0].transform(&data).unwrap();
}

#[test]
fn the_librarys_estimators_are_final_stages() {
    let ctx = Context::local(2).unwrap();
    // Two classes far apart in the first feature, on very different scales.
    let points: Vec<LabeledPoint> = (0..60)
        .map(|i| {
            let class = (i % 2) as f64;
            LabeledPoint::new(
                class,
                vec![class * 1000.0 + (i % 7) as f64 * 50.0, (i % 5) as f64 * 0.01],
            )
        })
        .collect();
    let data = ctx.parallelize(points.clone(), 3);
    let scaler = StandardScaler::new().with_mean(true);
    // The pipeline's model is the estimator's model fitted on the scaled points.
    let lr = flint_mllib::classification::LogisticRegression::new().reg_param(0.05);
    let piped = Pipeline::new(lr.clone()).stage(scaler.clone()).fit(&data).unwrap();
    let scaled = scaler.fit(&data).unwrap().transform(&data);
    let direct = lr.fit(&scaled).unwrap();
    assert_eq!(piped.model.coefficients(), direct.coefficients());
    let pairs = piped.transform(&data).unwrap().collect().unwrap();
    assert!(pairs.iter().all(|(label, prediction)| label == prediction), "{pairs:?}");
    // Regression, GLM, SVC and k-means too.
    let linear = Pipeline::new(flint_mllib::regression::LinearRegression::new())
        .stage(MinMaxScaler::new())
        .fit(&data)
        .unwrap();
    assert!(linear.predict(&Vector::Dense(vec![1100.0, 0.0])) > 0.5);
    let glm = Pipeline::new(flint_mllib::regression::GeneralizedLinearRegression::new())
        .stage(MinMaxScaler::new())
        .fit(&data)
        .unwrap();
    assert!(glm.predict(&Vector::Dense(vec![0.0, 0.0])) < 0.5);
    let svc = Pipeline::new(flint_mllib::classification::LinearSvc::new())
        .stage(scaler.clone())
        .fit(&data)
        .unwrap();
    assert_eq!(svc.predict(&Vector::Dense(vec![1200.0, 0.02])), 1.0);
    let kmeans = Pipeline::new(flint_mllib::KMeans::new().k(2).seed(7))
        .stage(scaler)
        .fit(&data)
        .unwrap();
    let (a, b) = (
        kmeans.predict(&Vector::Dense(vec![0.0, 0.0])),
        kmeans.predict(&Vector::Dense(vec![1150.0, 0.0])),
    );
    assert!(a != b && (a == 0.0 || a == 1.0) && (b == 0.0 || b == 1.0), "{a} {b}");
}

#[test]
fn scaler_models_save_and_load() {
    let ctx = Context::local(2).unwrap();
    let data = ctx.parallelize(points(), 2);
    let dir = tempfile::tempdir().unwrap();
    let s = StandardScaler::new().with_mean(true).fit(&data).unwrap();
    s.save(dir.path().join("s.json")).unwrap();
    assert_eq!(
        flint_mllib::feature::StandardScalerModel::load(dir.path().join("s.json")).unwrap(),
        s
    );
    let m = MinMaxScaler::new().fit(&data).unwrap();
    m.save(dir.path().join("m.json")).unwrap();
    assert_eq!(
        flint_mllib::feature::MinMaxScalerModel::load(dir.path().join("m.json")).unwrap(),
        m
    );
    assert!(flint_mllib::feature::MinMaxScalerModel::load(dir.path().join("s.json")).is_err());
}
