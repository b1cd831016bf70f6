//! `pi [--samples N] [--partitions P] [--master M] [--json]`
use std::time::Instant;

use clap::Parser;
use flint_examples::{cli, pi};

/// Estimates pi by sampling random points.
#[derive(Parser, Debug)]
struct Args {
    /// Number of random points.
    #[arg(long, default_value_t = 10_000_000)]
    samples: u64,
    /// Partitions; default: the context's parallelism.
    #[arg(long)]
    partitions: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    // First: in an executor process (distributed mode) this runs the executor and exits.
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let ctx = args.common.context("pi")?;
        let partitions = args.partitions.unwrap_or(ctx.default_parallelism());
        let start = Instant::now();
        let estimate = pi::run(&ctx, args.samples, partitions, args.seed)?;
        let seconds = start.elapsed().as_secs_f64();
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({ "pi": estimate, "samples": args.samples, "seconds": seconds })
            );
        } else {
            println!("pi is roughly {estimate:.6} ({} samples, {seconds:.3} s)", args.samples);
        }
        Ok(())
    });
}
