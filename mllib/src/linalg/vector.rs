//! Dense and sparse vectors.

use serde::{Deserialize, Serialize};

/// A dense vector.
pub type DenseVector = Vec<f64>;

/// A sparse vector: `size` entries, non-zero at `indices` (strictly increasing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    /// Number of entries.
    pub size: usize,
    /// Indices of the non-zero entries, strictly increasing.
    pub indices: Vec<u32>,
    /// Their values.
    pub values: Vec<f64>,
}

/// A feature vector, dense or sparse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Vector {
    /// Every entry stored.
    Dense(DenseVector),
    /// Only the non-zero entries stored.
    Sparse(SparseVector),
}

impl Vector {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Vector::Dense(v) => v.len(),
            Vector::Sparse(s) => s.size,
        }
    }

    /// Whether the vector has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the entries into `out` (length `len()`), zeros included.
    pub fn write_dense(&self, out: &mut [f64]) {
        match self {
            Vector::Dense(v) => out.copy_from_slice(v),
            Vector::Sparse(s) => {
                out.fill(0.0);
                for (i, v) in s.indices.iter().zip(&s.values) {
                    out[*i as usize] = *v;
                }
            }
        }
    }

    /// The entries as a dense vector.
    pub fn to_dense(&self) -> DenseVector {
        let mut out = vec![0.0; self.len()];
        self.write_dense(&mut out);
        out
    }

    /// Dot product with a dense vector of the same length.
    pub fn dot(&self, w: &[f64]) -> f64 {
        match self {
            Vector::Dense(v) => kernels_dot(v, w),
            Vector::Sparse(s) => s.indices.iter().zip(&s.values).map(|(i, v)| v * w[*i as usize]).sum(),
        }
    }
}

fn kernels_dot(a: &[f64], b: &[f64]) -> f64 {
    super::kernels::dot(a, b)
}
