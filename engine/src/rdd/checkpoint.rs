//! Reliable checkpoints: partitions saved to the checkpoint directory, lineage cut.
//!
//! As Spark's `RDD.checkpoint`: marking is lazy; after the next job that uses the RDD, a
//! separate job writes each partition (`<dir>/rdd-<id>/part-NNNNN`, atomically) and the node then
//! reads its partitions from there and reports no dependencies. Iterative jobs use this to keep
//! lineage (and recovery and scheduling cost) from growing with the number of iterations.
//!
//! A written checkpoint ships as a [`CheckpointedNode`]: a reader of the checkpoint files (the
//! directory must be visible where the task runs, as Spark's reliable checkpoints on a shared
//! file system), never the lineage it replaced.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, SharedVecIter};
use crate::context::Context;
use crate::data::Data;
use crate::error::{EngineError, Result};
use crate::storage::{read_block, write_block};
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

type Writer = Arc<dyn Fn(&Context) -> Result<PathBuf> + Send + Sync>;

/// Where a node stands with respect to checkpointing.
#[derive(Default)]
pub(crate) enum CheckpointState {
    #[default]
    None,
    /// Marked; `write` saves the partitions and returns the directory.
    Marked { write: Writer },
    /// Being written by the job that follows the one that used it.
    Writing,
    /// Saved under `dir`; lineage is cut.
    Done { dir: PathBuf },
}

impl CheckpointState {
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, CheckpointState::Done { .. })
    }
}

pub(crate) fn part_path(dir: &Path, split: usize) -> PathBuf {
    dir.join(format!("part-{split:05}"))
}

/// The file holding `split` when the node is checkpointed.
pub(crate) fn done_path(meta: &NodeMeta, split: usize) -> Option<PathBuf> {
    match &*meta.checkpoint.lock().expect("checkpoint state lock") {
        CheckpointState::Done { dir } => Some(part_path(dir, split)),
        _ => None,
    }
}

pub(crate) fn read_partition<T: Data>(path: &Path) -> Result<BoxIter<T>> {
    let items: Vec<T> = read_block(path)?;
    Ok(Box::new(SharedVecIter::new(Arc::new(items))))
}

/// A checkpointed node as it ships: its metadata (with the checkpoint directory) and
/// partition count; its partitions are read from the checkpoint files.
#[derive(Deserialize)]
#[serde(bound = "")]
pub(crate) struct CheckpointedNode<T> {
    meta: NodeMeta,
    partitions: usize,
    _item: PhantomData<fn() -> T>,
}

/// What [`CheckpointedNode`] is decoded from, written from the original node.
#[derive(Serialize)]
struct CheckpointedOut<'a> {
    meta: &'a NodeMeta,
    partitions: usize,
}

/// Encodes a node whose checkpoint is written as a reader of its checkpoint files.
pub(crate) fn encode_checkpointed<T: Data>(node: &dyn Compute<T>) -> Result<Encoded<Arc<dyn Compute<T>>>> {
    let out = CheckpointedOut {
        meta: node.meta(),
        partitions: node.num_partitions(),
    };
    Encoded::new(&out, wire::decode_node::<CheckpointedNode<T>, T>)
}

impl<T: Data> RddNode for CheckpointedNode<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl<T: Data> Compute<T> for CheckpointedNode<T> {
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        // `iterator` reads the files before calling this; reached only when called directly.
        let path = done_path(&self.meta, split)
            .ok_or_else(|| EngineError::Internal("a shipped checkpoint lost its directory".into()))?;
        read_partition(&path)
    }

    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<T>>>> {
        encode_checkpointed(self)
    }
}

/// Marks `rdd` for checkpointing.
pub(crate) fn mark_rdd<T: Data>(rdd: &Rdd<T>) -> Result<()> {
    let ctx = &rdd.ctx;
    let root = ctx.config().checkpoint_dir.clone().ok_or_else(|| {
        EngineError::invalid(
            "checkpoint_dir",
            "unset",
            "set it with Context::builder().checkpoint_dir(..) or FLINT_CHECKPOINT_DIR",
        )
    })?;
    let meta = rdd.node.meta();
    let mut state = meta.checkpoint.lock().expect("checkpoint state lock");
    if !matches!(*state, CheckpointState::None) {
        return Ok(());
    }
    let weak: Weak<dyn Compute<T>> = Arc::downgrade(&rdd.node);
    let dir = root
        .join(format!("{}-{}", ctx.app_id(), meta.id))
        .join(format!("rdd-{}", meta.id));
    let write: Writer = Arc::new(move |ctx: &Context| {
        let node = weak
            .upgrade()
            .ok_or_else(|| EngineError::Internal("checkpointed RDD was dropped".into()))?;
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::write(&dir, e))?;
        let rdd = Rdd::from_node(ctx, node);
        let target = dir.clone();
        let writer = rdd.map_partitions_with_index(crate::func::with(
            target.display().to_string(),
            |dir: &String, split: usize, it: BoxIter<T>| {
                let items: Vec<T> = it.collect();
                let path = part_path(Path::new(dir), split);
                super::or_raise(write_block(&path, &items));
                std::iter::once(items.len() as u64)
            },
        ));
        let n = writer.num_partitions();
        ctx.run_job(&writer, &(0..n).collect::<Vec<_>>())?;
        Ok(dir.clone())
    });
    *state = CheckpointState::Marked { write };
    Ok(())
}

/// After a job: writes every marked checkpoint in the lineage of `root` and cuts its lineage.
pub(crate) fn write_marked(ctx: &Context, root: &Arc<dyn super::RddNode>) -> Result<()> {
    let mut marked = Vec::new();
    super::walk_lineage(root, |node| {
        let mut state = node.meta().checkpoint.lock().expect("checkpoint state lock");
        if matches!(*state, CheckpointState::Marked { .. }) {
            // Writing runs a job, whose end must not start writing the same checkpoint again.
            if let CheckpointState::Marked { write } = std::mem::replace(&mut *state, CheckpointState::Writing) {
                marked.push((node.clone(), write));
            }
        }
        Ok(())
    })?;
    for (node, write) in marked {
        let dir = match write(ctx) {
            Ok(dir) => dir,
            Err(e) => {
                // Leave it marked: the next job tries again.
                *node.meta().checkpoint.lock().expect("checkpoint state lock") = CheckpointState::Marked { write };
                return Err(e);
            }
        };
        tracing::info!(rdd = %node.meta().id, path = %dir.display(), "checkpoint written; lineage cut");
        *node.meta().checkpoint.lock().expect("checkpoint state lock") = CheckpointState::Done { dir };
    }
    Ok(())
}
