//! flint-shuffle (in progress)
