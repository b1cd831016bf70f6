//! The bounds every element, key and captured value satisfies, named once.
//!
//! Everything a task touches may have to cross a process boundary (distributed mode ships
//! tasks to executors), so elements are serialisable as well as thread-safe.

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An RDD element or captured value: serialisable, cloneable and thread-safe.
pub trait Data: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Data for T {}

/// A key of a pair RDD: [`Data`] that can be hashed and compared for equality.
pub trait Key: Data + Hash + Eq {}
impl<T: Data + Hash + Eq> Key for T {}
