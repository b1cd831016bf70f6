//! Accumulators: variables that tasks add to and the driver reads.
//!
//! As Spark: a task's additions are buffered with the task attempt and merged into the
//! driver's value only when that attempt succeeds, and only once per partition of a result
//! stage; a failed or duplicate attempt's additions are dropped. So counts taken in actions are
//! exact under retries. (Additions made in transformations whose stage is recomputed after a
//! lost shuffle output are counted again, as in Spark.)
//!
//! Shipped tasks send their updates as bytes ([`AccumulatorUpdates::encode`]); the driver
//! decodes them with the decoder each accumulator registered when it was made
//! ([`AccumulatorDecoders`]), so it knows every value's type.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::Data;
use crate::error::{EngineError, Result as EngineResult};
use crate::ids::AccumulatorId;
use crate::task_context::with_task_updates;

/// A value that can be accumulated: it has a zero (`Default`) and an associative merge.
///
/// Implemented for the integer and float types (sum), `Vec<T>` (append) and `HashMap<K, V>`
/// (merge values per key); implement it for your own types to make custom accumulators.
pub trait AccumulatorValue: Data + Default {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: Self);
}

macro_rules! sum_accumulators {
    ($($t:ty),*) => {$(
        impl AccumulatorValue for $t {
            fn merge(&mut self, other: Self) {
                *self += other;
            }
        }
    )*};
}
sum_accumulators!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

impl<T: Data> AccumulatorValue for Vec<T> {
    fn merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl<K: Data + Hash + Eq, V: AccumulatorValue> AccumulatorValue for HashMap<K, V> {
    fn merge(&mut self, other: Self) {
        for (k, v) in other {
            self.entry(k).or_default().merge(v);
        }
    }
}

/// A shared variable that tasks add to; read its value on the driver with [`Accumulator::value`].
///
/// Capture it with `with`: `rdd.foreach(with(acc.clone(), |acc, x| acc.add(x)))`.
pub struct Accumulator<T> {
    id: AccumulatorId,
    /// The driver's value; `None` in a deserialised copy (executor side), which only records updates.
    value: Option<Arc<Mutex<T>>>,
}

impl<T: AccumulatorValue> Accumulator<T> {
    pub(crate) fn new(id: AccumulatorId, initial: T) -> Self {
        Accumulator {
            id,
            value: Some(Arc::new(Mutex::new(initial))),
        }
    }

    /// This accumulator's id.
    pub fn id(&self) -> AccumulatorId {
        self.id
    }

    /// Adds `v`. Inside a task, the addition counts only if the task attempt succeeds.
    pub fn add(&self, v: T) {
        let mut pending = Some(v);
        let in_task = with_task_updates(|updates| {
            updates.add(self.id, pending.take().expect("value not yet used"));
        });
        if !in_task && let (Some(cell), Some(v)) = (&self.value, pending) {
            cell.lock().merge(v);
        }
    }

    /// The accumulated value (on the driver).
    pub fn value(&self) -> T {
        self.value.as_ref().map(|cell| cell.lock().clone()).unwrap_or_default()
    }

    /// Merges an update that a successful task sent.
    pub(crate) fn sink(&self) -> Arc<dyn Fn(Box<dyn Any + Send>) + Send + Sync> {
        let cell = self.value.clone().expect("sinks are made on the driver");
        Arc::new(move |update| {
            if let Ok(v) = update.downcast::<T>() {
                cell.lock().merge(*v);
            }
        })
    }
}

impl<T> Clone for Accumulator<T> {
    fn clone(&self) -> Self {
        Accumulator {
            id: self.id,
            value: self.value.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Accumulator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accumulator")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for Accumulator<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Accumulator<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Accumulator {
            id: AccumulatorId::deserialize(d)?,
            value: None,
        })
    }
}

/// One accumulator's additions within a task: typed, and encodable for shipping.
pub(crate) trait UpdateValue: Any + Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn encode(&self) -> EngineResult<Vec<u8>>;
}

impl<T: AccumulatorValue> UpdateValue for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn encode(&self) -> EngineResult<Vec<u8>> {
        bincode::serialize(self).map_err(|e| EngineError::codec("accumulator update", e))
    }
}

/// Decodes an update of an accumulator of type `T` (registered on the driver for each
/// accumulator).
pub(crate) type UpdateDecoder = fn(&[u8]) -> EngineResult<Box<dyn UpdateValue>>;

fn decode_update<T: AccumulatorValue>(bytes: &[u8]) -> EngineResult<Box<dyn UpdateValue>> {
    let v: T = crate::wire::decode_value("accumulator update", bytes)?;
    Ok(Box::new(v))
}

/// The driver's decoders of shipped accumulator updates, one per accumulator.
#[derive(Default)]
pub(crate) struct AccumulatorDecoders {
    decoders: Mutex<HashMap<AccumulatorId, UpdateDecoder>>,
}

impl AccumulatorDecoders {
    pub(crate) fn register<T: AccumulatorValue>(&self, acc: &Accumulator<T>) {
        self.decoders.lock().insert(acc.id, decode_update::<T>);
    }

    fn get(&self, id: AccumulatorId) -> Option<UpdateDecoder> {
        self.decoders.lock().get(&id).copied()
    }
}

/// The additions one task attempt made, per accumulator.
#[derive(Default)]
pub(crate) struct AccumulatorUpdates {
    entries: Vec<(AccumulatorId, Box<dyn UpdateValue>)>,
}

impl AccumulatorUpdates {
    fn add<T: AccumulatorValue>(&mut self, id: AccumulatorId, v: T) {
        for (eid, value) in &mut self.entries {
            if *eid == id
                && let Some(existing) = value.as_any_mut().downcast_mut::<T>()
            {
                existing.merge(v);
                return;
            }
        }
        self.entries.push((id, Box::new(v)));
    }

    pub(crate) fn into_entries(self) -> Vec<(AccumulatorId, Box<dyn Any + Send>)> {
        self.entries.into_iter().map(|(id, v)| (id, v.into_any())).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The updates as bytes, for a task that runs away from the driver.
    pub(crate) fn encode(&self) -> EngineResult<Vec<(AccumulatorId, Vec<u8>)>> {
        self.entries.iter().map(|(id, v)| Ok((*id, v.encode()?))).collect()
    }

    /// Updates a shipped task sent, decoded on the driver. Updates of accumulators this
    /// driver does not know are dropped, as the scheduler drops them in process.
    pub(crate) fn decode(encoded: Vec<(AccumulatorId, Vec<u8>)>, decoders: &AccumulatorDecoders) -> EngineResult<Self> {
        let mut entries = Vec::with_capacity(encoded.len());
        for (id, bytes) in encoded {
            match decoders.get(id) {
                Some(decode) => entries.push((
                    id,
                    decode(&bytes).map_err(|e| {
                        crate::wire::codec_error(format!("update of accumulator {id}"), crate::error::report(&e))
                    })?,
                )),
                None => tracing::debug!(accumulator = %id, "update of an unknown accumulator dropped"),
            }
        }
        Ok(AccumulatorUpdates { entries })
    }
}
