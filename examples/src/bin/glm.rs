//! `glm INPUT --family gaussian|binomial|poisson|gamma [--link L] [--format csv|libsvm]
//! [--label-col 0] [--reg R] [--iters N] [--seed S] [--device auto|cpu|gpu] [--master M] [--json]`
//!
//! A generalized linear model fitted by IRLS, with Spark's summary (standard errors, p-values).
use std::time::Instant;

use clap::Parser;
use flint::ml::LabeledPoint;
use flint::ml::device::Device;
use flint::ml::regression::{Family, GeneralizedLinearRegression, Link};
use flint_examples::{cli, ml};

/// Fits a GLM and reports its coefficients, training RMSE and deviance.
#[derive(Parser, Debug)]
struct Args {
    /// Input file, directory or glob.
    input: String,
    /// Distribution of the label: gaussian, binomial, poisson, gamma.
    #[arg(long, default_value = "gaussian")]
    family: String,
    /// Link function (identity, log, logit, probit, cloglog, inverse, sqrt); default: the
    /// family's canonical link.
    #[arg(long)]
    link: Option<String>,
    /// Input format.
    #[arg(long, value_enum, default_value = "csv")]
    format: ml::Format,
    /// CSV column of the label.
    #[arg(long, default_value_t = 0)]
    label_col: usize,
    /// L2 regularization (Spark's regParam).
    #[arg(long, default_value_t = 0.0)]
    reg: f64,
    /// Maximum IRLS iterations.
    #[arg(long, default_value_t = 25)]
    iters: usize,
    /// Unused by the solver (deterministic); kept for a uniform command line.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the IRLS Gram matrices are computed: auto, cpu or gpu (default: FLINT_ML_DEVICE,
    /// else auto).
    #[arg(long, value_parser = Device::parse)]
    device: Option<Device>,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    cli::init();
    let args = Args::parse();
    ml::run(|| {
        let ctx = args.common.context("glm")?;
        let family = Family::parse(&args.family)?;
        let mut glm = GeneralizedLinearRegression::new()
            .family(family)
            .reg_param(args.reg)
            .max_iter(args.iters);
        if let Some(link) = &args.link {
            glm = glm.link(Link::parse(link)?);
        }
        let (points, load_seconds) = ml::load(&ctx, &args.input, args.format, Some(args.label_col))?;
        let device = match args.device {
            Some(d) => d,
            None => Device::from_env()?,
        };
        // Resolved before the clock starts (see logreg.rs).
        let adapter = device.describe();
        let start = Instant::now();
        let model = glm.device(device).fit(&points)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let (sse, n) = model
            .transform(&points)
            .map(|(y, p): (f64, f64)| ((y - p) * (y - p), 1u64))
            .reduce(|a: (f64, u64), b: (f64, u64)| (a.0 + b.0, a.1 + b.1))?;
        let rmse = (sse / n.max(1) as f64).sqrt();
        let s = &model.summary;
        // The objective per unit of weight, as the other examples' `loss`: half the mean
        // deviance (the mean negative log-likelihood up to a constant of the data: the logistic
        // loss for binomial, half the mean squared error for gaussian) plus the ridge term
        // `reg/2 · ‖β‖²` (intercept excluded).
        let weight: f64 = points.map(|p: LabeledPoint| p.weight).reduce(|a: f64, b: f64| a + b)?;
        let ridge = 0.5 * args.reg * model.coefficients.iter().map(|b| b * b).sum::<f64>();
        let loss = s.deviance / (2.0 * weight) + ridge;
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({
                    "coefficients": model.coefficients,
                    "intercept": model.intercept,
                    "iterations": s.training.iterations,
                    "loss": loss,
                    "deviance": s.deviance,
                    "rmse": rmse,
                    "standard_errors": s.coefficient_standard_errors,
                    "p_values": s.p_values,
                    "dispersion": s.dispersion,
                    "aic": s.aic,
                    "train_seconds": train_seconds,
                    "load_seconds": load_seconds,
                    "device": device.to_string(),
                    "adapter": adapter,
                })
            );
        } else {
            println!(
                "glm ({:?}, {:?}): {} iterations, deviance {:.6}, rmse {rmse:.6}, load {load_seconds:.2} s, train {train_seconds:.2} s",
                model.family, model.link, s.training.iterations, s.deviance
            );
        }
        Ok(())
    });
}
