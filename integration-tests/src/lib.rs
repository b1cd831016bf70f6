//! Test support shared by the integration tests (`tests/it`, `tests/cluster`) and the
//! standalone-cluster tests of `flint-examples`: waiting on a condition with a deadline (never a
//! fixed sleep), and signalling the processes a test started. The tests themselves live in
//! `tests/`.

use std::process::Command;
use std::time::{Duration, Instant};

/// What a test of a `libtest-mimic` harness returns.
pub type TestResult = Result<(), libtest_mimic::Failed>;

/// Fails the test with `message` unless `cond`.
pub fn check(cond: bool, message: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(message.into().into()) }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` (`kill`'s spelling: `-9`, `-TERM`...) to a process, through `kill`, which needs
/// no `unsafe`; whether `kill` succeeded.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends SIGKILL to a process; panics if it cannot be sent.
pub fn sigkill(pid: u32) {
    assert!(signal(pid, "-9"), "kill -9 {pid} failed");
}

/// Whether a process is running (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}
