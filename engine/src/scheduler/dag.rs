//! The DAG scheduler: cuts a job into stages at shuffle dependencies and runs them in order.
//!
//! As Spark's `DAGScheduler`, reduced to what one job needs:
//! - stages form a DAG (petgraph) ordered parents first; a shuffle map stage whose outputs all
//!   exist (an earlier job wrote them) is skipped, and only *missing* partitions ever run;
//! - a failed task is retried up to `max_task_failures` attempts, then the job fails with an
//!   error naming job, stage, partition, attempt and cause;
//! - a fetch failure (missing or corrupt shuffle block) unregisters that one map output, and any
//!   other output of the same shuffle whose files are gone; the map stage then has missing
//!   partitions, which are recomputed from lineage before the failed reduce tasks run again
//!   (at most `max_stage_attempts` times per stage);
//! - accumulator updates are merged only from successful attempts, once per result partition.
//!
//! Each job runs this loop on the thread that called the action, so jobs from several driver
//! threads run concurrently and share the backend's slots.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, unbounded};
use parking_lot::Mutex;
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::progress::ConsoleProgress;
use super::{Backend, Listener, ResultRunner, SchedulerEvent, Task, TaskEnd, TaskKind, TaskOutput};
use crate::context::Context;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result, TaskFailure, TaskRef};
use crate::ids::{AccumulatorId, IdGen, JobId, ShuffleId, StageId};
use crate::rdd::{Dependency, RddNode, ShuffleDep, lineage_deps};

type Sink = Arc<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;

/// Limits the scheduler enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SchedulerLimits {
    pub(crate) max_task_failures: u32,
    pub(crate) max_stage_attempts: u32,
    pub(crate) show_progress: bool,
}

/// Shared by all jobs of one context.
pub(crate) struct Scheduler {
    backend: Box<dyn Backend>,
    env: Arc<ExecutorEnv>,
    limits: SchedulerLimits,
    stage_ids: IdGen,
    accumulators: Mutex<HashMap<AccumulatorId, Sink>>,
    /// Running jobs: their kill flag and job group.
    running_jobs: Mutex<HashMap<JobId, (Arc<AtomicBool>, Option<String>)>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
}

enum StageKind {
    ShuffleMap(Arc<dyn ShuffleDep>),
    Result,
}

struct Stage {
    id: StageId,
    name: String,
    kind: StageKind,
    parents: Vec<usize>,
    /// The shuffles this stage's tasks read (those its parent stages write).
    inputs: Vec<ShuffleId>,
    in_flight: HashSet<usize>,
    fetch_failures: u32,
}

/// The state of one running job.
struct JobRun<'a> {
    sched: &'a Scheduler,
    job: JobId,
    stages: Vec<Stage>,
    order: Vec<usize>,
    killed: Arc<AtomicBool>,
    /// Requested partitions of the final RDD, and their results by position.
    partitions: Vec<usize>,
    position: HashMap<usize, usize>,
    results: Vec<Option<Box<dyn Any + Send>>>,
    done: usize,
    runner: ResultRunner,
    final_rdd: Arc<dyn RddNode>,
    launches: HashMap<(usize, usize), u32>,
    failures: HashMap<(usize, usize), u32>,
    in_flight: usize,
    progress: ConsoleProgress,
}

impl Scheduler {
    pub(crate) fn new(backend: Box<dyn Backend>, env: Arc<ExecutorEnv>, limits: SchedulerLimits) -> Self {
        Scheduler {
            backend,
            env,
            limits,
            stage_ids: IdGen::default(),
            accumulators: Mutex::new(HashMap::new()),
            running_jobs: Mutex::new(HashMap::new()),
            listeners: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn slots(&self) -> usize {
        self.backend.slots()
    }

    pub(crate) fn register_accumulator(&self, id: AccumulatorId, sink: Sink) {
        self.accumulators.lock().insert(id, sink);
    }

    pub(crate) fn add_listener(&self, listener: Listener) {
        self.listeners.lock().push(listener);
    }

    /// Emits events to this scheduler's listeners (for backends).
    pub(crate) fn emitter(&self) -> Arc<dyn Fn(SchedulerEvent) + Send + Sync> {
        let listeners = self.listeners.clone();
        Arc::new(move |event| {
            let ls = listeners.lock().clone();
            for l in ls {
                l(&event);
            }
        })
    }

    fn emit(&self, event: SchedulerEvent) {
        let listeners = self.listeners.lock().clone();
        for l in listeners {
            l(&event);
        }
    }

    /// Jobs running now.
    pub(crate) fn running_jobs(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self.running_jobs.lock().keys().copied().collect();
        jobs.sort();
        jobs
    }

    /// Asks a running job to stop; its action returns `Cancelled`.
    pub(crate) fn cancel_job(&self, job: JobId) -> bool {
        match self.running_jobs.lock().get(&job) {
            Some((flag, _)) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Cancels the running jobs of `group`; returns how many.
    pub(crate) fn cancel_group(&self, group: &str) -> usize {
        let jobs = self.running_jobs.lock();
        let mut n = 0;
        for (flag, g) in jobs.values() {
            if g.as_deref() == Some(group) {
                flag.store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    pub(crate) fn cancel_all(&self) {
        for (flag, _) in self.running_jobs.lock().values() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Runs a job computing `partitions` of `final_rdd` with `runner`; results in partition order.
    pub(crate) fn run_job(
        &self,
        ctx: &Context,
        job: JobId,
        final_rdd: Arc<dyn RddNode>,
        runner: ResultRunner,
        partitions: &[usize],
        group: Option<String>,
    ) -> Result<Vec<Box<dyn Any + Send>>> {
        prepare_lineage(ctx, &final_rdd)?;
        let num = final_rdd.num_partitions();
        if let Some(bad) = partitions.iter().find(|p| **p >= num) {
            return Err(EngineError::invalid(
                "partition",
                bad,
                &format!("the RDD has {num} partitions"),
            ));
        }
        let killed = Arc::new(AtomicBool::new(false));
        self.running_jobs.lock().insert(job, (killed.clone(), group));
        let outcome = self.run_stages(job, final_rdd, runner, partitions, killed);
        self.running_jobs.lock().remove(&job);
        self.emit(SchedulerEvent::JobEnded {
            job,
            succeeded: outcome.is_ok(),
        });
        outcome
    }

    fn run_stages(
        &self,
        job: JobId,
        final_rdd: Arc<dyn RddNode>,
        runner: ResultRunner,
        partitions: &[usize],
        killed: Arc<AtomicBool>,
    ) -> Result<Vec<Box<dyn Any + Send>>> {
        let mut builder = StageBuilder {
            sched: self,
            stages: Vec::new(),
            by_shuffle: HashMap::new(),
        };
        let parents = builder.parent_stages(&final_rdd);
        let final_name = final_rdd.meta().label();
        let inputs = builder.shuffles_of(&parents);
        builder.stages.push(Stage {
            id: StageId(self.stage_ids.next()),
            name: final_name,
            kind: StageKind::Result,
            parents,
            inputs,
            in_flight: HashSet::new(),
            fetch_failures: 0,
        });
        let stages = builder.stages;
        let order = topological_order(&stages)?;
        self.emit(SchedulerEvent::JobStarted {
            job,
            stages: order.iter().map(|i| stages[*i].id).collect(),
        });
        tracing::info!(%job, stages = stages.len(), partitions = partitions.len(), "job started");
        let mut run = JobRun {
            sched: self,
            job,
            stages,
            order,
            killed,
            partitions: partitions.to_vec(),
            position: partitions.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            results: (0..partitions.len()).map(|_| None).collect(),
            done: 0,
            runner,
            final_rdd: final_rdd.clone(),
            launches: HashMap::new(),
            failures: HashMap::new(),
            in_flight: 0,
            progress: ConsoleProgress::new(self.limits.show_progress),
        };
        for idx in run.order.clone() {
            if let StageKind::ShuffleMap(dep) = &run.stages[idx].kind
                && self.env.map_outputs.missing(dep.shuffle_id()).is_empty()
            {
                tracing::info!(%job, stage = %run.stages[idx].id, name = %run.stages[idx].name, "stage skipped: its shuffle output exists");
                self.emit(SchedulerEvent::StageSkipped {
                    job,
                    stage: run.stages[idx].id,
                });
            }
        }
        let outcome = run.drive();
        run.progress.clear();
        match &outcome {
            Ok(_) => tracing::info!(%job, "job finished"),
            Err(e) => tracing::error!(%job, error = %crate::error::report(e), "job failed"),
        }
        outcome?;
        Ok(run
            .results
            .into_iter()
            .map(|r| r.expect("every result is present when the job succeeds"))
            .collect())
    }
}

/// Calls `prepare` on every node and shuffle dependency of the lineage (listing inputs,
/// sampling range bounds, counting partitions), parents first.
fn prepare_lineage(ctx: &Context, root: &Arc<dyn RddNode>) -> Result<()> {
    let mut seen = HashSet::new();
    let mut seen_shuffles = HashSet::new();
    prepare_node(ctx, root, &mut seen, &mut seen_shuffles)
}

fn prepare_node(
    ctx: &Context,
    node: &Arc<dyn RddNode>,
    seen: &mut HashSet<crate::ids::RddId>,
    seen_shuffles: &mut HashSet<ShuffleId>,
) -> Result<()> {
    if !seen.insert(node.meta().id) {
        return Ok(());
    }
    for dep in lineage_deps(&**node) {
        match dep {
            Dependency::Narrow(parent) => prepare_node(ctx, &parent, seen, seen_shuffles)?,
            Dependency::Shuffle(s) => {
                prepare_node(ctx, &s.map_side(), seen, seen_shuffles)?;
                if seen_shuffles.insert(s.shuffle_id()) {
                    s.prepare(ctx)?;
                }
            }
        }
    }
    node.prepare(ctx)
}

struct StageBuilder<'a> {
    sched: &'a Scheduler,
    stages: Vec<Stage>,
    by_shuffle: HashMap<ShuffleId, usize>,
}

impl StageBuilder<'_> {
    /// The map stages of the shuffles `node` depends on without crossing another shuffle.
    fn parent_stages(&mut self, node: &Arc<dyn RddNode>) -> Vec<usize> {
        let mut parents = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![node.clone()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.meta().id) {
                continue;
            }
            for dep in lineage_deps(&*n) {
                match dep {
                    Dependency::Narrow(parent) => stack.push(parent),
                    Dependency::Shuffle(s) => {
                        let idx = self.map_stage(s);
                        if !parents.contains(&idx) {
                            parents.push(idx);
                        }
                    }
                }
            }
        }
        parents
    }

    fn shuffles_of(&self, stages: &[usize]) -> Vec<ShuffleId> {
        stages
            .iter()
            .filter_map(|i| match &self.stages[*i].kind {
                StageKind::ShuffleMap(dep) => Some(dep.shuffle_id()),
                StageKind::Result => None,
            })
            .collect()
    }

    fn map_stage(&mut self, dep: Arc<dyn ShuffleDep>) -> usize {
        if let Some(idx) = self.by_shuffle.get(&dep.shuffle_id()) {
            return *idx;
        }
        let map_side = dep.map_side();
        self.sched
            .env
            .map_outputs
            .register_shuffle(dep.shuffle_id(), map_side.num_partitions());
        let parents = self.parent_stages(&map_side);
        let inputs = self.shuffles_of(&parents);
        let idx = self.stages.len();
        self.stages.push(Stage {
            id: StageId(self.sched.stage_ids.next()),
            name: dep.label(),
            kind: StageKind::ShuffleMap(dep.clone()),
            parents,
            inputs,
            in_flight: HashSet::new(),
            fetch_failures: 0,
        });
        self.by_shuffle.insert(dep.shuffle_id(), idx);
        idx
    }
}

fn topological_order(stages: &[Stage]) -> Result<Vec<usize>> {
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
    for (i, s) in stages.iter().enumerate() {
        for p in &s.parents {
            graph.add_edge(nodes[*p], nodes[i], ());
        }
    }
    toposort(&graph, None)
        .map(|order| order.into_iter().map(|n| graph[n]).collect())
        .map_err(|_| EngineError::Internal("stage graph has a cycle".into()))
}

impl JobRun<'_> {
    fn drive(&mut self) -> Result<()> {
        let (tx, rx) = unbounded::<TaskEnd>();
        let mut failure: Option<EngineError> = None;
        // Submitting scans every stage's missing partitions, so it happens only when something
        // could have become runnable: at the start, when a stage has no task left running, and
        // after a failure. (Scanning after every task made 100,000-task jobs quadratic.)
        let mut should_submit = true;
        loop {
            if failure.is_none() {
                if self.killed.load(Ordering::Relaxed) {
                    failure = Some(EngineError::Cancelled { job: self.job });
                } else if should_submit {
                    self.submit_ready(&tx);
                    should_submit = false;
                }
            }
            if failure.is_none() && self.done == self.results.len() {
                return Ok(());
            }
            if self.in_flight == 0 {
                return Err(failure.unwrap_or_else(|| {
                    EngineError::Internal(format!(
                        "job {} cannot make progress: no task runs and results are missing",
                        self.job
                    ))
                }));
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(end) => {
                    let stage = end.tref.stage;
                    let succeeded = end.result.is_ok();
                    let handled = self.handle(end, &tx);
                    should_submit |= !succeeded
                        || self
                            .stage_index(stage)
                            .is_some_and(|i| self.stages[i].in_flight.is_empty());
                    if let Err(e) = handled
                        && failure.is_none()
                    {
                        // Stop the job's other tasks and wait for them before returning.
                        self.killed.store(true, Ordering::Relaxed);
                        failure = Some(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(EngineError::Internal("task results channel closed".into()));
                }
            }
            self.draw_progress();
        }
    }

    fn draw_progress(&mut self) {
        if !self.progress.is_due() {
            return;
        }
        if let Some(idx) = self
            .order
            .iter()
            .copied()
            .find(|i| !self.stages[*i].in_flight.is_empty())
        {
            let stage = &self.stages[idx];
            let (total, done) = match &stage.kind {
                StageKind::Result => (self.results.len(), self.done),
                StageKind::ShuffleMap(dep) => {
                    let total = dep.map_side().num_partitions();
                    (
                        total,
                        total - self.sched.env.map_outputs.missing(dep.shuffle_id()).len(),
                    )
                }
            };
            let running = stage.in_flight.len();
            self.progress.update(stage.id, done, running, total);
        }
    }

    fn stage_complete(&self, idx: usize) -> bool {
        match &self.stages[idx].kind {
            StageKind::ShuffleMap(dep) => self.sched.env.map_outputs.missing(dep.shuffle_id()).is_empty(),
            StageKind::Result => self.done == self.results.len(),
        }
    }

    fn submit_ready(&mut self, tx: &crossbeam_channel::Sender<TaskEnd>) {
        for idx in self.order.clone() {
            let stage = &self.stages[idx];
            let missing: Vec<usize> = match &stage.kind {
                StageKind::ShuffleMap(dep) => self.sched.env.map_outputs.missing(dep.shuffle_id()),
                StageKind::Result => self
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| self.results[*i].is_none())
                    .map(|(_, p)| *p)
                    .collect(),
            };
            let to_run: Vec<usize> = missing.into_iter().filter(|p| !stage.in_flight.contains(p)).collect();
            if to_run.is_empty() || !stage.parents.iter().all(|p| self.stage_complete(*p)) {
                continue;
            }
            let shuffle = match &stage.kind {
                StageKind::ShuffleMap(dep) => Some(dep.shuffle_id()),
                StageKind::Result => None,
            };
            tracing::info!(job = %self.job, stage = %stage.id, name = %stage.name, tasks = to_run.len(), "submitting stage");
            self.sched.emit(SchedulerEvent::StageSubmitted {
                job: self.job,
                stage: stage.id,
                name: stage.name.clone(),
                shuffle,
                partitions: to_run.clone(),
            });
            for p in to_run {
                self.launch(idx, p, tx);
            }
        }
    }

    fn launch(&mut self, idx: usize, partition: usize, tx: &crossbeam_channel::Sender<TaskEnd>) {
        let attempt = self.launches.entry((idx, partition)).or_insert(0);
        let stage = &mut self.stages[idx];
        let tref = TaskRef {
            job: self.job,
            stage: stage.id,
            stage_name: stage.name.clone(),
            partition,
            attempt: *attempt,
        };
        *attempt += 1;
        let (kind, node) = match &stage.kind {
            StageKind::ShuffleMap(dep) => (TaskKind::ShuffleMap(dep.clone()), dep.map_side()),
            StageKind::Result => (TaskKind::Result(self.runner.clone()), self.final_rdd.clone()),
        };
        let inputs = stage.inputs.clone();
        stage.in_flight.insert(partition);
        self.in_flight += 1;
        self.sched.backend.launch(
            Task {
                tref,
                kind,
                killed: self.killed.clone(),
                node: Some(node),
                inputs,
            },
            tx.clone(),
        );
    }

    fn stage_index(&self, stage: StageId) -> Option<usize> {
        self.stages.iter().position(|s| s.id == stage)
    }

    fn merge_updates(&self, updates: crate::accumulator::AccumulatorUpdates) {
        if updates.is_empty() {
            return;
        }
        let sinks = self.sched.accumulators.lock();
        for (id, value) in updates.into_entries() {
            if let Some(sink) = sinks.get(&id) {
                sink(value);
            }
        }
    }

    /// Handles one finished task; an error ends the job.
    fn handle(&mut self, end: TaskEnd, tx: &crossbeam_channel::Sender<TaskEnd>) -> Result<()> {
        let idx = self
            .stage_index(end.tref.stage)
            .ok_or_else(|| EngineError::Internal("task of unknown stage".into()))?;
        let p = end.tref.partition;
        self.stages[idx].in_flight.remove(&p);
        self.in_flight -= 1;
        self.sched.emit(SchedulerEvent::TaskEnded {
            task: end.tref.clone(),
            failure: end.result.as_ref().err().map(|f| f.to_string()),
            executor: end.executor,
        });
        match end.result {
            Ok(TaskOutput::MapOutput(output)) => {
                if let StageKind::ShuffleMap(dep) = &self.stages[idx].kind {
                    tracing::debug!(task = %end.tref, bytes = output.status.partition_lengths.iter().sum::<u64>(), "map task done");
                    self.sched.env.map_outputs.register_output(dep.shuffle_id(), p, output);
                }
                self.merge_updates(end.updates);
                Ok(())
            }
            Ok(TaskOutput::Result(value)) => {
                if let Some(pos) = self.position.get(&p).copied()
                    && self.results[pos].is_none()
                {
                    self.results[pos] = Some(value);
                    self.done += 1;
                    self.merge_updates(end.updates);
                }
                Ok(())
            }
            Err(TaskFailure::Killed { .. }) if self.killed.load(Ordering::Relaxed) => Ok(()),
            // Retrying cannot make results smaller: the job fails now, as in Spark.
            Err(failure @ TaskFailure::ResultTooLarge { .. }) => Err(EngineError::TaskFailed {
                task: end.tref,
                attempts: 1,
                last: Box::new(failure),
            }),
            Err(TaskFailure::FetchFailed {
                shuffle,
                map_id,
                reduce_id,
                output,
                detail,
            }) => {
                // Only the output the task read is bad: a newer output registered since (the
                // task listed the old one) is kept.
                let lost = self
                    .sched
                    .env
                    .map_outputs
                    .unregister_output(shuffle, map_id, output.as_deref());
                // Other outputs of the shuffle whose files are gone too are recomputed in the
                // same stage attempt (they would otherwise cost one attempt each).
                let also_lost = self.sched.env.map_outputs.unregister_missing_files(shuffle);
                let stage = &mut self.stages[idx];
                tracing::warn!(task = %end.tref, %shuffle, map_id, reduce_id, %detail, ?also_lost, "fetch failed; recomputing the map output from lineage");
                if lost {
                    stage.fetch_failures += 1;
                }
                if stage.fetch_failures >= self.sched.limits.max_stage_attempts {
                    return Err(EngineError::StageFailed {
                        job: self.job,
                        stage: stage.id,
                        attempts: stage.fetch_failures,
                        last: Box::new(TaskFailure::FetchFailed {
                            shuffle,
                            map_id,
                            reduce_id,
                            output,
                            detail,
                        }),
                    });
                }
                Ok(())
            }
            Err(failure) => {
                let count = self.failures.entry((idx, p)).or_insert(0);
                *count += 1;
                tracing::warn!(task = %end.tref, failure = %failure, "task failed");
                if *count >= self.sched.limits.max_task_failures {
                    return Err(EngineError::TaskFailed {
                        task: end.tref,
                        attempts: *count,
                        last: Box::new(failure),
                    });
                }
                self.launch(idx, p, tx);
                Ok(())
            }
        }
    }
}
