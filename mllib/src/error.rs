//! The one error type of `flint-mllib`.

use std::path::PathBuf;

/// Why an ML operation failed. Messages name what and where (file and line, parameter and
/// value), so that a person can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The engine failed (a job, an input path).
    #[error(transparent)]
    Engine(#[from] flint_engine::EngineError),
    /// A parameter has a value the estimator cannot use.
    #[error("parameter {name} = {value}: {expected}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// The training or input data cannot be used (NaN, one class only, too few rows...).
    #[error("bad input data: {0}")]
    Data(String),
    /// A malformed line of a CSV or LIBSVM file.
    #[error("{path}:{line}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number (0 when unknown).
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// The kernels cannot run on the requested device (`flint.ml.device = gpu` without a
    /// usable GPU adapter, a block too large for the GPU's buffers, a GPU failure).
    #[error("flint.ml.device = {device}: {detail}")]
    Device {
        /// The device asked for.
        device: crate::device::Device,
        /// What is wrong (no adapter, and what was tried; the limit exceeded).
        detail: String,
    },
    /// A model file cannot be read or written.
    #[error("model file {path}: {detail}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (I/O error, another model kind, another format version).
        detail: String,
    },
}

impl MlError {
    /// A parameter error.
    pub fn param(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        MlError::Param {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = MlError> = std::result::Result<T, E>;
