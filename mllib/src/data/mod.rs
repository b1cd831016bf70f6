//! Training data: labelled points, and instance blocks (a partition's rows stacked into a
//! dense row-major matrix), the cached form every estimator iterates over; readers of CSV and
//! LIBSVM files, and random splits.

mod block;
pub mod csv;
pub mod libsvm;
mod point;
pub mod split;

pub use block::{DEFAULT_BLOCK_ROWS, InstanceBlock, to_blocks};
pub use csv::{CsvOptions, read_csv};
pub use libsvm::read_libsvm;
pub use point::LabeledPoint;
pub use split::random_split;
