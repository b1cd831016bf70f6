//! Job control: concurrent jobs from several threads, cancellation, scheduler events.

use std::collections::BTreeMap;
use std::time::Duration;

use flint::SchedulerEvent;
use flint::prelude::*;

use crate::common::{Events, TestResult, ctx, pairs, wait_until};

#[test]
fn concurrent_jobs_from_several_threads_all_give_right_answers() -> TestResult {
    let ctx = ctx();
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let ctx = ctx.clone();
            std::thread::spawn(move || -> flint::Result<bool> {
                let data = pairs(100 + t, 3000, 50 + t * 10);
                let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
                for (k, v) in &data {
                    *expected.entry(*k).or_insert(0) += v;
                }
                for _ in 0..3 {
                    let out = ctx
                        .parallelize(data.clone(), 4)
                        .reduce_by_key(|a: i64, b: i64| a + b)
                        .collect()?;
                    let got: BTreeMap<u64, i64> = out.into_iter().collect();
                    if got != expected {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let ok = h.join().map_err(|_| format!("thread {t} panicked"))??;
        assert!(ok, "thread {t} got a wrong answer");
    }
    Ok(())
}

fn slow(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(1));
    x
}

#[test]
fn a_job_cancelled_from_another_thread_returns_cancelled() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    // 200 tasks of 25 ms each: about 2.5 s of work on two slots, far longer than cancelling takes.
    let job = {
        let ctx = ctx.clone();
        std::thread::spawn(move || ctx.range(0, 5000, 200).map(slow).count())
    };
    assert!(
        wait_until(Duration::from_secs(20), || events
            .all()
            .iter()
            .any(|e| matches!(e, SchedulerEvent::TaskEnded { failure: None, .. }))),
        "the job starts running tasks"
    );
    let running = ctx.running_jobs();
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(ctx.cancel_job(running[0]));
    let result = job.join().map_err(|_| "job thread panicked")?;
    match result {
        Err(EngineError::Cancelled { job }) => assert_eq!(job, running[0]),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    let finished = events
        .all()
        .iter()
        .filter(|e| matches!(e, SchedulerEvent::TaskEnded { failure: None, .. }))
        .count();
    assert!(finished < 200, "the job stopped early ({finished} tasks finished)");
    assert!(events.all().contains(&SchedulerEvent::JobEnded {
        job: running[0],
        succeeded: false
    }));
    assert!(ctx.running_jobs().is_empty());
    assert!(!ctx.cancel_job(running[0]), "a finished job cannot be cancelled");
    // The context still runs jobs.
    assert_eq!(ctx.range(0, 100, 4).count()?, 100);
    Ok(())
}

#[test]
fn a_stopped_context_refuses_jobs() -> TestResult {
    let ctx = ctx();
    assert_eq!(ctx.range(0, 10, 2).count()?, 10);
    ctx.stop();
    assert!(matches!(ctx.range(0, 10, 2).count(), Err(EngineError::Stopped)));
    Ok(())
}

#[test]
fn listeners_see_jobs_stages_and_skipped_shuffle_stages() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let counts = ctx
        .range(0, 100, 4)
        .map(|x: i64| (x % 3, 1u64))
        .reduce_by_key(|a: u64, b: u64| a + b);
    counts.collect()?;
    let first = events.all();
    let submitted: Vec<(Option<flint::ShuffleId>, Vec<usize>)> = first
        .iter()
        .filter_map(|e| match e {
            SchedulerEvent::StageSubmitted {
                shuffle, partitions, ..
            } => Some((*shuffle, partitions.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(submitted.len(), 2, "{first:?}");
    assert!(
        submitted[0].0.is_some() && submitted[0].1 == vec![0, 1, 2, 3],
        "map stage first: {submitted:?}"
    );
    assert!(submitted[1].0.is_none(), "then the result stage: {submitted:?}");
    assert!(matches!(first.first(), Some(SchedulerEvent::JobStarted { stages, .. }) if stages.len() == 2));
    assert!(matches!(
        first.last(),
        Some(SchedulerEvent::JobEnded { succeeded: true, .. })
    ));
    events.clear();
    // A second job on the same shuffle skips its map stage.
    counts.collect()?;
    let second = events.all();
    assert!(
        second.iter().any(|e| matches!(e, SchedulerEvent::StageSkipped { .. })),
        "{second:?}"
    );
    assert!(
        !second
            .iter()
            .any(|e| matches!(e, SchedulerEvent::StageSubmitted { shuffle: Some(_), .. })),
        "{second:?}"
    );
    Ok(())
}

#[test]
fn concurrent_jobs_on_the_same_shuffle_agree() -> TestResult {
    let ctx = ctx();
    let data = pairs(7, 5000, 30);
    let counts = ctx.parallelize(data.clone(), 6).reduce_by_key(|a: i64, b: i64| a + b);
    let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
    for (k, v) in &data {
        *expected.entry(*k).or_insert(0) += v;
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let counts = counts.clone();
            std::thread::spawn(move || {
                counts
                    .collect()
                    .map(|out| out.into_iter().collect::<BTreeMap<u64, i64>>())
            })
        })
        .collect();
    for h in handles {
        let got = h.join().map_err(|_| "job thread panicked")??;
        assert_eq!(got, expected);
    }
    Ok(())
}

fn slow_pair(x: i64) -> (i64, i64) {
    std::thread::sleep(Duration::from_millis(1));
    (x % 10, x)
}

/// Sleeps 100 us for each element: 20,000 elements make a task of about 2 s.
fn quick_slow_pair(x: i64) -> (i64, i64) {
    std::thread::sleep(Duration::from_micros(100));
    (x % 10, x)
}

#[test]
fn cancelling_a_job_stops_its_running_map_tasks() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let sums = ctx
        .range(0, 40_000, 2)
        .map(quick_slow_pair)
        .reduce_by_key(|a: i64, b: i64| a + b);
    let job = {
        let sums = sums.clone();
        std::thread::spawn(move || sums.collect())
    };
    assert!(
        wait_until(Duration::from_secs(20), || !ctx.running_jobs().is_empty()),
        "the job starts"
    );
    let running = ctx.running_jobs();
    assert!(ctx.cancel_job(running[0]));
    assert!(matches!(
        job.join().map_err(|_| "job thread panicked")?,
        Err(EngineError::Cancelled { .. })
    ));
    // Both map tasks (about 2 s of work each) noticed the cancellation and stopped early
    // instead of running to the end.
    let failures = events.task_failures();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures.iter().all(|f| f.contains("killed")), "{failures:?}");
    Ok(())
}

#[test]
fn cancelling_a_job_group_stops_its_jobs_and_no_others() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let grouped = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            ctx.set_job_group("nightly");
            ctx.range(0, 5000, 200).map(slow).count()
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || events
            .all()
            .iter()
            .any(|e| matches!(e, SchedulerEvent::TaskEnded { failure: None, .. }))),
        "the grouped job starts running tasks"
    );
    assert_eq!(ctx.cancel_job_group("daily"), 0, "no job of another group is touched");
    assert_eq!(ctx.cancel_job_group("nightly"), 1);
    match grouped.join().map_err(|_| "job thread panicked")? {
        Err(EngineError::Cancelled { .. }) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    // This thread set no group: its jobs are not affected by cancelling the group again.
    assert_eq!(ctx.cancel_job_group("nightly"), 0);
    assert_eq!(ctx.range(0, 100, 4).count()?, 100);
    // A thread that clears its group runs untagged jobs.
    ctx.set_job_group("nightly");
    ctx.clear_job_group();
    assert_eq!(ctx.range(0, 10, 2).count()?, 10);
    Ok(())
}

#[test]
fn a_shuffle_interrupted_by_cancel_is_completed_by_the_next_job() -> TestResult {
    let ctx = ctx();
    let events = Events::record(&ctx);
    let sums = ctx
        .range(0, 4000, 160)
        .map(slow_pair)
        .reduce_by_key(|a: i64, b: i64| a + b);
    let job = {
        let sums = sums.clone();
        std::thread::spawn(move || sums.collect())
    };
    assert!(
        wait_until(Duration::from_secs(20), || events
            .all()
            .iter()
            .any(|e| matches!(e, SchedulerEvent::TaskEnded { failure: None, .. }))),
        "some map tasks finish"
    );
    ctx.cancel_all_jobs();
    assert!(matches!(
        job.join().map_err(|_| "job thread panicked")?,
        Err(EngineError::Cancelled { .. })
    ));
    events.clear();
    let out: BTreeMap<i64, i64> = sums.collect()?.into_iter().collect();
    let expected: BTreeMap<i64, i64> = (0..10).map(|k| (k, (0..4000).filter(|x| x % 10 == k).sum())).collect();
    assert_eq!(out, expected);
    // Only the map outputs the cancelled job did not finish are computed again.
    let rerun: usize = events
        .all()
        .iter()
        .filter_map(|e| match e {
            SchedulerEvent::StageSubmitted {
                shuffle: Some(_),
                partitions,
                ..
            } => Some(partitions.len()),
            _ => None,
        })
        .sum();
    assert!(rerun < 160, "{rerun} map tasks rerun");
    Ok(())
}
