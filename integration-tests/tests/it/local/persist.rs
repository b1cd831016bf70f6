//! `persist` / `cache`: cached partitions are reused, spill to disk when memory is short, and
//! are dropped by `unpersist`. An accumulator counts how often the source is computed.

use flint::prelude::*;

use crate::common::{TestResult, ctx};

/// `0..n` in `parts` partitions, counting every element computed in `computed`.
fn counted(ctx: &Context, n: i64, parts: usize, computed: &Accumulator<u64>) -> Rdd<i64> {
    ctx.range(0, n, parts)
        .map(with(computed.clone(), |c: &Accumulator<u64>, x: i64| {
            c.add(1);
            x
        }))
}

#[test]
fn cache_computes_the_source_once_for_two_actions() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 1000, 4, &computed).cache();
    assert_eq!(rdd.storage_level(), Some(StorageLevel::MemoryOnly));
    assert_eq!(rdd.count()?, 1000);
    assert_eq!(computed.value(), 1000);
    assert_eq!(ctx.cached_partitions(&rdd), (4, 0));
    assert_eq!(rdd.reduce(|a: i64, b: i64| a + b)?, 999 * 1000 / 2);
    assert_eq!(
        rdd.map(|x: i64| x * 2).collect()?,
        (0..1000).map(|x| x * 2).collect::<Vec<_>>()
    );
    assert_eq!(computed.value(), 1000, "later actions read the cache");
    Ok(())
}

#[test]
fn without_cache_every_action_recomputes() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 500, 3, &computed);
    rdd.count()?;
    rdd.count()?;
    assert_eq!(computed.value(), 1000);
    assert_eq!(ctx.cached_partitions(&rdd), (0, 0));
    Ok(())
}

#[test]
fn unpersist_drops_cached_partitions() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 300, 3, &computed).cache();
    rdd.count()?;
    assert_eq!(ctx.cached_partitions(&rdd), (3, 0));
    rdd.unpersist();
    assert_eq!(ctx.cached_partitions(&rdd), (0, 0));
    assert_eq!(rdd.storage_level(), None);
    assert_eq!(rdd.count()?, 300);
    assert_eq!(computed.value(), 600, "recomputed after unpersist");
    assert_eq!(ctx.cached_partitions(&rdd), (0, 0), "not cached again");
    Ok(())
}

#[test]
fn memory_and_disk_with_tiny_storage_memory_goes_to_disk() -> TestResult {
    let ctx = Context::builder()
        .master("local[2]")
        .storage_memory_bytes(1024)
        .build()?;
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 20_000, 4, &computed).persist(StorageLevel::MemoryAndDisk);
    assert_eq!(rdd.count()?, 20_000);
    assert_eq!(
        ctx.cached_partitions(&rdd),
        (0, 4),
        "no block fits in 1 KiB: all on disk"
    );
    let sum: i64 = (0..20_000).sum();
    assert_eq!(rdd.reduce(|a: i64, b: i64| a + b)?, sum);
    assert_eq!(rdd.collect()?, (0..20_000).collect::<Vec<_>>());
    assert_eq!(computed.value(), 20_000, "disk blocks are read back, not recomputed");
    rdd.unpersist();
    assert_eq!(ctx.cached_partitions(&rdd), (0, 0));
    assert_eq!(rdd.count()?, 20_000);
    assert_eq!(computed.value(), 40_000);
    Ok(())
}

#[test]
fn memory_only_with_tiny_storage_memory_recomputes() -> TestResult {
    let ctx = Context::builder()
        .master("local[2]")
        .storage_memory_bytes(1024)
        .build()?;
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 5000, 2, &computed).cache();
    assert_eq!(rdd.count()?, 5000);
    assert_eq!(ctx.cached_partitions(&rdd), (0, 0), "nothing fits, nothing is kept");
    assert_eq!(rdd.count()?, 5000);
    assert_eq!(computed.value(), 10_000);
    Ok(())
}

#[test]
fn disk_only_keeps_blocks_on_disk() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 3000, 3, &computed).persist(StorageLevel::DiskOnly);
    assert_eq!(rdd.collect()?, (0..3000).collect::<Vec<_>>());
    assert_eq!(ctx.cached_partitions(&rdd), (0, 3));
    assert_eq!(rdd.collect()?, (0..3000).collect::<Vec<_>>());
    assert_eq!(computed.value(), 3000);
    Ok(())
}

#[test]
fn memory_and_disk_evicts_older_blocks_to_disk() -> TestResult {
    // About 24 KB per cached partition of 1000 i64 (the store's estimate): three fit in
    // 100 KB, a fifth block evicts the least recently used one of the first RDD to disk.
    let ctx = Context::builder()
        .master("local[1]")
        .storage_memory_bytes(100_000)
        .build()?;
    let computed = ctx.accumulator(0u64);
    let first = counted(&ctx, 3000, 3, &computed).persist(StorageLevel::MemoryAndDisk);
    assert_eq!(first.count()?, 3000);
    assert_eq!(ctx.cached_partitions(&first), (3, 0));
    let second = counted(&ctx, 2000, 2, &computed).persist(StorageLevel::MemoryAndDisk);
    assert_eq!(second.count()?, 2000);
    let (mem, disk) = ctx.cached_partitions(&first);
    assert_eq!(mem + disk, 3, "every block of the first RDD is kept somewhere");
    assert!(
        disk >= 1,
        "a block of the first RDD was evicted to disk: ({mem}, {disk})"
    );
    assert_eq!(computed.value(), 5000);
    // Both still answer from the cache.
    assert_eq!(first.collect()?, (0..3000).collect::<Vec<_>>());
    assert_eq!(second.collect()?, (0..2000).collect::<Vec<_>>());
    assert_eq!(computed.value(), 5000);
    Ok(())
}

#[test]
fn a_cached_shuffle_output_is_reused_by_later_jobs() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let sums = counted(&ctx, 1000, 4, &computed)
        .map(|x: i64| (x % 10, x))
        .reduce_by_key(|a: i64, b: i64| a + b)
        .cache();
    let mut first = sums.collect()?;
    first.sort();
    let expected: Vec<(i64, i64)> = (0..10).map(|k| (k, (0..1000).filter(|x| x % 10 == k).sum())).collect();
    assert_eq!(first, expected);
    assert_eq!(ctx.cached_partitions(&sums), (4, 0));
    assert_eq!(sums.values().reduce(|a: i64, b: i64| a + b)?, 999 * 1000 / 2);
    assert_eq!(computed.value(), 1000);
    Ok(())
}

#[test]
fn a_damaged_disk_block_is_recomputed_not_misread() -> TestResult {
    let ctx = ctx();
    let computed = ctx.accumulator(0u64);
    let rdd = counted(&ctx, 3000, 3, &computed).persist(StorageLevel::DiskOnly);
    assert_eq!(rdd.count()?, 3000);
    // Flip a byte in the middle of every cached block file.
    let blocks = ctx.shuffle_dir().parent().expect("context dir").join("blocks");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&blocks)? {
        let path = entry?.path();
        let mut bytes = std::fs::read(&path)?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x21;
        std::fs::write(&path, bytes)?;
        damaged += 1;
    }
    assert_eq!(damaged, 3);
    assert_eq!(rdd.collect()?, (0..3000).collect::<Vec<_>>());
    assert_eq!(
        computed.value(),
        6000,
        "every damaged partition was recomputed from lineage"
    );
    Ok(())
}

/// Counts its clones (only `borrowed_partitions_of_a_cached_rdd_clone_nothing` uses it).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Tracked(i64);

static TRACKED_CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Clone for Tracked {
    fn clone(&self) -> Self {
        TRACKED_CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Tracked(self.0)
    }
}

#[test]
fn borrowed_partitions_of_a_cached_rdd_clone_nothing() -> TestResult {
    use std::sync::atomic::Ordering::SeqCst;
    let ctx = ctx();
    let source = ctx.range(0, 1000, 4).map(|x: i64| Tracked(x));
    let sums = |rdd: &Rdd<Tracked>| -> Result<Vec<i64>, EngineError> {
        rdd.map_partitions_borrowed(|xs: &[Tracked]| [xs.iter().map(|t| t.0).sum::<i64>()])
            .collect()
    };
    let expected: Vec<i64> = (0..4).map(|p| (p * 250..(p + 1) * 250).sum()).collect();
    // Not cached: each partition computed, then lent whole.
    assert_eq!(sums(&source)?, expected);

    let cached = source.cache();
    cached.count()?;
    let before = TRACKED_CLONES.load(SeqCst);
    assert_eq!(sums(&cached)?, expected);
    assert_eq!(
        TRACKED_CLONES.load(SeqCst),
        before,
        "the cached elements themselves were lent"
    );
    // Iterating the same cache yields clones.
    cached.map_partitions(|it: BoxIter<Tracked>| [it.count()]).collect()?;
    assert_eq!(TRACKED_CLONES.load(SeqCst), before + 1000);
    Ok(())
}
