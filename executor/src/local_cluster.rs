//! `local-cluster[E,C]`: the driver starts E executor processes of this same program on
//! loopback, watches them, and replaces the ones that die (up to a limit).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flint_engine::cluster::{ClusterLauncher, DriverHandle, ExecutorTransport};
use flint_engine::{Config, EngineError, ExecutorId, Master};
use parking_lot::Mutex;

use crate::driver::{DriverSide, Transport};
use crate::executor::env_keys;

/// Starts `local-cluster` executors; installed by `flint::init()`.
#[derive(Debug, Default)]
pub struct LocalClusterLauncher;

impl ClusterLauncher for LocalClusterLauncher {
    fn start(&self, config: &Config, driver: DriverHandle) -> flint_engine::Result<Arc<dyn ExecutorTransport>> {
        let Master::LocalCluster { executors, cores } = config.master else {
            return Err(EngineError::Cluster(format!(
                "the local-cluster launcher cannot start {:?}",
                config.master
            )));
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flint-driver-net")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Cluster(format!("cannot start the driver's network runtime: {e}")))?;
        let secret = format!("{:032x}", rand::random::<u128>());
        let restarts = driver.settings().restarts_for(executors);
        let side = DriverSide::start(&runtime, driver, &secret, "127.0.0.1")
            .map_err(|e| EngineError::Cluster(format!("cannot listen for executors: {e}")))?;
        let program = match &config.cluster.executor_program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| EngineError::Cluster(format!("cannot find this program's executable: {e}")))?,
        };
        let processes = Arc::new(Processes {
            side: Arc::downgrade(&side),
            program,
            cores,
            secret,
            local_dir: config.local_dir.clone(),
            state: Mutex::new(ProcessState {
                children: HashMap::new(),
                next_id: 0,
                restarts_left: restarts,
                stopped: HashSet::new(),
                ended: HashMap::new(),
            }),
        });
        *side.processes.lock() = Some(processes.clone());
        processes.spawn_more(executors)?;
        let watched = Arc::downgrade(&processes);
        std::thread::Builder::new()
            .name("flint-executor-watch".into())
            .spawn(move || watch(watched))
            .map_err(|e| EngineError::Cluster(format!("cannot start the executor watcher: {e}")))?;
        Ok(Arc::new(Transport {
            side,
            _runtime: runtime,
        }))
    }
}

struct ProcessState {
    children: HashMap<ExecutorId, Child>,
    next_id: u64,
    restarts_left: usize,
    /// Executors stopped on purpose (decommissioned): not replaced.
    stopped: HashSet<ExecutorId>,
    /// How the reaped executors' processes ended, for [`Processes::exit_reason`].
    ended: HashMap<ExecutorId, String>,
}

/// The executor processes of one context.
pub(crate) struct Processes {
    side: Weak<DriverSide>,
    program: PathBuf,
    cores: usize,
    secret: String,
    local_dir: PathBuf,
    state: Mutex<ProcessState>,
}

impl Processes {
    /// Starts `n` executors with fresh ids.
    pub(crate) fn spawn_more(&self, n: usize) -> flint_engine::Result<()> {
        for _ in 0..n {
            let id = {
                let mut state = self.state.lock();
                let id = ExecutorId(state.next_id);
                state.next_id += 1;
                id
            };
            self.spawn(id)?;
        }
        Ok(())
    }

    fn spawn(&self, id: ExecutorId) -> flint_engine::Result<()> {
        let Some(side) = self.side.upgrade() else {
            return Err(EngineError::Cluster("the driver is shutting down".into()));
        };
        if side.shutting_down.load(Ordering::Relaxed) {
            return Err(EngineError::Cluster("the driver is shutting down".into()));
        }
        let child = Command::new(&self.program)
            .env(env_keys::DRIVER, side.address.to_string())
            .env(env_keys::ID, id.0.to_string())
            .env(env_keys::CORES, self.cores.to_string())
            .env(env_keys::SECRET, &self.secret)
            .env(env_keys::LOCAL_DIR, &self.local_dir)
            .stdin(Stdio::null())
            // Executors' stdout (user code printing) must not mix into the driver's output.
            .stdout(Stdio::from(std::io::stderr()))
            .spawn()
            .map_err(|e| {
                EngineError::Cluster(format!("cannot start executor {id} ({}): {e}", self.program.display()))
            })?;
        tracing::info!(executor = %id, pid = child.id(), program = %self.program.display(), "executor process started");
        self.state.lock().children.insert(id, child);
        // A shutdown that ran while this process started did not see it: stop it here.
        if side.shutting_down.load(Ordering::Relaxed) {
            self.kill_all();
        }
        Ok(())
    }

    /// The executor is being stopped on purpose: its exit is not a failure.
    pub(crate) fn mark_stopped(&self, id: ExecutorId) {
        self.state.lock().stopped.insert(id);
    }

    /// How executor `id`'s process ended, if it ends within `wait` ("process 812 was killed by
    /// signal 9 (SIGKILL)"); `None` if it is still running or not ours.
    pub(crate) fn exit_reason(&self, id: ExecutorId, wait: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            {
                let mut state = self.state.lock();
                // Reaped already: the reaper kept how it ended.
                if let Some(how) = state.ended.get(&id) {
                    return Some(how.clone());
                }
                let child = state.children.get_mut(&id)?;
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(format!("process {} {}", child.id(), describe(status)));
                }
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Deletes the directory of a dead executor (it cannot: it was killed). Its shuffle
    /// outputs are unregistered already, so nothing reads them again.
    fn remove_files_of(&self, id: ExecutorId) {
        let prefix = format!("executor-{id}-");
        let Ok(entries) = std::fs::read_dir(&self.local_dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix)
                && let Err(e) = std::fs::remove_dir_all(entry.path())
            {
                tracing::warn!(executor = %id, path = %entry.path().display(), error = %e, "cannot delete a dead executor's files");
            }
        }
    }

    /// Kills every executor process and reaps it.
    pub(crate) fn kill_all(&self) {
        let children: Vec<(ExecutorId, Child)> = self.state.lock().children.drain().collect();
        for (id, mut child) in children {
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(executor = %id, "executor process stopped");
        }
    }

    /// Reaps exited executors: reports them lost and replaces them while restarts are left.
    fn reap(&self, side: &DriverSide) {
        let exited: Vec<(ExecutorId, u32, ExitStatus)> = {
            let mut state = self.state.lock();
            let mut exited = Vec::new();
            for (id, child) in state.children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push((*id, child.id(), status));
                }
            }
            for (id, pid, status) in &exited {
                state.children.remove(id);
                state.ended.insert(*id, format!("process {pid} {}", describe(*status)));
            }
            exited
        };
        for (id, pid, status) in exited {
            if side.shutting_down.load(Ordering::Relaxed) {
                return;
            }
            let how = describe(status);
            self.remove_files_of(id);
            let on_purpose = self.state.lock().stopped.remove(&id);
            if on_purpose {
                tracing::info!(executor = %id, pid, %how, "decommissioned executor exited");
                continue;
            }
            if side.registered(id) {
                side.executor_gone(id, &format!("process {pid} {how}"));
            } else {
                side.handle
                    .executor_failed_to_start(format!("executor {id} (pid {pid}) {how} before registering"));
            }
            let replace = {
                let mut state = self.state.lock();
                if state.restarts_left > 0 {
                    state.restarts_left -= 1;
                    let new = ExecutorId(state.next_id);
                    state.next_id += 1;
                    Some(new)
                } else {
                    None
                }
            };
            match replace {
                Some(new) => {
                    tracing::warn!(lost = %id, replacement = %new, "replacing a lost executor");
                    if let Err(e) = self.spawn(new) {
                        side.handle.executor_failed_to_start(e.to_string());
                    }
                }
                None => {
                    tracing::error!(executor = %id, "executor lost and no restarts are left");
                    if self.state.lock().children.is_empty() {
                        side.handle
                            .give_up("every executor exited and no restarts are left".into());
                    }
                }
            }
        }
    }
}

pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(9)) => "was killed by signal 9 (SIGKILL)".into(),
        (None, Some(6)) => "aborted (signal 6, SIGABRT)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "exited".into(),
    }
}

fn watch(processes: Weak<Processes>) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(p) = processes.upgrade() else { return };
        let Some(side) = p.side.upgrade() else { return };
        if side.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        p.reap(&side);
    }
}
