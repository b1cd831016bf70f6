//! Executors come and go: the driver dies, executors join mid-job or are decommissioned.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flint::{ExecutorId, SchedulerEvent};
use libtest_mimic::Trial;

use crate::common::{Events, SCENARIO_VAR, TestResult, alive, check, cluster, trial, wait_until};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "lifecycle::killing_the_driver_leaves_no_executor",
            killing_the_driver_leaves_no_executor,
        ),
        trial(
            "lifecycle::an_executor_joining_mid_job_gets_tasks",
            an_executor_joining_mid_job_gets_tasks,
        ),
        trial(
            "lifecycle::a_decommissioned_executor_leaves_cleanly",
            a_decommissioned_executor_leaves_cleanly,
        ),
        trial(
            "lifecycle::executors_delete_shuffles_nobody_can_read",
            executors_delete_shuffles_nobody_can_read,
        ),
    ]
}

/// Driver scenarios run in a child process of the test (`FLINT_IT_SCENARIO`).
pub fn run_scenario(name: &str) -> ExitCode {
    match name {
        // Starts a cluster, prints its executors' pids, then runs a job that never ends.
        "driver_hangs" => {
            let ctx = cluster(2, 1);
            let pids: Vec<String> = ctx.executors().iter().map(|e| e.pid.to_string()).collect();
            println!("executors {}", pids.join(" "));
            let _ = ctx
                .range(0, 4, 2)
                .map(|x: i64| {
                    std::thread::sleep(Duration::from_secs(3600));
                    x
                })
                .count();
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown scenario {other}");
            ExitCode::FAILURE
        }
    }
}

/// SIGKILL of a driver process in the middle of a job: its executors notice (the connection
/// closes) and exit; no process is left behind.
fn killing_the_driver_leaves_no_executor() -> TestResult {
    let mut driver = Command::new(std::env::current_exe()?)
        .env(SCENARIO_VAR, "driver_hangs")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(driver.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let pids: Vec<u32> = line
        .trim()
        .strip_prefix("executors ")
        .ok_or_else(|| format!("unexpected output {line:?}"))?
        .split_whitespace()
        .map(|p| p.parse::<u32>())
        .collect::<Result<_, _>>()?;
    check(
        pids.len() == 2 && pids.iter().all(|p| alive(*p)),
        format!("executors {pids:?} not running"),
    )?;
    driver.kill()?;
    driver.wait()?;
    // The heartbeat timeout of the scenario's cluster is 5 s; allow generous slack.
    let gone = wait_until(Duration::from_secs(30), || pids.iter().all(|p| !alive(*p)));
    check(gone, format!("executors {pids:?} outlived their driver"))
}

/// `request_executors` while a job runs: the new executor registers and runs some of the
/// job's tasks.
fn an_executor_joining_mid_job_gets_tasks() -> TestResult {
    let ctx = cluster(1, 1);
    let events = Events::record(&ctx);
    let requested = Arc::new(AtomicBool::new(false));
    let error = Arc::new(Mutex::new(None));
    {
        let ctx2 = ctx.clone();
        let requested = requested.clone();
        let error = error.clone();
        ctx.add_listener(move |e| {
            if matches!(e, SchedulerEvent::TaskEnded { failure: None, .. }) && !requested.swap(true, Ordering::SeqCst) {
                // From another thread: listeners run on the scheduler's thread.
                let ctx3 = ctx2.clone();
                let error = error.clone();
                std::thread::spawn(move || {
                    if let Err(e) = ctx3.request_executors(1) {
                        *error.lock().expect("lock") = Some(e.to_string());
                    }
                });
            }
        });
    }
    let total = ctx
        .range(0, 40, 20)
        .map(|x: i64| {
            std::thread::sleep(Duration::from_millis(250));
            x
        })
        .reduce(|a, b| a + b)?;
    check(total == (0..40).sum::<i64>(), format!("wrong total {total}"))?;
    if let Some(e) = error.lock().expect("lock").take() {
        return Err(e.into());
    }
    let added: Vec<ExecutorId> = events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            SchedulerEvent::ExecutorAdded { executor, .. } => Some(executor),
            _ => None,
        })
        .collect();
    check(added == vec![ExecutorId(1)], format!("executors added: {added:?}"))?;
    let on_new = events
        .successes()
        .iter()
        .filter(|(_, _, e)| *e == Some(ExecutorId(1)))
        .count();
    check(on_new > 0, "the executor that joined ran no task")
}

/// A decommissioned executor gets no more tasks and exits; jobs keep giving right answers.
fn a_decommissioned_executor_leaves_cleanly() -> TestResult {
    let ctx = cluster(2, 1);
    let events = Events::record(&ctx);
    let pairs = ctx
        .range(0, 1000, 4)
        .map(|x: i64| (x % 10, x))
        .reduce_by_key(|a, b| a + b);
    let before = crate::common::sorted(pairs.collect()?);
    let leaving = ctx.executors()[0].clone();
    ctx.decommission_executor(leaving.id)?;
    let gone = wait_until(Duration::from_secs(20), || !alive(leaving.pid));
    check(gone, "the decommissioned executor did not exit")?;
    check(
        ctx.executors().len() == 1,
        format!("executors left: {:?}", ctx.executors()),
    )?;
    events.clear();
    let after = crate::common::sorted(pairs.collect()?);
    check(before == after, "answers differ after decommissioning")?;
    let on_leaver = events
        .successes()
        .iter()
        .filter(|(_, _, e)| *e == Some(leaving.id))
        .count();
    check(on_leaver == 0, "the decommissioned executor ran tasks")
}

/// When no RDD can read a shuffle again, its files are deleted on the executors too (as
/// Spark's `ContextCleaner`): iterative jobs do not fill executors' disks.
fn executors_delete_shuffles_nobody_can_read() -> TestResult {
    let ctx = cluster(2, 1);
    let app_dir = ctx.shuffle_dir().parent().ok_or("no app dir")?.to_path_buf();
    {
        let sums = ctx
            .range(0, 1000, 4)
            .map(|x: i64| (x % 7, x))
            .reduce_by_key(|a, b| a + b);
        check(sums.count()? == 7, "wrong count")?;
        let files = crate::common::files_ending(&app_dir, ".data");
        check(
            files.len() == 4,
            format!("expected 4 map outputs on the executors, found {files:?}"),
        )?;
    }
    let gone = wait_until(Duration::from_secs(10), || {
        crate::common::files_ending(&app_dir, ".data").is_empty()
    });
    check(
        gone,
        "shuffle files stayed on the executors after their RDD was dropped",
    )
}
