//! Damaged shuffle files: a second job that reuses a shuffle finds a corrupt or missing map
//! output, reports a fetch failure, recomputes only that map partition and still gives the
//! right answer.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flint::prelude::*;
use flint::{SchedulerEvent, ShuffleId};

use crate::common::{Events, TestResult, ctx, files_under, sorted};

/// The data file of map partition `map_id` of `shuffle` under the context's shuffle directory.
fn data_file(ctx: &Context, shuffle: ShuffleId, map_id: usize) -> PathBuf {
    let prefix = format!("shuffle_{}_{map_id}.", shuffle.0);
    let found: Vec<PathBuf> = files_under(&ctx.shuffle_dir())
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".data")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one data file for map {map_id} of shuffle {shuffle}: {found:?}"
    );
    found[0].clone()
}

/// The shuffle written by the map stage of the recorded job.
fn the_shuffle(events: &Events) -> ShuffleId {
    let shuffles: Vec<ShuffleId> = events
        .all()
        .iter()
        .filter_map(|e| match e {
            SchedulerEvent::StageSubmitted { shuffle: Some(s), .. } => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(shuffles.len(), 1, "{shuffles:?}");
    shuffles[0]
}

/// Partition lists of the submissions of the map stage writing `shuffle`.
fn map_submissions(events: &Events, shuffle: ShuffleId) -> Vec<Vec<usize>> {
    events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            SchedulerEvent::StageSubmitted {
                shuffle: Some(s),
                partitions,
                ..
            } if s == shuffle => Some(partitions),
            _ => None,
        })
        .collect()
}

fn word_sums(ctx: &Context, reducers: usize) -> Rdd<(u64, u64)> {
    ctx.range(0, 4000, 4)
        .map(|x: i64| (x as u64 % 50, x as u64))
        .reduce_by_key_into(|a: u64, b: u64| a + b, reducers)
}

#[test]
fn a_corrupt_shuffle_file_recomputes_only_its_map_partition() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let counts = word_sums(&ctx, 3);
    let expected = sorted(counts.collect()?);
    let shuffle = the_shuffle(&events);

    // Flip a byte in the middle of map output 2: one block of it is now corrupt.
    let path = data_file(&ctx, shuffle, 2);
    let mut bytes = fs::read(&path)?;
    assert!(bytes.len() > 16, "{} bytes", bytes.len());
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xA5;
    fs::write(&path, &bytes)?;

    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    let all = events.all();
    assert!(
        all.iter().any(|e| matches!(e, SchedulerEvent::StageSkipped { .. })),
        "the map stage is reused: {all:?}"
    );
    // The reducer that read the corrupt block fails its fetch; a reducer running at the same
    // time may fail too, finding map 2's output unregistered by then: every failure is a
    // fetch of map 2.
    let failures = events.task_failures();
    assert!(!failures.is_empty() && failures.len() <= 3, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.contains("fetch") && f.contains("map 2")),
        "{failures:?}"
    );
    assert_eq!(
        map_submissions(&events, shuffle),
        vec![vec![2]],
        "only map partition 2 is recomputed: {all:?}"
    );
    // A third run reads the recomputed output without trouble.
    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    assert!(events.task_failures().is_empty());
    assert!(map_submissions(&events, shuffle).is_empty());
    Ok(())
}

#[test]
fn a_corrupt_single_block_shuffle_file_is_detected() -> TestResult {
    // One reducer: every byte of the file belongs to its one block.
    let ctx = ctx();
    let events = Events::record(&ctx);
    let counts = word_sums(&ctx, 1);
    let expected = sorted(counts.collect()?);
    let shuffle = the_shuffle(&events);
    let path = data_file(&ctx, shuffle, 0);
    let mut bytes = fs::read(&path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes)?;
    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    assert_eq!(map_submissions(&events, shuffle), vec![vec![0]]);
    Ok(())
}

#[test]
fn a_deleted_shuffle_file_recomputes_only_its_map_partition() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let counts = word_sums(&ctx, 3);
    let expected = sorted(counts.collect()?);
    let shuffle = the_shuffle(&events);
    fs::remove_file(data_file(&ctx, shuffle, 1))?;

    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    let all = events.all();
    assert!(
        all.iter().any(|e| matches!(e, SchedulerEvent::StageSkipped { .. })),
        "{all:?}"
    );
    let failures = events.task_failures();
    assert!(
        !failures.is_empty() && failures.iter().all(|f| f.contains("fetch") && f.contains("map 1")),
        "{failures:?}"
    );
    // Every reducer reads map output 1, so each may report it; a report about the file that is
    // already replaced (or not yet recomputed) does not unregister anything, so the map stage
    // reruns partition 1 exactly once.
    let submissions = map_submissions(&events, shuffle);
    assert_eq!(
        submissions,
        vec![vec![1]],
        "only map partition 1 is recomputed, once: {all:?}"
    );
    Ok(())
}

#[test]
fn a_deleted_shuffle_file_with_one_reducer_is_recomputed_once() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let counts = word_sums(&ctx, 1);
    let expected = sorted(counts.collect()?);
    let shuffle = the_shuffle(&events);
    fs::remove_file(data_file(&ctx, shuffle, 3))?;
    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    assert_eq!(map_submissions(&events, shuffle), vec![vec![3]]);
    assert_eq!(events.task_failures().len(), 1);
    Ok(())
}

#[test]
fn a_lost_output_of_an_earlier_shuffle_is_recomputed_when_a_later_map_stage_needs_it() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    // Two shuffles: sums per key, then counts of sums per bucket.
    let sums = ctx
        .range(0, 2000, 4)
        .map(|x: i64| (x % 40, x))
        .reduce_by_key_into(|a: i64, b: i64| a + b, 3);
    let buckets = sums
        .map(|(k, _): (i64, i64)| (k % 4, 1u32))
        .reduce_by_key_into(|a: u32, b: u32| a + b, 2);
    let expected = sorted(buckets.collect()?);
    assert_eq!(expected, vec![(0, 10), (1, 10), (2, 10), (3, 10)]);
    let shuffles: Vec<ShuffleId> = events
        .all()
        .iter()
        .filter_map(|e| match e {
            SchedulerEvent::StageSubmitted { shuffle: Some(s), .. } => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(shuffles.len(), 2, "{shuffles:?}");
    let (first, second) = (shuffles[0], shuffles[1]);
    // Lose map output 0 of the second shuffle (so its map stage must rerun partition 0,
    // which reads the first shuffle) and map output 3 of the first shuffle.
    fs::remove_file(data_file(&ctx, second, 0))?;
    fs::remove_file(data_file(&ctx, first, 3))?;
    events.clear();
    assert_eq!(sorted(buckets.collect()?), expected);
    let firsts = map_submissions(&events, first);
    let seconds = map_submissions(&events, second);
    assert!(!firsts.is_empty() && firsts.iter().all(|p| p == &vec![3]), "{firsts:?}");
    assert!(
        !seconds.is_empty() && seconds.iter().all(|p| p == &vec![0]),
        "{seconds:?}"
    );
    Ok(())
}

#[test]
fn map_outputs_lost_on_every_attempt_fail_the_stage_after_max_stage_attempts() -> TestResult {
    let ctx = Context::builder()
        .master("local[2]")
        .set("max_stage_attempts", "3")?
        .build()?;
    let counts = word_sums(&ctx, 1);
    let expected = sorted(counts.collect()?);
    // From now on, delete every map output just before the result stage's tasks start.
    let sabotage = Arc::new(AtomicBool::new(true));
    {
        let (sabotage, dir) = (sabotage.clone(), ctx.shuffle_dir());
        ctx.add_listener(move |e| {
            if sabotage.load(Ordering::SeqCst) && matches!(e, SchedulerEvent::StageSubmitted { shuffle: None, .. }) {
                for f in files_under(&dir) {
                    if f.extension().is_some_and(|x| x == "data") {
                        let _ = fs::remove_file(f);
                    }
                }
            }
        });
    }
    let err = counts.collect().expect_err("every attempt loses its input");
    match &err {
        EngineError::StageFailed { attempts, last, .. } => {
            assert_eq!(*attempts, 3, "{err:?}");
            assert!(matches!(**last, flint::TaskFailure::FetchFailed { .. }), "{last:?}");
        }
        other => panic!("expected StageFailed, got {other:?}"),
    }
    assert!(
        flint::report(&err).contains("resubmitted 3 times"),
        "{}",
        flint::report(&err)
    );
    sabotage.store(false, Ordering::SeqCst);
    assert_eq!(sorted(counts.collect()?), expected);
    Ok(())
}

#[test]
fn losing_every_map_output_of_a_shuffle_recomputes_them() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    // More map partitions than max_stage_attempts (4): recovering them one stage attempt
    // each would fail the job.
    let counts = ctx
        .range(0, 4000, 6)
        .map(|x: i64| (x as u64 % 50, x as u64))
        .reduce_by_key_into(|a: u64, b: u64| a + b, 3);
    let expected = sorted(counts.collect()?);
    let shuffle = the_shuffle(&events);
    for m in 0..6 {
        fs::remove_file(data_file(&ctx, shuffle, m))?;
    }
    events.clear();
    assert_eq!(sorted(counts.collect()?), expected);
    // The first fetch failure finds every lost output: they are recomputed together.
    let submissions = map_submissions(&events, shuffle);
    assert_eq!(
        submissions.first(),
        Some(&(0..6).collect::<Vec<_>>()),
        "{submissions:?}"
    );
    let mut rerun: Vec<usize> = submissions.concat();
    rerun.sort();
    rerun.dedup();
    assert_eq!(rerun, (0..6).collect::<Vec<_>>());
    Ok(())
}
