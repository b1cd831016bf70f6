//! What the ML examples share: loading CSV or LIBSVM into cached points, timing, JSON.

use std::error::Error;
use std::time::Instant;

use clap::{Args, ValueEnum};
use flint::Context;
use flint::ml::LabeledPoint;
use flint::ml::data::{CsvOptions, read_csv, read_libsvm};
use flint::ml::regression::Solver;
use flint::prelude::Rdd;

/// The solver options of `logreg` and `linreg` (Spark's `solver`, and `GradientDescent`'s).
#[derive(Args, Debug)]
pub struct SolverArgs {
    /// Optimizer: auto, l-bfgs or sgd (mini-batch gradient descent); linreg also normal.
    #[arg(long, default_value = "auto", value_parser = parse_solver)]
    pub solver: Solver,
    /// Initial step size of sgd: η/√i at iteration i.
    #[arg(long, default_value_t = 1.0)]
    pub step_size: f64,
    /// Fraction of the rows sgd samples per iteration, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub mini_batch_fraction: f64,
}

fn parse_solver(name: &str) -> Result<Solver, String> {
    Solver::parse(name).map_err(|e| e.to_string())
}

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
