//! Partitioners: which reduce partition a key goes to.
//!
//! [`HashPartitioner`] (as Spark: hash mod n, with a fixed hash so every process agrees) and
//! [`RangePartitioner`] (as Spark: bounds from a sample of the keys, so that `sort_by_key`
//! gives partitions of similar size in key order).
//!
//! Partitioners ship to executors with the shuffles that use them, so a partitioner passed to
//! [`Rdd::partition_by`] must be serialisable (`Serialize + DeserializeOwned`, usually by
//! `#[derive(Serialize, Deserialize)]`): it travels as its concrete type's bytes plus the
//! name of its decoder (see `code_identity`). A range partitioner ships the bounds it sampled
//! on the driver, not the RDD it sampled them from.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context::Context;
use crate::data::Data;
use crate::error::Result;
use crate::rdd::{BoxIter, Rdd};
use crate::wire::{self, EncodeArc, Encoded};

/// Decides the reduce partition of each key.
///
/// To use your own partitioner with [`Rdd::partition_by`], derive (or implement) serde's
/// `Serialize` and `Deserialize` for it as well: it is shipped to the tasks that write the
/// shuffle.
///
/// ```
/// use flint_engine::{Context, Partitioner};
/// use serde::{Deserialize, Serialize};
///
/// /// Even keys to partition 0, odd keys to partition 1.
/// #[derive(Serialize, Deserialize)]
/// struct Parity;
///
/// impl Partitioner<i64> for Parity {
///     fn num_partitions(&self) -> usize {
///         2
///     }
///     fn partition(&self, key: &i64) -> usize {
///         key.rem_euclid(2) as usize
///     }
/// }
///
/// let ctx = Context::local(2).unwrap();
/// let parts = ctx.range(0, 6, 2).map(|x: i64| (x, ())).partition_by(Parity).keys().glom().collect().unwrap();
/// assert_eq!(parts, vec![vec![0, 2, 4], vec![1, 3, 5]]);
/// ```
pub trait Partitioner<K>: Send + Sync + 'static {
    /// Number of reduce partitions.
    fn num_partitions(&self) -> usize;
    /// Partition of `key`, below `num_partitions()`.
    fn partition(&self, key: &K) -> usize;
    /// Driver-side work before the shuffle runs (sampling, for range partitioners).
    fn prepare(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
    /// Equality with another partitioner, to skip shuffles of co-partitioned data.
    fn describe(&self) -> Option<String> {
        None
    }
}

/// A stable 64-bit hash of a key (FxHash, then a finaliser so low bits are well mixed).
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    let mut z = h.finish();
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

/// A partitioner as shuffles hold it: shareable and shippable (see the module docs).
pub(crate) type PartitionerRef<K> = Arc<dyn ShipPartitioner<K>>;

/// A [`Partitioner`] that can encode itself: every serialisable partitioner is one.
pub(crate) trait ShipPartitioner<K>: Partitioner<K> {
    fn encode(&self) -> Result<Encoded<PartitionerRef<K>>>;
}

impl<K: 'static, P: Partitioner<K> + Serialize + DeserializeOwned> ShipPartitioner<K> for P {
    fn encode(&self) -> Result<Encoded<PartitionerRef<K>>> {
        Encoded::new(self, decode_partitioner::<P, K>)
    }
}

impl<K: 'static> EncodeArc for dyn ShipPartitioner<K> {
    fn encode_arc(&self) -> Result<Encoded<Arc<Self>>> {
        self.encode()
    }
}

fn decode_partitioner<P: Partitioner<K> + Serialize + DeserializeOwned, K: 'static>(
    bytes: &[u8],
) -> Result<PartitionerRef<K>> {
    Ok(Arc::new(wire::decode_value::<P>("partitioner", bytes)?))
}

/// `stable_hash(key) mod n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashPartitioner {
    partitions: usize,
}

impl HashPartitioner {
    /// A hash partitioner over `partitions` (at least 1).
    pub fn new(partitions: usize) -> Self {
        HashPartitioner {
            partitions: partitions.max(1),
        }
    }
}

impl<K: Hash + Send + Sync + 'static> Partitioner<K> for HashPartitioner {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    #[inline]
    fn partition(&self, key: &K) -> usize {
        (stable_hash(key) % self.partitions as u64) as usize
    }
    fn describe(&self) -> Option<String> {
        Some(format!("hash({})", self.partitions))
    }
}

/// Partitions ordered keys into ranges of similar size, from a sample of the keys.
///
/// Serialised, it is its partition count, direction and bounds (sampled on the driver before
/// the shuffle runs); a deserialised one cannot sample again.
pub struct RangePartitioner<K> {
    partitions: usize,
    ascending: bool,
    /// The keys to sample; `None` in a deserialised copy.
    keys: Option<Rdd<K>>,
    bounds: OnceLock<Vec<K>>,
}

#[derive(Serialize)]
struct RangeOut<'a, K> {
    partitions: usize,
    ascending: bool,
    bounds: Option<&'a Vec<K>>,
}

#[derive(Deserialize)]
struct RangeIn<K> {
    partitions: usize,
    ascending: bool,
    bounds: Option<Vec<K>>,
}

impl<K: Serialize> Serialize for RangePartitioner<K> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        RangeOut {
            partitions: self.partitions,
            ascending: self.ascending,
            bounds: self.bounds.get(),
        }
        .serialize(s)
    }
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for RangePartitioner<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = RangeIn::<K>::deserialize(d)?;
        let bounds = OnceLock::new();
        if let Some(b) = r.bounds {
            let _ = bounds.set(b);
        }
        Ok(RangePartitioner {
            partitions: r.partitions,
            ascending: r.ascending,
            keys: None,
            bounds,
        })
    }
}

impl<K: Data + Ord> RangePartitioner<K> {
    /// A range partitioner for the keys of `keys`; bounds are sampled before the shuffle runs.
    pub fn new(partitions: usize, keys: Rdd<K>, ascending: bool) -> Self {
        RangePartitioner {
            partitions: partitions.max(1),
            ascending,
            keys: Some(keys),
            bounds: OnceLock::new(),
        }
    }

    fn compute_bounds(&self, ctx: &Context) -> Result<Vec<K>> {
        if self.partitions <= 1 {
            return Ok(Vec::new());
        }
        let Some(keys) = &self.keys else {
            return Err(crate::error::EngineError::Internal(
                "a range partitioner was shipped before its bounds were sampled".into(),
            ));
        };
        // As Spark: about 20 samples per output partition, over-sampled 3x, spread over the input.
        let sample_size = (20 * self.partitions).min(1_000_000);
        let inputs = keys.num_partitions().max(1);
        let per_partition = (3 * sample_size).div_ceil(inputs);
        let samples = keys.map_partitions_with_index(crate::func::with(
            per_partition,
            |k: &usize, split: usize, it: BoxIter<K>| {
                let mut rng = crate::rdd::partition_rng(0x5EED, split);
                let mut reservoir: Vec<K> = Vec::with_capacity(*k);
                let mut seen = 0u64;
                for key in it {
                    seen += 1;
                    if reservoir.len() < *k {
                        reservoir.push(key);
                    } else {
                        let j = rng.random_range(0..seen);
                        if (j as usize) < *k {
                            reservoir[j as usize] = key;
                        }
                    }
                }
                std::iter::once((seen, reservoir))
            },
        ));
        let n = samples.num_partitions();
        let parts = ctx.run_job(&samples, &(0..n).collect::<Vec<_>>())?;
        // Weight each sampled key by how many input keys it stands for.
        let mut weighted: Vec<(K, f64)> = Vec::new();
        for (seen, reservoir) in parts.into_iter().flatten() {
            if reservoir.is_empty() {
                continue;
            }
            let w = seen as f64 / reservoir.len() as f64;
            weighted.extend(reservoir.into_iter().map(|k| (k, w)));
        }
        weighted.sort_by(|a, b| a.0.cmp(&b.0));
        let total: f64 = weighted.iter().map(|(_, w)| w).sum();
        let step = total / self.partitions as f64;
        let mut bounds: Vec<K> = Vec::with_capacity(self.partitions - 1);
        let mut cumulative = 0.0;
        let mut target = step;
        for (key, w) in weighted {
            cumulative += w;
            if cumulative >= target && bounds.len() < self.partitions - 1 && bounds.last().is_none_or(|b| *b < key) {
                bounds.push(key);
                target += step;
            }
        }
        Ok(bounds)
    }
}

impl<K: Data + Ord> Partitioner<K> for RangePartitioner<K> {
    fn num_partitions(&self) -> usize {
        // Fixed even when the sample yields fewer distinct bounds: the last partitions are empty.
        self.partitions
    }

    fn partition(&self, key: &K) -> usize {
        let bounds = self.bounds.get().expect("range partitioner prepared before use");
        let p = match bounds.binary_search_by(|b| b.cmp(key)) {
            Ok(i) | Err(i) => i,
        };
        if self.ascending { p } else { bounds.len() - p }
    }

    fn prepare(&self, ctx: &Context) -> Result<()> {
        if self.bounds.get().is_none() {
            let bounds = self.compute_bounds(ctx)?;
            let _ = self.bounds.set(bounds);
        }
        Ok(())
    }
}

/// A comparator for `sort_by_key` direction.
pub(crate) fn key_order<K: Ord>(ascending: bool) -> Arc<dyn Fn(&K, &K) -> Ordering + Send + Sync> {
    if ascending {
        Arc::new(|a: &K, b: &K| a.cmp(b))
    } else {
        Arc::new(|a: &K, b: &K| b.cmp(a))
    }
}
