//! Identifier newtypes. Their `Display` is what logs and errors print.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Identifies an RDD within one context.
    RddId
);
id_type!(
    /// Identifies a shuffle dependency within one context.
    ShuffleId
);
id_type!(
    /// Identifies a job (one action) within one context.
    JobId
);
id_type!(
    /// Identifies a stage within one context.
    StageId
);
id_type!(
    /// Identifies a broadcast variable within one context.
    BroadcastId
);
id_type!(
    /// Identifies an accumulator within one context.
    AccumulatorId
);
id_type!(
    /// Identifies an executor (a process that runs tasks) within one application.
    ExecutorId
);

/// Hands out increasing ids of one kind.
#[derive(Debug, Default)]
pub(crate) struct IdGen(AtomicU64);

impl IdGen {
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// How many ids were handed out.
    pub(crate) fn issued(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
