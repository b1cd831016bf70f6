//! Scheduling: jobs are cut into stages at shuffle boundaries ([`dag`]), stages into tasks that a
//! [`Backend`] runs ([`local`] runs them on threads of this process).

pub(crate) mod dag;
pub(crate) mod local;
mod progress;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::Sender;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::accumulator::AccumulatorUpdates;
use crate::data::Data;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result, TaskFailure, TaskRef};
use crate::ids::{ExecutorId, JobId, ShuffleId, StageId};
use crate::rdd::{Compute, ShuffleDep, iterator};
use crate::shuffle_map::MapOutput;
use crate::task_context::{Interruptible, TaskContext, run_task_body};
use crate::wire::{self, Encoded};

/// What a result task runs: computes partition `p` of the job's final RDD.
///
/// In process, `run` returns the partition's `Vec<T>` type-erased (no encoding). Shipped, the
/// stage is encoded with its lineage, `run_to_bytes` returns the encoded `Vec<T>` where the
/// task runs, and the driver's copy of the stage turns those bytes back into what `run`
/// returns (`decode_result`).
pub(crate) trait ResultStage: Send + Sync + 'static {
    fn run(&self, partition: usize, tc: &TaskContext) -> Result<Box<dyn Any + Send>>;
    fn run_to_bytes(&self, partition: usize, tc: &TaskContext) -> Result<Vec<u8>>;
    fn decode_result(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>>;
    fn encode(&self) -> Result<Encoded<Arc<dyn ResultStage>>>;
}

/// The result stage of a job, as the scheduler holds it (built by `Context::run_job`).
pub(crate) type ResultRunner = Arc<dyn ResultStage>;

fn decode_result_stage<R: DeserializeOwned + ResultStage>(bytes: &[u8]) -> Result<Arc<dyn ResultStage>> {
    Ok(Arc::new(wire::decode_value::<R>("result stage", bytes)?))
}

/// Collects one partition of `node` (every action's result stage: actions reduce their
/// partitions in a node of their own first).
#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct CollectPartition<T> {
    #[serde(with = "wire::node_ref")]
    node: Arc<dyn Compute<T>>,
}

impl<T: Data> CollectPartition<T> {
    pub(crate) fn new(node: Arc<dyn Compute<T>>) -> Self {
        CollectPartition { node }
    }

    fn collect(&self, partition: usize, tc: &TaskContext) -> Result<Vec<T>> {
        let items: Vec<T> = Interruptible::new(iterator(&self.node, partition, tc)?, tc.killed.clone()).collect();
        tc.env().failpoints.hit("task::before_result")?;
        Ok(items)
    }
}

impl<T: Data> ResultStage for CollectPartition<T> {
    fn run(&self, partition: usize, tc: &TaskContext) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(self.collect(partition, tc)?))
    }

    fn run_to_bytes(&self, partition: usize, tc: &TaskContext) -> Result<Vec<u8>> {
        let items = self.collect(partition, tc)?;
        bincode::serialize(&items).map_err(|e| EngineError::codec("task result", e))
    }

    fn decode_result(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(wire::decode_value::<Vec<T>>("task result", bytes)?))
    }

    fn encode(&self) -> Result<Encoded<Arc<dyn ResultStage>>> {
        Encoded::new(self, decode_result_stage::<Self>)
    }
}

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
                TaskKind::Result(runner) => runner.run(partition, &tc).map(TaskOutput::Result),
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
///
/// A backend that runs tasks elsewhere ships them with `ship::encode_task_kind` and turns the
/// executor's answer back into a [`TaskEnd`] with `ship::decode_task_end`.
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
