//! Accumulators: updates count once per successful task, never from failed attempts.

use std::fs::OpenOptions;

use flint::prelude::*;

use crate::common::{Events, TestResult, ctx, path_state};

/// Creates `marker` and returns true the first time it is called for that path (in any
/// thread or task): how a closure knows it runs in a task's first attempt.
fn first_time(marker: &str) -> bool {
    OpenOptions::new().write(true).create_new(true).open(marker).is_ok()
}

#[test]
fn accumulator_counts_once_when_a_task_fails_after_adding() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let dir = tempfile::tempdir()?;
    let marker = path_state(&dir.path().join("failed-once"));
    let seen = ctx.accumulator(0u64);
    // range(0, 1000, 4): partition 0 holds 0..250, so 249 is its last element. Its first
    // attempt adds 1 for each of its 250 elements, then panics.
    ctx.range(0, 1000, 4).foreach(with(
        (seen.clone(), marker),
        |s: &(Accumulator<u64>, String), x: i64| {
            s.0.add(1);
            if x == 249 && first_time(&s.1) {
                panic!("injected failure after adding");
            }
        },
    ))?;
    assert_eq!(seen.value(), 1000, "the failed attempt's additions are discarded");
    let failures = events.task_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("injected failure after adding"), "{failures:?}");
    Ok(())
}

#[test]
fn accumulator_in_a_map_stage_counts_once_per_successful_task() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let computed = ctx.accumulator(0u64);
    let state = (computed.clone(), path_state(dir.path()));
    let sums = ctx
        .range(0, 400, 4)
        .map_partitions_with_index(with(
            state,
            |s: &(Accumulator<u64>, String), split: usize, it: BoxIter<i64>| {
                let items: Vec<i64> = it.collect();
                s.0.add(items.len() as u64);
                if split == 2 && first_time(&format!("{}/map-{split}", s.1)) {
                    panic!("injected map failure");
                }
                items.into_iter().map(|x| (x % 4, x))
            },
        ))
        .reduce_by_key(|a: i64, b: i64| a + b);
    let mut out = sums.collect()?;
    out.sort();
    let expected: Vec<(i64, i64)> = (0..4).map(|k| (k, (0..400).filter(|x| x % 4 == k).sum())).collect();
    assert_eq!(out, expected);
    assert_eq!(computed.value(), 400);
    Ok(())
}

#[test]
fn accumulator_adds_on_the_driver_directly() {
    let ctx = ctx();
    let acc = ctx.accumulator(10i64);
    acc.add(5);
    acc.clone().add(-3);
    assert_eq!(acc.value(), 12);
    let f = ctx.accumulator(0.5f64);
    f.add(0.25);
    assert!((f.value() - 0.75).abs() < 1e-12);
}
