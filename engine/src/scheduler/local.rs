//! The local backend: task slots are threads of this process (`local[N]`).
//!
//! As the style guide asks, task bodies run on dedicated `flint-task-N` threads, never on an
//! async runtime; the scheduler only sends them work through a channel.
//!
//! With `ship_tasks` on, each task goes through its byte encoding on its way (`ship::run_shipped`).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::{Backend, Task, TaskEnd};
use crate::env::ExecutorEnv;
use crate::ship::{ShipRegistry, run_shipped};

type Work = (Task, Sender<TaskEnd>);

/// N worker threads sharing one queue.
pub(crate) struct LocalBackend {
    slots: usize,
    // Unbounded: it holds at most the tasks of the stages currently submitted, which the
    // scheduler bounds (one task per partition of a running stage).
    queue: Option<Sender<Work>>,
    workers: Vec<JoinHandle<()>>,
}

impl LocalBackend {
    /// Starts `slots` task threads; with `ship`, every task is encoded, decoded and run as an
    /// executor would run it, and its end decoded with `ship`'s registry.
    pub(crate) fn start(slots: usize, env: Arc<ExecutorEnv>, ship: Option<Arc<ShipRegistry>>) -> std::io::Result<Self> {
        let (tx, rx): (Sender<Work>, Receiver<Work>) = unbounded();
        let mut workers = Vec::with_capacity(slots);
        for i in 0..slots {
            let rx = rx.clone();
            let env = env.clone();
            let ship = ship.clone();
            let handle = std::thread::Builder::new()
                .name(format!("flint-task-{i}"))
                .spawn(move || {
                    while let Ok((task, done)) = rx.recv() {
                        let end = match &ship {
                            Some(registry) => run_shipped(task, &env, registry),
                            None => task.run(env.clone()),
                        };
                        // The job may have given up waiting (it failed); that is fine.
                        let _ = done.send(end);
                    }
                })?;
            workers.push(handle);
        }
        Ok(LocalBackend {
            slots,
            queue: Some(tx),
            workers,
        })
    }
}

impl Backend for LocalBackend {
    fn slots(&self) -> usize {
        self.slots
    }

    fn launch(&self, task: Task, done: Sender<TaskEnd>) {
        if let Some(q) = &self.queue {
            let _ = q.send((task, done));
        }
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they finish what they run.
        self.queue.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
