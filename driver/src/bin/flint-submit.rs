//! `flint-submit`: see [`flint::deploy`].
use std::process::ExitCode;

fn main() -> ExitCode {
    flint::deploy::submit_main(std::env::args_os())
}
