//! `mlkernels [--device auto|cpu|gpu] [--rows R] [--cols C] [--calls N] [--kernel NAME] [--json]`
//!
//! Times mllib's dense kernels (X·w, Xᵀ·v, fused logistic and softmax loss + gradient, a
//! k-means pass, the weighted Gram) on one block, on the CPU (one core) or the GPU, and
//! prints seconds per call and the bandwidth of reading the block (GB/s), with the adapter.
use clap::Parser;
use flint::ml::device::{Device, kernel_timings};

/// Times the ML kernels on one block.
#[derive(Parser, Debug)]
struct Args {
    /// Device: auto, cpu or gpu (default: FLINT_ML_DEVICE, else auto).
    #[arg(long, value_parser = Device::parse)]
    device: Option<Device>,
    /// Rows of the block.
    #[arg(long, default_value_t = 1 << 20)]
    rows: usize,
    /// Columns of the block.
    #[arg(long, default_value_t = 50)]
    cols: usize,
    /// Timed calls per kernel.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Only this kernel: gemv, gemv_t, logistic, softmax, kmeans, kmeans_lloyd, kmeans_bounded,
    /// kmeans_moving or gram (default: all).
    #[arg(long)]
    kernel: Option<String>,
    /// One JSON object per kernel instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    flint_examples::cli::init();
    let args = Args::parse();
    flint_examples::ml::run(|| {
        let device = match args.device {
            Some(d) => d,
            None => Device::from_env()?,
        };
        let timings = kernel_timings(device, args.rows, args.cols, args.calls, args.kernel.as_deref())?;
        for t in &timings {
            if args.json {
                println!("{}", serde_json::to_string(t)?);
            } else {
                println!(
                    "{:<9} {:>9} x {:<5} {:>10.3} ms/call {:>9.2} GB/s  on {}",
                    t.kernel,
                    t.rows,
                    t.cols,
                    t.seconds_per_call * 1e3,
                    t.gb_per_s,
                    t.device
                );
            }
        }
        Ok(())
    });
}
