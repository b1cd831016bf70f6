//! flint executor runtime.
//!
//! Distributed execution (executor processes over tarpc) lands with issue 4; this crate
//! is the place it will live.
#![forbid(unsafe_code)]
