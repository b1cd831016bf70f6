//! # flint-engine
//!
//! The core of flint, a Spark-like dataflow engine: typed resilient distributed datasets
//! ([`Rdd<T>`]) with lineage, a DAG scheduler that cuts jobs into stages at shuffle boundaries,
//! a task scheduler with retries, sort-based shuffle with spill (through `flint-shuffle`),
//! caching, checkpoints, broadcast variables and accumulators. This crate runs jobs in local
//! mode (task threads in this process); distributed execution plugs in behind the same
//! scheduler interface.
//!
//! It does not own: shuffle file formats and spilling (`flint-shuffle`), executor processes
//! (`flint-executor`), ML (`flint-mllib`). Users depend on the `flint` crate, which re-exports
//! this one.
//!
//! ```
//! use flint_engine::Context;
//!
//! let ctx = Context::local(2).unwrap();
//! let counts = ctx
//!     .parallelize(vec!["a b".to_string(), "b c b".to_string()], 2)
//!     .flat_map(|line: String| line.split_whitespace().map(String::from).collect::<Vec<_>>())
//!     .map(|w: String| (w, 1u64))
//!     .reduce_by_key(|a, b| a + b);
//! let mut out = counts.collect().unwrap();
//! out.sort();
//! assert_eq!(out, vec![("a".into(), 1), ("b".into(), 3), ("c".into(), 1)]);
//! ```
//!
//! Layout:
//! - [`context`]: the driver's `Context` and its builder;
//! - [`conf`]: configuration keys, defaults and `FLINT_*` variables;
//! - `rdd`: the `Rdd<T>` handle and one module per node kind, pair operations, actions,
//!   numeric statistics;
//! - `scheduler`: DAG scheduler (stages, retries, fetch failures), local backend, progress bar;
//! - [`partitioner`]: hash and range partitioners;
//! - `storage`: the block manager behind `persist`;
//! - `shuffle_map`: the map-output tracker;
//! - [`func`]: shippable user functions and `with`;
//! - `code_identity`: how code is named across processes (the only `unsafe`);
//! - `wire`: how type-erased values (nodes, partitioners, aggregator specs) travel as a
//!   decoder's code offset plus bytes, and the serde adapters node structs derive with;
//! - `ship`: tasks as bytes (encode, decode, run, and the task's end back to the driver);
//! - `task_context`: task failures, panics and accumulator updates at the task boundary;
//! - [`error`]: `EngineError`, `TaskFailure`, `report`.
#![warn(missing_docs)]

mod accumulator;
mod broadcast;
#[doc(hidden)]
pub mod cluster;
#[allow(unsafe_code)]
mod code_identity;
pub mod conf;
pub mod context;
mod data;
mod env;
pub mod error;
pub mod failpoints;
pub mod func;
mod ids;
pub mod partitioner;
mod rdd;
mod scheduler;
mod ship;
mod shuffle_map;
mod storage;
mod task_context;
mod wire;

pub use accumulator::{Accumulator, AccumulatorValue};
pub use broadcast::Broadcast;
pub use cluster::ExecutorInfo;
pub use conf::{Config, ConfigBuilder, Master};
pub use context::{Context, ContextBuilder};
pub use data::{Data, Key};
pub use error::{EngineError, Result, TaskFailure, TaskRef, report};
pub use failpoints::FailAction;
pub use func::{Fun1, Fun2, With, with};
pub use ids::{AccumulatorId, BroadcastId, ExecutorId, JobId, RddId, ShuffleId, StageId};
pub use partitioner::{HashPartitioner, Partitioner, RangePartitioner};
pub use rdd::{BoxIter, LocalIterator, Numeric, Rdd, StatCounter};
pub use scheduler::SchedulerEvent;
pub use storage::StorageLevel;
pub use task_context::TaskContext;
