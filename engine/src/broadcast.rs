//! Broadcast variables: read-only values shared by every task.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::Data;
use crate::ids::BroadcastId;

/// A read-only value available to every task; capture it with `with`.
///
/// In local mode every task shares the driver's copy (no copying at all). Shipped to another
/// process, the handle carries the value; distributed mode fetches it once per executor.
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

impl<T: Serialize> Serialize for Broadcast<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.id, &*self.value).serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Broadcast<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (id, value) = <(BroadcastId, T)>::deserialize(d)?;
        Ok(Broadcast {
            id,
            value: Arc::new(value),
        })
    }
}
