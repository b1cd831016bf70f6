//! The driver's entry point: a [`Context`] owns the scheduler, the executor environment of local
//! mode, id generators, accumulators and broadcast variables.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use flint_shuffle::{MemoryBudget, ShuffleDirs, ShuffleEnv};

use crate::accumulator::{Accumulator, AccumulatorValue};
use crate::broadcast::Broadcast;
use crate::cluster::{ClusterBackend, ExecutorInfo, ExecutorSettings};
use crate::conf::{Config, ConfigBuilder, Master};
use crate::data::Data;
use crate::env::ExecutorEnv;
use crate::error::{EngineError, Result};
use crate::ids::{AccumulatorId, BroadcastId, ExecutorId, IdGen, JobId, RddId, ShuffleId};
use crate::rdd::Rdd;
use crate::scheduler::dag::{Scheduler, SchedulerLimits};
use crate::scheduler::local::LocalBackend;
use crate::scheduler::{CollectPartition, Listener, ResultRunner, SchedulerEvent};
use crate::ship::ShipRegistry;
use crate::shuffle_map::MapOutputTracker;
use crate::storage::BlockManager;

/// The driver's handle on flint: makes RDDs and runs jobs. Cheap to clone; shared by threads.
///
/// ```
/// use flint_engine::Context;
/// let ctx = Context::builder().master("local[2]").app_name("doc").build().unwrap();
/// assert_eq!(ctx.range(0, 100, 4).count().unwrap(), 100);
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    app_id: String,
    rdd_ids: IdGen,
    shuffle_ids: IdGen,
    job_ids: IdGen,
    broadcast_ids: IdGen,
    accumulator_ids: IdGen,
    env: Arc<ExecutorEnv>,
    /// Broadcast values and accumulator decoders for shipped tasks.
    ship: Arc<ShipRegistry>,
    scheduler: Scheduler,
    /// The executors of a distributed context (dropped after the scheduler: see `Drop`).
    cluster: Option<Arc<ClusterBackend>>,
    stopped: AtomicBool,
    /// Job group of each driver thread that set one (`set_job_group`).
    job_groups: parking_lot::Mutex<HashMap<ThreadId, String>>,
    /// Shuffle, spill and cache files of this context; removed when it is dropped.
    _local_dir: tempfile::TempDir,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("app_id", &self.inner.app_id)
            .field("master", &self.inner.config.master)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Context`]; every setting has a default (see [`crate::conf`]).
#[derive(Clone, Debug, Default)]
pub struct ContextBuilder {
    config: ConfigBuilder,
}

impl ContextBuilder {
    /// Master URL: `local`, `local[N]`, `local[*]`.
    pub fn master(mut self, url: impl Into<String>) -> Self {
        self.config = self.config.master(url);
        self
    }
    /// Application name.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.config = self.config.app_name(name);
        self
    }
    /// Memory limit for shuffle, aggregation and sort buffers (spill past it).
    pub fn memory_limit_bytes(mut self, bytes: u64) -> Self {
        self.config = self.config.memory_limit_bytes(bytes);
        self
    }
    /// Memory for cached partitions.
    pub fn storage_memory_bytes(mut self, bytes: u64) -> Self {
        self.config = self.config.storage_memory_bytes(bytes);
        self
    }
    /// Directory for shuffle, spill and disk-cache files.
    pub fn local_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config = self.config.local_dir(dir);
        self
    }
    /// Directory for checkpoints.
    pub fn checkpoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config = self.config.checkpoint_dir(dir);
        self
    }
    /// Attempts per task before the job fails.
    pub fn max_task_failures(mut self, n: u32) -> Self {
        self.config = self.config.max_task_failures(n);
        self
    }
    /// Default number of partitions.
    pub fn default_parallelism(mut self, n: usize) -> Self {
        self.config = self.config.default_parallelism(n);
        self
    }
    /// Console progress bar.
    pub fn show_progress(mut self, on: bool) -> Self {
        self.config = self.config.show_progress(on);
        self
    }
    /// Ship every task through its byte encoding, even in local mode (a test mode, see
    /// [`crate::conf`]).
    pub fn ship_tasks(mut self, on: bool) -> Self {
        self.config = self.config.ship_tasks(on);
        self
    }
    /// Sets any key by name (see [`crate::conf`]).
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        self.config = self.config.set(key, value)?;
        Ok(self)
    }
    /// Starts the context.
    pub fn build(self) -> Result<Context> {
        Context::with_config(self.config.build()?)
    }
}

/// Starts the executors of a `local-cluster` master and a scheduler over them.
fn start_cluster(
    config: &Config,
    app_dir: &std::path::Path,
    env: &Arc<ExecutorEnv>,
    limits: SchedulerLimits,
    executors: usize,
    ship: Arc<ShipRegistry>,
) -> Result<(Scheduler, Arc<ClusterBackend>)> {
    let launcher = crate::cluster::launcher().ok_or_else(|| {
        EngineError::Cluster(
            "local-cluster and flint:// masters start executor processes of this program: call \
             flint::init() first thing in main"
                .into(),
        )
    })?;
    let executor_settings = ExecutorSettings {
        memory_limit_bytes: config.memory_limit_bytes,
        storage_memory_bytes: config.storage_memory_bytes,
        shuffle_compress: config.shuffle_compress,
        heartbeat_interval: config.cluster.heartbeat_interval,
        heartbeat_timeout: config.cluster.heartbeat_timeout,
    };
    let backend = Arc::new(ClusterBackend::new(
        config.cluster.clone(),
        executor_settings,
        env.map_outputs.clone(),
        ship,
    ));
    let scheduler = Scheduler::new(Box::new(backend.clone()), env.clone(), limits);
    backend.set_emitter(scheduler.emitter());
    // Executors keep their files under this application's directory.
    let mut launch_config = config.clone();
    launch_config.local_dir = app_dir.to_path_buf();
    let transport = launcher.start(&launch_config, backend.handle())?;
    backend.set_transport(transport);
    let weak = Arc::downgrade(&backend);
    env.set_on_shuffle_removed(Arc::new(move |shuffle| {
        if let Some(t) = weak.upgrade().and_then(|b| b.transport()) {
            t.remove_shuffle(shuffle);
        }
    }));
    backend.wait_for_executors(executors)?;
    Ok((scheduler, backend))
}

impl Context {
    /// A builder with every setting at its default.
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// A context for `master` with default settings.
    pub fn new(master: &str) -> Result<Context> {
        Context::builder().master(master).build()
    }

    /// A local context with `threads` task slots.
    pub fn local(threads: usize) -> Result<Context> {
        Context::new(&format!("local[{}]", threads.max(1)))
    }

    /// A context with a complete configuration.
    pub fn with_config(config: Config) -> Result<Context> {
        crate::task_context::install_panic_hook();
        std::fs::create_dir_all(&config.local_dir).map_err(|e| EngineError::write(&config.local_dir, e))?;
        let local_dir = tempfile::Builder::new()
            .prefix("flint-")
            .tempdir_in(&config.local_dir)
            .map_err(|e| EngineError::write(&config.local_dir, e))?;
        let app_id = local_dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "flint".into());
        let shuffle_err = |e: flint_shuffle::ShuffleError| EngineError::Shuffle {
            shuffle: ShuffleId(0),
            source: e,
        };
        let dirs = Arc::new(ShuffleDirs::new(local_dir.path().join("shuffle")).map_err(shuffle_err)?);
        let shuffle = ShuffleEnv {
            dirs,
            budget: MemoryBudget::new(config.memory_limit_bytes),
            compress: config.shuffle_compress,
        };
        let blocks_dir = local_dir.path().join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(|e| EngineError::write(&blocks_dir, e))?;
        let env = Arc::new(ExecutorEnv::new(
            shuffle,
            BlockManager::new(config.storage_memory_bytes, blocks_dir),
            Arc::new(MapOutputTracker::default()),
        ));
        let ship = Arc::new(ShipRegistry::default());
        let shipping = if config.ship_tasks {
            // As an executor's runtime will: broadcast values missing from the cache are
            // fetched from the driver (here, the registry of this very context).
            let registry = ship.clone();
            env.broadcasts
                .set_source(Arc::new(move |id| registry.broadcast_bytes(id)));
            Some(ship.clone())
        } else {
            None
        };
        let limits = SchedulerLimits {
            max_task_failures: config.max_task_failures,
            max_stage_attempts: config.max_stage_attempts,
            show_progress: config.show_progress,
        };
        let (scheduler, cluster) = match config.master {
            Master::Local { threads } => {
                let backend = LocalBackend::start(threads, env.clone(), shipping)
                    .map_err(|e| EngineError::Internal(format!("cannot start task threads: {e}")))?;
                (Scheduler::new(Box::new(backend), env.clone(), limits), None)
            }
            Master::LocalCluster { executors, .. } => {
                let (scheduler, backend) =
                    start_cluster(&config, local_dir.path(), &env, limits, executors, ship.clone())?;
                (scheduler, Some(backend))
            }
            // As Spark standalone: executors arrive when the master finds room for them; tasks
            // wait for them (with a warning past `starvation_timeout`).
            Master::Standalone { .. } => {
                let (scheduler, backend) = start_cluster(&config, local_dir.path(), &env, limits, 0, ship.clone())?;
                (scheduler, Some(backend))
            }
        };
        tracing::info!(app = %config.app_name, %app_id, master = ?config.master, "context started");
        Ok(Context {
            inner: Arc::new(Inner {
                config,
                app_id,
                rdd_ids: IdGen::default(),
                shuffle_ids: IdGen::default(),
                job_ids: IdGen::default(),
                broadcast_ids: IdGen::default(),
                accumulator_ids: IdGen::default(),
                env,
                ship,
                scheduler,
                cluster,
                stopped: AtomicBool::new(false),
                job_groups: parking_lot::Mutex::new(HashMap::new()),
                _local_dir: local_dir,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A unique name for this application run.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// Default number of partitions.
    pub fn default_parallelism(&self) -> usize {
        self.inner.config.default_parallelism
    }

    pub(crate) fn env(&self) -> &Arc<ExecutorEnv> {
        &self.inner.env
    }

    pub(crate) fn new_rdd_id(&self) -> RddId {
        RddId(self.inner.rdd_ids.next())
    }

    pub(crate) fn new_shuffle_id(&self) -> ShuffleId {
        ShuffleId(self.inner.shuffle_ids.next())
    }

    /// Shares a read-only value with every task.
    pub fn broadcast<T: Data>(&self, value: T) -> Broadcast<T> {
        let b = Broadcast::new(BroadcastId(self.inner.broadcast_ids.next()), value);
        self.inner.ship.broadcasts.register(&b);
        b
    }

    /// The encoded value of broadcast `id`, for an executor that fetches it (encoded on the
    /// first fetch). Distributed mode serves executors with it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn broadcast_bytes(&self, id: BroadcastId) -> Result<Vec<u8>> {
        self.inner.ship.broadcast_bytes(id)
    }

    /// A new accumulator starting at `initial`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let evens = ctx.accumulator(0u64);
    /// ctx.range(0, 10, 3).foreach(flint_engine::with(evens.clone(), |acc: &flint_engine::Accumulator<u64>, x: i64| {
    ///     if x % 2 == 0 { acc.add(1) }
    /// })).unwrap();
    /// assert_eq!(evens.value(), 5);
    /// ```
    pub fn accumulator<T: AccumulatorValue>(&self, initial: T) -> Accumulator<T> {
        let acc = Accumulator::new(AccumulatorId(self.inner.accumulator_ids.next()), initial);
        self.inner.scheduler.register_accumulator(acc.id(), acc.sink());
        self.inner.ship.accumulators.register(&acc);
        acc
    }

    /// Calls `listener` with every scheduler event of this context.
    pub fn add_listener(&self, listener: impl Fn(&SchedulerEvent) + Send + Sync + 'static) {
        let l: Listener = Arc::new(listener);
        self.inner.scheduler.add_listener(l);
    }

    /// Jobs running now.
    pub fn running_jobs(&self) -> Vec<JobId> {
        self.inner.scheduler.running_jobs()
    }

    /// Cancels a running job: its action returns [`EngineError::Cancelled`]. Returns whether
    /// the job was running.
    pub fn cancel_job(&self, job: JobId) -> bool {
        self.inner.scheduler.cancel_job(job)
    }

    /// Tags the jobs this thread starts from now on with `group`, so that
    /// [`cancel_job_group`](Context::cancel_job_group) can stop them together (as Spark's
    /// `setJobGroup`, a property of the calling thread).
    pub fn set_job_group(&self, group: &str) {
        self.inner
            .job_groups
            .lock()
            .insert(std::thread::current().id(), group.to_string());
    }

    /// Stops tagging this thread's jobs with a group.
    pub fn clear_job_group(&self) {
        self.inner.job_groups.lock().remove(&std::thread::current().id());
    }

    fn job_group(&self) -> Option<String> {
        self.inner.job_groups.lock().get(&std::thread::current().id()).cloned()
    }

    /// Cancels the running jobs of `group`; returns how many there were.
    pub fn cancel_job_group(&self, group: &str) -> usize {
        self.inner.scheduler.cancel_group(group)
    }

    /// Makes the failpoint `name` act as `action` in this context's tasks (tests of recovery;
    /// see [`crate::failpoints`] for the points).
    pub fn set_failpoint(&self, name: &str, action: crate::failpoints::FailAction) {
        self.inner.env.failpoints.set(name, action);
    }

    /// Turns every failpoint of this context off.
    pub fn clear_failpoints(&self) {
        self.inner.env.failpoints.clear();
    }

    /// Cancels every running job.
    pub fn cancel_all_jobs(&self) {
        self.inner.scheduler.cancel_all()
    }

    /// Stops the context: running jobs are cancelled and new jobs are refused. Files are
    /// removed when the last handle is dropped.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        self.cancel_all_jobs();
    }

    /// How many jobs this context has started (an action runs one or more): Spark's status
    /// tracker's job ids, as a count. What an algorithm costs in jobs is the difference
    /// across a call.
    ///
    /// ```
    /// let ctx = flint_engine::Context::local(2).unwrap();
    /// let before = ctx.jobs_started();
    /// ctx.parallelize((0..10).collect::<Vec<u32>>(), 3).count().unwrap();
    /// assert_eq!(ctx.jobs_started() - before, 1);
    /// ```
    pub fn jobs_started(&self) -> u64 {
        self.inner.job_ids.issued()
    }

    /// Runs a job that computes `partitions` of `rdd` and returns their elements.
    pub fn run_job<T: Data>(&self, rdd: &Rdd<T>, partitions: &[usize]) -> Result<Vec<Vec<T>>> {
        if self.inner.stopped.load(Ordering::Relaxed) {
            return Err(EngineError::Stopped);
        }
        let runner: ResultRunner = Arc::new(CollectPartition::new(rdd.node.clone()));
        let job = JobId(self.inner.job_ids.next());
        let root = rdd.erased();
        let results = self
            .inner
            .scheduler
            .run_job(self, job, root.clone(), runner, partitions, self.job_group())?;
        crate::rdd::write_marked_checkpoints(self, &root)?;
        results
            .into_iter()
            .map(|r| {
                r.downcast::<Vec<T>>()
                    .map(|b| *b)
                    .map_err(|_| EngineError::Internal("task result has an unexpected type".into()))
            })
            .collect()
    }

    /// The live executors (empty in local mode).
    pub fn executors(&self) -> Vec<ExecutorInfo> {
        self.inner.cluster.as_ref().map(|c| c.executors()).unwrap_or_default()
    }

    /// Starts `n` more executors (distributed mode): they register and get tasks, also of the
    /// jobs running now.
    pub fn request_executors(&self, n: usize) -> Result<()> {
        let cluster = self.cluster("request_executors")?;
        let transport = cluster
            .transport()
            .ok_or_else(|| EngineError::Cluster("the cluster is shutting down".into()))?;
        transport.request_executors(n)
    }

    /// Removes an executor gracefully: it gets no new tasks, and once its running tasks are
    /// done it stops; its map outputs and cached partitions are recomputed where needed.
    pub fn decommission_executor(&self, executor: ExecutorId) -> Result<()> {
        self.cluster("decommission_executor")?.decommission(executor)
    }

    /// Address of the driver's service in distributed mode (for tools and tests).
    #[doc(hidden)]
    pub fn driver_address(&self) -> Option<String> {
        self.inner.cluster.as_ref()?.transport().map(|t| t.driver_address())
    }

    fn cluster(&self, what: &str) -> Result<&Arc<ClusterBackend>> {
        self.inner
            .cluster
            .as_ref()
            .ok_or_else(|| EngineError::invalid("master", "local", &format!("{what} needs a local-cluster master")))
    }

    /// Number of task slots.
    pub fn slots(&self) -> usize {
        self.inner.scheduler.slots()
    }

    /// Cached partitions of `rdd` as (in memory, on disk), for tests and the UI.
    pub fn cached_partitions<T: Data>(&self, rdd: &Rdd<T>) -> (usize, usize) {
        self.inner.env.blocks.cached_partitions(rdd.id())
    }

    /// Spill files currently on disk (they are removed as soon as their task is done).
    pub fn live_spill_files(&self) -> usize {
        self.inner.env.shuffle.dirs.live_spill_files()
    }

    /// Bytes of the shuffle/aggregation memory budget in use now.
    pub fn shuffle_memory_used_bytes(&self) -> u64 {
        self.inner.env.shuffle.budget.used_bytes()
    }

    /// Bytes of cache memory in use by persisted partitions (estimated).
    pub fn storage_memory_used_bytes(&self) -> u64 {
        self.inner.env.blocks.memory_used_bytes()
    }

    /// Where this context keeps its shuffle files (for tests that damage them on purpose).
    pub fn shuffle_dir(&self) -> std::path::PathBuf {
        self.inner.env.shuffle.dirs.root().to_path_buf()
    }
}
