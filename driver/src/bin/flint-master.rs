//! `flint-master`: see [`flint::deploy`].
use std::process::ExitCode;

fn main() -> ExitCode {
    flint::deploy::master_main(std::env::args_os())
}
