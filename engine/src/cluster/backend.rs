//! The driver's cluster backend: which executor runs which task, and what an executor's loss
//! costs.
//!
//! As Spark's `TaskSchedulerImpl` with a coarse-grained backend, reduced to what flint needs:
//! - executors offer task slots (cores); a task goes to a free slot, preferring an executor
//!   that holds its cached partition or most of its shuffle input. A task whose preferred
//!   executors are busy waits up to `locality_wait` for one before it runs anywhere (so a
//!   cached partition is not recomputed elsewhere just because its executor was busy);
//! - an executor is *lost* when its heartbeats stop for `heartbeat_timeout` or the transport
//!   says so (connection closed, process exited). Its running tasks end as
//!   [`TaskFailure::ExecutorLost`] (the DAG scheduler retries them elsewhere), its map outputs
//!   are unregistered (the next read of them fails and only those map partitions are recomputed
//!   from lineage), and its cached partitions are forgotten (recomputed where next needed);
//! - results are counted against `max_result_size` per job before they are accepted.
//!
//! A monitor thread checks heartbeats, kills tasks of cancelled jobs on their executors, and
//! re-runs placement when a locality wait expires.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use super::wire::{self, ExecutorTaskEnd, TaskEnvelope};
use super::{BlockLocation, ClusterSettings, ExecutorInfo, ExecutorSettings, ExecutorTransport, shipping};
use crate::error::{EngineError, Result, TaskFailure};
use crate::ids::{BroadcastId, ExecutorId, JobId, RddId};
use crate::rdd::{Dependency, lineage_deps};
use crate::scheduler::{Backend, SchedulerEvent, Task, TaskEnd, TaskOutput};
use crate::ship::ShipRegistry;
use crate::shuffle_map::MapOutputTracker;

/// Fraction of a reducer's input an executor must hold to be preferred (as Spark's 0.2).
const REDUCER_PREFERENCE_FRACTION: f64 = 0.2;

type Emit = Arc<dyn Fn(SchedulerEvent) + Send + Sync>;

struct Executor {
    info: ExecutorInfo,
    free: usize,
    last_heard: Instant,
    /// Decommissioning: no new tasks; it leaves when its running tasks are done.
    draining: bool,
}

struct Pending {
    task: Task,
    done: Sender<TaskEnd>,
    prefs: Vec<ExecutorId>,
    since: Instant,
}

struct Running {
    task: Task,
    done: Sender<TaskEnd>,
    executor: ExecutorId,
    kill_sent: bool,
}

#[derive(Default)]
struct State {
    executors: BTreeMap<ExecutorId, Executor>,
    /// Executors that were lost or stopped: late messages from them are ignored.
    gone: HashSet<ExecutorId>,
    pending: VecDeque<Pending>,
    running: HashMap<u64, Running>,
    next_task_id: u64,
    /// Where cached partitions live.
    cached: HashMap<(RddId, usize), BTreeSet<ExecutorId>>,
    /// Result bytes accepted per running job.
    result_bytes: HashMap<JobId, u64>,
    /// Why executors failed to start or were refused (for the error when none register).
    start_failures: Vec<String>,
    /// The launcher cannot start any more executors (all died, no restarts left).
    gave_up: bool,
    shut_down: bool,
    /// Since when tasks have been waiting with no executor at all (starvation warning).
    starved_since: Option<Instant>,
    /// When the starvation warning was last logged.
    starvation_warned: Option<Instant>,
}

/// Shared by the backend (scheduler side), the driver handle (transport side) and the monitor.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    transport: Mutex<Option<Arc<dyn ExecutorTransport>>>,
    settings: ClusterSettings,
    executor_settings: ExecutorSettings,
    map_outputs: Arc<MapOutputTracker>,
    emit: Mutex<Option<Emit>>,
    /// Broadcast values served to executors, accumulator decoders for task ends.
    ship: Arc<ShipRegistry>,
}

/// The cluster backend the DAG scheduler launches tasks through.
pub(crate) struct ClusterBackend {
    shared: Arc<Shared>,
}

/// The driver as the transport sees it: executors register, heartbeat, finish tasks and get
/// lost through this handle.
#[derive(Clone)]
pub struct DriverHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DriverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverHandle").finish_non_exhaustive()
    }
}

impl ClusterBackend {
    pub(crate) fn new(
        settings: ClusterSettings,
        executor_settings: ExecutorSettings,
        map_outputs: Arc<MapOutputTracker>,
        ship: Arc<ShipRegistry>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            transport: Mutex::new(None),
            settings,
            executor_settings,
            map_outputs,
            emit: Mutex::new(None),
            ship,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("flint-cluster-monitor".into())
            .spawn(move || monitor(weak))
            .expect("spawn the cluster monitor thread");
        ClusterBackend { shared }
    }

    pub(crate) fn handle(&self) -> DriverHandle {
        DriverHandle {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn set_transport(&self, transport: Arc<dyn ExecutorTransport>) {
        *self.shared.transport.lock() = Some(transport);
    }

    pub(crate) fn transport(&self) -> Option<Arc<dyn ExecutorTransport>> {
        self.shared.transport.lock().clone()
    }

    /// Where scheduler events (executor added/lost) go.
    pub(crate) fn set_emitter(&self, emit: Emit) {
        *self.shared.emit.lock() = Some(emit);
    }

    /// Waits until `n` executors are registered, or fails after `executor_start_timeout`
    /// with what went wrong with the others.
    pub(crate) fn wait_for_executors(&self, n: usize) -> Result<()> {
        let deadline = Instant::now() + self.shared.settings.executor_start_timeout;
        let mut state = self.shared.state.lock();
        while state.executors.len() < n {
            if state.gave_up || self.shared.changed.wait_until(&mut state, deadline).timed_out() {
                let failures = if state.start_failures.is_empty() {
                    "no executor reported an error".to_string()
                } else {
                    state.start_failures.join("; ")
                };
                return Err(EngineError::Cluster(format!(
                    "only {} of {n} executors registered within {:?}: {failures}",
                    state.executors.len(),
                    self.shared.settings.executor_start_timeout
                )));
            }
        }
        Ok(())
    }

    /// Live executors.
    pub(crate) fn executors(&self) -> Vec<ExecutorInfo> {
        let state = self.shared.state.lock();
        state.executors.values().map(|e| e.info.clone()).collect()
    }

    /// Stops giving `executor` tasks; once its running tasks are done its map outputs and
    /// cached partitions are forgotten (recomputed from lineage where needed) and it is stopped.
    pub(crate) fn decommission(&self, executor: ExecutorId) -> Result<()> {
        self.shared.decommission(executor)
    }
}

impl Drop for ClusterBackend {
    fn drop(&mut self) {
        self.shared.state.lock().shut_down = true;
        if let Some(t) = self.shared.transport.lock().take() {
            t.shutdown();
        }
    }
}

impl Backend for Arc<ClusterBackend> {
    fn slots(&self) -> usize {
        let state = self.shared.state.lock();
        state.executors.values().map(|e| e.info.cores).sum::<usize>().max(1)
    }

    fn launch(&self, task: Task, done: Sender<TaskEnd>) {
        let prefs = {
            let state = self.shared.state.lock();
            preferred_executors(&state, &self.shared.map_outputs, &task)
        };
        self.shared.state.lock().pending.push_back(Pending {
            task,
            done,
            prefs,
            since: Instant::now(),
        });
        self.shared.schedule();
    }
}

/// Executors that hold the task's cached partition, else those holding at least a fifth of its
/// shuffle input; walks the task's narrow lineage through nodes with the same partitioning.
fn preferred_executors(state: &State, map_outputs: &MapOutputTracker, task: &Task) -> Vec<ExecutorId> {
    let partition = task.tref.partition;
    let Some(mut node) = task.node.clone() else {
        return Vec::new();
    };
    loop {
        if let Some(holders) = state.cached.get(&(node.meta().id, partition)) {
            let live: Vec<ExecutorId> = holders
                .iter()
                .copied()
                .filter(|e| state.executors.contains_key(e))
                .collect();
            if !live.is_empty() {
                return live;
            }
        }
        let deps = lineage_deps(&*node);
        let mut next = None;
        for dep in deps {
            match dep {
                Dependency::Narrow(parent) if parent.num_partitions() == node.num_partitions() => {
                    next = Some(parent);
                    break;
                }
                Dependency::Shuffle(s) => {
                    let mut by_executor: HashMap<ExecutorId, u64> = HashMap::new();
                    let mut total = 0u64;
                    for output in map_outputs.snapshot(s.shuffle_id()).into_iter().flatten() {
                        let bytes = output.status.partition_lengths.get(partition).copied().unwrap_or(0);
                        total += bytes;
                        if let Some(loc) = &output.location {
                            *by_executor.entry(loc.executor).or_default() += bytes;
                        }
                    }
                    if total == 0 {
                        return Vec::new();
                    }
                    let mut prefs: Vec<(ExecutorId, u64)> = by_executor
                        .into_iter()
                        .filter(|(e, b)| {
                            state.executors.contains_key(e) && *b as f64 >= REDUCER_PREFERENCE_FRACTION * total as f64
                        })
                        .collect();
                    prefs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    return prefs.into_iter().map(|(e, _)| e).collect();
                }
                Dependency::Narrow(_) => {}
            }
        }
        match next {
            Some(parent) => node = parent,
            None => return Vec::new(),
        }
    }
}

/// A placement decided under the lock, sent outside it.
struct Placement {
    task_id: u64,
    executor: ExecutorId,
    envelope: Result<Vec<u8>>,
}

impl Shared {
    fn emit(&self, event: SchedulerEvent) {
        let emit = self.emit.lock().clone();
        if let Some(emit) = emit {
            emit(event);
        }
    }

    /// Places pending tasks on free slots and sends them.
    fn schedule(&self) {
        let now = Instant::now();
        let wait = self.settings.locality_wait;
        let mut placements = Vec::new();
        let mut killed = Vec::new();
        let mut stale = Vec::new();
        {
            let mut state = self.state.lock();
            let mut i = 0;
            while i < state.pending.len() {
                if state.pending[i].task.killed.load(Ordering::Relaxed) {
                    killed.push(state.pending.remove(i).expect("index is in range"));
                    continue;
                }
                let free_any = state.executors.values().any(|e| e.free > 0 && !e.draining);
                if !free_any {
                    break;
                }
                let p = &state.pending[i];
                let live_prefs: Vec<ExecutorId> = p
                    .prefs
                    .iter()
                    .copied()
                    .filter(|e| state.executors.get(e).is_some_and(|x| !x.draining))
                    .collect();
                let preferred = live_prefs
                    .iter()
                    .copied()
                    .find(|e| state.executors.get(e).is_some_and(|x| x.free > 0));
                let choice = preferred.or_else(|| {
                    if live_prefs.is_empty() || now.duration_since(p.since) >= wait {
                        // The executor with the most free slots spreads work evenly.
                        state
                            .executors
                            .iter()
                            .filter(|(_, x)| x.free > 0 && !x.draining)
                            .max_by_key(|(id, x)| (x.free, std::cmp::Reverse(**id)))
                            .map(|(id, _)| *id)
                    } else {
                        None
                    }
                });
                let Some(executor) = choice else {
                    i += 1;
                    continue;
                };
                let p = state.pending.remove(i).expect("index is in range");
                let inputs = p
                    .task
                    .inputs
                    .iter()
                    .map(|s| (*s, self.map_outputs.snapshot(*s)))
                    .collect::<Vec<_>>();
                // An input lost since the stage was submitted (executor lost, fetch failure):
                // the task would only fail on the executor; it fails here, and the scheduler
                // recomputes the missing map output first.
                let missing = inputs
                    .iter()
                    .find_map(|(s, outputs)| outputs.iter().position(Option::is_none).map(|m| (*s, m)));
                if let Some((shuffle, map_id)) = missing {
                    stale.push((p, shuffle, map_id));
                    continue;
                }
                state
                    .executors
                    .get_mut(&executor)
                    .expect("chosen executor is live")
                    .free -= 1;
                let task_id = state.next_task_id;
                state.next_task_id += 1;
                placements.push((task_id, executor, inputs, p.task.tref.clone()));
                state.running.insert(
                    task_id,
                    Running {
                        task: p.task,
                        done: p.done,
                        executor,
                        kill_sent: false,
                    },
                );
            }
        }
        for (p, shuffle, map_id) in stale {
            let reduce_id = p.task.tref.partition;
            let _ = p.done.send(TaskEnd {
                tref: p.task.tref,
                result: Err(TaskFailure::FetchFailed {
                    shuffle,
                    map_id,
                    reduce_id,
                    output: None,
                    detail: "the map output was lost before the task started".into(),
                }),
                updates: Default::default(),
                executor: None,
            });
        }
        for p in killed {
            let _ = p.done.send(TaskEnd {
                tref: p.task.tref,
                result: Err(TaskFailure::Killed {
                    reason: "job cancelled".into(),
                }),
                updates: Default::default(),
                executor: None,
            });
        }
        if placements.is_empty() {
            return;
        }
        // Encoding happens outside the lock: a lineage can be large.
        let mut ready = Vec::with_capacity(placements.len());
        for (task_id, executor, inputs, tref) in placements {
            let kind = {
                let state = self.state.lock();
                state.running.get(&task_id).map(|r| r.task.kind.clone())
            };
            let Some(kind) = kind else { continue };
            let envelope = shipping::encode_kind(&kind).and_then(|kind| {
                wire::encode(
                    "task envelope",
                    &TaskEnvelope {
                        tref: tref.clone(),
                        kind,
                        inputs,
                    },
                )
            });
            ready.push(Placement {
                task_id,
                executor,
                envelope,
            });
        }
        let transport = self.transport.lock().clone();
        for p in ready {
            match (p.envelope, &transport) {
                (Ok(bytes), Some(t)) => {
                    tracing::debug!(task_id = p.task_id, executor = %p.executor, bytes = bytes.len(), "launching task");
                    t.launch(p.executor, p.task_id, bytes)
                }
                (Err(e), _) => self.finish_with(
                    p.task_id,
                    TaskFailure::Error(format!("cannot ship the task: {}", crate::error::report(&e))),
                ),
                (Ok(_), None) => self.finish_with(p.task_id, TaskFailure::Error("no cluster transport".into())),
            }
        }
    }

    /// Ends a running task with `failure` on the driver side (it never ran, or cannot be accepted).
    fn finish_with(&self, task_id: u64, failure: TaskFailure) {
        let running = {
            let mut state = self.state.lock();
            let r = state.running.remove(&task_id);
            if let Some(r) = &r
                && let Some(e) = state.executors.get_mut(&r.executor)
            {
                e.free += 1;
            }
            r
        };
        if let Some(r) = running {
            let _ = r.done.send(TaskEnd {
                tref: r.task.tref,
                result: Err(failure),
                updates: Default::default(),
                executor: Some(r.executor),
            });
        }
        self.schedule();
    }

    fn executor_lost(&self, executor: ExecutorId, reason: &str) {
        let lost_tasks = {
            let mut state = self.state.lock();
            if state.executors.remove(&executor).is_none() {
                return;
            }
            state.gone.insert(executor);
            for holders in state.cached.values_mut() {
                holders.remove(&executor);
            }
            let ids: Vec<u64> = state
                .running
                .iter()
                .filter(|(_, r)| r.executor == executor)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| state.running.remove(&id))
                .collect::<Vec<_>>()
        };
        let outputs = self.map_outputs.remove_executor(executor);
        tracing::warn!(%executor, %reason, running_tasks = lost_tasks.len(), lost_map_outputs = outputs, "executor lost");
        self.emit(SchedulerEvent::ExecutorLost {
            executor,
            reason: reason.to_string(),
        });
        for r in lost_tasks {
            let _ = r.done.send(TaskEnd {
                tref: r.task.tref,
                result: Err(TaskFailure::ExecutorLost {
                    executor,
                    reason: reason.to_string(),
                }),
                updates: Default::default(),
                executor: Some(executor),
            });
        }
        self.changed.notify_all();
        self.schedule();
    }

    /// Stops draining executors that have no running task left.
    fn retire_drained(&self) {
        let retired: Vec<ExecutorId> = {
            let state = self.state.lock();
            state
                .executors
                .iter()
                .filter(|(id, e)| e.draining && !state.running.values().any(|r| r.executor == **id))
                .map(|(id, _)| *id)
                .collect()
        };
        for executor in retired {
            self.executor_lost(executor, "decommissioned");
            if let Some(t) = self.transport.lock().clone() {
                t.stop_executor(executor);
            }
        }
    }

    /// Stops giving `executor` tasks; once its running tasks are done its map outputs and
    /// cached partitions are forgotten (recomputed from lineage where needed) and it is stopped.
    fn decommission(&self, executor: ExecutorId) -> Result<()> {
        {
            let mut state = self.state.lock();
            let e = state
                .executors
                .get_mut(&executor)
                .ok_or_else(|| EngineError::Cluster(format!("no live executor {executor}")))?;
            e.draining = true;
        }
        tracing::info!(%executor, "decommissioning executor");
        self.retire_drained();
        Ok(())
    }

    /// With no executor left and none coming, pending tasks fail instead of waiting forever.
    fn fail_stranded(&self) {
        let stranded: Vec<Pending> = {
            let mut state = self.state.lock();
            if !(state.gave_up && state.executors.is_empty()) {
                return;
            }
            state.pending.drain(..).collect()
        };
        for p in stranded {
            let _ = p.done.send(TaskEnd {
                tref: p.task.tref,
                result: Err(TaskFailure::Error(
                    "no executor is left to run the task and none can be started".into(),
                )),
                updates: Default::default(),
                executor: None,
            });
        }
    }

    /// As Spark's "Initial job has not accepted any resources": tasks waiting with no executor
    /// for `starvation_timeout` log a warning, again every period, and keep waiting.
    fn warn_if_starved(&self, now: Instant) {
        let period = self.settings.starvation_timeout;
        let waiting = {
            let mut state = self.state.lock();
            if state.pending.is_empty() || !state.executors.is_empty() {
                state.starved_since = None;
                return;
            }
            let since = *state.starved_since.get_or_insert(now);
            let due = now.duration_since(since) >= period
                && state.starvation_warned.is_none_or(|w| now.duration_since(w) >= period);
            if !due {
                return;
            }
            state.starvation_warned = Some(now);
            (state.pending.len(), now.duration_since(since))
        };
        tracing::warn!(
            tasks = waiting.0,
            waited_s = waiting.1.as_secs(),
            "initial job has not accepted any resources; check that workers are registered and have \
             sufficient resources (cores, memory) for this application's executors"
        );
    }

    fn check(&self) {
        self.fail_stranded();
        self.warn_if_starved(Instant::now());
        let now = Instant::now();
        let timeout = self.settings.heartbeat_timeout;
        let (silent, kills, pending) = {
            let mut state = self.state.lock();
            let silent: Vec<(ExecutorId, Duration)> = state
                .executors
                .iter()
                .filter(|(_, e)| now.duration_since(e.last_heard) > timeout)
                .map(|(id, e)| (*id, now.duration_since(e.last_heard)))
                .collect();
            let mut kills = Vec::new();
            for (id, r) in state.running.iter_mut() {
                if !r.kill_sent && r.task.killed.load(Ordering::Relaxed) {
                    r.kill_sent = true;
                    kills.push((r.executor, *id));
                }
            }
            (silent, kills, !state.pending.is_empty())
        };
        for (executor, quiet) in silent {
            self.executor_lost(executor, &format!("no heartbeat for {:.1} s", quiet.as_secs_f64()));
        }
        if !kills.is_empty()
            && let Some(t) = self.transport.lock().clone()
        {
            for (executor, task_id) in kills {
                t.kill_task(executor, task_id);
            }
        }
        if pending {
            self.schedule();
        }
    }
}

fn monitor(shared: Weak<Shared>) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(shared) = shared.upgrade() else { return };
        if shared.state.lock().shut_down {
            return;
        }
        shared.check();
    }
}

impl DriverHandle {
    /// Settings executors run with (sent to them when they register).
    pub fn executor_settings(&self) -> ExecutorSettings {
        self.shared.executor_settings.clone()
    }

    /// Distributed-mode settings of this context.
    pub fn settings(&self) -> &ClusterSettings {
        &self.shared.settings
    }

    /// Adds a registered executor; it gets tasks at once.
    pub fn executor_registered(&self, info: ExecutorInfo) -> Result<()> {
        {
            let mut state = self.shared.state.lock();
            if state.executors.contains_key(&info.id) || state.gone.contains(&info.id) {
                return Err(EngineError::Cluster(format!(
                    "executor {} registered twice (a stale process?)",
                    info.id
                )));
            }
            tracing::info!(executor = %info.id, pid = info.pid, cores = info.cores, address = %info.address, "executor registered");
            state.executors.insert(
                info.id,
                Executor {
                    free: info.cores,
                    info: info.clone(),
                    last_heard: Instant::now(),
                    draining: false,
                },
            );
        }
        self.shared.emit(SchedulerEvent::ExecutorAdded {
            executor: info.id,
            cores: info.cores,
        });
        self.shared.changed.notify_all();
        self.shared.schedule();
        Ok(())
    }

    /// Records that an executor could not start or was refused (reported if too few register).
    pub fn executor_failed_to_start(&self, reason: String) {
        tracing::error!(%reason, "executor failed to start");
        self.shared.state.lock().start_failures.push(reason);
        self.shared.changed.notify_all();
    }

    /// The launcher cannot start executors any more (all died and no restarts are left):
    /// a context waiting for its executors fails now instead of at its timeout.
    pub fn give_up(&self, reason: String) {
        tracing::error!(%reason, "no executor can be started");
        let mut state = self.shared.state.lock();
        state.start_failures.push(reason);
        state.gave_up = true;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Decommissions `executor` (the cluster manager is taking its machine away): see
    /// `Context::decommission_executor`.
    pub fn decommission(&self, executor: ExecutorId) -> Result<()> {
        self.shared.decommission(executor)
    }

    /// A heartbeat from `executor`; false means the driver does not know it (it should exit).
    pub fn heartbeat(&self, executor: ExecutorId) -> bool {
        let mut state = self.shared.state.lock();
        match state.executors.get_mut(&executor) {
            Some(e) => {
                e.last_heard = Instant::now();
                true
            }
            None => false,
        }
    }

    /// The executor is gone (connection closed, process exited): see the module docs.
    pub fn executor_lost(&self, executor: ExecutorId, reason: &str) {
        self.shared.executor_lost(executor, reason);
    }

    /// Whether a result of `bytes` for `task_id` may be accepted; refusing it ends the task
    /// with [`TaskFailure::ResultTooLarge`] (call before fetching a large result).
    pub fn admit_result(&self, task_id: u64, bytes: u64) -> bool {
        let limit = self.shared.settings.max_result_size;
        let verdict = {
            let mut state = self.shared.state.lock();
            let Some(job) = state.running.get(&task_id).map(|r| r.task.tref.job) else {
                return false;
            };
            let total = state.result_bytes.entry(job).or_default();
            *total += bytes;
            if *total > limit { Err((job, *total)) } else { Ok(()) }
        };
        match verdict {
            Ok(()) => true,
            Err((job, total)) => {
                self.shared
                    .finish_with(task_id, TaskFailure::ResultTooLarge { job, total, limit });
                false
            }
        }
    }

    /// A task finished on `executor`; `end` is what its runtime returned.
    pub fn task_finished(&self, executor: ExecutorId, task_id: u64, end: Vec<u8>) {
        let running = {
            let mut state = self.shared.state.lock();
            match state.running.get(&task_id) {
                Some(r) if r.executor == executor => {}
                _ => return, // a task of a lost executor, or already ended
            }
            let r = state.running.remove(&task_id).expect("checked above");
            if let Some(e) = state.executors.get_mut(&executor) {
                e.free += 1;
                e.last_heard = Instant::now();
            }
            r
        };
        let address = self
            .shared
            .state
            .lock()
            .executors
            .get(&executor)
            .map(|e| e.info.address.clone())
            .unwrap_or_default();
        let end = decode_end(&running, executor, &address, &end, &self.shared.ship);
        let (end, cached) = match end {
            Ok(v) => v,
            Err(e) => (
                TaskEnd {
                    tref: running.task.tref.clone(),
                    result: Err(TaskFailure::Error(format!(
                        "cannot decode the result from executor {executor}: {}",
                        crate::error::report(&e)
                    ))),
                    updates: Default::default(),
                    executor: Some(executor),
                },
                Vec::new(),
            ),
        };
        if !cached.is_empty() {
            let mut state = self.shared.state.lock();
            if state.executors.contains_key(&executor) {
                for block in cached {
                    state.cached.entry(block).or_default().insert(executor);
                }
            }
        }
        let job = end.tref.job;
        let _ = running.done.send(end);
        // Result accounting is per running job; forget jobs with nothing left in the backend.
        {
            let mut state = self.shared.state.lock();
            let active = state.running.values().any(|r| r.task.tref.job == job)
                || state.pending.iter().any(|p| p.task.tref.job == job);
            if !active {
                state.result_bytes.remove(&job);
            }
        }
        self.shared.retire_drained();
        self.shared.schedule();
    }

    /// The encoded value of a broadcast variable, for an executor that asks.
    pub fn broadcast_bytes(&self, id: BroadcastId) -> Option<Vec<u8>> {
        self.shared.ship.broadcast_bytes(id).ok()
    }
}

fn decode_end(
    running: &Running,
    executor: ExecutorId,
    address: &str,
    bytes: &[u8],
    ship: &ShipRegistry,
) -> Result<(TaskEnd, Vec<(RddId, usize)>)> {
    let reported: ExecutorTaskEnd = wire::decode("task end", bytes)?;
    let mut end = match reported.outcome {
        Ok(end) => shipping::decode_end(&running.task.kind, running.task.tref.clone(), &end, ship)?,
        Err(failure) => TaskEnd {
            tref: running.task.tref.clone(),
            result: Err(failure),
            updates: Default::default(),
            executor: None,
        },
    };
    end.executor = Some(executor);
    if let Ok(TaskOutput::MapOutput(output)) = &mut end.result {
        output.location = Some(BlockLocation {
            executor,
            address: address.to_string(),
        });
    }
    Ok((end, reported.cached))
}
