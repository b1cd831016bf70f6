//! What a running task knows about itself, and how failures leave a task.
//!
//! Tasks are iterator pipelines (`Iterator<Item = T>`, no `Result` per element, so the inner
//! loops stay tight). An error in the middle of a pipeline (an unreadable line, a corrupt
//! shuffle block) leaves the task by unwinding with a [`TaskAbort`] payload; the task boundary
//! ([`run_task_body`]) catches it, and any other panic (user code), and turns both into a
//! [`TaskFailure`]. A task's partial output is discarded when it fails, so an iterator that
//! stopped early can never produce a wrong answer.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use crate::accumulator::AccumulatorUpdates;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, TaskFailure, TaskRef, report};
use crate::ids::ShuffleId;

/// Why a task stops early; carried as a panic payload from deep inside an iterator pipeline.
#[derive(Debug)]
pub(crate) enum TaskAbort {
    /// An engine error (I/O, bad input).
    Error(EngineError),
    /// A shuffle block is missing or corrupt: its map output must be recomputed.
    FetchFailed {
        shuffle: ShuffleId,
        map_id: usize,
        reduce_id: usize,
        output: Option<PathBuf>,
        detail: String,
    },
    /// The job was cancelled.
    Killed,
}

/// Leaves the current task with `err`. Only call inside a task body.
pub(crate) fn raise(err: EngineError) -> ! {
    panic::panic_any(TaskAbort::Error(err))
}

/// Leaves the current task with a fetch failure. Only call inside a task body.
/// `output` is the data file that failed (None when no output was registered at all).
pub(crate) fn raise_fetch_failed(
    shuffle: ShuffleId,
    map_id: usize,
    reduce_id: usize,
    output: Option<PathBuf>,
    detail: String,
) -> ! {
    panic::panic_any(TaskAbort::FetchFailed {
        shuffle,
        map_id,
        reduce_id,
        output,
        detail,
    })
}

/// The context of one running task attempt.
pub struct TaskContext {
    pub(crate) task: TaskRef,
    pub(crate) env: Arc<ExecutorEnv>,
    pub(crate) killed: Arc<AtomicBool>,
}

impl TaskContext {
    /// Partition this task computes.
    pub fn partition(&self) -> usize {
        self.task.partition
    }

    /// Attempt number of this task (0 for the first).
    pub fn attempt(&self) -> u32 {
        self.task.attempt
    }

    /// The task's name, for messages.
    pub fn task(&self) -> &TaskRef {
        &self.task
    }

    pub(crate) fn env(&self) -> &Arc<ExecutorEnv> {
        &self.env
    }

    /// Leaves the task if its job was cancelled.
    pub(crate) fn check_killed(&self) {
        if self.killed.load(Ordering::Relaxed) {
            panic::panic_any(TaskAbort::Killed);
        }
    }
}

thread_local! {
    /// Accumulator updates of the task running on this thread (None outside tasks).
    static CURRENT_UPDATES: RefCell<Option<AccumulatorUpdates>> = const { RefCell::new(None) };
    /// Set while a task body runs: panics here are task failures, not crashes, and are not printed.
    static IN_TASK: RefCell<Option<PanicInfoSlot>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct PanicInfoSlot {
    location: Option<String>,
}

/// Applies `f` to the current task's accumulator updates; returns false outside a task.
pub(crate) fn with_task_updates(f: impl FnOnce(&mut AccumulatorUpdates)) -> bool {
    CURRENT_UPDATES.with(|slot| match slot.borrow_mut().as_mut() {
        Some(updates) => {
            f(updates);
            true
        }
        None => false,
    })
}

static HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that keeps panics inside tasks quiet (they are
/// reported as task failures through `tracing`) and records where they happened. Panics
/// elsewhere go to the previous hook unchanged.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_task = IN_TASK.with(|slot| {
                let mut slot = slot.borrow_mut();
                match slot.as_mut() {
                    Some(s) => {
                        s.location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                        true
                    }
                    None => false,
                }
            });
            if !in_task && info.payload().downcast_ref::<TaskAbort>().is_none() {
                previous(info);
            }
        }));
    });
}

/// What a task body produced, plus the accumulator updates it made.
pub(crate) struct TaskOutcome<T> {
    pub(crate) result: Result<T, TaskFailure>,
    pub(crate) updates: AccumulatorUpdates,
}

/// Runs a task body: catches aborts and panics, collects accumulator updates.
pub(crate) fn run_task_body<T>(body: impl FnOnce() -> Result<T, EngineError>) -> TaskOutcome<T> {
    install_panic_hook();
    CURRENT_UPDATES.with(|slot| *slot.borrow_mut() = Some(AccumulatorUpdates::default()));
    IN_TASK.with(|slot| *slot.borrow_mut() = Some(PanicInfoSlot::default()));
    let caught = panic::catch_unwind(AssertUnwindSafe(body));
    let location = IN_TASK.with(|slot| slot.borrow_mut().take()).and_then(|s| s.location);
    let updates = CURRENT_UPDATES
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_default();
    let result = match caught {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(TaskFailure::Error(report(&err))),
        Err(payload) => Err(failure_from_panic(payload, location)),
    };
    TaskOutcome { result, updates }
}

fn failure_from_panic(payload: Box<dyn Any + Send>, location: Option<String>) -> TaskFailure {
    match payload.downcast::<TaskAbort>() {
        Ok(abort) => match *abort {
            TaskAbort::Error(err) => TaskFailure::Error(report(&err)),
            TaskAbort::FetchFailed {
                shuffle,
                map_id,
                reduce_id,
                output,
                detail,
            } => TaskFailure::FetchFailed {
                shuffle,
                map_id,
                reduce_id,
                output,
                detail,
            },
            TaskAbort::Killed => TaskFailure::Killed {
                reason: "job cancelled".into(),
            },
        },
        Err(payload) => {
            let message = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_string()
            };
            TaskFailure::Panic { message, location }
        }
    }
}

/// Wraps an iterator so that a cancelled job stops it within a bounded number of elements.
pub(crate) struct Interruptible<I> {
    inner: I,
    killed: Arc<AtomicBool>,
    countdown: u32,
}

impl<I> Interruptible<I> {
    pub(crate) fn new(inner: I, killed: Arc<AtomicBool>) -> Self {
        Interruptible {
            inner,
            killed,
            countdown: 0,
        }
    }
}

impl<I: Iterator> Iterator for Interruptible<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        if self.countdown == 0 {
            self.countdown = 4096;
            if self.killed.load(Ordering::Relaxed) {
                panic::panic_any(TaskAbort::Killed);
            }
        }
        self.countdown -= 1;
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_task_failures_with_location() {
        let out = run_task_body::<()>(|| panic!("boom {}", 7));
        match out.result {
            Err(TaskFailure::Panic { message, location }) => {
                assert_eq!(message, "boom 7");
                assert!(location.unwrap().contains("task_context.rs"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn aborts_carry_their_error() {
        let out = run_task_body::<()>(|| raise(EngineError::Stopped));
        assert!(matches!(out.result, Err(TaskFailure::Error(ref s)) if s.contains("stopped")));
        let out = run_task_body::<()>(|| raise_fetch_failed(ShuffleId(1), 2, 3, None, "gone".into()));
        assert!(matches!(
            out.result,
            Err(TaskFailure::FetchFailed {
                map_id: 2,
                reduce_id: 3,
                ..
            })
        ));
    }
}
