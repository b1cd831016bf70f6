//! How type-erased values travel between processes of one build.
//!
//! A value behind a trait object (`Arc<dyn Compute<T>>`, `Arc<dyn ShuffleDep>`, a partitioner,
//! an aggregator spec...) is sent as an [`Encoded`]: the offset of its monomorphised decoder
//! function (`code_identity::FnOffset`, valid in every process of the same build) and the
//! value's bincode bytes. The receiver calls the decoder, which deserialises the concrete type
//! and returns the trait object. Each erased trait has an `encode` method that every
//! implementation writes in one line (`Encoded::new(self, decode_x::<Self, ..>)`).
//!
//! The serde adapters here let structs holding such fields derive `Serialize`/`Deserialize`:
//! [`node_ref`] and [`node_refs`] for parents (`Arc<dyn Compute<T>>`), [`erased`] and
//! [`erased_opt`] for other trait objects, [`arc`], [`arcs`], [`once_lock`] and [`bytes`] for
//! plain containers.
//!
//! Lineage is a DAG: a node reachable along two paths (`a.zip(&a.map(f))`) is encoded once per
//! task and decoded into one shared node, by id, while an [`encoding`] / [`decoding`] scope is
//! open (the task codec in `ship.rs` opens them). Decoding also needs the executor's
//! environment (broadcast values are looked up there): [`decoding_env`].

use std::any::{Any, type_name};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::code_identity::{DecodeFn, FnOffset};
use crate::data::Data;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result, report};
use crate::ids::RddId;
use crate::rdd::{Compute, encode_lineage_node};

/// A type-erased value of type `O` on the wire: its decoder (named by code offset) and bytes.
pub(crate) struct Encoded<O> {
    decoder: FnOffset<DecodeFn<Result<O>>>,
    bytes: Vec<u8>,
}

impl<O> Encoded<O> {
    /// Encodes `value` with bincode; `decoder` rebuilds an `O` from those bytes (it usually
    /// deserialises `X` and wraps it, e.g. `decode_node::<X, T>`).
    pub(crate) fn new<X: Serialize + ?Sized>(value: &X, decoder: DecodeFn<Result<O>>) -> Result<Self> {
        let bytes = to_bytes(value).map_err(|e| EngineError::codec(type_name::<X>(), e))?;
        Ok(Encoded {
            decoder: FnOffset::of(decoder),
            bytes,
        })
    }

    /// Rebuilds the value by calling its decoder.
    ///
    /// The offset came from a process of this build (see `code_identity`); the task codec
    /// verifies a checksum over the whole task before anything is decoded, so a damaged
    /// message never reaches this call.
    pub(crate) fn decode(&self) -> Result<O> {
        self.decoder.call(&self.bytes)
    }

    /// Size of the encoded value in bytes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Cuts the value's bytes short (tests of decoding errors).
    #[cfg(test)]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }
}

impl<O> fmt::Debug for Encoded<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({:?}, {} bytes)", self.decoder, self.bytes.len())
    }
}

impl<O> Serialize for Encoded<O> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.decoder, serde_bytes_ref(&self.bytes)).serialize(s)
    }
}

impl<'de, O> Deserialize<'de> for Encoded<O> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (decoder, BytesBuf(bytes)) = <(FnOffset<DecodeFn<Result<O>>>, BytesBuf)>::deserialize(d)?;
        Ok(Encoded { decoder, bytes })
    }
}

/// Serialises `value` with bincode in one pass.
///
/// `bincode::serialize` runs a value's `Serialize` twice (once to size the buffer): nested
/// encodings would cost twice per level, and the encoding scope, which sends a shared node in
/// full only the first time it is met, would see every node twice. Everything on the wire path
/// is serialised through here.
pub(crate) fn to_bytes<X: Serialize + ?Sized>(value: &X) -> bincode::Result<Vec<u8>> {
    let mut out = Vec::new();
    bincode::serialize_into(&mut out, value)?;
    Ok(out)
}

/// Deserialises an `X` from `bytes`; the error names `what` and the type.
pub(crate) fn decode_value<X: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<X> {
    bincode::deserialize(bytes).map_err(|e| EngineError::codec(format!("{what} ({})", type_name::<X>()), e))
}

/// A codec error that is not bincode's own (a bad checksum, a missing scope...).
pub(crate) fn codec_error(what: impl Into<String>, detail: impl Into<String>) -> EngineError {
    EngineError::codec(what, Box::new(bincode::ErrorKind::Custom(detail.into())))
}

/// The decoder of a lineage node of concrete type `N`: its address is what a node's encoding
/// names (`FnOffset::of(decode_node::<N, T>)`).
pub(crate) fn decode_node<N: DeserializeOwned + Compute<T>, T: 'static>(bytes: &[u8]) -> Result<Arc<dyn Compute<T>>> {
    Ok(Arc::new(decode_value::<N>("lineage node", bytes)?))
}

/// Encodes the lineage node `node` (its parents included, through [`node_ref`]).
pub(crate) fn encode_node<N: Serialize + DeserializeOwned + Compute<T>, T: 'static>(
    node: &N,
) -> Result<Encoded<Arc<dyn Compute<T>>>> {
    Encoded::new(node, decode_node::<N, T>)
}

/// A trait object type that can encode the value behind it (`dyn Partitioner`-like traits).
pub(crate) trait EncodeArc {
    fn encode_arc(&self) -> Result<Encoded<Arc<Self>>>;
}

// ---------------------------------------------------------------------------------------------
// Scopes: shared nodes and the executor environment while one task is encoded or decoded.

#[derive(Default)]
struct EncodeScope {
    nodes: HashSet<RddId>,
}

struct DecodeScope {
    env: Arc<ExecutorEnv>,
    nodes: HashMap<RddId, Box<dyn Any>>,
}

thread_local! {
    static ENCODING: RefCell<Option<EncodeScope>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<DecodeScope>> = const { RefCell::new(None) };
}

/// Runs `f` with an encoding scope: a node met twice is encoded once.
pub(crate) fn encoding<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<EncodeScope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ENCODING.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(ENCODING.with(|s| s.replace(Some(EncodeScope::default()))));
    f()
}

/// Runs `f` with a decoding scope: nodes met twice are decoded once, and [`decoding_env`]
/// returns `env`.
pub(crate) fn decoding<R>(env: &Arc<ExecutorEnv>, f: impl FnOnce() -> R) -> R {
    let scope = DecodeScope {
        env: env.clone(),
        nodes: HashMap::new(),
    };
    struct Restore(Option<DecodeScope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            DECODING.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(DECODING.with(|s| s.replace(Some(scope))));
    f()
}

/// The environment of the executor decoding a task on this thread, if one is.
pub(crate) fn decoding_env() -> Option<Arc<ExecutorEnv>> {
    DECODING.with(|s| s.borrow().as_ref().map(|scope| scope.env.clone()))
}

// ---------------------------------------------------------------------------------------------
// Parents: `Arc<dyn Compute<T>>` fields.

/// A parent as it travels: the node itself, or a reference to one already sent in this task.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum NodeWire<T> {
    Full(Encoded<Arc<dyn Compute<T>>>),
    Seen(RddId),
}

struct NodeOut<'a, T>(&'a Arc<dyn Compute<T>>);

impl<T: Data> Serialize for NodeOut<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let id = self.0.meta().id;
        let seen = ENCODING.with(|scope| scope.borrow_mut().as_mut().is_some_and(|scope| !scope.nodes.insert(id)));
        let wire = if seen {
            NodeWire::Seen(id)
        } else {
            NodeWire::Full(encode_lineage_node(self.0).map_err(|e| serde::ser::Error::custom(report(&e)))?)
        };
        wire.serialize(s)
    }
}

struct NodeIn<T>(Arc<dyn Compute<T>>);

impl<'de, T: Data> Deserialize<'de> for NodeIn<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match NodeWire::<T>::deserialize(d)? {
            NodeWire::Full(encoded) => {
                let node = encoded.decode().map_err(|e| serde::de::Error::custom(report(&e)))?;
                let id = node.meta().id;
                DECODING.with(|scope| {
                    if let Some(scope) = scope.borrow_mut().as_mut() {
                        scope.nodes.insert(id, Box::new(node.clone()));
                    }
                });
                Ok(NodeIn(node))
            }
            NodeWire::Seen(id) => DECODING
                .with(|scope| {
                    scope
                        .borrow()
                        .as_ref()
                        .and_then(|scope| scope.nodes.get(&id))
                        .and_then(|node| node.downcast_ref::<Arc<dyn Compute<T>>>())
                        .cloned()
                })
                .map(NodeIn)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "lineage node {id} is referenced before it was decoded (or with another element type)"
                    ))
                }),
        }
    }
}

/// Serde adapter for a parent field `Arc<dyn Compute<T>>`.
pub(crate) mod node_ref {
    use super::*;

    pub(crate) fn serialize<T: Data, S: Serializer>(
        node: &Arc<dyn Compute<T>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        NodeOut(node).serialize(s)
    }

    pub(crate) fn deserialize<'de, T: Data, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Arc<dyn Compute<T>>, D::Error> {
        NodeIn::<T>::deserialize(d).map(|n| n.0)
    }
}

/// Serde adapter for parents `Vec<Arc<dyn Compute<T>>>`.
pub(crate) mod node_refs {
    use super::*;

    pub(crate) fn serialize<T: Data, S: Serializer>(
        nodes: &[Arc<dyn Compute<T>>],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(nodes.iter().map(NodeOut))
    }

    pub(crate) fn deserialize<'de, T: Data, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<Arc<dyn Compute<T>>>, D::Error> {
        Ok(Vec::<NodeIn<T>>::deserialize(d)?.into_iter().map(|n| n.0).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Other trait objects and containers.

/// Serde adapter for `Arc<dyn Trait>` where `dyn Trait: EncodeArc`.
pub(crate) mod erased {
    use super::*;

    pub(crate) fn serialize<D: ?Sized + EncodeArc, S: Serializer>(
        value: &Arc<D>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        value
            .encode_arc()
            .map_err(|e| serde::ser::Error::custom(report(&e)))?
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: ?Sized + EncodeArc, De: Deserializer<'de>>(
        d: De,
    ) -> std::result::Result<Arc<D>, De::Error> {
        Encoded::<Arc<D>>::deserialize(d)?
            .decode()
            .map_err(|e| serde::de::Error::custom(report(&e)))
    }
}

/// Serde adapter for `Option<Arc<dyn Trait>>` where `dyn Trait: EncodeArc`.
pub(crate) mod erased_opt {
    use super::*;

    pub(crate) fn serialize<D: ?Sized + EncodeArc, S: Serializer>(
        value: &Option<Arc<D>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let encoded = match value {
            Some(v) => Some(v.encode_arc().map_err(|e| serde::ser::Error::custom(report(&e)))?),
            None => None,
        };
        encoded.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: ?Sized + EncodeArc, De: Deserializer<'de>>(
        d: De,
    ) -> std::result::Result<Option<Arc<D>>, De::Error> {
        match Option::<Encoded<Arc<D>>>::deserialize(d)? {
            Some(e) => e.decode().map(Some).map_err(|e| serde::de::Error::custom(report(&e))),
            None => Ok(None),
        }
    }
}

/// Serde adapter for `Arc<X>` (serde's `rc` feature is not enabled in this workspace).
pub(crate) mod arc {
    use super::*;

    pub(crate) fn serialize<X: Serialize, S: Serializer>(value: &Arc<X>, s: S) -> std::result::Result<S::Ok, S::Error> {
        (**value).serialize(s)
    }

    pub(crate) fn deserialize<'de, X: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Arc<X>, D::Error> {
        X::deserialize(d).map(Arc::new)
    }
}

/// Serde adapter for `OnceLock<X>` (driver-side values computed by `prepare`: input splits,
/// `zip_with_index` offsets): travels as an `Option<X>`.
pub(crate) mod once_lock {
    use super::*;

    pub(crate) fn serialize<X: Serialize, S: Serializer>(
        value: &OnceLock<X>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        value.get().serialize(s)
    }

    pub(crate) fn deserialize<'de, X: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<OnceLock<X>, D::Error> {
        let lock = OnceLock::new();
        if let Some(v) = Option::<X>::deserialize(d)? {
            let _ = lock.set(v);
        }
        Ok(lock)
    }
}

/// Serde adapter for `Vec<u8>` written as one byte string (bincode copies it whole rather
/// than byte by byte).
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
        crate::func::serde_bytes_vec(d)
    }
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

fn serde_bytes_ref(bytes: &[u8]) -> BytesRef<'_> {
    BytesRef(bytes)
}

struct BytesBuf(Vec<u8>);

impl<'de> Deserialize<'de> for BytesBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::func::serde_bytes_vec(d).map(BytesBuf)
    }
}
