//! Aggregation and sorting over data many times the shuffle memory limit: they spill, give
//! the right answer and leave no spill file behind.
//!
//! Records are made inside tasks (not on the driver) from a permutation of `0..N`, so the
//! expected answer is known without a second copy of the data: with `keys` keys, key `k`
//! gets exactly the records `p = perm(i)` with `p % keys == k`.

use flint::prelude::*;

use crate::common::{TestResult, observe_spills, path_state};

const LIMIT: u64 = 1 << 20;
/// Records; with their 48-byte payloads about 16 MB of data, 16x the limit.
const N: i64 = 240_000;
/// 7919 is prime and divides no power of ten, so `i -> i * 7919 mod N` permutes `0..N`.
const MULT: i64 = 7919;

fn spill_ctx() -> Context {
    Context::builder()
        .master("local[2]")
        .memory_limit_bytes(LIMIT)
        .show_progress(false)
        .build()
        .expect("context starts")
}

fn payload(i: i64) -> String {
    format!("{i:0>48}")
}

fn assert_cleaned_up(ctx: &Context) {
    assert_eq!(
        ctx.live_spill_files(),
        0,
        "spill files are removed when their task ends"
    );
    assert_eq!(ctx.shuffle_memory_used_bytes(), 0, "memory reservations are released");
}

#[test]
fn reduce_by_key_over_16x_the_memory_limit() -> TestResult {
    let ctx = spill_ctx();
    let spills = ctx.accumulator(0u64);
    // N / 2 keys, each with two records: map-side combining cannot shrink the data much.
    let keys = N / 2;
    let reduced = ctx
        .range(0, N, 8)
        .map(with(keys, |keys: &i64, i: i64| {
            let p = i * MULT % N;
            (p % keys, (p as u64, payload(p)))
        }))
        .reduce_by_key_into(|a: (u64, String), b: (u64, String)| (a.0 + b.0, a.1.min(b.1)), 4);
    let out = observe_spills(&reduced, &spills, &ctx.shuffle_dir().join("spill")).collect()?;
    assert_eq!(out.len(), keys as usize);
    let mut seen = vec![false; keys as usize];
    for (k, (sum, smallest)) in out {
        // Key k gets p = k and p = k + keys.
        assert_eq!(sum, (2 * k + keys) as u64, "key {k}");
        assert_eq!(smallest, payload(k));
        assert!(!std::mem::replace(&mut seen[k as usize], true), "key {k} twice");
    }
    assert!(spills.value() > 0, "the aggregation spilled");
    assert_cleaned_up(&ctx);
    Ok(())
}

#[test]
fn group_by_key_over_16x_the_memory_limit() -> TestResult {
    let ctx = spill_ctx();
    let spills = ctx.accumulator(0u64);
    let keys = 20_000;
    let groups = ctx
        .range(0, N, 8)
        .map(with(keys, |keys: &i64, i: i64| {
            let p = i * MULT % N;
            (p % keys, payload(p))
        }))
        .group_by_key_into(4);
    let out = observe_spills(&groups, &spills, &ctx.shuffle_dir().join("spill")).collect()?;
    assert_eq!(out.len(), keys as usize);
    let mut seen = vec![false; keys as usize];
    for (k, mut values) in out {
        values.sort();
        // Zero-padded, so string order is numeric order.
        let expected: Vec<String> = (0..N / keys).map(|j| payload(k + j * keys)).collect();
        assert_eq!(values, expected, "key {k}");
        assert!(!std::mem::replace(&mut seen[k as usize], true), "key {k} twice");
    }
    assert!(spills.value() > 0, "the grouping spilled");
    assert_cleaned_up(&ctx);
    Ok(())
}

#[test]
fn sort_by_key_over_16x_the_memory_limit() -> TestResult {
    let ctx = spill_ctx();
    let spills = ctx.accumulator(0u64);
    let sorted = ctx.range(0, N, 8).map(|i: i64| {
        let p = i * MULT % N;
        (p, payload(p))
    });
    let sorted = sorted.sort_by_key(true, 4);
    let out = observe_spills(&sorted, &spills, &ctx.shuffle_dir().join("spill")).collect()?;
    assert_eq!(out.len(), N as usize);
    for (i, (k, v)) in out.iter().enumerate() {
        assert_eq!(*k, i as i64, "keys 0..N in order");
        assert_eq!(*v, payload(*k));
    }
    assert!(spills.value() > 0, "the sort spilled");
    assert_cleaned_up(&ctx);
    Ok(())
}

/// True the first time it is called for `marker` (creates the file).
fn first_time(marker: &str) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
}

#[test]
fn a_task_that_fails_while_reading_spilled_data_leaves_no_spill_file() -> TestResult {
    let ctx = spill_ctx();
    let dir = tempfile::tempdir()?;
    // Half the records (still 8x the limit).
    let (n, keys) = (N / 2, N / 4);
    let reduced = ctx
        .range(0, n, 8)
        .map(with((n, keys), |s: &(i64, i64), i: i64| {
            let p = i * MULT % s.0;
            (p % s.1, (p as u64, payload(p)))
        }))
        .reduce_by_key_into(|a: (u64, String), b: (u64, String)| (a.0 + b.0, a.1.min(b.1)), 4);
    // The first attempt of each reduce partition reads part of its (spilled) output, then panics.
    let spills = ctx.accumulator(0u64);
    let observed = observe_spills(&reduced, &spills, &ctx.shuffle_dir().join("spill"));
    let flaky = observed.map_partitions_with_index(with(
        path_state(dir.path()),
        |dir: &String, split: usize, mut it: BoxIter<(i64, (u64, String))>| {
            if first_time(&format!("{dir}/{split}")) {
                let n = it.by_ref().take(10_000).count();
                panic!("injected failure after reading {n} records");
            }
            it
        },
    ));
    let sum: u64 = flaky
        .map(|(_, (s, _)): (i64, (u64, String))| s)
        .reduce(|a: u64, b: u64| a + b)?;
    assert_eq!(sum, (0..n as u64).sum::<u64>());
    assert!(spills.value() > 0, "the reduce side spilled");
    assert_cleaned_up(&ctx);
    Ok(())
}

fn always_fails(_: (i64, Vec<String>)) -> usize {
    panic!("this reducer always fails")
}

#[test]
fn a_job_that_fails_after_spilling_leaves_no_spill_file() -> TestResult {
    let ctx = spill_ctx();
    let groups = ctx
        .range(0, N / 2, 4)
        .map(|i: i64| {
            let p = i * MULT % (N / 2);
            (p % 5_000, payload(p))
        })
        .group_by_key_into(2);
    let err = groups.map(always_fails).count().expect_err("the job fails");
    assert!(matches!(err, flint::EngineError::TaskFailed { .. }), "{err:?}");
    assert_cleaned_up(&ctx);
    // The shuffle output survives the failed job: the same groups can still be counted, by
    // the same reduce tasks, which spill (so the failed ones did too).
    let spills = ctx.accumulator(0u64);
    assert_eq!(
        observe_spills(&groups, &spills, &ctx.shuffle_dir().join("spill")).count()?,
        5_000
    );
    assert!(spills.value() > 0, "the reduce side spilled");
    assert_cleaned_up(&ctx);
    Ok(())
}
