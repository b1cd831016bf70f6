//! `kmeans INPUT --k K [--iters N] [--init random|kmeans-parallel] [--tol T] [--format csv|libsvm]
//! [--seed S] [--device auto|cpu|gpu] [--block-rows N] [--master M] [--json]`
//!
//! k-means (Lloyd) on CSV rows of features (no label column) or LIBSVM.
use std::time::Instant;

use clap::{Parser, ValueEnum};
use flint::ml::clustering::{InitMode, KMeans};
use flint::ml::device::Device;
use flint_examples::{cli, ml};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Init {
    Random,
    KmeansParallel,
}

/// Clusters points with k-means.
#[derive(Parser, Debug)]
struct Args {
    /// Input file, directory or glob.
    input: String,
    /// Number of clusters.
    #[arg(long)]
    k: usize,
    /// Maximum Lloyd iterations.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Initialisation.
    #[arg(long, value_enum, default_value = "kmeans-parallel")]
    init: Init,
    /// Convergence: every center moved less than this.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Input format.
    #[arg(long, value_enum, default_value = "csv")]
    format: ml::Format,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rows per instance block (default: the estimator's, 4096). A GPU wants large blocks:
    /// one dispatch and one read-back per block and iteration.
    #[arg(long)]
    block_rows: Option<usize>,
    /// Where the kernels run: auto, cpu or gpu (default: FLINT_ML_DEVICE, else auto).
    #[arg(long, value_parser = Device::parse)]
    device: Option<Device>,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    cli::init();
    let args = Args::parse();
    ml::run(|| {
        let ctx = args.common.context("kmeans")?;
        let (points, load_seconds) = ml::load(&ctx, &args.input, args.format, None)?;
        let device = match args.device {
            Some(d) => d,
            None => Device::from_env()?,
        };
        // Resolved before the clock starts: `auto` and `gpu` start this process's GPU (a
        // one-time adapter probe, ~35 ms on lavapipe) on first use.
        let adapter = device.describe();
        let start = Instant::now();
        let mut km = KMeans::new();
        if let Some(n) = args.block_rows {
            km = km.block_rows(n);
        }
        let model = km
            .k(args.k)
            .max_iter(args.iters)
            .tol(args.tol)
            .seed(args.seed)
            .init_mode(match args.init {
                Init::Random => InitMode::Random,
                Init::KmeansParallel => InitMode::KMeansParallel,
            })
            .device(device)
            .fit(&points)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let summary = &model.summary;
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({
                    "centers": model.cluster_centers(),
                    "cost": summary.training_cost,
                    "iterations": summary.training.iterations,
                    "train_seconds": train_seconds,
                    "load_seconds": load_seconds,
                    // Each Lloyd pass, and the bytes of features it reads (rows × features × 8):
                    // how far a pass is from the memory-bandwidth bound.
                    "pass_seconds": summary.training.pass_seconds,
                    "pass_bytes": summary.cluster_sizes.iter().sum::<u64>() * model.cluster_centers().first().map_or(0, |c| c.len() as u64) * 8,
                    "device": device.to_string(),
                    "adapter": adapter,
                })
            );
        } else {
            println!(
                "k-means: {} clusters, cost {:.6}, {} iterations, load {load_seconds:.2} s, train {train_seconds:.2} s",
                model.k(),
                summary.training_cost,
                summary.training.iterations
            );
        }
        Ok(())
    });
}
