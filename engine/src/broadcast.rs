//! Broadcast variables: read-only values shared by every task.
//!
//! In process, every task shares the driver's `Arc<T>`: nothing is copied or encoded. A
//! shipped task carries only the broadcast's id. Where it is decoded, the value comes from the
//! executor's per-process [`BroadcastCache`] (`ExecutorEnv::broadcasts`), which fetches the
//! bytes once through its source (the executor runtime installs one that asks the driver; the
//! driver serves them from its [`BroadcastRegistry`]) and decodes them once for all tasks.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::Data;
use crate::error::{Result, report};
use crate::ids::BroadcastId;
use crate::wire::{codec_error, decode_value};

/// A read-only value available to every task; capture it with `with`.
///
/// In local mode every task shares the driver's copy (no copying at all). Shipped to another
/// process, the handle carries only its id; each executor fetches and decodes the value once.
pub struct Broadcast<T> {
    id: BroadcastId,
    value: Arc<T>,
}

impl<T: Data> Broadcast<T> {
    pub(crate) fn new(id: BroadcastId, value: T) -> Self {
        Broadcast {
            id,
            value: Arc::new(value),
        }
    }

    /// This broadcast's id.
    pub fn id(&self) -> BroadcastId {
        self.id
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> Deref for Broadcast<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast {
            id: self.id,
            value: self.value.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("id", &self.id)
            .field("value", &self.value)
            .finish()
    }
}

/// Only the id travels.
impl<T> Serialize for Broadcast<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.id.serialize(s)
    }
}

/// Decodable only while a task is decoded (`ship::decode_task_kind`): the value comes from that
/// executor's broadcast cache.
impl<'de, T: Data> Deserialize<'de> for Broadcast<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let id = BroadcastId::deserialize(d)?;
        let env = crate::wire::decoding_env().ok_or_else(|| {
            serde::de::Error::custom(format!(
                "broadcast {id} can only be decoded with a task, where an executor's broadcast cache is available"
            ))
        })?;
        let value = env
            .broadcasts
            .value::<T>(id)
            .map_err(|e| serde::de::Error::custom(report(&e)))?;
        Ok(Broadcast { id, value })
    }
}

/// Fetches a broadcast's encoded value (from the driver).
pub(crate) type BroadcastSource = Arc<dyn Fn(BroadcastId) -> Result<Vec<u8>> + Send + Sync>;

type Slot = Arc<Mutex<Option<Arc<dyn Any + Send + Sync>>>>;

/// An executor's decoded broadcast values: each fetched and decoded once per process, shared by
/// all its tasks. Values stay until the executor ends.
#[derive(Default)]
pub(crate) struct BroadcastCache {
    values: Mutex<HashMap<BroadcastId, Slot>>,
    source: RwLock<Option<BroadcastSource>>,
    decoded: std::sync::atomic::AtomicU64,
}

impl BroadcastCache {
    /// Sets where values missing from the cache are fetched.
    pub(crate) fn set_source(&self, source: BroadcastSource) {
        *self.source.write() = Some(source);
    }

    /// The value of broadcast `id`, fetched and decoded on first use.
    pub(crate) fn value<T: Data>(&self, id: BroadcastId) -> Result<Arc<T>> {
        let slot = self.values.lock().entry(id).or_default().clone();
        // Tasks that need the same value wait here for the one that fetches it.
        let mut slot = slot.lock();
        let value = match &*slot {
            Some(v) => v.clone(),
            None => {
                let source =
                    self.source.read().clone().ok_or_else(|| {
                        codec_error(format!("broadcast {id}"), "this executor has no broadcast source")
                    })?;
                let bytes = source(id)?;
                let value: Arc<dyn Any + Send + Sync> =
                    Arc::new(decode_value::<T>(&format!("broadcast {id}"), &bytes)?);
                self.decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *slot = Some(value.clone());
                value
            }
        };
        value.downcast::<T>().map_err(|_| {
            codec_error(
                format!("broadcast {id}"),
                format!("its value is not a {}", std::any::type_name::<T>()),
            )
        })
    }

    /// Values decoded so far (tests: once per broadcast, not per task).
    #[cfg(test)]
    pub(crate) fn decoded_values(&self) -> u64 {
        self.decoded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

type EncodeValue = fn(&(dyn Any + Send + Sync)) -> Result<Vec<u8>>;

struct Registered {
    value: Weak<dyn Any + Send + Sync>,
    encode: EncodeValue,
    bytes: Option<Arc<Vec<u8>>>,
}

fn encode_value<T: Data>(value: &(dyn Any + Send + Sync)) -> Result<Vec<u8>> {
    let value = value
        .downcast_ref::<T>()
        .ok_or_else(|| codec_error("broadcast value", "registered with another type"))?;
    bincode::serialize(value).map_err(|e| crate::error::EngineError::codec("broadcast value", e))
}

/// The driver's broadcast values, served as bytes to executors that fetch them. A value is
/// encoded on its first fetch (never in local mode) and held weakly: once no handle to it is
/// left, no task can need it.
#[derive(Default)]
pub(crate) struct BroadcastRegistry {
    entries: Mutex<HashMap<BroadcastId, Registered>>,
}

impl BroadcastRegistry {
    pub(crate) fn register<T: Data>(&self, b: &Broadcast<T>) {
        let value: Arc<dyn Any + Send + Sync> = b.value.clone();
        let mut entries = self.entries.lock();
        entries.retain(|_, r| r.value.strong_count() > 0);
        entries.insert(
            b.id,
            Registered {
                value: Arc::downgrade(&value),
                encode: encode_value::<T>,
                bytes: None,
            },
        );
    }

    /// The encoded value of broadcast `id`.
    pub(crate) fn bytes(&self, id: BroadcastId) -> Result<Vec<u8>> {
        let mut entries = self.entries.lock();
        let entry = entries
            .get_mut(&id)
            .ok_or_else(|| codec_error(format!("broadcast {id}"), "the driver has no such broadcast"))?;
        if let Some(bytes) = &entry.bytes {
            return Ok(bytes.to_vec());
        }
        let value = entry
            .value
            .upgrade()
            .ok_or_else(|| codec_error(format!("broadcast {id}"), "its value was dropped on the driver"))?;
        let bytes = Arc::new((entry.encode)(&*value)?);
        entry.bytes = Some(bytes.clone());
        Ok(bytes.to_vec())
    }
}
