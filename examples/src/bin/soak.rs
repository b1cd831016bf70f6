//! `soak [--minutes M] [--executors E] [--kill-every-ms MS] [--seed S] [--json]`
//!
//! A bounded soak of distributed mode: runs jobs (a wordcount-like aggregation, a sort, an
//! iteration over a cached RDD) back to back in `local-cluster[E,1]` for `--minutes`, while a
//! killer thread SIGKILLs a random executor at random intervals (uniform in
//! `[kill-every-ms / 2, 3 * kill-every-ms / 2]`). Every answer is checked against a
//! sequential reference. Prints jobs run, executors killed, task attempts that failed,
//! partitions resubmitted and wrong answers (which must be zero). RELIABILITY.md records runs.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use flint::SchedulerEvent;
use flint::prelude::*;
use flint_examples::cli;
use rand::{RngExt, SeedableRng};

/// Runs jobs for a while with executors killed at random.
#[derive(Parser, Debug)]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// Executors (one core each).
    #[arg(long, default_value_t = 3)]
    executors: usize,
    /// Mean interval between kills.
    #[arg(long, default_value_t = 4000)]
    kill_every_ms: u64,
    /// Seed of the kill schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object with the counts.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Counts {
    failed_attempts: AtomicU64,
    resubmitted_partitions: AtomicU64,
    executors_lost: AtomicU64,
}

fn main() {
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let ctx = Context::builder()
            .master(format!("local-cluster[{},1]", args.executors))
            .app_name("soak")
            .show_progress(false)
            .set("max_executor_restarts", "100000")?
            .max_task_failures(8)
            .build()?;
        let counts = Arc::new(Counts::default());
        let submitted: Arc<Mutex<BTreeMap<(u64, u64), u64>>> = Arc::default();
        {
            let counts = counts.clone();
            let submitted = submitted.clone();
            ctx.add_listener(move |e| match e {
                SchedulerEvent::TaskEnded { failure: Some(_), .. } => {
                    counts.failed_attempts.fetch_add(1, Ordering::Relaxed);
                }
                SchedulerEvent::ExecutorLost { .. } => {
                    counts.executors_lost.fetch_add(1, Ordering::Relaxed);
                }
                SchedulerEvent::StageSubmitted {
                    job, stage, partitions, ..
                } => {
                    // A stage submitted again within one job recomputes lost partitions.
                    let mut seen = submitted.lock().expect("lock");
                    let n = seen.entry((job.0, stage.0)).or_insert(0);
                    if *n > 0 {
                        counts
                            .resubmitted_partitions
                            .fetch_add(partitions.len() as u64, Ordering::Relaxed);
                    }
                    *n += 1;
                }
                _ => {}
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicU64::new(0));
        let killer = {
            let ctx = ctx.clone();
            let stop = stop.clone();
            let kills = kills.clone();
            let (seed, mean) = (args.seed, args.kill_every_ms.max(2));
            std::thread::spawn(move || {
                let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
                while !stop.load(Ordering::Relaxed) {
                    let wait = Instant::now() + Duration::from_millis(rng.random_range(mean / 2..mean * 3 / 2));
                    while Instant::now() < wait && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let executors = ctx.executors();
                    if stop.load(Ordering::Relaxed) || executors.len() < 2 {
                        continue;
                    }
                    let victim = &executors[rng.random_range(0..executors.len())];
                    let killed = std::process::Command::new("kill")
                        .args(["-9", &victim.pid.to_string()])
                        .status()
                        .is_ok_and(|s| s.success());
                    if killed {
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };

        let deadline = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
        let (mut jobs, mut wrong, mut failed_jobs) = (0u64, 0u64, 0u64);
        let cached = ctx.range(0, 200_000, 6).map(|x: i64| x % 1000).cache();
        let cached_sum: i64 = (0..200_000i64).map(|x| x % 1000).sum();
        let mut round = 0u64;
        while Instant::now() < deadline {
            round += 1;
            let n = 100_000 + (round % 7) as i64 * 10_000;
            // Aggregation by key (two stages).
            let by_key = ctx
                .range(0, n, 6)
                .map(|x: i64| (x % 101, 1u64))
                .reduce_by_key(|a, b| a + b)
                .collect();
            let expected: BTreeMap<i64, u64> = (0..n).fold(BTreeMap::new(), |mut m, x| {
                *m.entry(x % 101).or_insert(0) += 1;
                m
            });
            check(
                by_key.map(|v| v.into_iter().collect::<BTreeMap<_, _>>() == expected),
                &mut wrong,
                &mut failed_jobs,
            );
            // Sort (range partitioner sampling + shuffle).
            let sorted = ctx
                .range(0, n, 6)
                .map(with(n, |n: &i64, x: i64| ((x * 7919) % n, x)))
                .sort_by_key(true, 4)
                .keys()
                .collect();
            check(
                sorted.map(|v| v == (0..n).collect::<Vec<_>>()),
                &mut wrong,
                &mut failed_jobs,
            );
            // An iteration over a cached RDD.
            check(
                cached.reduce(|a, b| a + b).map(|s| s == cached_sum),
                &mut wrong,
                &mut failed_jobs,
            );
            jobs += 3;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = killer.join();
        let report = serde_json::json!({
            "minutes": args.minutes,
            "executors": args.executors,
            "jobs": jobs,
            "executors_killed": kills.load(Ordering::Relaxed),
            "executors_lost": counts.executors_lost.load(Ordering::Relaxed),
            "failed_task_attempts": counts.failed_attempts.load(Ordering::Relaxed),
            "resubmitted_partitions": counts.resubmitted_partitions.load(Ordering::Relaxed),
            "failed_jobs": failed_jobs,
            "wrong_answers": wrong,
        });
        if args.json {
            println!("{report}");
        } else {
            println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        }
        if wrong > 0 {
            return Err(flint::EngineError::Internal(format!("{wrong} wrong answers")));
        }
        Ok(())
    });
}

/// Counts a job's outcome: a wrong answer, or a failed job (an error, reported).
fn check(outcome: flint::Result<bool>, wrong: &mut u64, failed: &mut u64) {
    match outcome {
        Ok(true) => {}
        Ok(false) => *wrong += 1,
        Err(e) => {
            eprintln!("job failed: {}", flint::report(&e));
            *failed += 1;
        }
    }
}
