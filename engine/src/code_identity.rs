//! How code is named across processes of the same build; the engine's only `unsafe`.
//!
//! flint ships tasks to executors that run *the same executable* as the driver (they are the
//! driver program started in executor mode). Two things cannot be serialised in Rust and are
//! named here instead:
//!
//! 1. **Stateless closures.** A closure that captures nothing is a zero-sized type: its type is
//!    its code. The receiving side knows the type statically (it is a type parameter of the
//!    node being decoded), so it only has to produce a value of it: [`conjure_stateless`].
//! 2. **Type-erased nodes.** A lineage graph is a graph of `Arc<dyn Compute<T>>`. To rebuild one,
//!    the receiver must know which concrete, monomorphised decoder to call. The sender ships the
//!    decoder's address as an *offset from an anchor function* ([`FnOffset`]); the receiver adds
//!    its own anchor's address. Both functions live in the same text segment of the same
//!    executable, so the offset is the same in every process of that build, whatever ASLR did.
//!
//! # Safety argument
//!
//! - [`conjure_stateless`] requires `size_of::<F>() == 0` (checked at compile time). A zero-sized
//!   type has no bytes, so no byte pattern can be invalid; the type is inhabited because the
//!   sender held a value of it. The one thing a conjured value can break is a *safety* invariant
//!   of a user zero-sized token type captured by a closure; flint's documentation asks closures
//!   to capture nothing but through `with`, and a zero-sized token captured by move is the only
//!   way to hit this.
//! - [`FnOffset::resolve`] turns an offset back into a function pointer of type `O`. This is
//!   sound when the offset was produced by [`FnOffset::of`] for a function of exactly type `O` in
//!   a process running the same executable. Both halves hold by construction: the decoder's type
//!   is fixed by the (typed) field being decoded, and every connection between processes starts
//!   with a handshake that compares a hash of the executable and refuses a mismatch
//!   (distributed mode). Offsets never come from anywhere else: they travel inside
//!   `wire::Encoded` values of task messages (`ship.rs`), which carry a CRC-32C checked before
//!   any decoder is called, so a damaged message is an error, not a jump to a wrong address. A
//!   peer that lies about its build can run arbitrary code, exactly as a Spark driver can on its
//!   executors: connections must be trusted (authenticated) for that reason too.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

/// The point all offsets are measured from. Never inlined, so it has one address.
#[inline(never)]
fn anchor() {}

fn anchor_addr() -> usize {
    (anchor as fn()) as *const () as usize
}

/// A function pointer of type `O`, expressed as an offset from [`anchor`] in this build.
#[derive(Serialize, Deserialize)]
pub(crate) struct FnOffset<O> {
    offset: i64,
    #[serde(skip)]
    _fn: PhantomData<fn() -> O>,
}

impl<O> Clone for FnOffset<O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<O> Copy for FnOffset<O> {}

impl<O> std::fmt::Debug for FnOffset<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FnOffset({:+#x})", self.offset)
    }
}

/// The decoder function type used for nodes: bytes in, value out.
pub(crate) type DecodeFn<O> = fn(&[u8]) -> O;

impl<O> FnOffset<DecodeFn<O>> {
    /// Names `f` by its offset from the anchor.
    pub(crate) fn of(f: DecodeFn<O>) -> Self {
        let addr = f as *const () as usize;
        FnOffset {
            offset: addr as i64 - anchor_addr() as i64,
            _fn: PhantomData,
        }
    }

    /// Calls the function this offset names.
    ///
    /// Only call with offsets made by [`FnOffset::of`] in a process of the same build (see the
    /// module's safety argument); the handshake between processes guarantees the build.
    pub(crate) fn call(self, bytes: &[u8]) -> O {
        let addr = (anchor_addr() as i64 + self.offset) as usize;
        let ptr: *const () = std::ptr::with_exposed_provenance(addr);
        // SAFETY: `ptr` is the address of a `fn(&[u8]) -> O` in this executable: the offset was
        // computed by `FnOffset::of` from such a function in a process of the same build (same
        // text layout, verified by the build-id handshake), relative to the same anchor.
        // Function pointers and data pointers have the same size on every supported target.
        let f: DecodeFn<O> = unsafe { std::mem::transmute::<*const (), DecodeFn<O>>(ptr) };
        f(bytes)
    }
}

/// Produces the value of a zero-sized type (a closure that captures nothing).
pub(crate) fn conjure_stateless<F>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "only zero-sized functions can be conjured"
        )
    };
    // SAFETY: `F` is zero-sized (checked at compile time above), so it has no bytes that could
    // be invalid, and it is inhabited: the sending process held a value of `F`. See the module
    // documentation for the one caveat (safety invariants of captured zero-sized tokens).
    unsafe { std::mem::zeroed::<F>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_len(bytes: &[u8]) -> usize {
        bytes.len()
    }

    fn decode_sum(bytes: &[u8]) -> u64 {
        bytes.iter().map(|b| u64::from(*b)).sum()
    }

    #[test]
    fn offsets_round_trip_through_bytes() {
        let a = FnOffset::of(decode_len as DecodeFn<usize>);
        let b = FnOffset::of(decode_sum as DecodeFn<u64>);
        let a: FnOffset<DecodeFn<usize>> = bincode::deserialize(&bincode::serialize(&a).unwrap()).unwrap();
        let b: FnOffset<DecodeFn<u64>> = bincode::deserialize(&bincode::serialize(&b).unwrap()).unwrap();
        assert_eq!(a.call(&[1, 2, 3]), 3);
        assert_eq!(b.call(&[1, 2, 3]), 6);
    }

    #[test]
    fn stateless_closures_are_conjured() {
        fn make<F: Fn(i32) -> i32>(_: &F) -> F {
            conjure_stateless::<F>()
        }
        let double = |x: i32| x * 2;
        let again = make(&double);
        assert_eq!(again(21), 42);
    }
}
