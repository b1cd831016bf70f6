//! Sort benchmark in the style of TeraSort: N random 100-byte records (10-byte key, 90-byte
//! value) generated from a seed, sorted by key with a range partitioner, then validated.

use flint::prelude::*;
use flint::{EngineError, Result};
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// Bytes per record (key + value).
pub const RECORD_BYTES: u64 = 100;

/// What `sort` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortReport {
    /// Records sorted.
    pub records: u64,
    /// Bytes of records sorted.
    pub bytes: u64,
    /// Output partitions.
    pub partitions: usize,
}

/// The records: a key of 10 random bytes, a value of 90 bytes derived from the record number.
pub fn records(ctx: &Context, n: u64, partitions: usize, seed: u64) -> Rdd<([u8; 10], Vec<u8>)> {
    ctx.range(0, n as i64, partitions).map_partitions_with_index(with(
        seed,
        |seed: &u64, split: usize, it: BoxIter<i64>| {
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ (split as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            it.map(move |i| {
                let mut key = [0u8; 10];
                rng.fill(&mut key[..]);
                let mut value = vec![0u8; 90];
                let tag = (i as u64).to_le_bytes();
                for (j, b) in value.iter_mut().enumerate() {
                    *b = tag[j % 8] ^ (j as u8);
                }
                (key, value)
            })
        },
    ))
}

/// Generates, sorts and validates; an error if the output is not in order or loses records.
pub fn run(ctx: &Context, n: u64, partitions: usize, seed: u64) -> Result<SortReport> {
    let sorted = records(ctx, n, partitions, seed).sort_by_key(true, partitions);
    // Per partition: (count, first key, last key, sorted within).
    let summaries = sorted
        .map_partitions(|it: BoxIter<([u8; 10], Vec<u8>)>| {
            let mut count = 0u64;
            let mut first = None;
            let mut last: Option<[u8; 10]> = None;
            let mut in_order = true;
            for (k, _) in it {
                if let Some(prev) = last {
                    in_order &= prev <= k;
                }
                first.get_or_insert(k);
                last = Some(k);
                count += 1;
            }
            std::iter::once((count, first, last, in_order))
        })
        .collect()?;
    let mut total = 0;
    let mut previous_last: Option<[u8; 10]> = None;
    for (i, (count, first, last, in_order)) in summaries.iter().enumerate() {
        total += count;
        let across = match (previous_last, first) {
            (Some(p), Some(f)) => p <= *f,
            _ => true,
        };
        if !in_order || !across {
            return Err(EngineError::Internal(format!(
                "sort output out of order in partition {i}"
            )));
        }
        if last.is_some() {
            previous_last = *last;
        }
    }
    if total != n {
        return Err(EngineError::Internal(format!(
            "sort output has {total} records, expected {n}"
        )));
    }
    Ok(SortReport {
        records: n,
        bytes: n * RECORD_BYTES,
        partitions: summaries.len(),
    })
}
