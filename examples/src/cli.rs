//! Flags every example shares.

use clap::Args;
use flint::{Context, Result};

/// `--master` and `--json`, common to all examples.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Where to run: `local`, `local[N]`, `local[*]`, `local-cluster[E,C]` (E executor
    /// processes with C cores each) or `flint://HOST:PORT` (a standalone cluster); default
    /// `FLINT_MASTER` (set by `flint-submit`), else `local[*]`.
    #[arg(long)]
    pub master: Option<String>,
    /// Print one JSON object with the results on stdout (last line).
    #[arg(long)]
    pub json: bool,
}

impl Common {
    /// A context for this example.
    pub fn context(&self, app_name: &str) -> Result<Context> {
        let builder = Context::builder().app_name(app_name);
        match &self.master {
            Some(master) => builder.master(master.as_str()),
            None => builder,
        }
        .build()
    }
}

/// The first call of every example's `main`: `flint::init()` (logging; in a process started
/// as an executor, runs the executor and exits, before any argument is parsed).
pub fn init() {
    if let Err(e) = flint::init() {
        eprintln!("error: {}", flint::report(&e));
        std::process::exit(1);
    }
}

/// Runs an example's `main` body, printing an error with its causes and exiting 1 on failure.
pub fn run(body: impl FnOnce() -> Result<()>) {
    if let Err(e) = body() {
        eprintln!("error: {}", flint::report(&e));
        std::process::exit(1);
    }
}
