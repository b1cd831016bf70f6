//! Example flint driver programs, as libraries so that tests and benchmarks can call them.
//!
//! Each binary in `src/bin/` is a thin `main` over one of these modules: it parses flags
//! (`--master`, default `local[*]`; `--json` prints one JSON object on stdout, last), builds a
//! context and calls the job function.
#![forbid(unsafe_code)]

/// mimalloc for the example binaries: a driver program picks its allocator, and per-record
/// allocation (one `String` per word in wordcount) is a large share of the work. Measured on
/// wordcount's inner loop: 146 -> 124 ns/word (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod bench;
pub mod cli;
pub mod pagerank;
pub mod pi;
pub mod sort;
pub mod wordcount;
