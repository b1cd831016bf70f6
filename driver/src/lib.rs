//! # flint
//!
//! A Spark-like dataflow engine in Rust: the one dependency a driver program needs.
//!
//! ```
//! use flint::prelude::*;
//!
//! fn main() -> flint::Result<()> {
//!     flint::init()?;
//!     let ctx = Context::builder().master("local[2]").app_name("readme").build()?;
//!     let counts = ctx
//!         .parallelize(vec!["to be or".to_string(), "not to be".to_string()], 2)
//!         .flat_map(|line: String| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
//!         .map(|w: String| (w, 1u64))
//!         .reduce_by_key(|a, b| a + b);
//!     let mut top = counts.collect()?;
//!     top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
//!     assert_eq!(top[0], ("be".to_string(), 2));
//!     Ok(())
//! }
//! ```
//!
//! - [`prelude`]: what a driver program uses (`Context`, `Rdd`, `with`, `StorageLevel`...);
//! - [`ml`]: the machine learning library (`flint-mllib`);
//! - [`init`]: call first in `main`: sets up logging (`FLINT_LOG`) and turns a process
//!   launched as an executor into one (distributed mode, `local-cluster[E,C]`, `flint://`);
//! - [`deploy`]: the command lines of `flint-master`, `flint-worker` and `flint-submit`
//!   (a standalone cluster, like Spark's).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use flint_engine::*;

pub mod deploy;

/// The README's Rust snippets, compiled as doctests so that they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The machine learning library.
pub mod ml {
    pub use flint_mllib::*;
}

/// Everything a driver program usually needs.
pub mod prelude {
    pub use flint_engine::{
        Accumulator, BoxIter, Broadcast, Context, EngineError, HashPartitioner, RangePartitioner, Rdd, StorageLevel,
        with,
    };
}

/// Prepares this process to run flint; call it first thing in `main`.
///
/// - Installs a `tracing` subscriber that logs to stderr at the level given by `FLINT_LOG`
///   (e.g. `info`, `flint_engine=debug`; default `warn`), unless the program installed one.
/// - When this process was started as an *executor* of a distributed application (the driver
///   starts executors as copies of its own program), runs the executor and exits: the rest of
///   `main` never runs in executors.
/// - Otherwise makes `local-cluster[E,C]` masters available.
pub fn init() -> Result<()> {
    init_logging("warn");
    flint_executor::init();
    Ok(())
}

/// Installs a `tracing` subscriber logging to stderr at the level `FLINT_LOG` gives
/// (default: `default`) unless one is set.
pub(crate) fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLINT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // A subscriber set by the program (or a second init) wins; that is not an error.
    // Colours only on a terminal: executor and daemon logs often go to files.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
