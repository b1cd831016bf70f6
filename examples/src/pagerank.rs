//! PageRank over an edge list (`src dst` per line, whitespace-separated; `#` starts a comment),
//! as in the Spark examples: links are cached, ranks are recomputed each iteration, and the
//! ranks are checkpointed every `checkpoint_every` iterations to keep lineage short.

use flint::prelude::*;
use flint::{EngineError, Result};

/// Ranks after `iters` iterations, highest first.
pub fn run(ctx: &Context, edges: &str, iters: usize, checkpoint_every: usize) -> Result<Vec<(String, f64)>> {
    let links = ctx
        .text_file(edges, ctx.default_parallelism())
        .filter(|line: &String| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line: String| {
            let mut parts = line.split_whitespace();
            let src = parts.next().unwrap_or_default().to_string();
            let dst = parts.next().unwrap_or_default().to_string();
            (src, dst)
        })
        .filter(|(_, dst): &(String, String)| !dst.is_empty())
        .distinct()
        .group_by_key()
        .cache();
    let mut ranks = links.map_values(|_: Vec<String>| 1.0f64);
    for i in 1..=iters {
        let contributions = links
            .join(&ranks)
            .flat_map(|(_, (urls, rank)): (String, (Vec<String>, f64))| {
                let share = rank / urls.len() as f64;
                urls.into_iter().map(move |u| (u, share)).collect::<Vec<_>>()
            });
        ranks = contributions
            .reduce_by_key(|a, b| a + b)
            .map_values(|sum: f64| 0.15 + 0.85 * sum);
        if checkpoint_every > 0 && i % checkpoint_every == 0 && ctx.config().checkpoint_dir.is_some() {
            ranks = ranks.cache();
            ranks.checkpoint()?;
            ranks.count()?;
        }
    }
    let mut out = ranks.collect()?;
    if out.iter().any(|(_, r)| !r.is_finite()) {
        return Err(EngineError::Internal("pagerank produced a non-finite rank".into()));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}
