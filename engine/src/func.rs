//! User functions that can be shipped to another process of the same build.
//!
//! Rust cannot serialise a closure's code, so flint ships *which* function to run by its type
//! (the same build runs on both sides, see `code_identity`) and ships only the function's
//! *state*, explicitly:
//!
//! - a closure that captures nothing is zero-sized; its type alone names its code, so it ships
//!   for free. Passing a capturing closure is a compile-time error that points here;
//! - captured state goes through [`with`]:
//!   `rdd.filter(with(limit, |limit: &i64, x: &i64| x > limit))`. The state is [`Data`]
//!   (serialisable), so it reaches executors as bytes.
//!
//! Because `Fn` traits are fundamental, the blanket impl for plain closures and the impls for
//! [`With`] coexist (the trick that lets `str::find` take a `char` or a closure).
//!
//! Inside the engine, a function stored in a shipped structure is wrapped in `Shipped1` /
//! `Shipped2` (serde adapters: the state travels as bytes, the code is the type); they hold the
//! function in an `Arc`, so the driver can keep using the same function (`reduce` merges the
//! partial results with it).
//!
//! A capturing closure does not compile; the error says to use `with`:
//!
//! ```compile_fail,E0080
//! # let ctx = flint_engine::Context::local(1).unwrap();
//! let k = 3i64;
//! let shifted = ctx.range(0, 10, 2).map(move |x: i64| x + k); // captures `k`
//! ```
//!
//! Type inference: closures taking their argument by value (`map`, `flat_map`, `reduce_by_key`)
//! need no annotations. Closures taking a reference (`filter`, `key_by`) need the argument type
//! written out (`|x: &i64| *x > 0`): rustc does not infer a closure signature through a
//! higher-ranked bound on a non-`Fn` trait.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::code_identity;
use crate::data::Data;
use crate::error::{EngineError, Result, report};

const CAPTURE_MESSAGE: &str = "flint: a closure passed to an RDD operation must not capture \
     variables (it has to be shipped to executors); pass captured state explicitly with \
     flint::with(state, |state: &S, x: T| ...)";

/// A one-argument user function that can be shipped to executors.
///
/// Implemented for closures that capture nothing and for [`With`]; you do not implement it.
pub trait Fun1<A, R>: Send + Sync + 'static {
    /// Compile-time check that the function can be shipped (evaluated when used).
    #[doc(hidden)]
    const SHIPPABLE: ();
    /// Calls the function.
    fn call1(&self, a: A) -> R;
    /// The function as a shared `dyn Fn` (a closure is one already, without a wrapper).
    #[doc(hidden)]
    fn into_dyn(self: Arc<Self>) -> Arc<dyn Fn(A) -> R + Send + Sync>
    where
        Self: Sized,
        A: 'static,
        R: 'static,
    {
        Arc::new(move |a| self.call1(a))
    }
    /// Encodes the function's state.
    #[doc(hidden)]
    fn encode_state(&self) -> Result<Vec<u8>>;
    /// Rebuilds the function from its state.
    #[doc(hidden)]
    fn decode_state(bytes: &[u8]) -> Result<Self>
    where
        Self: Sized;
}

/// A two-argument user function that can be shipped to executors (reducers, combiners).
///
/// Implemented for closures that capture nothing and for [`With`].
pub trait Fun2<A, B, R>: Send + Sync + 'static {
    /// Compile-time check that the function can be shipped (evaluated when used).
    #[doc(hidden)]
    const SHIPPABLE: ();
    /// Calls the function.
    fn call2(&self, a: A, b: B) -> R;
    /// The function as a shared `dyn Fn` (a closure is one already, without a wrapper).
    #[doc(hidden)]
    fn into_dyn(self: Arc<Self>) -> Arc<dyn Fn(A, B) -> R + Send + Sync>
    where
        Self: Sized,
        A: 'static,
        B: 'static,
        R: 'static,
    {
        Arc::new(move |a, b| self.call2(a, b))
    }
    /// Encodes the function's state.
    #[doc(hidden)]
    fn encode_state(&self) -> Result<Vec<u8>>;
    /// Rebuilds the function from its state.
    #[doc(hidden)]
    fn decode_state(bytes: &[u8]) -> Result<Self>
    where
        Self: Sized;
}

impl<A, R, F> Fun1<A, R> for F
where
    F: Fn(A) -> R + Send + Sync + 'static,
{
    const SHIPPABLE: () = assert!(std::mem::size_of::<F>() == 0, "{}", CAPTURE_MESSAGE);

    #[inline]
    fn call1(&self, a: A) -> R {
        self(a)
    }

    fn into_dyn(self: Arc<Self>) -> Arc<dyn Fn(A) -> R + Send + Sync>
    where
        A: 'static,
        R: 'static,
    {
        self
    }

    fn encode_state(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn decode_state(_bytes: &[u8]) -> Result<Self> {
        Ok(code_identity::conjure_stateless::<F>())
    }
}

impl<A, B, R, F> Fun2<A, B, R> for F
where
    F: Fn(A, B) -> R + Send + Sync + 'static,
{
    const SHIPPABLE: () = assert!(std::mem::size_of::<F>() == 0, "{}", CAPTURE_MESSAGE);

    #[inline]
    fn call2(&self, a: A, b: B) -> R {
        self(a, b)
    }

    fn into_dyn(self: Arc<Self>) -> Arc<dyn Fn(A, B) -> R + Send + Sync>
    where
        A: 'static,
        B: 'static,
        R: 'static,
    {
        self
    }

    fn encode_state(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn decode_state(_bytes: &[u8]) -> Result<Self> {
        Ok(code_identity::conjure_stateless::<F>())
    }
}

/// A function together with explicit, serialisable state: built by [`with`].
pub struct With<S, F> {
    state: S,
    f: F,
}

impl<S: fmt::Debug, F> fmt::Debug for With<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("With")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, F: Clone> Clone for With<S, F> {
    fn clone(&self) -> Self {
        With {
            state: self.state.clone(),
            f: self.f.clone(),
        }
    }
}

/// Pairs a function with the state it needs: `f(&state, x)` or `f(&state, a, b)`.
///
/// Write the closure's argument types (`|min: &i32, x: &i32| ..`): the closure is checked
/// against the operation it is passed to, not against `with`.
///
/// ```
/// use flint_engine::{with, Context};
/// let ctx = Context::local(2).unwrap();
/// let min = 3;
/// let big = ctx.parallelize((1..=5).collect::<Vec<i32>>(), 2)
///     .filter(with(min, |min: &i32, x: &i32| x >= min));
/// assert_eq!(big.collect().unwrap(), vec![3, 4, 5]);
/// let shifted = big.map(with(10, |k: &i32, x: i32| x + k));
/// assert_eq!(shifted.collect().unwrap(), vec![13, 14, 15]);
/// ```
pub fn with<S: Data, F: Send + Sync + 'static>(state: S, f: F) -> With<S, F> {
    With { state, f }
}

impl<A, R, S, F> Fun1<A, R> for With<S, F>
where
    S: Data,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    const SHIPPABLE: () = assert!(std::mem::size_of::<F>() == 0, "{}", CAPTURE_MESSAGE);

    #[inline]
    fn call1(&self, a: A) -> R {
        (self.f)(&self.state, a)
    }

    fn encode_state(&self) -> Result<Vec<u8>> {
        crate::wire::to_bytes(&self.state).map_err(|e| EngineError::codec("captured state", e))
    }

    fn decode_state(bytes: &[u8]) -> Result<Self> {
        let state = bincode::deserialize(bytes).map_err(|e| EngineError::codec("captured state", e))?;
        Ok(With {
            state,
            f: code_identity::conjure_stateless::<F>(),
        })
    }
}

impl<A, B, R, S, F> Fun2<A, B, R> for With<S, F>
where
    S: Data,
    F: Fn(&S, A, B) -> R + Send + Sync + 'static,
{
    const SHIPPABLE: () = assert!(std::mem::size_of::<F>() == 0, "{}", CAPTURE_MESSAGE);

    #[inline]
    fn call2(&self, a: A, b: B) -> R {
        (self.f)(&self.state, a, b)
    }

    fn encode_state(&self) -> Result<Vec<u8>> {
        crate::wire::to_bytes(&self.state).map_err(|e| EngineError::codec("captured state", e))
    }

    fn decode_state(bytes: &[u8]) -> Result<Self> {
        let state = bincode::deserialize(bytes).map_err(|e| EngineError::codec("captured state", e))?;
        Ok(With {
            state,
            f: code_identity::conjure_stateless::<F>(),
        })
    }
}

/// Serde adapter: a [`Fun1`] stored in a serialisable struct (its state travels, its code is its
/// type). Shared (`Arc`) so that the driver and a shipped structure can use one function.
pub(crate) struct Shipped1<F, A, R> {
    pub(crate) f: Arc<F>,
    _sig: PhantomData<fn(A) -> R>,
}

impl<F: Fun1<A, R>, A, R> Shipped1<F, A, R> {
    pub(crate) fn new(f: F) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        Shipped1 {
            f: Arc::new(f),
            _sig: PhantomData,
        }
    }
}

impl<F, A, R> Clone for Shipped1<F, A, R> {
    fn clone(&self) -> Self {
        Shipped1 {
            f: self.f.clone(),
            _sig: PhantomData,
        }
    }
}

impl<F: Fun1<A, R>, A, R> Serialize for Shipped1<F, A, R> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        let bytes = self
            .f
            .encode_state()
            .map_err(|e| serde::ser::Error::custom(report(&e)))?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de, F: Fun1<A, R>, A, R> Deserialize<'de> for Shipped1<F, A, R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        let f = F::decode_state(&bytes).map_err(|e| serde::de::Error::custom(report(&e)))?;
        Ok(Shipped1 {
            f: Arc::new(f),
            _sig: PhantomData,
        })
    }
}

/// Serde adapter for a [`Fun2`] (shared, as [`Shipped1`]).
pub(crate) struct Shipped2<F, A, B, R> {
    pub(crate) f: Arc<F>,
    _sig: PhantomData<fn(A, B) -> R>,
}

impl<F: Fun2<A, B, R>, A, B, R> Shipped2<F, A, B, R> {
    pub(crate) fn new(f: F) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = F::SHIPPABLE;
        Shipped2 {
            f: Arc::new(f),
            _sig: PhantomData,
        }
    }
}

impl<F, A, B, R> Clone for Shipped2<F, A, B, R> {
    fn clone(&self) -> Self {
        Shipped2 {
            f: self.f.clone(),
            _sig: PhantomData,
        }
    }
}

impl<F: Fun2<A, B, R>, A, B, R> Serialize for Shipped2<F, A, B, R> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        let bytes = self
            .f
            .encode_state()
            .map_err(|e| serde::ser::Error::custom(report(&e)))?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de, F: Fun2<A, B, R>, A, B, R> Deserialize<'de> for Shipped2<F, A, B, R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        let f = F::decode_state(&bytes).map_err(|e| serde::de::Error::custom(report(&e)))?;
        Ok(Shipped2 {
            f: Arc::new(f),
            _sig: PhantomData,
        })
    }
}

/// Reads a byte string written with `serialize_bytes` (or as a sequence of bytes).
pub(crate) fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    struct BytesVisitor;
    impl<'de> serde::de::Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("function state bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> std::result::Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> std::result::Result<Vec<u8>, S::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_byte_buf(BytesVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ship1<A, R, F: Fun1<A, R>>(f: F) -> Shipped1<F, A, R> {
        let bytes = bincode::serialize(&Shipped1::new(f)).unwrap();
        bincode::deserialize(&bytes).unwrap()
    }

    #[test]
    fn stateless_closure_round_trips() {
        let g = ship1(|x: i32| x * 3);
        assert_eq!(g.f.call1(7), 21);
    }

    #[test]
    fn captured_state_round_trips() {
        let g = ship1(with(vec![1, 2, 3], |v: &Vec<i32>, i: usize| v[i]));
        assert_eq!(g.f.call1(2), 3);
    }

    fn ship2<A, B, R, F: Fun2<A, B, R>>(f: F) -> Shipped2<F, A, B, R> {
        let bytes = bincode::serialize(&Shipped2::new(f)).unwrap();
        bincode::deserialize(&bytes).unwrap()
    }

    #[test]
    fn two_argument_functions_round_trip() {
        assert_eq!(ship2(|a: u64, b: u64| a + b).f.call2(2, 5), 7);
        let scaled = ship2(with(10u64, |k: &u64, a: u64, b: u64| (a + b) * k));
        assert_eq!(scaled.f.call2(2, 5), 70);
    }
}
