//! Named failure-injection points at the engine's seams, for tests of recovery (as TiKV's
//! failpoints, but owned by one context instead of the process, so that tests running side by
//! side in one process do not trip each other's points).
//!
//! Points: `shuffle::before_map_output` (a map task is about to compute and write its output),
//! `shuffle::after_map_output` (its files are written, its status not yet reported),
//! `shuffle::before_fetch` (a reduce task is about to read a map output's block),
//! `task::before_result` (a result task has computed its partition, not yet reported it).
//! Unconfigured points cost one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{EngineError, Result};

/// What a configured failpoint does when a task reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailAction {
    /// Panic every time (a crashing task).
    Panic,
    /// Panic the first `n` times, then pass (a transient fault).
    PanicTimes(u32),
    /// Fail the task with an error every time.
    Error,
}

/// The failpoints of one context.
#[derive(Default)]
pub(crate) struct Failpoints {
    any: AtomicBool,
    points: Mutex<HashMap<String, FailAction>>,
}

impl Failpoints {
    pub(crate) fn set(&self, name: &str, action: FailAction) {
        self.points.lock().insert(name.to_string(), action);
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn clear(&self) {
        self.points.lock().clear();
        self.any.store(false, Ordering::Release);
    }

    /// Called at a seam: does what the point is configured to do, if anything.
    #[inline]
    pub(crate) fn hit(&self, name: &str) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        self.hit_configured(name)
    }

    #[cold]
    fn hit_configured(&self, name: &str) -> Result<()> {
        let action = {
            let mut points = self.points.lock();
            match points.get_mut(name) {
                None => return Ok(()),
                Some(FailAction::PanicTimes(0)) => return Ok(()),
                Some(FailAction::PanicTimes(n)) => {
                    *n -= 1;
                    FailAction::Panic
                }
                Some(action) => action.clone(),
            }
        };
        match action {
            FailAction::Error => Err(EngineError::Internal(format!("failpoint {name} fired"))),
            _ => panic!("failpoint {name} fired"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fire_as_configured() {
        let f = Failpoints::default();
        assert!(f.hit("a").is_ok(), "nothing configured");
        f.set("a", FailAction::PanicTimes(2));
        for _ in 0..2 {
            assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.hit("a"))).is_err());
        }
        assert!(f.hit("a").is_ok(), "spent");
        f.set("b", FailAction::Error);
        assert!(f.hit("b").unwrap_err().to_string().contains("failpoint b fired"));
        f.clear();
        assert!(f.hit("b").is_ok());
    }
}
