//! flint-engine (in progress)
