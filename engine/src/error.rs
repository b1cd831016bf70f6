//! The engine's error type: what failed, and where.

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, ShuffleId, StageId};

/// Result alias used throughout the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, with enough context to say what and where.
///
/// Expected failures (bad input, I/O, a failing task) are separate from [`EngineError::Internal`],
/// which is always a bug in flint.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An input path (file, directory or glob) names nothing.
    #[error("input path does not exist: {path}")]
    InputNotFound {
        /// The path or pattern as the user gave it.
        path: PathBuf,
    },
    /// Reading a file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A line of a text input is not valid UTF-8.
    #[error("{path}: line at byte offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the start of the bad line.
        offset: u64,
    },
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file flint wrote (a checkpoint or a disk-cached partition) is damaged.
    #[error("{path} is damaged: {detail}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// An output directory exists already (as Spark, flint never overwrites output).
    #[error("output directory {path} already exists")]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// An external command of `pipe` could not be run or failed.
    #[error("command `{command}` of pipe failed: {detail}")]
    Pipe {
        /// The command line.
        command: String,
        /// What went wrong (exit status or spawn error).
        detail: String,
    },
    /// Shuffle files could not be written or read.
    #[error("shuffle {shuffle} failed")]
    Shuffle {
        /// The shuffle.
        shuffle: ShuffleId,
        /// The cause.
        #[source]
        source: flint_shuffle::ShuffleError,
    },
    /// A value could not be encoded or decoded.
    #[error("cannot encode or decode {what}")]
    Codec {
        /// What was being encoded.
        what: String,
        /// The cause.
        #[source]
        source: bincode::Error,
    },
    /// A task failed more often than `max_task_failures` allows.
    #[error("{task} failed {attempts} times; giving up")]
    TaskFailed {
        /// The task, with job, stage, partition and last attempt.
        task: TaskRef,
        /// How many attempts failed.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<TaskFailure>,
    },
    /// A stage was resubmitted more often than allowed after fetch failures.
    #[error("stage {stage} of job {job} was resubmitted {attempts} times after fetch failures; giving up")]
    StageFailed {
        /// The job.
        job: JobId,
        /// The stage.
        stage: StageId,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<TaskFailure>,
    },
    /// The job was cancelled by the user.
    #[error("job {job} was cancelled")]
    Cancelled {
        /// The job.
        job: JobId,
    },
    /// A configuration value or argument is not acceptable.
    #[error("{name} = {value}: {expected}")]
    InvalidArgument {
        /// Name of the setting or argument.
        name: String,
        /// The value given.
        value: String,
        /// What would be acceptable.
        expected: String,
    },
    /// An action that needs at least one element got none (e.g. `reduce`, `first`).
    #[error("{action} on an empty RDD")]
    EmptyRdd {
        /// The action.
        action: &'static str,
    },
    /// The context was stopped.
    #[error("the context has been stopped")]
    Stopped,
    /// A bug in flint; please report it.
    #[error("internal error, please report it: {0}")]
    Internal(String),
    /// Distributed mode: executors could not start, register or be reached.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl EngineError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        EngineError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> Self {
        EngineError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn codec(what: impl Into<String>, source: bincode::Error) -> Self {
        EngineError::Codec {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(name: &str, value: impl fmt::Display, expected: &str) -> Self {
        EngineError::InvalidArgument {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

/// Names one attempt of one task: "job 2, stage 3 (reduce_by_key at wc.rs:11), partition 7, attempt 1".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// The job.
    pub job: JobId,
    /// The stage.
    pub stage: StageId,
    /// The operation and call site that ends the stage.
    pub stage_name: String,
    /// The partition the task computes.
    pub partition: usize,
    /// Attempt number (0-based, as Spark).
    pub attempt: u32,
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {}, stage {} ({}), partition {}, attempt {}",
            self.job, self.stage, self.stage_name, self.partition, self.attempt
        )
    }
}

/// Why one task attempt failed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum TaskFailure {
    /// User code panicked.
    #[error("user code panicked: {message}")]
    Panic {
        /// The panic message.
        message: String,
        /// Where the panic happened (file:line), when known.
        location: Option<String>,
    },
    /// The task hit an engine error (bad input, I/O...). The text is the error with its causes.
    #[error("{0}")]
    Error(String),
    /// A shuffle block could not be fetched or was corrupt: the map output must be recomputed.
    #[error("fetch of shuffle {shuffle} map {map_id} block {reduce_id} failed: {detail}")]
    FetchFailed {
        /// The shuffle.
        shuffle: ShuffleId,
        /// The map partition whose output is bad.
        map_id: usize,
        /// The reduce partition being read.
        reduce_id: usize,
        /// The data file that failed; `None` when no output was registered at all.
        output: Option<PathBuf>,
        /// What was wrong.
        detail: String,
    },
    /// The task was killed (job cancelled).
    #[error("task killed: {reason}")]
    Killed {
        /// Why.
        reason: String,
    },
    /// The executor running the task was lost (its process died or stopped answering).
    #[error("executor {executor} was lost while running the task: {reason}")]
    ExecutorLost {
        /// The executor.
        executor: crate::ids::ExecutorId,
        /// Why it is considered lost ("process 812 was killed by signal 9 (SIGKILL)").
        reason: String,
    },
    /// The job's task results together exceed `max_result_size`; the job is not retried.
    #[error(
        "task results of job {job} total at least {total} bytes, more than max_result_size \
         ({limit} bytes; raise it with FLINT_MAX_RESULT_SIZE, or write results with save_as_text_file)"
    )]
    ResultTooLarge {
        /// The job.
        job: crate::ids::JobId,
        /// Bytes of results so far, this one included.
        total: u64,
        /// The limit.
        limit: u64,
    },
}

/// Formats an error with its whole chain of causes, one per line after the first.
///
/// A bare `{}` shows only the outermost message; use this wherever an error reaches a person.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str("\n  caused by: ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_includes_every_cause() {
        let e = EngineError::TaskFailed {
            task: TaskRef {
                job: JobId(2),
                stage: StageId(3),
                stage_name: "reduce_by_key at wc.rs:11".into(),
                partition: 7,
                attempt: 3,
            },
            attempts: 4,
            last: Box::new(TaskFailure::Panic {
                message: "boom".into(),
                location: None,
            }),
        };
        let text = report(&e);
        assert!(text.starts_with("job 2, stage 3 (reduce_by_key at wc.rs:11), partition 7, attempt 3 failed 4 times"));
        assert!(text.contains("caused by: user code panicked: boom"), "{text}");
    }
}
