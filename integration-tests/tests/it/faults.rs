//! Failures: user code that panics, damaged shuffle files, bad input and output paths, and
//! faults injected at the engine's seams (failpoints).

mod bad_input;
mod failpoints;
mod shuffle_files;
mod tasks;
