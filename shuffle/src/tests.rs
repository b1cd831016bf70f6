//! Behaviour of the whole crate against simple models: round trips of map outputs,
//! spilling past the budget, corruption, cleanup.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use tempfile::TempDir;

use crate::write_combined::write_combined_with;
use crate::write_plain::write_plain_with;
use crate::*;

fn env(limit_bytes: u64, compress: bool) -> (TempDir, ShuffleEnv) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = ShuffleDirs::new(tmp.path().join("local")).expect("dirs");
    (tmp, ShuffleEnv::new(dirs, MemoryBudget::new(limit_bytes), compress))
}

fn read_partition<K: DeserializeOwned, X: DeserializeOwned>(files: &MapOutputFiles, p: usize) -> Result<Vec<(K, X)>> {
    let origin = BlockOrigin {
        path: files.data.clone(),
        reduce_id: p,
    };
    decode_block(&read_block(files, p)?, &origin)?.collect()
}

fn read_all<K: DeserializeOwned, X: DeserializeOwned>(files: &MapOutputFiles, n: usize) -> Vec<Vec<(K, X)>> {
    (0..n)
        .map(|p| read_partition(files, p).expect("block reads back"))
        .collect()
}

fn sum() -> Aggregator<u32, u64, u64> {
    Aggregator::new(|v| v, |c, v| c + v, |a, b| a + b)
}

/// A scrambled but deterministic key sequence.
fn key(i: u64, distinct: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % distinct
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn write_plain_round_trips(
        records in prop::collection::vec((any::<u16>(), any::<u32>()), 0..40_000),
        n in 1usize..20,
        compress in any::<bool>(),
        fan_in in 2usize..5,
    ) {
        // Limit 1 byte: every consumer runs on its free minimum, so large inputs spill.
        let (_tmp, env) = env(1, compress);
        let out = env.dirs.map_output(1, 2);
        let part = move |k: &u16| *k as usize % n;
        let status = write_plain_with(records.iter().copied(), &part, n, &out, &env, fan_in)?;
        let mut model = vec![Vec::new(); n];
        for &(k, v) in &records {
            model[part(&k)].push((k, v));
        }
        prop_assert_eq!(read_all::<u16, u32>(&out, n), model, "blocks keep input order");
        prop_assert_eq!(status.records_written, records.len() as u64);
        // 6 bytes a record: past 20,000 records the buffers outgrow the free 64 KiB.
        prop_assert!(records.len() < 20_000 || status.spill_count > 0);
        prop_assert_eq!(status.partition_lengths.len(), n);
        for (p, &len) in status.partition_lengths.iter().enumerate() {
            prop_assert_eq!(read_block(&out, p)?.len() as u64, len);
        }
        prop_assert_eq!(env.dirs.live_spill_files(), 0);
        prop_assert_eq!(env.budget.used_bytes(), 0);
    }

    #[test]
    fn write_combined_round_trips(
        records in prop::collection::vec((0u32..3000, 0u64..1000), 0..12_000),
        n in 1usize..20,
        compress in any::<bool>(),
        fan_in in 2usize..5,
    ) {
        let (_tmp, env) = env(1, compress);
        let out = env.dirs.map_output(1, 2);
        let part = move |k: &u32| (k.wrapping_mul(2_654_435_761) >> 7) as usize % n;
        let status = write_combined_with(records.iter().copied(), &part, n, &sum(), &out, &env, fan_in)?;
        let mut model: HashMap<u32, u64> = HashMap::new();
        for &(k, v) in &records {
            *model.entry(k).or_default() += v;
        }
        let mut seen: HashMap<u32, u64> = HashMap::new();
        for (p, block) in read_all::<u32, u64>(&out, n).into_iter().enumerate() {
            for (k, c) in block {
                prop_assert_eq!(part(&k), p, "key in its partition");
                prop_assert!(seen.insert(k, c).is_none(), "key {} written twice", k);
            }
        }
        prop_assert_eq!(seen, model.clone());
        prop_assert_eq!(status.records_written, model.len() as u64);
        // About 2,500 distinct keys of some 50 estimated bytes: more than the free 64 KiB.
        prop_assert!(records.len() < 8000 || status.spill_count > 0);
        prop_assert_eq!(env.dirs.live_spill_files(), 0);
    }
}

#[test]
fn map_side_spills_past_the_budget_and_stays_exact() {
    // About 2.4 MB of (u64, u64) records (more in buffers) against a 256 KiB budget.
    let (_tmp, env) = env(256 << 10, true);
    let n = 7;
    let part = |k: &u64| (*k % 7) as usize;
    let records = || (0..150_000u64).map(|i| (key(i, 1 << 40), i));
    let plain = env.dirs.map_output(0, 0);
    let status = write_plain_with(records(), &part, n, &plain, &env, 3).expect("writes");
    assert!(status.spill_count >= 8, "{} spills", status.spill_count);
    let mut model = vec![Vec::new(); n];
    for (k, v) in records() {
        model[part(&k)].push((k, v));
    }
    assert_eq!(read_all::<u64, u64>(&plain, n), model);
    assert_eq!(env.dirs.live_spill_files(), 0);

    // Map-side combine into growing combiners (group by key), 12,000 keys.
    let group: Aggregator<u64, u64, Vec<u64>> = Aggregator::new(
        |v| vec![v],
        |mut c, v| {
            c.push(v);
            c
        },
        |mut a, mut b| {
            a.append(&mut b);
            a
        },
    );
    let combined = env.dirs.map_output(0, 1);
    let grouped = || (0..60_000u64).map(|i| (key(i, 12_000), i));
    let status = write_combined_with(grouped(), &part, n, &group, &combined, &env, 4).expect("writes");
    assert!(status.spill_count >= 8, "{} spills", status.spill_count);
    let mut model: HashMap<u64, Vec<u64>> = HashMap::new();
    for (k, v) in grouped() {
        model.entry(k).or_default().push(v);
    }
    let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
    for block in read_all::<u64, Vec<u64>>(&combined, n) {
        for (k, mut vs) in block {
            vs.sort_unstable();
            assert!(got.insert(k, vs).is_none(), "key {k} written twice");
        }
    }
    assert_eq!(got, model);
    assert_eq!(status.records_written, 12_000);
    assert_eq!(env.dirs.live_spill_files(), 0);
    assert_eq!(env.budget.used_bytes(), 0);
}

fn word(i: u64) -> String {
    format!("w{}", key(i, 50_000))
}

#[test]
fn aggregation_of_8x_the_budget_spills_and_is_exact() {
    // 50,000 keys of about 80 estimated bytes each: about 4 MiB against 256 KiB.
    let (_tmp, env) = env(256 << 10, true);
    let agg = Aggregator::<String, u64, u64>::new(|v| v, |c, v| c + v, |a, b| a + b);
    let mut model: HashMap<String, u64> = HashMap::new();
    let mut ext = ExternalAggregator::new(agg, env.clone()).with_merge_fan_in(4);
    for i in 0..150_000u64 {
        let v = i % 10;
        *model.entry(word(i)).or_default() += v;
        if i % 3 == 0 {
            ext.insert_combiner(word(i), v).expect("inserts");
        } else {
            ext.insert_value(word(i), v).expect("inserts");
        }
    }
    assert!(ext.spill_count() >= 8, "{} spills", ext.spill_count());
    assert!(env.dirs.live_spill_files() > 0);
    let mut got: HashMap<String, u64> = HashMap::new();
    for r in ext.into_iter().expect("merges") {
        let (k, c) = r.expect("reads");
        assert!(got.insert(k.clone(), c).is_none(), "key {k} twice");
    }
    assert_eq!(got, model);
    assert_eq!(env.dirs.live_spill_files(), 0, "exhausted iterator deleted the runs");
    assert_eq!(env.budget.used_bytes(), 0);
}

#[test]
fn sorting_of_8x_the_budget_spills_and_is_exact() {
    let (_tmp, env) = env(256 << 10, false);
    let mut sorter = ExternalSorter::new(Arc::new(|a: &u64, b: &u64| a.cmp(b)), env.clone()).with_merge_fan_in(4);
    let mut model = Vec::new();
    for i in 0..100_000u64 {
        let k = key(i, 1 << 20);
        sorter.insert(k, i).expect("inserts");
        model.push(k);
    }
    assert!(sorter.spill_count() >= 8, "{} spills", sorter.spill_count());
    model.sort_unstable();
    let sorted: Vec<(u64, u64)> = sorter
        .into_sorted_iter()
        .expect("merges")
        .collect::<Result<_>>()
        .expect("reads");
    assert_eq!(sorted.iter().map(|r| r.0).collect::<Vec<_>>(), model);
    assert!(
        sorted.iter().all(|&(k, i)| key(i, 1 << 20) == k),
        "values travel with their keys"
    );
    assert_eq!(env.dirs.live_spill_files(), 0);
    assert_eq!(env.budget.used_bytes(), 0);
}

#[test]
fn dropping_iterators_half_way_cleans_up() {
    let (_tmp, env) = env(64 << 10, true);
    let mut sorter = ExternalSorter::new(Arc::new(|a: &String, b: &String| b.cmp(a)), env.clone());
    let mut agg = ExternalAggregator::new(
        Aggregator::<String, u64, u64>::new(|v| v, |c, v| c + v, |a, b| a + b),
        env.clone(),
    );
    for i in 0..40_000u64 {
        sorter.insert(word(i), i).expect("inserts");
        agg.insert_value(word(i), i).expect("inserts");
    }
    assert!(sorter.spill_count() > 0 && agg.spill_count() > 0);
    let mut sorted = sorter.into_sorted_iter().expect("merges");
    let mut combined = agg.into_iter().expect("merges");
    let first: Vec<_> = sorted.by_ref().take(10_000).collect::<Result<_>>().expect("reads");
    assert!(first.windows(2).all(|w| w[0].0 >= w[1].0), "descending");
    combined.by_ref().take(10_000).for_each(|r| drop(r.expect("reads")));
    assert!(env.dirs.live_spill_files() > 0);
    drop((sorted, combined));
    assert_eq!(env.dirs.live_spill_files(), 0);
    assert_eq!(env.budget.used_bytes(), 0);
}

#[test]
fn consumers_progress_under_a_one_byte_budget_even_in_parallel() {
    let (_tmp, env) = env(1, true);
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let env = env.clone();
            std::thread::spawn(move || {
                let mut sorter = ExternalSorter::new(Arc::new(|a: &u64, b: &u64| a.cmp(b)), env);
                for i in 0..30_000u64 {
                    sorter.insert(key(i + t, 1000), t).expect("inserts");
                }
                assert!(sorter.spill_count() > 0);
                let keys: Vec<u64> = sorter
                    .into_sorted_iter()
                    .expect("merges")
                    .map(|r| r.expect("reads").0)
                    .collect();
                assert_eq!(keys.len(), 30_000);
                assert!(keys.windows(2).all(|w| w[0] <= w[1]));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sorter thread");
    }
    assert_eq!(env.dirs.live_spill_files(), 0);
    assert_eq!(env.budget.used_bytes(), 0);
}

fn written(env: &ShuffleEnv) -> MapOutputFiles {
    let out = env.dirs.map_output(5, 3);
    let records = (0..20_000u64).map(|i| (i, format!("value {i}")));
    write_plain(records, &|k: &u64| (*k % 4) as usize, 4, &out, env).expect("writes");
    out
}

#[test]
fn a_flipped_data_byte_is_a_corrupt_block_naming_path_and_partition() {
    for compress in [true, false] {
        let (_tmp, env) = env(1 << 20, compress);
        let out = written(&env);
        let mut bytes = fs::read(&out.data).expect("data");
        let lens: Vec<u64> = (0..4)
            .map(|p| read_block(&out, p).expect("reads").len() as u64)
            .collect();
        // A byte in the middle of block 2.
        let at = (lens[0] + lens[1] + lens[2] / 2) as usize;
        bytes[at] ^= 0x20;
        fs::write(&out.data, bytes).expect("writes");
        assert_eq!(
            read_partition::<u64, String>(&out, 1).expect("block 1 is intact").len(),
            5000
        );
        let err = read_partition::<u64, String>(&out, 2).expect_err("block 2 is not");
        assert!(
            matches!(err, ShuffleError::CorruptBlock { ref path, reduce_id: 2, .. } if *path == out.data),
            "{err:?}"
        );
        assert!(err.is_lost_output());
    }
}

#[test]
fn damaged_or_missing_files_are_reported_with_their_path() {
    let (_tmp, env) = env(1 << 20, true);
    let out = written(&env);
    let index = fs::read(&out.index).expect("index");

    fs::write(&out.index, &index[..index.len() - 3]).expect("truncates");
    let err = read_block(&out, 1).expect_err("truncated index");
    assert!(
        matches!(err, ShuffleError::CorruptBlock { ref path, reduce_id: 1, .. } if *path == out.index),
        "{err:?}"
    );

    let mut garbled = index.clone();
    garbled[20] ^= 1;
    fs::write(&out.index, &garbled).expect("garbles");
    assert!(matches!(read_block(&out, 0), Err(ShuffleError::CorruptBlock { .. })));

    fs::write(&out.index, &index).expect("restores");
    let err = read_block(&out, 9).expect_err("no such partition");
    assert!(
        matches!(
            err,
            ShuffleError::NoSuchBlock {
                reduce_id: 9,
                num_partitions: 4,
                ..
            }
        ),
        "{err:?}"
    );

    let data = fs::read(&out.data).expect("data");
    fs::write(&out.data, &data[..data.len() - 1]).expect("truncates");
    let err = read_block(&out, 0).expect_err("short data file");
    assert!(
        matches!(err, ShuffleError::CorruptBlock { ref path, .. } if *path == out.data),
        "{err:?}"
    );

    fs::remove_file(&out.data).expect("deletes");
    let err = read_block(&out, 0).expect_err("no data file");
    assert!(
        matches!(err, ShuffleError::MissingFile { ref path } if *path == out.data),
        "{err:?}"
    );
    assert!(err.to_string().contains("shuffle_5_3.data"));

    fs::remove_file(&out.index).expect("deletes");
    let err = read_block(&out, 0).expect_err("no index");
    assert!(
        matches!(err, ShuffleError::MissingFile { ref path } if *path == out.index),
        "{err:?}"
    );
}

#[test]
fn a_flipped_byte_in_a_spill_file_surfaces_as_a_corrupt_block() {
    let (_tmp, env) = env(1, true);
    let mut sorter = ExternalSorter::new(Arc::new(|a: &u64, b: &u64| a.cmp(b)), env.clone());
    for i in 0..20_000u64 {
        sorter.insert(key(i, 1 << 30), i).expect("inserts");
    }
    assert!(sorter.spill_count() > 0);
    let spill_dir = env.dirs.root().join("spill");
    for entry in fs::read_dir(&spill_dir).expect("spill dir") {
        let path = entry.expect("entry").path();
        let mut bytes = fs::read(&path).expect("spill");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x04;
        fs::write(&path, bytes).expect("writes");
    }
    let err = sorter
        .into_sorted_iter()
        .and_then(|it| it.collect::<Result<Vec<_>>>())
        .expect_err("corruption detected");
    assert!(
        matches!(err, ShuffleError::CorruptBlock { ref path, .. } if path.starts_with(&spill_dir)),
        "{err:?}"
    );
    assert_eq!(env.dirs.live_spill_files(), 0);
}

#[test]
fn a_rerun_replaces_the_output_and_leaves_no_temporary_files() {
    let (_tmp, env) = env(1 << 20, true);
    let out = env.dirs.map_output(2, 0);
    let part = |k: &u32| *k as usize % 3;
    write_plain((0..100u32).map(|i| (i, 1u8)), &part, 3, &out, &env).expect("first attempt");
    let status = write_plain((0..10u32).map(|i| (i, 2u8)), &part, 3, &out, &env).expect("second attempt");
    assert_eq!(status.records_written, 10);
    let all: Vec<(u32, u8)> = read_all(&out, 3).concat();
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|r| r.1 == 2));
    let files: Vec<_> = fs::read_dir(out.data.parent().expect("shuffle dir"))
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files.len(), 2, "only data and index: {files:?}");
}

#[test]
fn empty_inputs_and_bad_partitions() {
    let (_tmp, env) = env(1 << 20, true);
    let out = env.dirs.map_output(3, 0);
    let status = write_plain(std::iter::empty::<(u8, u8)>(), &|_| 0, 5, &out, &env).expect("writes");
    assert_eq!(status.partition_lengths, [0; 5]);
    assert_eq!(fs::metadata(&out.data).expect("data").len(), 0);
    assert!(read_block(&out, 4).expect("reads").is_empty());
    assert!(read_partition::<u8, u8>(&out, 4).expect("decodes").is_empty());

    let err = write_plain([(1u8, 1u8)].into_iter(), &|_| 5, 5, &out, &env).expect_err("bad partition");
    assert!(matches!(
        err,
        ShuffleError::BadPartition {
            partition: 5,
            num_partitions: 5
        }
    ));
    let err = write_combined([(1u32, 1u64)].into_iter(), &|_| 9, 2, &sum(), &out, &env).expect_err("bad partition");
    assert!(matches!(err, ShuffleError::BadPartition { partition: 9, .. }));
    assert_eq!(read_block(&out, 0).expect("old output intact").len(), 0);

    let agg = ExternalAggregator::new(sum(), env.clone());
    assert_eq!(agg.into_iter().expect("empty").count(), 0);
    let sorter = ExternalSorter::<u8, u8>::new(Arc::new(|a, b| a.cmp(b)), env.clone());
    assert_eq!(sorter.into_sorted_iter().expect("empty").count(), 0);
}
