//! flint
