//! flint's integration tests: one test binary (see STYLE.md, section 9).
//!
//! - `local`: every operator and action against a sequential reference, I/O, persistence,
//!   checkpoints, accumulators, concurrent and cancelled jobs;
//! - `faults`: task retries, failure reports, corrupt and lost shuffle files, bad input;
//! - `properties`: proptest models of the shuffle operations under a tiny memory limit;
//! - `spill`: aggregation and sort over data many times the memory limit;
//! - `shipping`: tasks encoded, decoded and run as in another process (`ship_tasks`); the
//!   whole binary also runs with `FLINT_SHIP_TASKS=1` (`scripts/test.sh`).
//!
//! Every context of these tests honours `FLINT_SHIP_TASKS` (the builder reads it).

mod common;
mod faults;
mod local;
mod properties;
mod shipping;
mod spill;
