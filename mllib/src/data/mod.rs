//! Training data: labelled points, and instance blocks (a partition's rows stacked into a
//! dense row-major matrix), the cached form every estimator iterates over.

mod block;
mod point;

pub use block::{DEFAULT_BLOCK_ROWS, InstanceBlock, to_blocks};
pub use point::LabeledPoint;
