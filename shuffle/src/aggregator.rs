//! The combine functions of map-side combine and reduce-side aggregation, and the key hash
//! that orders aggregation spills.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use foldhash::fast::FixedState;

/// Map-side combine / reduce-side aggregation functions, as Spark's `Aggregator`:
/// the first value of a key becomes a combiner, later values are merged into it, and
/// combiners from different tasks or spills are merged together.
///
/// ```
/// use flint_shuffle::Aggregator;
/// // Word count: values and combiners are counts.
/// let sum = Aggregator::<String, u64, u64>::new(|v| v, |c, v| c + v, |a, b| a + b);
/// assert_eq!((sum.merge_combiners)((sum.create_combiner)(2), 3), 5);
/// ```
pub struct Aggregator<K, V, C> {
    /// Turns the first value of a key into a combiner.
    pub create_combiner: Arc<dyn Fn(V) -> C + Send + Sync>,
    /// Merges a further value into a combiner.
    pub merge_value: Arc<dyn Fn(C, V) -> C + Send + Sync>,
    /// Merges two combiners of the same key.
    pub merge_combiners: Arc<dyn Fn(C, C) -> C + Send + Sync>,
    _key: PhantomData<fn(&K)>,
}

impl<K, V, C> Aggregator<K, V, C> {
    /// An aggregator from three functions.
    pub fn new(
        create_combiner: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Self {
        Self::from_arcs(
            Arc::new(create_combiner),
            Arc::new(merge_value),
            Arc::new(merge_combiners),
        )
    }

    /// An aggregator from functions already shared elsewhere.
    pub fn from_arcs(
        create_combiner: Arc<dyn Fn(V) -> C + Send + Sync>,
        merge_value: Arc<dyn Fn(C, V) -> C + Send + Sync>,
        merge_combiners: Arc<dyn Fn(C, C) -> C + Send + Sync>,
    ) -> Self {
        Aggregator {
            create_combiner,
            merge_value,
            merge_combiners,
            _key: PhantomData,
        }
    }
}

impl<K, V, C> Clone for Aggregator<K, V, C> {
    fn clone(&self) -> Self {
        Self::from_arcs(
            self.create_combiner.clone(),
            self.merge_value.clone(),
            self.merge_combiners.clone(),
        )
    }
}

impl<K, V, C> fmt::Debug for Aggregator<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aggregator { .. }")
    }
}

/// The hash of in-memory maps and of the order of aggregation spills: foldhash with a fixed
/// seed, so the order is the same in every run, reader and process of one build. (FxHash was
/// measured first: its weak high bits on short strings made wordcount's map lookups compare
/// many keys per probe.)
#[inline]
pub(crate) fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    FixedState::default().hash_one(key)
}

/// An in-memory combiner map. The value is an `Option` only so that a combiner can be
/// moved out, merged and put back (`merge_value` takes it by value); it is `None` only
/// while a merge function runs.
pub(crate) type CombinerMap<K, C> = std::collections::HashMap<K, Option<C>, FixedState>;

pub(crate) const COMBINER_PRESENT: &str = "a combiner is absent only while it is being merged";
