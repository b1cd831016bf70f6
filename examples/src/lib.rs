//! Example flint driver programs, as libraries so that tests and benchmarks can call them.
//!
//! Each binary in `src/bin/` is a thin `main` over one of these modules: it parses flags
//! (`--master`, default `local[*]`; `--json` prints one JSON object on stdout, last), builds a
//! context and calls the job function.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod ml;
pub mod pagerank;
pub mod pi;
pub mod sort;
pub mod wordcount;
