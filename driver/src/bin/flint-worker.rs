//! `flint-worker`: see [`flint::deploy`].
use std::process::ExitCode;

fn main() -> ExitCode {
    flint::deploy::worker_main(std::env::args_os())
}
