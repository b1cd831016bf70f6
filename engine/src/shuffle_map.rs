//! The map-output tracker: which map outputs of each shuffle exist, and where.
//!
//! As Spark's `MapOutputTracker`: a shuffle map stage is complete when every map partition has a
//! registered output; a fetch failure unregisters the bad output so that only that map
//! partition is recomputed.

use std::collections::HashMap;
use std::path::Path;

use flint_shuffle::{MapOutputFiles, MapStatus};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ids::ShuffleId;

/// One registered map output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MapOutput {
    pub(crate) files: MapOutputFiles,
    pub(crate) status: MapStatus,
    /// The executor holding the files; `None` for files of this process (local mode).
    pub(crate) location: Option<crate::cluster::BlockLocation>,
}

/// Tracks map outputs of every shuffle of one context.
#[derive(Default)]
pub(crate) struct MapOutputTracker {
    shuffles: Mutex<HashMap<ShuffleId, Vec<Option<MapOutput>>>>,
}

impl MapOutputTracker {
    /// Makes sure `shuffle` is known with `num_maps` map partitions.
    pub(crate) fn register_shuffle(&self, shuffle: ShuffleId, num_maps: usize) {
        self.shuffles
            .lock()
            .entry(shuffle)
            .or_insert_with(|| vec![None; num_maps]);
    }

    pub(crate) fn register_output(&self, shuffle: ShuffleId, map_id: usize, output: MapOutput) {
        let mut shuffles = self.shuffles.lock();
        if let Some(slot) = shuffles.get_mut(&shuffle).and_then(|maps| maps.get_mut(map_id)) {
            *slot = Some(output);
        }
    }

    /// Forgets one map output (it is lost or corrupt) if it is still the one whose data file
    /// is `data`. `None` (the reader found no output registered: its view was older) forgets
    /// nothing: an output registered since is a good one. Returns whether one was forgotten.
    pub(crate) fn unregister_output(&self, shuffle: ShuffleId, map_id: usize, data: Option<&Path>) -> bool {
        let Some(data) = data else { return false };
        let mut shuffles = self.shuffles.lock();
        let Some(slot) = shuffles.get_mut(&shuffle).and_then(|maps| maps.get_mut(map_id)) else {
            return false;
        };
        let matches = slot.as_ref().is_some_and(|o| o.files.data == data);
        if matches {
            *slot = None;
        }
        matches
    }

    /// Forgets every output of `shuffle` whose data or index file is gone, and returns their
    /// map partitions. One fetch failure that finds a file missing often means more files of
    /// the shuffle were lost (a cleaned or failed local directory): this finds them all at
    /// once, so they are recomputed together rather than one per stage attempt (as Spark
    /// unregisters every output of an executor whose files are lost). A corrupt file is only
    /// found by reading it, so it is still unregistered by its own fetch failure. Map outputs
    /// are files of this process in local mode.
    pub(crate) fn unregister_missing_files(&self, shuffle: ShuffleId) -> Vec<usize> {
        let mut shuffles = self.shuffles.lock();
        let Some(maps) = shuffles.get_mut(&shuffle) else {
            return Vec::new();
        };
        let mut lost = Vec::new();
        for (map_id, slot) in maps.iter_mut().enumerate() {
            // Only this process's files can be checked here; an executor's are checked by
            // reading them (a fetch failure), and all of them go when the executor is lost.
            if slot
                .as_ref()
                .is_some_and(|o| o.location.is_none() && (!o.files.data.exists() || !o.files.index.exists()))
            {
                *slot = None;
                lost.push(map_id);
            }
        }
        lost
    }

    /// Map partitions of `shuffle` without an output.
    pub(crate) fn missing(&self, shuffle: ShuffleId) -> Vec<usize> {
        let shuffles = self.shuffles.lock();
        match shuffles.get(&shuffle) {
            Some(maps) => maps
                .iter()
                .enumerate()
                .filter(|(_, m)| m.is_none())
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every map output of `shuffle`, or the first missing map partition.
    pub(crate) fn outputs(&self, shuffle: ShuffleId) -> Result<Vec<MapOutput>, usize> {
        let shuffles = self.shuffles.lock();
        let maps = shuffles.get(&shuffle).ok_or(0usize)?;
        maps.iter().enumerate().map(|(i, m)| m.clone().ok_or(i)).collect()
    }

    /// Every map output slot of `shuffle` (empty when the shuffle is unknown).
    pub(crate) fn snapshot(&self, shuffle: ShuffleId) -> Vec<Option<MapOutput>> {
        self.shuffles.lock().get(&shuffle).cloned().unwrap_or_default()
    }

    /// Replaces what is known of `shuffle` (an executor learns it from each task).
    pub(crate) fn set_outputs(&self, shuffle: ShuffleId, outputs: Vec<Option<MapOutput>>) {
        self.shuffles.lock().insert(shuffle, outputs);
    }

    /// Forgets every output held by `executor` (it is lost); returns how many.
    pub(crate) fn remove_executor(&self, executor: crate::ids::ExecutorId) -> usize {
        let mut shuffles = self.shuffles.lock();
        let mut n = 0;
        for maps in shuffles.values_mut() {
            for slot in maps.iter_mut() {
                if slot
                    .as_ref()
                    .is_some_and(|o| o.location.as_ref().is_some_and(|l| l.executor == executor))
                {
                    *slot = None;
                    n += 1;
                }
            }
        }
        n
    }

    /// Forgets a shuffle entirely.
    pub(crate) fn remove_shuffle(&self, shuffle: ShuffleId) {
        self.shuffles.lock().remove(&shuffle);
    }
}
