//! Failures: user code that panics, damaged shuffle files, bad input and output paths.

mod bad_input;
mod shuffle_files;
mod tasks;
