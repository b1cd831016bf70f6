//! User code that panics: retried until it succeeds, or reported precisely when it never does.

use std::collections::BTreeMap;
use std::fs::OpenOptions;

use flint::prelude::*;
use flint::{SchedulerEvent, TaskFailure};

use crate::common::{Events, TestResult, ctx, path_state};

/// True the first time it is called for `marker` (creates the file).
fn first_time(marker: &str) -> bool {
    OpenOptions::new().write(true).create_new(true).open(marker).is_ok()
}

/// Panics in the first attempt of every partition, in the map stage and in the result stage.
#[test]
fn closures_that_panic_on_their_first_attempt_still_give_the_right_answer() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let dir = tempfile::tempdir()?;
    let state = path_state(dir.path());
    let sums = ctx
        .range(0, 1000, 4)
        .map_partitions_with_index(with(state.clone(), |dir: &String, split: usize, it: BoxIter<i64>| {
            if first_time(&format!("{dir}/map-{split}")) {
                panic!("injected map failure in partition {split}");
            }
            it.map(|x| (x % 7, x))
        }))
        .reduce_by_key_into(|a: i64, b: i64| a + b, 3)
        .map_partitions_with_index(with(state, |dir: &String, split: usize, it: BoxIter<(i64, i64)>| {
            if first_time(&format!("{dir}/result-{split}")) {
                panic!("injected result failure in partition {split}");
            }
            it
        }));
    let out: BTreeMap<i64, i64> = sums.collect()?.into_iter().collect();
    let mut expected = BTreeMap::new();
    for x in 0..1000i64 {
        *expected.entry(x % 7).or_insert(0) += x;
    }
    assert_eq!(out, expected);
    let failures = events.task_failures();
    assert_eq!(
        failures.iter().filter(|f| f.contains("injected map failure")).count(),
        4,
        "{failures:?}"
    );
    assert_eq!(
        failures
            .iter()
            .filter(|f| f.contains("injected result failure"))
            .count(),
        3,
        "{failures:?}"
    );
    // Every failed task succeeded on its second attempt (attempt 1).
    let retried_ok = events
        .all()
        .iter()
        .filter(|e| matches!(e, SchedulerEvent::TaskEnded { task, failure: None, .. } if task.attempt == 1))
        .count();
    assert_eq!(retried_ok, 7);
    Ok(())
}

fn cursed(x: i64) -> i64 {
    if x == 42 {
        panic!("element {x} is cursed");
    }
    x
}

#[test]
fn a_closure_that_always_panics_fails_the_job_with_a_precise_report() -> TestResult {
    let ctx = ctx();
    let input = ctx.range(0, 100, 4);
    // 42 lies in partition 1 (25..50).
    let (rdd, line) = (input.map(cursed), line!());
    let err = rdd.collect().expect_err("the job fails");
    let text = flint::report(&err);
    match &err {
        EngineError::TaskFailed { task, attempts, last } => {
            assert_eq!(*attempts, 4, "{text}");
            assert_eq!(task.partition, 1);
            assert_eq!(task.attempt, 3, "the last of 4 attempts");
            assert_eq!(task.stage_name, format!("map at tasks.rs:{line}"));
            match &**last {
                TaskFailure::Panic { message, location } => {
                    assert_eq!(message, "element 42 is cursed");
                    assert!(
                        location.as_deref().is_some_and(|l| l.contains("tasks.rs")),
                        "{location:?}"
                    );
                }
                other => panic!("expected a panic, got {other:?}"),
            }
            let expected_start = format!(
                "job {}, stage {} (map at tasks.rs:{line}), partition 1, attempt 3 failed 4 times",
                task.job, task.stage
            );
            assert!(text.starts_with(&expected_start), "{text}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(text.contains("element 42 is cursed"), "{text}");
    // The context is still usable.
    assert_eq!(ctx.range(0, 100, 4).filter(|x: &i64| *x != 42).count()?, 99);
    Ok(())
}

#[test]
fn a_failing_action_names_the_call_site_of_the_action() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.range(0, 10, 2).map(cursed2);
    let (result, line) = (rdd.count(), line!());
    let err = result.expect_err("the job fails");
    let text = flint::report(&err);
    assert!(text.contains(&format!("(count at tasks.rs:{line})")), "{text}");
    assert!(text.contains("failed 4 times"), "{text}");
    assert!(text.contains("user code panicked: always"), "{text}");
    Ok(())
}

fn cursed2(_: i64) -> i64 {
    panic!("always")
}

#[test]
fn max_task_failures_bounds_the_attempts() -> TestResult {
    let ctx = Context::builder().master("local[2]").max_task_failures(2).build()?;
    let events = Events::record(&ctx);
    let err = ctx.range(0, 10, 1).map(cursed2).collect().expect_err("the job fails");
    assert!(matches!(err, EngineError::TaskFailed { attempts: 2, .. }), "{err:?}");
    assert_eq!(events.task_failures().len(), 2);
    Ok(())
}

#[test]
fn a_failure_in_a_map_stage_names_the_shuffle_operation() -> TestResult {
    let ctx = ctx();
    let pairs = ctx.range(0, 100, 4).map(|x: i64| (x % 5, cursed(x)));
    let (counts, line) = (pairs.reduce_by_key(|a: i64, b: i64| a + b), line!());
    let err = counts.collect().expect_err("the job fails");
    match &err {
        EngineError::TaskFailed { task, attempts: 4, .. } => {
            assert_eq!(task.stage_name, format!("reduce_by_key at tasks.rs:{line}"));
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    // Same context, a job that works.
    let ok = ctx
        .range(0, 40, 4)
        .map(|x: i64| (x % 5, x))
        .reduce_by_key(|a: i64, b: i64| a + b)
        .count()?;
    assert_eq!(ok, 5);
    Ok(())
}

#[test]
fn to_local_iterator_reports_a_failure_once_then_ends() -> TestResult {
    let ctx = ctx();
    // Partition 0 (0..25) is fine; partition 1 holds 42.
    let mut it = ctx.range(0, 100, 4).map(cursed).to_local_iterator();
    for expected in 0..25 {
        assert_eq!(it.next().transpose()?, Some(expected));
    }
    assert!(matches!(it.next(), Some(Err(EngineError::TaskFailed { .. }))));
    assert!(it.next().is_none());
    Ok(())
}
