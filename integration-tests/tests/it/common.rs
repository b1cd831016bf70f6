//! Helpers shared by the integration tests: contexts, deterministic data, sequential
//! references, waiting on conditions with a deadline, scheduler event recording.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flint::SchedulerEvent;
use flint::prelude::*;

/// What a test returns: any error fails it, with its `Debug` form.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub use flint_integration_tests::wait_until;

/// A local context with two task slots (the test machine has two cores). Like every context
/// these tests build, it ships its tasks through their byte encoding when `FLINT_SHIP_TASKS=1`.
pub fn ctx() -> Context {
    Context::builder()
        .master("local[2]")
        .show_progress(false)
        .build()
        .expect("context starts")
}

/// `n` pseudo-random numbers below `bound` from a fixed seed (splitmix64): deterministic data
/// without a random-number dependency.
pub fn numbers(seed: u64, n: usize, bound: u64) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % bound.max(1)
        })
        .collect()
}

/// `n` pairs with keys below `keys` and values below 1000.
pub fn pairs(seed: u64, n: usize, keys: u64) -> Vec<(u64, i64)> {
    let ks = numbers(seed, n, keys);
    let vs = numbers(seed ^ 0xABCD, n, 1000);
    ks.into_iter().zip(vs).map(|(k, v)| (k, v as i64)).collect()
}

/// The elements, sorted.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Groups pairs by key, each key's values sorted (a sequential `group_by_key`).
pub fn group<K: Ord + Clone, V: Ord + Clone>(pairs: &[(K, V)]) -> BTreeMap<K, Vec<V>> {
    let mut out: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in pairs {
        out.entry(k.clone()).or_default().push(v.clone());
    }
    for vs in out.values_mut() {
        vs.sort();
    }
    out
}

/// The same grouping for an RDD's `(key, values)` output, each key's values sorted, checking
/// that no key appears twice.
pub fn grouped_output<K: Ord + Debug + Clone, V: Ord>(out: Vec<(K, Vec<V>)>) -> BTreeMap<K, Vec<V>> {
    let mut map = BTreeMap::new();
    for (k, mut vs) in out {
        vs.sort();
        assert!(
            map.insert(k.clone(), vs).is_none(),
            "key {k:?} appears twice in the output"
        );
    }
    map
}

/// Asserts that `items` has no duplicates and returns them as a sorted vector.
pub fn distinct_sorted<T: Ord + Hash + Debug + Clone>(items: Vec<T>) -> Vec<T> {
    let n = items.len();
    let s = sorted(items);
    let mut d = s.clone();
    d.dedup();
    assert_eq!(d.len(), n, "duplicates in {s:?}");
    s
}

/// Slices of `data` as `parallelize(data, n)` cuts them: slice `i` holds `[i*len/n, (i+1)*len/n)`.
pub fn slices<T: Clone>(data: &[T], n: usize) -> Vec<Vec<T>> {
    let len = data.len();
    (0..n).map(|i| data[i * len / n..(i + 1) * len / n].to_vec()).collect()
}

/// Records every scheduler event of a context.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<SchedulerEvent>>>);

impl Events {
    /// Starts recording the events of `ctx`.
    pub fn record(ctx: &Context) -> Events {
        let events = Events::default();
        let sink = events.0.clone();
        ctx.add_listener(move |e| sink.lock().expect("events lock").push(e.clone()));
        events
    }

    /// Events so far.
    pub fn all(&self) -> Vec<SchedulerEvent> {
        self.0.lock().expect("events lock").clone()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.0.lock().expect("events lock").clear();
    }

    /// Failure messages of failed task attempts.
    pub fn task_failures(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SchedulerEvent::TaskEnded { failure, .. } => failure,
                _ => None,
            })
            .collect()
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A path as the `String` state a closure can carry with `with`.
pub fn path_state(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_string()
}

/// Counts, in `acc`, the spill files present when each partition of `rdd` starts to be read:
/// the reduce side keeps its spill runs open while its output is read, so a non-zero count
/// shows that it spilled.
pub fn observe_spills<T: flint::Data>(rdd: &Rdd<T>, acc: &Accumulator<u64>, spill_dir: &Path) -> Rdd<T> {
    rdd.map_partitions(with(
        (acc.clone(), path_state(spill_dir)),
        |s: &(Accumulator<u64>, String), it: BoxIter<T>| {
            let files = std::fs::read_dir(&s.1).map(|d| d.count()).unwrap_or(0);
            s.0.add(files as u64);
            it
        },
    ))
}
