//! `linreg INPUT [--format csv|libsvm] [--label-col 0] [--reg R] [--elastic-net A] [--seed S]
//! [--solver auto|normal|l-bfgs|sgd] [--iters N] [--tol T] [--step-size E]
//! [--mini-batch-fraction F] [--master M] [--json]`
//!
//! Linear regression with Spark ML's objective (`--reg` is regParam, `--elastic-net` is
//! elasticNetParam, standardization on), solved on the normal equations unless `--solver`
//! says otherwise.
use std::time::Instant;

use clap::Parser;
use flint::ml::regression::LinearRegression;
use flint_examples::{cli, ml};

/// Trains a linear regression and reports its coefficients and training RMSE.
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
    /// Regularization (Spark's regParam).
    #[arg(long, default_value_t = 0.0)]
    reg: f64,
    /// Elastic-net mixing (Spark's elasticNetParam): 0 is ridge, 1 is lasso.
    #[arg(long, default_value_t = 0.0)]
    elastic_net: f64,
    /// Seed of the sgd solver's samples (the other solvers are deterministic).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Iteration limit of the l-bfgs and sgd solvers.
    #[arg(long, default_value_t = 100)]
    iters: usize,
    /// Convergence tolerance of the l-bfgs and sgd solvers.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
    #[command(flatten)]
    solver: ml::SolverArgs,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    cli::init();
    let args = Args::parse();
    ml::run(|| {
        let ctx = args.common.context("linreg")?;
        let (points, load_seconds) = ml::load(&ctx, &args.input, args.format, Some(args.label_col))?;
        let start = Instant::now();
        let model = LinearRegression::new()
            .reg_param(args.reg)
            .elastic_net_param(args.elastic_net)
            .solver(args.solver.solver)
            .max_iter(args.iters)
            .tol(args.tol)
            .step_size(args.solver.step_size)
            .mini_batch_fraction(args.solver.mini_batch_fraction)
            .seed(args.seed)
            .fit(&points)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let s = &model.summary;
        let loss = s.training.loss_history.last().copied().unwrap_or(f64::NAN);
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({
                    "coefficients": model.coefficients,
                    "intercept": model.intercept,
                    "iterations": s.training.iterations,
                    "loss": loss,
                    "rmse": s.root_mean_squared_error,
                    "r2": s.r2,
                    "train_seconds": train_seconds,
                    "load_seconds": load_seconds,
                })
            );
        } else {
            println!(
                "linear regression: rmse {:.6}, r2 {:.4}, objective {loss:.6}, load {load_seconds:.2} s, train {train_seconds:.2} s",
                s.root_mean_squared_error, s.r2
            );
        }
        Ok(())
    });
}
