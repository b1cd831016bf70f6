//! `pagerank EDGES [--iters N] [--top K] [--checkpoint-dir DIR] [--master M] [--json]`
use std::time::Instant;

use clap::Parser;
use flint::Context;
use flint_examples::{cli, pagerank};

/// PageRank over an edge list (`src dst` per line).
#[derive(Parser, Debug)]
struct Args {
    /// Edge list file, directory or glob.
    edges: String,
    /// Iterations.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// How many top pages to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Checkpoint the ranks every N iterations (0: never).
    #[arg(long, default_value_t = 5)]
    checkpoint_every: usize,
    /// Checkpoint directory (default: a temporary directory).
    #[arg(long)]
    checkpoint_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    // First: in an executor process (distributed mode) this runs the executor and exits.
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let tmp = std::env::temp_dir().join(format!("flint-pagerank-{}", std::process::id()));
        let dir = args.checkpoint_dir.clone().unwrap_or_else(|| tmp.clone());
        let mut builder = Context::builder().app_name("pagerank").checkpoint_dir(&dir);
        if let Some(master) = &args.common.master {
            builder = builder.master(master.as_str());
        }
        let ctx = builder.build()?;
        let start = Instant::now();
        let ranks = pagerank::run(&ctx, &args.edges, args.iters, args.checkpoint_every)?;
        let seconds = start.elapsed().as_secs_f64();
        if args.checkpoint_dir.is_none() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let top: Vec<_> = ranks.iter().take(args.top).collect();
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({ "pages": ranks.len(), "iterations": args.iters, "top": top, "seconds": seconds })
            );
        } else {
            for (page, rank) in top {
                println!("{rank:>10.6}  {page}");
            }
            println!("{} pages, {} iterations, {seconds:.3} s", ranks.len(), args.iters);
        }
        Ok(())
    });
}
