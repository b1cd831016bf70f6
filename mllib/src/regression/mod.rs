//! Regression: [`LinearRegression`] (normal equations, ridge and elastic net, Spark's
//! objective) and [`GeneralizedLinearRegression`] (IRLS for the gaussian, binomial, Poisson,
//! gamma and Tweedie families, with Spark's training summary: standard errors, p-values, deviance,
//! AIC).
//!
//! Both accumulate the weighted Gram matrix `XᵀWX` and `XᵀWz` of the cached instance blocks in
//! one job ([`wls`] explains the objective solved on the driver); the t and normal p-values
//! come from [`dist`].

pub mod dist;
pub mod family;
pub mod glr;
pub mod linear;
pub mod wls;

mod cd;
mod input;

pub use family::{Family, Link};
pub use glr::{GeneralizedLinearRegression, GeneralizedLinearRegressionModel, GeneralizedLinearRegressionSummary};
pub use linear::{LinearRegression, LinearRegressionModel, LinearRegressionSummary, Solver};
