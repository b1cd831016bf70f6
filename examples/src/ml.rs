//! What the ML examples share: loading CSV or LIBSVM into cached points, timing, JSON.

use std::error::Error;
use std::time::Instant;

use clap::ValueEnum;
use flint::Context;
use flint::ml::LabeledPoint;
use flint::ml::data::{CsvOptions, read_csv, read_libsvm};
use flint::prelude::Rdd;

/// Input formats of the ML examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated numbers, one row per line.
    Csv,
    /// `label index:value ...` with 1-based indices.
    Libsvm,
}

/// Points read from `input`, parsed, cached and counted; and the seconds that took.
pub fn load(
    ctx: &Context,
    input: &str,
    format: Format,
    label_col: Option<usize>,
) -> Result<(Rdd<LabeledPoint>, f64), Box<dyn Error>> {
    let start = Instant::now();
    let partitions = ctx.default_parallelism();
    let points = match format {
        Format::Csv => read_csv(
            ctx,
            input,
            CsvOptions {
                label_col,
                min_partitions: partitions,
                ..CsvOptions::default()
            },
        )?,
        Format::Libsvm => read_libsvm(ctx, input, None, partitions)?,
    }
    .cache();
    let n = points.count()?;
    tracing::info!(rows = n, "loaded");
    Ok((points, start.elapsed().as_secs_f64()))
}

/// Runs an ML example's body, printing an error with its causes and exiting 1 on failure.
pub fn run(body: impl FnOnce() -> Result<(), Box<dyn Error>>) {
    if let Err(e) = body() {
        eprintln!("error: {}", flint::report(&*e));
        std::process::exit(1);
    }
}
