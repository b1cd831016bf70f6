//! Scheduling: jobs are cut into stages at shuffle boundaries ([`dag`]), stages into tasks that a
//! [`Backend`] runs ([`local`] runs them on threads of this process).

pub(crate) mod dag;
pub(crate) mod local;
mod progress;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::accumulator::AccumulatorUpdates;
use crate::env::ExecutorEnv;
use crate::error::{Result, TaskFailure, TaskRef};
use crate::ids::{ExecutorId, JobId, ShuffleId, StageId};
use crate::rdd::ShuffleDep;
use crate::shuffle_map::MapOutput;
use crate::task_context::{TaskContext, run_task_body};

/// Computes partition `p` of a result stage and returns the collected value, type-erased.
pub(crate) type ResultRunner = Arc<dyn Fn(usize, &TaskContext) -> Result<Box<dyn Any + Send>> + Send + Sync>;

/// What a task does.
#[derive(Clone)]
pub(crate) enum TaskKind {
    /// Compute a partition of the map side of a shuffle and write its shuffle files.
    ShuffleMap(Arc<dyn ShuffleDep>),
    /// Compute a partition of the job's final RDD and return it.
    Result(ResultRunner),
}

/// One task attempt, ready to run.
pub(crate) struct Task {
    pub(crate) tref: TaskRef,
    pub(crate) kind: TaskKind,
    pub(crate) killed: Arc<AtomicBool>,
    /// The RDD the task computes a partition of (for locality); `None` on executors.
    pub(crate) node: Option<Arc<dyn crate::rdd::RddNode>>,
    /// Shuffles the task reads (their map outputs travel with a shipped task).
    pub(crate) inputs: Vec<ShuffleId>,
}

/// What a task produced.
pub(crate) enum TaskOutput {
    MapOutput(MapOutput),
    Result(Box<dyn Any + Send>),
}

/// A finished task attempt, successful or not.
pub(crate) struct TaskEnd {
    pub(crate) tref: TaskRef,
    pub(crate) result: std::result::Result<TaskOutput, TaskFailure>,
    pub(crate) updates: AccumulatorUpdates,
    /// The executor that ran it (distributed mode).
    pub(crate) executor: Option<ExecutorId>,
}

impl Task {
    /// Runs the task in this thread: the body of every backend.
    pub(crate) fn run(self, env: Arc<ExecutorEnv>) -> TaskEnd {
        let tc = TaskContext {
            task: self.tref.clone(),
            env,
            killed: self.killed,
        };
        let partition = tc.task.partition;
        let outcome = run_task_body(|| {
            tc.check_killed();
            match &self.kind {
                TaskKind::ShuffleMap(dep) => dep.run_map_task(partition, &tc).map(TaskOutput::MapOutput),
                TaskKind::Result(runner) => runner(partition, &tc).map(TaskOutput::Result),
            }
        });
        TaskEnd {
            tref: self.tref,
            result: outcome.result,
            updates: outcome.updates,
            executor: None,
        }
    }
}

/// Runs tasks somewhere: threads of this process, or executor processes (`cluster`).
pub(crate) trait Backend: Send + Sync {
    /// Task slots (cores) available.
    fn slots(&self) -> usize;
    /// Starts `task`; its end is sent to `done`.
    fn launch(&self, task: Task, done: Sender<TaskEnd>);
}

/// What the scheduler did, for listeners (tests, UIs, metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedulerEvent {
    /// A job started with these stages.
    JobStarted {
        /// The job.
        job: JobId,
        /// Its stages, parents first.
        stages: Vec<StageId>,
    },
    /// Tasks of a stage were submitted (first time or resubmission).
    StageSubmitted {
        /// The job.
        job: JobId,
        /// The stage.
        stage: StageId,
        /// "reduce_by_key at wc.rs:11".
        name: String,
        /// The shuffle it writes, for a shuffle map stage.
        shuffle: Option<ShuffleId>,
        /// Partitions submitted.
        partitions: Vec<usize>,
    },
    /// A stage's outputs were all available already (an earlier job computed them).
    StageSkipped {
        /// The job.
        job: JobId,
        /// The stage.
        stage: StageId,
    },
    /// A task attempt finished.
    TaskEnded {
        /// The task.
        task: TaskRef,
        /// `None` on success, else the failure.
        failure: Option<String>,
        /// The executor that ran it (`None` in local mode).
        executor: Option<ExecutorId>,
    },
    /// An executor registered and offers task slots.
    ExecutorAdded {
        /// The executor.
        executor: ExecutorId,
        /// Its task slots.
        cores: usize,
    },
    /// An executor was lost or decommissioned: its running tasks are retried elsewhere and
    /// its map outputs and cached partitions are recomputed where needed.
    ExecutorLost {
        /// The executor.
        executor: ExecutorId,
        /// Why.
        reason: String,
    },
    /// A job ended.
    JobEnded {
        /// The job.
        job: JobId,
        /// Whether it succeeded.
        succeeded: bool,
    },
}

/// A function called with every scheduler event.
pub type Listener = Arc<dyn Fn(&SchedulerEvent) + Send + Sync>;
