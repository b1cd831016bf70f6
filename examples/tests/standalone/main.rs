//! A standalone cluster as local processes: `flint-master`, `flint-worker`s and `flint-submit`
//! running the wordcount and k-means examples; a worker (and its executors) SIGKILLed
//! mid-job, a worker joining mid-job, and the bad inputs (not a flint program, unreachable
//! master, more cores than exist).
//!
//! The daemons are this test binary playing their role (`FLINT_STANDALONE_TEST_ROLE`), through
//! the same `flint::deploy` functions the `flint-master`, `flint-worker` and `flint-submit`
//! binaries are thin `main`s over (a test cannot name another package's binaries). The
//! applications are the real example binaries, uploaded to the workers through the master.
//! Only loopback addresses are used; every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flint::prelude::*;
use flint_integration_tests::{TestResult, alive, check, signal, wait_until};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

mod cluster;
mod compose;
mod jobs;
mod submissions;

use cluster::*;
use compose::*;
use jobs::*;
use submissions::*;

const ROLE: &str = "FLINT_STANDALONE_TEST_ROLE";
const WORDCOUNT: &str = env!("CARGO_BIN_EXE_wordcount");
const KMEANS: &str = env!("CARGO_BIN_EXE_kmeans");

fn main() -> ExitCode {
    // First: a copy of this binary started by a worker as an executor (of the gated job
    // below) runs the executor here and exits. Workers' environment (ROLE) reaches it too.
    flint::init().expect("flint::init");
    // Submitted as an application (flint-submit's environment, ROLE included, reaches it).
    if std::env::args().nth(1).as_deref() == Some(GATED_JOB_ARG) {
        return gated_job();
    }
    if let Ok(role) = std::env::var(ROLE) {
        // argv: this binary, then the daemon's own argv (its name first).
        let args = std::env::args_os().skip(1);
        return match role.as_str() {
            "master" => flint::deploy::master_main(args),
            "worker" => flint::deploy::worker_main(args),
            "submit" => flint::deploy::submit_main(args),
            other => {
                eprintln!("unknown role {other}");
                ExitCode::FAILURE
            }
        };
    }
    let mut args = Arguments::from_args();
    // Each test runs a whole cluster of processes; one at a time on a small machine.
    args.test_threads = Some(1);
    let tests = vec![
        Trial::test(
            "standalone::wordcount_and_kmeans_match_local_mode",
            wordcount_and_kmeans_match_local_mode,
        ),
        Trial::test(
            "standalone::a_job_survives_a_lost_worker_and_uses_a_new_one",
            a_job_survives_a_lost_worker_and_uses_a_new_one,
        ),
        Trial::test("standalone::bad_submissions_fail_clearly", bad_submissions_fail_clearly),
        Trial::test(
            "standalone::too_few_cores_waits_with_a_warning",
            too_few_cores_waits_with_a_warning,
        ),
        Trial::test(
            "standalone::drain_a_worker_and_kill_an_application",
            drain_a_worker_and_kill_an_application,
        ),
        Trial::test("standalone::docker_compose_cluster", docker_compose_cluster),
    ];
    libtest_mimic::run(&args, tests).exit_code()
}

/// Ends a child: SIGTERM, then SIGKILL if it is still there after `grace`; reaps it.
fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "-TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
