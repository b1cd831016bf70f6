//! Broadcast variables: read-only values shared by every task.
//!
//! In process, every task shares the driver's `Arc<T>`: nothing is copied or encoded. A
//! shipped task carries only the broadcast's id. Where it is decoded, the value comes from the
//! executor's per-process [`BroadcastCache`] (`ExecutorEnv::broadcasts`), which fetches the
//! bytes once through its source (the executor runtime installs one that asks the driver; the
//! driver serves them from its [`BroadcastRegistry`]) and decodes them once for all tasks,
//! keeping the most recently used within a budget.

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

    /// The value, shared.
    pub(crate) fn shared(&self) -> Arc<T> {
        self.value.clone()
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

/// Bytes of encoded values an executor keeps decoded before it evicts the least recently used.
const CACHE_BUDGET_BYTES: usize = 256 << 20;

/// Values an executor keeps decoded before it evicts the least recently used (an iterative
/// job broadcasts its parameters every iteration).
const CACHE_MAX_VALUES: usize = 256;

#[derive(Default)]
struct CacheEntry {
    slot: Slot,
    /// Size of the encoded value (0 until fetched).
    bytes: usize,
    /// When a task last asked for it (a counter).
    last_use: u64,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<BroadcastId, CacheEntry>,
    clock: u64,
    bytes: usize,
}

impl CacheState {
    /// Forgets the least recently used fetched values past the budget, never `keep`: a task
    /// that needs one again fetches it again (the driver serves every value it still holds).
    fn evict(&mut self, keep: BroadcastId) {
        while self.bytes > CACHE_BUDGET_BYTES || self.entries.len() > CACHE_MAX_VALUES {
            let victim = self
                .entries
                .iter()
                .filter(|(id, e)| **id != keep && e.bytes > 0)
                .min_by_key(|(_, e)| e.last_use)
                .map(|(id, _)| *id);
            let Some(id) = victim else { return };
            if let Some(e) = self.entries.remove(&id) {
                self.bytes -= e.bytes;
            }
        }
    }
}

/// An executor's decoded broadcast values: each fetched and decoded once per process, shared by
/// all its tasks. The least recently used are evicted past [`CACHE_MAX_VALUES`] values or
/// [`CACHE_BUDGET_BYTES`] of encoded bytes (fetched again if a task needs one later), so an
/// iterative job's per-iteration broadcasts do not accumulate.
#[derive(Default)]
pub(crate) struct BroadcastCache {
    state: Mutex<CacheState>,
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
        let slot = {
            let mut state = self.state.lock();
            state.clock += 1;
            let now = state.clock;
            let entry = state.entries.entry(id).or_default();
            entry.last_use = now;
            entry.slot.clone()
        };
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
                let mut guard = self.state.lock();
                let state = &mut *guard;
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.bytes = bytes.len().max(1);
                    state.bytes += entry.bytes;
                }
                state.evict(id);
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

    /// Values held now (tests).
    #[cfg(test)]
    pub(crate) fn held_values(&self) -> usize {
        self.state.lock().entries.len()
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
        // Entries whose value is gone are dropped when the map doubles (not on every
        // registration: `parallelize` registers one broadcast per slice, thousands at once).
        if entries.len() >= 64 && entries.len().is_power_of_two() {
            entries.retain(|_, r| r.value.strong_count() > 0);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executor_cache_keeps_recent_values_and_refetches_evicted_ones() {
        let cache = BroadcastCache::default();
        let fetches = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = fetches.clone();
        cache.set_source(Arc::new(move |id: BroadcastId| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(bincode::serialize(&vec![id.0; 4]).unwrap())
        }));
        let n = CACHE_MAX_VALUES as u64 + 44;
        for i in 0..n {
            assert_eq!(*cache.value::<Vec<u64>>(BroadcastId(i)).unwrap(), vec![i; 4]);
            // The first value stays in use every round: it is never the least recently used.
            assert_eq!(*cache.value::<Vec<u64>>(BroadcastId(0)).unwrap(), vec![0; 4]);
        }
        assert_eq!(cache.held_values(), CACHE_MAX_VALUES);
        assert_eq!(fetches.load(std::sync::atomic::Ordering::Relaxed), n);
        // An evicted value is fetched again, with the same value; a held one is not.
        assert_eq!(*cache.value::<Vec<u64>>(BroadcastId(1)).unwrap(), vec![1; 4]);
        assert_eq!(fetches.load(std::sync::atomic::Ordering::Relaxed), n + 1);
        assert_eq!(*cache.value::<Vec<u64>>(BroadcastId(n - 1)).unwrap(), vec![n - 1; 4]);
        assert_eq!(fetches.load(std::sync::atomic::Ordering::Relaxed), n + 1);
    }
}
