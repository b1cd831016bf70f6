//! Pipelines: feature stages (estimators whose models transform points, such as the scalers)
//! followed by one final estimator; fitting fits each stage on the output of the previous
//! ones, and the fitted [`PipelineModel`] transforms then predicts. The library's estimators
//! (logistic and linear regression, GLMs, linear SVC, k-means) are final stages as they are:
//!
//! ```
//! use flint_mllib::classification::LogisticRegression;
//! use flint_mllib::feature::StandardScaler;
//! use flint_mllib::pipeline::Pipeline;
//! use flint_mllib::{LabeledPoint, Vector};
//!
//! let ctx = flint_engine::Context::local(2).unwrap();
//! let points: Vec<LabeledPoint> =
//!     (0..40).map(|i| LabeledPoint::new((i % 2) as f64, vec![(i % 2) as f64 * 100.0 + i as f64])).collect();
//! let model = Pipeline::new(LogisticRegression::new().reg_param(0.1))
//!     .stage(StandardScaler::new().with_mean(true))
//!     .fit(&ctx.parallelize(points, 2))
//!     .unwrap();
//! assert_eq!(model.predict(&Vector::Dense(vec![130.0])), 1.0);
//! ```
//!
//! Or any type implementing [`Estimator`], whose model implements [`Predictor`]:
//!
//! ```
//! use flint_mllib::feature::StandardScaler;
//! use flint_mllib::pipeline::{Estimator, Pipeline, Predictor};
//! use flint_mllib::{LabeledPoint, Result, Vector};
//! use flint_engine::Rdd;
//!
//! /// Predicts the first feature.
//! struct First;
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct FirstModel;
//! impl Estimator for First {
//!     type Model = FirstModel;
//!     fn fit(&self, _data: &Rdd<LabeledPoint>) -> Result<FirstModel> { Ok(FirstModel) }
//! }
//! impl Predictor for FirstModel {
//!     fn predict(&self, features: &Vector) -> f64 { features.to_dense()[0] }
//! }
//!
//! let ctx = flint_engine::Context::local(2).unwrap();
//! let data = ctx.parallelize(vec![LabeledPoint::new(0.0, vec![1.0]), LabeledPoint::new(1.0, vec![3.0])], 2);
//! let model = Pipeline::new(First).stage(StandardScaler::new()).fit(&data).unwrap();
//! let sqrt2 = 2f64.sqrt();
//! assert!((model.predict(&Vector::Dense(vec![3.0])) - 3.0 / sqrt2).abs() < 1e-12);
//! ```

use flint_engine::{Data, Rdd, with};

use crate::classification::{LinearSvc, LinearSvcModel, LogisticRegression, LogisticRegressionModel};
use crate::clustering::{KMeans, KMeansModel};
use crate::data::LabeledPoint;
use crate::error::Result;
use crate::linalg::Vector;
use crate::regression::{
    GeneralizedLinearRegression, GeneralizedLinearRegressionModel, LinearRegression, LinearRegressionModel,
};

/// Turns points into points (a fitted feature stage).
pub trait Transformer {
    /// Transforms every point (lazily where possible).
    fn transform(&self, data: &Rdd<LabeledPoint>) -> Result<Rdd<LabeledPoint>>;
    /// Transforms one feature vector, as `transform` does each point's.
    fn transform_vector(&self, features: &Vector) -> Vector;
}

/// Learns a model from points.
pub trait Estimator {
    /// What `fit` returns.
    type Model;
    /// Fits the model.
    fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<Self::Model>;
}

/// A model that predicts one value per feature vector.
pub trait Predictor {
    /// The prediction for `features`.
    fn predict(&self, features: &Vector) -> f64;
}

/// The library's estimators as final stages: their own `fit` and `predict`.
macro_rules! final_stage {
    ($($estimator:ty => $model:ty),* $(,)?) => {$(
        impl Estimator for $estimator {
            type Model = $model;
            fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<$model> {
                <$estimator>::fit(self, data)
            }
        }

        impl Predictor for $model {
            fn predict(&self, features: &Vector) -> f64 {
                <$model>::predict(self, features)
            }
        }
    )*};
}

final_stage!(
    LogisticRegression => LogisticRegressionModel,
    LinearSvc => LinearSvcModel,
    LinearRegression => LinearRegressionModel,
    GeneralizedLinearRegression => GeneralizedLinearRegressionModel,
);

impl Estimator for KMeans {
    type Model = KMeansModel;
    fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<KMeansModel> {
        KMeans::fit(self, data)
    }
}

/// The index of the closest center (as Spark's `prediction` column).
impl Predictor for KMeansModel {
    fn predict(&self, features: &Vector) -> f64 {
        KMeansModel::predict(self, features) as f64
    }
}

/// A feature stage of a pipeline, type-erased: an estimator whose model is a transformer.
trait FeatureStage {
    fn fit_stage(&self, data: &Rdd<LabeledPoint>) -> Result<Box<dyn Transformer>>;
}

impl<E> FeatureStage for E
where
    E: Estimator,
    E::Model: Transformer + 'static,
{
    fn fit_stage(&self, data: &Rdd<LabeledPoint>) -> Result<Box<dyn Transformer>> {
        Ok(Box::new(self.fit(data)?))
    }
}

/// Feature stages followed by a final estimator `E`.
pub struct Pipeline<E> {
    stages: Vec<Box<dyn FeatureStage>>,
    estimator: E,
}

impl<E: Estimator> Pipeline<E> {
    /// A pipeline of `estimator` alone.
    pub fn new(estimator: E) -> Self {
        Pipeline {
            stages: Vec::new(),
            estimator,
        }
    }

    /// Appends a feature stage (applied after the stages added before it).
    pub fn stage<S>(mut self, stage: S) -> Self
    where
        S: Estimator + 'static,
        S::Model: Transformer + 'static,
    {
        self.stages.push(Box::new(stage));
        self
    }

    /// Fits the stages in order, each on the previous stages' output, then the estimator.
    /// Cache `data` first when it is expensive to compute: each stage's fit reads it.
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<PipelineModel<E::Model>> {
        let mut current = data.clone();
        let mut transformers = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let t = stage.fit_stage(&current)?;
            current = t.transform(&current)?;
            transformers.push(t);
        }
        let model = self.estimator.fit(&current)?;
        Ok(PipelineModel { transformers, model })
    }
}

/// A fitted [`Pipeline`]: transformers, then the final model.
pub struct PipelineModel<M> {
    /// The fitted feature stages, in order.
    pub transformers: Vec<Box<dyn Transformer>>,
    /// The fitted final model.
    pub model: M,
}

impl<M> PipelineModel<M> {
    /// Applies the feature stages to every point.
    pub fn transform_features(&self, data: &Rdd<LabeledPoint>) -> Result<Rdd<LabeledPoint>> {
        let mut current = data.clone();
        for t in &self.transformers {
            current = t.transform(&current)?;
        }
        Ok(current)
    }

    /// Applies the feature stages to one vector.
    pub fn transform_vector(&self, features: &Vector) -> Vector {
        self.transformers
            .iter()
            .fold(features.clone(), |v, t| t.transform_vector(&v))
    }
}

impl<M: Predictor> PipelineModel<M> {
    /// The final model's prediction for the transformed `features`.
    pub fn predict(&self, features: &Vector) -> f64 {
        self.model.predict(&self.transform_vector(features))
    }
}

impl<M: Predictor + Data> PipelineModel<M> {
    /// `(label, prediction)` for every point (lazy).
    pub fn transform(&self, data: &Rdd<LabeledPoint>) -> Result<Rdd<(f64, f64)>> {
        Ok(self
            .transform_features(data)?
            .map(with(self.model.clone(), |m: &M, p: LabeledPoint| {
                (p.label, m.predict(&p.features))
            })))
    }
}
