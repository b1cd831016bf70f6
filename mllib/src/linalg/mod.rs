//! Vectors and the dense kernels the algorithms are made of.
//!
//! Kernels are tight loops over `f64` slices (row-major blocks), written so that the compiler
//! vectorises them (`simd` runs them on the CPU's widest vector unit); they are the seam
//! for other devices (issue 6: wgpu).

pub mod dense;
pub(crate) mod elementary;
pub mod gemm;
pub mod kernels;
pub(crate) mod rows;
pub(crate) mod simd;
mod vector;

pub use vector::{DenseVector, SparseVector, Vector};
