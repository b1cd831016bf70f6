//! Distributed mode with real processes: `local-cluster[E,C]` contexts whose executors are
//! copies of this test binary, talking tarpc over loopback. Failures are real: executors are
//! SIGKILLed, shuffle files deleted or damaged, garbage sent to ports, a driver process killed.
//!
//! The harness is libtest-mimic (not libtest) because `main` must call `flint::init()` first:
//! that is where a copy of this binary started as an executor turns into one.

mod common;
mod correctness;
mod failures;
mod lifecycle;
mod ml;
mod wire;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    flint::init().expect("flint::init");
    if let Ok(scenario) = std::env::var(common::SCENARIO_VAR) {
        return lifecycle::run_scenario(&scenario);
    }
    let mut args = Arguments::from_args();
    // Every test starts executor processes: two at a time keep a 2-core machine responsive.
    if args.test_threads.is_none() {
        args.test_threads = Some(2);
    }
    let tests: Vec<Trial> = [
        correctness::tests(),
        failures::tests(),
        lifecycle::tests(),
        ml::tests(),
        wire::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    libtest_mimic::run(&args, tests).exit_code()
}
