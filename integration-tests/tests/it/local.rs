//! Local mode (`local[N]`): operators, actions, I/O, persistence and job control.

mod accumulators;
mod actions;
mod checkpoint;
mod io;
mod jobs;
mod operators;
mod pairs;
mod persist;
