//! flint machine learning library.
//!
//! GLMs, k-means and SGD models land with issue 5; this crate is where they will live.
#![forbid(unsafe_code)]
