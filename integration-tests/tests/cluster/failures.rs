//! Real failures: executors SIGKILLed mid-stage, shuffle files deleted or damaged on an
//! executor, a task that aborts its executor. Each ends in the right answer (or a clear error),
//! and the scheduler's events show that only what was lost was recomputed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flint::prelude::*;
use flint::{ExecutorId, SchedulerEvent};
use libtest_mimic::Trial;

use crate::common::{Events, TestResult, builder, check, cluster, files_ending, local, pid_of, sigkill, sorted, trial};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("failures::sigkill_during_a_map_stage", sigkill_during_a_map_stage),
        trial("failures::sigkill_during_a_reduce_stage", sigkill_during_a_reduce_stage),
        trial(
            "failures::sigkill_during_an_iterative_job_with_a_cached_rdd",
            sigkill_during_an_iterative_job,
        ),
        trial(
            "failures::deleted_shuffle_file_on_an_executor",
            deleted_shuffle_file_on_an_executor,
        ),
        trial(
            "failures::corrupted_shuffle_file_on_an_executor",
            corrupted_shuffle_file_on_an_executor,
        ),
        trial(
            "failures::a_task_that_aborts_its_executor_fails_the_job",
            a_task_that_aborts_its_executor,
        ),
    ]
}

/// Sums per key of a slow map stage (each element takes `delay_ms`).
fn keyed_sums(ctx: &Context, delay_ms: u64) -> Rdd<(i64, i64)> {
    ctx.range(0, 600, 6)
        .map(with(delay_ms, |d: &u64, x: i64| {
            if x % 100 == 0 {
                std::thread::sleep(Duration::from_millis(*d));
            }
            (x % 17, x)
        }))
        .reduce_by_key(|a, b| a + b)
}

fn expected_sums() -> Vec<(i64, i64)> {
    sorted(keyed_sums(&local(), 0).collect().expect("local reference"))
}

/// Kills (once) the executor that ran the first successful task of a map stage (`map`) or of
/// a result stage.
fn kill_on_first_success(ctx: &Context, map: bool) -> Arc<Mutex<Option<ExecutorId>>> {
    let killed = Arc::new(Mutex::new(None));
    let fired = Arc::new(AtomicBool::new(false));
    let map_stages = Arc::new(Mutex::new(BTreeSet::new()));
    let ctx2 = ctx.clone();
    let victim = killed.clone();
    ctx.add_listener(move |e| match e {
        SchedulerEvent::StageSubmitted {
            stage,
            shuffle: Some(_),
            ..
        } => {
            map_stages.lock().expect("lock").insert(*stage);
        }
        SchedulerEvent::TaskEnded {
            task,
            failure: None,
            executor: Some(executor),
        } if map_stages.lock().expect("lock").contains(&task.stage) == map && !fired.swap(true, Ordering::SeqCst) => {
            sigkill(pid_of(&ctx2, *executor));
            *victim.lock().expect("lock") = Some(*executor);
        }
        _ => {}
    });
    killed
}

/// Successful attempts per partition, and the partitions that succeeded on `executor`.
fn successes(
    ends: Vec<(String, usize, Option<ExecutorId>)>,
    executor: ExecutorId,
) -> (BTreeMap<usize, usize>, BTreeSet<usize>) {
    let mut counts = BTreeMap::new();
    let mut on = BTreeSet::new();
    for (_, p, e) in ends {
        *counts.entry(p).or_default() += 1;
        if e == Some(executor) {
            on.insert(p);
        }
    }
    (counts, on)
}

fn sigkill_during_a_map_stage() -> TestResult {
    let ctx = cluster(3, 1);
    let events = Events::record(&ctx);
    let killed = kill_on_first_success(&ctx, true);
    let got = sorted(keyed_sums(&ctx, 300).collect()?);
    check(got == expected_sums(), "wrong answer after losing an executor")?;
    let victim = killed.lock().expect("lock").ok_or("no executor was killed")?;
    check(
        events.lost().iter().any(|(e, _)| *e == victim),
        "the loss was not reported",
    )?;
    let (counts, lost) = successes(events.map_successes(), victim);
    for p in 0..6 {
        let want = 1 + usize::from(lost.contains(&p));
        check(
            counts.get(&p) == Some(&want),
            format!(
                "map partition {p} succeeded {:?} times, expected {want} (lost: {lost:?})",
                counts.get(&p)
            ),
        )?;
    }
    Ok(())
}

fn sigkill_during_a_reduce_stage() -> TestResult {
    let ctx = cluster(3, 1);
    let events = Events::record(&ctx);
    let killed = kill_on_first_success(&ctx, false);
    // Slow reduce tasks, so that some start after the kill and need the lost map outputs.
    let got = sorted(
        keyed_sums(&ctx, 0)
            .map(|kv: (i64, i64)| {
                std::thread::sleep(Duration::from_millis(20));
                kv
            })
            .collect()?,
    );
    check(got == expected_sums(), "wrong answer after losing an executor")?;
    let victim = killed.lock().expect("lock").ok_or("no executor was killed")?;
    let (maps, lost_maps) = successes(events.map_successes(), victim);
    for p in 0..6 {
        let n = maps.get(&p).copied().unwrap_or(0);
        let ok = if lost_maps.contains(&p) {
            n == 1 || n == 2
        } else {
            n == 1
        };
        check(
            ok,
            format!("map partition {p} succeeded {n} times (lost: {lost_maps:?})"),
        )?;
    }
    check(
        lost_maps.iter().any(|p| maps.get(p) == Some(&2)),
        format!("no lost map output was recomputed (lost: {lost_maps:?}, successes: {maps:?})"),
    )?;
    let (reduces, _) = successes(events.result_successes(), victim);
    check(
        reduces.values().all(|n| *n == 1),
        format!("a result partition was computed twice: {reduces:?}"),
    )
}

fn sigkill_during_an_iterative_job() -> TestResult {
    let ctx = cluster(3, 1);
    let events = Events::record(&ctx);
    let computed = ctx.accumulator(Vec::<usize>::new());
    let data = ctx
        .range(0, 6000, 6)
        .map_partitions_with_index(with(
            computed.clone(),
            |acc: &Accumulator<Vec<usize>>, p: usize, it: BoxIter<i64>| {
                acc.add(vec![p]);
                it.map(|x| x * 3)
            },
        ))
        .cache();
    let expected: i64 = (0..6000).map(|x| x * 3).sum();
    let mut first_placement = BTreeMap::new();
    for i in 0..6 {
        if i == 3 {
            // Each partition is cached where its first computation ran.
            for (_, p, e) in events.successes() {
                first_placement.entry(p).or_insert(e);
            }
            let victim = ctx.executors()[0].clone();
            sigkill(victim.pid);
            let lost: BTreeSet<usize> = first_placement
                .iter()
                .filter(|(_, e)| **e == Some(victim.id))
                .map(|(p, _)| *p)
                .collect();
            let sum = data.reduce(|a, b| a + b)?;
            check(sum == expected, format!("iteration {i}: wrong sum {sum}"))?;
            let mut counts = BTreeMap::new();
            for p in computed.value() {
                *counts.entry(p).or_insert(0) += 1;
            }
            for p in 0..6 {
                let want = 1 + usize::from(lost.contains(&p));
                check(
                    counts.get(&p) == Some(&want),
                    format!(
                        "partition {p} computed {:?} times, expected {want} (cached on the killed executor: {lost:?})",
                        counts.get(&p)
                    ),
                )?;
            }
            continue;
        }
        let sum = data.reduce(|a, b| a + b)?;
        check(sum == expected, format!("iteration {i}: wrong sum {sum}"))?;
    }
    check(
        computed.value().len() <= 12,
        "partitions were recomputed more than needed",
    )
}

/// The map output files of the executors of `ctx`, by map partition.
fn map_outputs(ctx: &Context) -> BTreeMap<usize, std::path::PathBuf> {
    let app_dir = ctx.shuffle_dir().parent().expect("app dir").to_path_buf();
    files_ending(&app_dir, ".data")
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            let map_id = name.split('_').nth(2)?.split('.').next()?.parse().ok()?;
            Some((map_id, path))
        })
        .collect()
}

fn damaged_shuffle_file(damage: fn(&std::path::Path)) -> TestResult {
    let ctx = builder(2, 1).build()?;
    let events = Events::record(&ctx);
    let sums = keyed_sums(&ctx, 0);
    let first = sorted(sums.collect()?);
    check(first == expected_sums(), "wrong first answer")?;
    let outputs = map_outputs(&ctx);
    check(outputs.len() == 6, format!("expected 6 map outputs, found {outputs:?}"))?;
    let (victim, path) = outputs.iter().nth(3).map(|(p, f)| (*p, f.clone())).expect("an output");
    damage(&path);
    events.clear();
    let second = sorted(sums.collect()?);
    check(second == first, "wrong answer after damaging a shuffle file")?;
    let resubmitted: Vec<Vec<usize>> = events.map_submissions();
    check(
        resubmitted == vec![vec![victim]],
        format!("expected only map partition {victim} to be recomputed, got {resubmitted:?}"),
    )
}

fn deleted_shuffle_file_on_an_executor() -> TestResult {
    damaged_shuffle_file(|path| std::fs::remove_file(path).expect("delete the data file"))
}

fn corrupted_shuffle_file_on_an_executor() -> TestResult {
    damaged_shuffle_file(|path| {
        let mut bytes = std::fs::read(path).expect("read the data file");
        let mid = bytes.len() / 2;
        let end = (mid + 8).min(bytes.len());
        for b in &mut bytes[mid..end] {
            *b ^= 0x5a;
        }
        std::fs::write(path, bytes).expect("write the data file");
    })
}

fn a_task_that_aborts_its_executor() -> TestResult {
    let ctx = builder(2, 1).max_task_failures(2).build()?;
    let err = match ctx
        .range(0, 100, 4)
        .map(|x: i64| {
            if x == 60 {
                std::process::abort();
            }
            x
        })
        .count()
    {
        Ok(_) => return Err("a job whose task aborts its executor succeeded".into()),
        Err(e) => flint::report(&e),
    };
    check(
        err.contains("partition 2") && err.contains("SIGABRT") && err.contains("failed 2 times"),
        format!("unclear error: {err}"),
    )?;
    // Lost executors were replaced; an unrelated job runs.
    check(ctx.range(0, 10, 2).count()? == 10, "the context broke")
}
