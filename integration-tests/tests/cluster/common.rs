//! Helpers of the distributed tests: cluster contexts, event records, process checks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flint::prelude::*;
use flint::{ExecutorId, SchedulerEvent, StageId};
use libtest_mimic::Trial;

/// Environment variable that makes this binary run a driver scenario instead of tests.
pub const SCENARIO_VAR: &str = "FLINT_IT_SCENARIO";

/// What a test returns.
pub use flint_integration_tests::{TestResult, alive, check, sigkill, wait_until};

/// A trial from a test function.
pub fn trial(name: &'static str, f: fn() -> TestResult) -> Trial {
    Trial::test(name, f)
}

/// A `local-cluster[executors,cores]` context with test-friendly timeouts.
pub fn cluster(executors: usize, cores: usize) -> Context {
    builder(executors, cores).build().expect("the cluster starts")
}

/// The builder of [`cluster`], to add settings.
pub fn builder(executors: usize, cores: usize) -> flint::ContextBuilder {
    Context::builder()
        .master(format!("local-cluster[{executors},{cores}]"))
        .show_progress(false)
        .set("heartbeat_interval", "200ms")
        .and_then(|b| b.set("heartbeat_timeout", "5s"))
        .and_then(|b| b.set("locality_wait", "1s"))
        .expect("valid settings")
}

/// A local context for reference answers.
pub fn local() -> Context {
    Context::builder()
        .master("local[2]")
        .show_progress(false)
        .build()
        .expect("a local context")
}

/// Records every scheduler event of a context.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<SchedulerEvent>>>);

impl Events {
    /// Starts recording the events of `ctx`.
    pub fn record(ctx: &Context) -> Events {
        let events = Events::default();
        let sink = events.0.clone();
        ctx.add_listener(move |e| sink.lock().expect("events lock").push(e.clone()));
        events
    }

    /// Events so far.
    pub fn all(&self) -> Vec<SchedulerEvent> {
        self.0.lock().expect("events lock").clone()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.0.lock().expect("events lock").clear();
    }

    /// Successful task ends: (stage name, partition, executor).
    pub fn successes(&self) -> Vec<(String, usize, Option<ExecutorId>)> {
        self.successes_in(|_| true)
    }

    /// Successful task ends of map stages (those that write a shuffle).
    pub fn map_successes(&self) -> Vec<(String, usize, Option<ExecutorId>)> {
        let maps = self.map_stages();
        self.successes_in(|s| maps.contains(&s))
    }

    /// Successful task ends of result stages.
    pub fn result_successes(&self) -> Vec<(String, usize, Option<ExecutorId>)> {
        let maps = self.map_stages();
        self.successes_in(|s| !maps.contains(&s))
    }

    fn successes_in(&self, keep: impl Fn(StageId) -> bool) -> Vec<(String, usize, Option<ExecutorId>)> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SchedulerEvent::TaskEnded {
                    task,
                    failure: None,
                    executor,
                } if keep(task.stage) => Some((task.stage_name, task.partition, executor)),
                _ => None,
            })
            .collect()
    }

    /// Stages that write a shuffle.
    pub fn map_stages(&self) -> Vec<StageId> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SchedulerEvent::StageSubmitted {
                    stage,
                    shuffle: Some(_),
                    ..
                } => Some(stage),
                _ => None,
            })
            .collect()
    }

    /// Partitions submitted for map stages, one entry per submission.
    pub fn map_submissions(&self) -> Vec<Vec<usize>> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SchedulerEvent::StageSubmitted {
                    partitions,
                    shuffle: Some(_),
                    ..
                } => Some(partitions),
                _ => None,
            })
            .collect()
    }

    /// Executors lost so far, with the reasons.
    pub fn lost(&self) -> Vec<(ExecutorId, String)> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SchedulerEvent::ExecutorLost { executor, reason } => Some((executor, reason)),
                _ => None,
            })
            .collect()
    }
}

/// The pid of executor `id`.
pub fn pid_of(ctx: &Context, id: ExecutorId) -> u32 {
    ctx.executors()
        .into_iter()
        .find(|e| e.id == id)
        .map(|e| e.pid)
        .unwrap_or_else(|| panic!("executor {id} is not live"))
}

/// Every regular file under `dir` whose name ends with `suffix`.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Words of a small deterministic text, one line per `words_per_line` words.
pub fn write_text(dir: &Path, lines: usize, words_per_line: usize) -> PathBuf {
    let path = dir.join("input.txt");
    let mut text = String::new();
    let mut state = 7u64;
    for _ in 0..lines {
        for w in 0..words_per_line {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if w > 0 {
                text.push(' ');
            }
            text.push_str(&format!("w{}", (state >> 33) % 500));
        }
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write the input");
    path
}

/// The elements, sorted.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
