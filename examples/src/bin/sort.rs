//! `sort [--records N] [--partitions P] [--seed S] [--master M] [--json]`
use std::time::Instant;

use clap::Parser;
use flint_examples::{cli, sort};

/// Generates N random 100-byte records, sorts them by their 10-byte key, validates the order.
#[derive(Parser, Debug)]
struct Args {
    /// Number of records.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Partitions (map and reduce side); default: the context's parallelism.
    #[arg(long)]
    partitions: Option<usize>,
    /// Seed of the record generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    // First: in an executor process (distributed mode) this runs the executor and exits.
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let ctx = args.common.context("sort")?;
        let partitions = args.partitions.unwrap_or(ctx.default_parallelism());
        let start = Instant::now();
        let report = sort::run(&ctx, args.records, partitions, args.seed)?;
        let seconds = start.elapsed().as_secs_f64();
        if args.common.json {
            let json = serde_json::json!({
                "records": report.records,
                "bytes": report.bytes,
                "partitions": report.partitions,
                "seconds": seconds,
            });
            println!("{json}");
        } else {
            println!(
                "sorted {} records ({} bytes) into {} partitions in {seconds:.3} s; order verified",
                report.records, report.bytes, report.partitions
            );
        }
        Ok(())
    });
}
