//! `logreg INPUT [--format csv|libsvm] [--label-col 0] [--iters N] [--reg R] [--elastic-net A]
//! [--multinomial] [--tol T] [--seed S] [--solver auto|l-bfgs|sgd] [--step-size E]
//! [--mini-batch-fraction F] [--device auto|cpu|gpu] [--block-rows N] [--master M] [--json]`
//!
//! Logistic regression with Spark ML's objective (`--reg` is regParam, `--elastic-net` is
//! elasticNetParam; features standardized in the penalty).
use std::time::Instant;

use clap::Parser;
use flint::ml::classification::{Family, LogisticRegression};
use flint::ml::device::Device;
use flint_examples::{cli, ml};

/// Trains a logistic regression and reports its coefficients and training accuracy.
#[derive(Parser, Debug)]
struct Args {
    /// Input file, directory or glob.
    input: String,
    /// Input format.
    #[arg(long, value_enum, default_value = "csv")]
    format: ml::Format,
    /// CSV column of the label.
    #[arg(long, default_value_t = 0)]
    label_col: usize,
    /// Maximum iterations.
    #[arg(long, default_value_t = 100)]
    iters: usize,
    /// Regularization (Spark's regParam).
    #[arg(long, default_value_t = 0.0)]
    reg: f64,
    /// Elastic-net mixing (Spark's elasticNetParam): 0 is L2, 1 is L1.
    #[arg(long, default_value_t = 0.0)]
    elastic_net: f64,
    /// Multinomial (softmax) even for two classes.
    #[arg(long)]
    multinomial: bool,
    /// Convergence tolerance.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
    /// Seed of the sgd solver's samples (l-bfgs is deterministic).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    solver: ml::SolverArgs,
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
        let ctx = args.common.context("logreg")?;
        let (points, load_seconds) = ml::load(&ctx, &args.input, args.format, Some(args.label_col))?;
        let device = match args.device {
            Some(d) => d,
            None => Device::from_env()?,
        };
        // Resolved before the clock starts: `auto` and `gpu` start this process's GPU (a
        // one-time adapter probe, ~35 ms on lavapipe) on first use.
        let adapter = device.describe();
        let start = Instant::now();
        let mut lr = LogisticRegression::new();
        if let Some(n) = args.block_rows {
            lr = lr.block_rows(n);
        }
        let model = lr
            .max_iter(args.iters)
            .reg_param(args.reg)
            .elastic_net_param(args.elastic_net)
            .tol(args.tol)
            .solver(args.solver.solver)
            .step_size(args.solver.step_size)
            .mini_batch_fraction(args.solver.mini_batch_fraction)
            .seed(args.seed)
            .family(if args.multinomial {
                Family::Multinomial
            } else {
                Family::Auto
            })
            .device(device)
            .fit(&points)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let predictions = model.transform(&points);
        let correct = predictions.filter(|(label, p): &(f64, f64)| label == p).count()?;
        let rows = points.count()?;
        let accuracy = correct as f64 / rows.max(1) as f64;
        let summary = model.summary();
        let loss = summary.loss_history.last().copied().unwrap_or(f64::NAN);
        if args.common.json {
            let (coefficients, intercept) = if model.is_multinomial() {
                (
                    serde_json::json!(model.coefficient_matrix()),
                    serde_json::json!(model.intercepts()),
                )
            } else {
                (
                    serde_json::json!(model.coefficients()),
                    serde_json::json!(model.intercept()),
                )
            };
            println!(
                "{}",
                serde_json::json!({
                    "coefficients": coefficients,
                    "intercept": intercept,
                    "iterations": summary.iterations,
                    "loss": loss,
                    "accuracy": accuracy,
                    // Each loss-and-gradient evaluation, and the bytes of features it reads.
                    "pass_seconds": summary.pass_seconds,
                    "pass_bytes": rows * model.num_features() as u64 * 8,
                    "train_seconds": train_seconds,
                    "load_seconds": load_seconds,
                    "device": device.to_string(),
                    "adapter": adapter,
                })
            );
        } else {
            println!(
                "logistic regression: {} classes, {} iterations, objective {loss:.6}, training accuracy {accuracy:.4}, load {load_seconds:.2} s, train {train_seconds:.2} s",
                model.num_classes(),
                summary.iterations
            );
        }
        Ok(())
    });
}
