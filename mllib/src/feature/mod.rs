//! Feature statistics and transformations: the one-pass [`summarize`] (means, variances,
//! ranges the estimators use for standardisation), [`StandardScaler`] and [`MinMaxScaler`].

mod min_max;
mod standard;
mod summary;

pub use min_max::{MinMaxScaler, MinMaxScalerModel};
pub use standard::{StandardScaler, StandardScalerModel};
pub use summary::{Summary, summarize};
