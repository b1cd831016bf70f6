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
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const ROLE: &str = "FLINT_STANDALONE_TEST_ROLE";
const WORDCOUNT: &str = env!("CARGO_BIN_EXE_wordcount");
const KMEANS: &str = env!("CARGO_BIN_EXE_kmeans");

type TestResult = Result<(), Failed>;

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

fn check(cond: bool, message: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(message.into().into()) }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Whether a process is running (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
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

/// Output collected from a child's pipe by a thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>, Arc<AtomicBool>);

impl Captured {
    fn from(pipe: impl Read + Send + 'static) -> Captured {
        let captured = Captured::default();
        let (sink, drained) = (captured.0.clone(), captured.1.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("capture lock");
                s.push_str(&line);
                s.push('\n');
            }
            drained.store(true, Ordering::SeqCst);
        });
        captured
    }

    fn text(&self) -> String {
        self.0.lock().expect("capture lock").clone()
    }

    /// Waits until the pipe reached its end (every line read), at most `timeout`.
    fn wait_drained(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.1.load(Ordering::SeqCst))
    }
}

/// A started `flint-submit`.
struct Submitted {
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Submitted {
    /// Waits for it to exit; its exit code, or an error with its output after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<i32, Failed> {
        let mut code = None;
        let done = wait_until(timeout, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        if !done {
            stop(&mut self.child, Duration::from_secs(5));
            return Err(format!(
                "flint-submit still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout.text(),
                tail(&self.stderr.text(), 40)
            )
            .into());
        }
        // Every line the process wrote, read before anyone looks at the output.
        self.stdout.wait_drained(Duration::from_secs(5));
        self.stderr.wait_drained(Duration::from_secs(5));
        Ok(code.expect("set when done"))
    }

    /// Waits for it to exit with status 0 (else an error naming `what`, its status and the
    /// tail of its stderr), then its last line of stdout as JSON.
    fn json_on_success(&mut self, what: &str, timeout: Duration) -> Result<Value, Failed> {
        let code = self.wait(timeout)?;
        check(
            code == 0,
            format!("{what} exited {code}: {}", tail(&self.stderr.text(), 30)),
        )?;
        self.json()
    }

    /// The last line of stdout, as JSON (the examples' `--json`).
    fn json(&self) -> Result<Value, Failed> {
        let out = self.stdout.text();
        let line = out.lines().last().ok_or("no output")?;
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}").into())
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Master and workers as processes of this binary, in a temporary directory.
struct Cluster {
    dir: tempfile::TempDir,
    master: Child,
    url: String,
    web: String,
    workers: Vec<(Child, String)>,
}

impl Cluster {
    fn start(workers: usize, cores: usize) -> Result<Cluster, Failed> {
        let dir = tempfile::tempdir()?;
        let mut master = Command::new(std::env::current_exe()?)
            .env(ROLE, "master")
            .env("FLINT_LOG", "info")
            .args([
                "flint-master",
                "--port",
                "0",
                "--web-port",
                "0",
                "--worker-timeout",
                "3s",
            ])
            .arg("--work-dir")
            .arg(dir.path().join("master"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("master.log"))?)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(master.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        // "flint-master listening on flint://127.0.0.1:P (status: http://127.0.0.1:W/json)"
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("flint://"))
            .ok_or_else(|| format!("master did not start: {line:?}"))?
            .to_string();
        let web = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .ok_or_else(|| format!("no status page in {line:?}"))?
            .to_string();
        let mut cluster = Cluster {
            dir,
            master,
            url,
            web,
            workers: Vec::new(),
        };
        for _ in 0..workers {
            cluster.add_worker(cores)?;
        }
        Ok(cluster)
    }

    /// Starts a worker; returns its id once it registered.
    fn add_worker(&mut self, cores: usize) -> Result<String, Failed> {
        let n = self.workers.len() + 1;
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, "worker")
            .env("FLINT_LOG", "info")
            .args([
                "flint-worker",
                &self.url,
                "--cores",
                &cores.to_string(),
                "--memory",
                "2g",
            ])
            .args(["--heartbeat-interval", "200ms"])
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("worker{n}")))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.path().join(format!("worker{n}.log")))?)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let id = line
            .split_whitespace()
            .last()
            .filter(|w| w.starts_with("worker-"))
            .ok_or_else(|| format!("worker did not register: {line:?}"))?
            .to_string();
        self.workers.push((child, id.clone()));
        Ok(id)
    }

    /// The master's status page (`GET /json`).
    fn status(&self) -> Result<Value, Failed> {
        let mut stream = std::net::TcpStream::connect(&self.web)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /json HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split_once("\r\n\r\n").ok_or("no HTTP body")?.1;
        check(response.starts_with("HTTP/1.1 200"), format!("status page: {response}"))?;
        Ok(serde_json::from_str(body)?)
    }

    fn app(&self, name: &str) -> Result<Option<Value>, Failed> {
        let status = self.status()?;
        Ok(status["apps"]
            .as_array()
            .and_then(|apps| apps.iter().rev().find(|a| a["name"] == name).cloned()))
    }

    fn submit(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Submitted, Failed> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, "submit")
            .env("FLINT_PROGRESS", "false")
            .envs(env.iter().copied())
            .args(["flint-submit", "--master", &self.url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Captured::from(child.stdout.take().ok_or("no stdout")?);
        let stderr = Captured::from(child.stderr.take().ok_or("no stderr")?);
        Ok(Submitted { child, stdout, stderr })
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["master.log", "worker1.log", "worker2.log", "worker3.log", "worker4.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                out.push_str(&format!("--- {name}\n{}\n", tail(&text, 15)));
            }
        }
        out
    }

    /// Every executor process the master ever reported.
    fn executor_pids(&self) -> Vec<u32> {
        let Ok(status) = self.status() else { return Vec::new() };
        status["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["executors"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["pid"].as_u64().map(|p| p as u32))
            .collect()
    }

    /// Stops workers (they kill their executors) and the master; checks no process is left.
    fn shut_down(mut self) -> TestResult {
        let executors = self.executor_pids();
        for (child, _) in &mut self.workers {
            stop(child, Duration::from_secs(10));
        }
        stop(&mut self.master, Duration::from_secs(10));
        let left: Vec<u32> = executors.into_iter().filter(|p| alive(*p)).collect();
        check(left.is_empty(), format!("executor processes left running: {left:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.workers {
            stop(child, Duration::from_secs(10));
        }
        stop(&mut self.master, Duration::from_secs(10));
    }
}

/// Runs an example locally (the reference answer); its JSON line.
fn run_local(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Value, Failed> {
    let out = Command::new(program)
        .args(args)
        .args(["--master", "local[2]", "--json"])
        .envs(env.iter().copied())
        .env("FLINT_PROGRESS", "false")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    check(
        out.status.success(),
        format!("{program} failed locally: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    let line = stdout.lines().last().ok_or("no output")?;
    Ok(serde_json::from_str(line)?)
}

fn write_text(dir: &Path) -> Result<PathBuf, Failed> {
    let path = dir.join("words.txt");
    let mut text = String::new();
    let mut state = 7u64;
    for _ in 0..3000 {
        for w in 0..8 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if w > 0 {
                text.push(' ');
            }
            text.push_str(&format!("w{}", (state >> 33) % 400));
        }
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Points around four centres in `dims` dimensions, as CSV rows of features.
fn write_points(dir: &Path, rows: usize, dims: usize) -> Result<PathBuf, Failed> {
    let path = dir.join("points.csv");
    let mut text = String::new();
    let mut state = 11u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    for i in 0..rows {
        let centre = (i % 4) as f64 * 5.0;
        let row: Vec<String> = (0..dims)
            .map(|d| format!("{:.5}", centre + d as f64 + next()))
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The answer part of an example's JSON (timings removed).
fn answer(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for timing in ["seconds", "train_seconds", "load_seconds"] {
            o.remove(timing);
        }
    }
    v
}

fn same_kmeans(got: &Value, expected: &Value) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let (Some(gc), Some(ec)) = (got["cost"].as_f64(), expected["cost"].as_f64()) else {
        return false;
    };
    let centers = |v: &Value| -> Vec<f64> {
        v["centers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c.as_array().cloned().unwrap_or_default())
            .filter_map(|x| x.as_f64())
            .collect()
    };
    let (g, e) = (centers(got), centers(expected));
    close(gc, ec) && !g.is_empty() && g.len() == e.len() && g.iter().zip(&e).all(|(a, b)| close(*a, *b))
}

fn wordcount_and_kmeans_match_local_mode() -> TestResult {
    let cluster = Cluster::start(3, 2)?;
    let text = write_text(cluster.dir.path())?;
    let text = text.to_str().ok_or("path")?;
    let expected = answer(run_local(WORDCOUNT, &[text], &[])?);
    let mut wc = cluster.submit(&[WORDCOUNT, text, "--json"], &[])?;
    let code = wc.wait(Duration::from_secs(120))?;
    check(
        code == 0,
        format!(
            "wordcount exited {code}: {}\n{}",
            tail(&wc.stderr.text(), 30),
            cluster.logs()
        ),
    )?;
    check(
        answer(wc.json()?) == expected,
        "wordcount on the cluster differs from local mode",
    )?;
    check(
        wc.stderr.text().contains("registered with flint://"),
        "flint-submit did not report the registration",
    )?;
    let app = cluster
        .app("wordcount")?
        .ok_or("wordcount is not in the master's status")?;
    let workers: std::collections::BTreeSet<String> = app["executors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["worker"].as_str().unwrap_or_default().to_string())
        .collect();
    check(
        workers.len() == 3,
        format!("executors not spread over the 3 workers: {app}"),
    )?;

    let points = write_points(cluster.dir.path(), 4000, 6)?;
    let points = points.to_str().ok_or("path")?;
    let args = [points, "--k", "4", "--iters", "10", "--init", "random"];
    let expected = run_local(KMEANS, &args, &[])?;
    let mut submit_args = vec![KMEANS];
    submit_args.extend(args);
    submit_args.push("--json");
    let got = cluster
        .submit(&submit_args, &[])?
        .json_on_success("kmeans", Duration::from_secs(120))?;
    check(
        same_kmeans(&got, &expected),
        format!("k-means on the cluster: {got}\nlocal: {expected}"),
    )?;
    let status = cluster.status()?;
    check(
        status["apps"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|a| a["state"] == "FINISHED")),
        format!("both applications should be FINISHED: {status}"),
    )?;
    cluster.shut_down()
}

/// Environment variable naming the gated job's gate: its tasks wait until that file exists.
const GATE: &str = "FLINT_TEST_GATE";
const GATED_PARTITIONS: usize = 48;
/// The argument that makes this binary run the gated job.
const GATED_JOB_ARG: &str = "--gated-job";

/// The gated job's answer: sums of `0..4800` by residue mod 7.
fn gated_answer() -> Vec<(i64, i64)> {
    let mut sums = std::collections::BTreeMap::new();
    for x in 0..4800i64 {
        *sums.entry(x % 7).or_insert(0) += x;
    }
    sums.into_iter().collect()
}

/// A driver (this binary, submitted as the application) whose map tasks wait for a gate
/// file: the test decides how long the job runs, whatever the machine's speed. Prints its
/// answer as JSON.
fn gated_job() -> ExitCode {
    let run = || -> flint::Result<Vec<(i64, i64)>> {
        let gate = std::env::var(GATE).unwrap_or_default();
        let ctx = Context::builder().app_name("gated").show_progress(false).build()?;
        let mut sums = ctx
            .range(0, 4800, GATED_PARTITIONS)
            .map(with(gate, |gate: &String, x: i64| {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !Path::new(gate).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                (x % 7, x)
            }))
            .reduce_by_key(|a, b| a + b)
            .collect()?;
        sums.sort();
        Ok(sums)
    };
    match run() {
        Ok(sums) => {
            println!("{}", serde_json::json!({ "sums": sums }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", flint::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Executors (id, worker, pid) of an application in the master's status.
fn executors(app: &Value) -> Vec<(u64, String, Option<u32>, String)> {
    app["executors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["id"].as_u64().unwrap_or(u64::MAX),
                e["worker"].as_str().unwrap_or_default().to_string(),
                e["pid"].as_u64().map(|p| p as u32),
                e["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Executors the driver launched tasks on (its `launching task` debug lines).
fn task_executors(driver_log: &str) -> std::collections::BTreeSet<u64> {
    driver_log
        .lines()
        .filter(|l| l.contains("launching task"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("executor="))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

fn a_job_survives_a_lost_worker_and_uses_a_new_one() -> TestResult {
    let mut cluster = Cluster::start(3, 2)?;
    let gate = cluster.dir.path().join("gate");
    let gate_str = gate.to_str().ok_or("path")?.to_string();
    let me = std::env::current_exe()?;
    let me = me.to_str().ok_or("path")?.to_string();
    let mut job = cluster.submit(
        &[&me, GATED_JOB_ARG],
        &[
            (GATE, &gate_str),
            ("FLINT_LOG", "warn,flint_engine::cluster::backend=debug"),
            ("FLINT_HEARTBEAT_INTERVAL", "200ms"),
        ],
    )?;
    // Mid-job: tasks are running on executors of all three workers.
    let mut app = Value::Null;
    let started = wait_until(Duration::from_secs(60), || {
        app = cluster.app("gated").ok().flatten().unwrap_or(Value::Null);
        let ex = executors(&app);
        let ran = task_executors(&job.stderr.text());
        ex.len() == 3 && ex.iter().all(|e| e.2.is_some() && ran.contains(&e.0))
    });
    check(
        started,
        format!(
            "tasks did not reach 3 executors: {app}\n{}\n{}",
            tail(&job.stderr.text(), 20),
            cluster.logs()
        ),
    )?;
    // A node dies: SIGKILL of worker-1.
    let (victim, victim_id) = {
        let (child, id) = &mut cluster.workers[0];
        (child.id(), id.clone())
    };
    let doomed: Vec<u32> = executors(&app)
        .into_iter()
        .filter(|e| e.1 == victim_id)
        .filter_map(|e| e.2)
        .collect();
    check(doomed.len() == 1, format!("{victim_id} runs no executor: {app}"))?;
    signal(victim, "-9");
    let _ = cluster.workers[0].0.wait();
    // Its executor notices its worker is gone and exits (as when the machine dies).
    check(
        wait_until(Duration::from_secs(20), || doomed.iter().all(|p| !alive(*p))),
        format!("the executors {doomed:?} of the killed worker still run"),
    )?;
    // A new machine joins mid-job: the running application gets an executor there, and tasks.
    let newcomer = cluster.add_worker(2)?;
    let mut new_executor = None;
    let joined = wait_until(Duration::from_secs(60), || {
        let app = cluster.app("gated").ok().flatten().unwrap_or(Value::Null);
        let ran = task_executors(&job.stderr.text());
        new_executor = executors(&app)
            .into_iter()
            .find(|e| e.1 == newcomer && ran.contains(&e.0))
            .map(|e| e.0);
        new_executor.is_some()
    });
    check(
        joined,
        format!(
            "the worker that joined ({newcomer}) got no tasks\n{}\n{}",
            tail(&job.stderr.text(), 20),
            cluster.logs()
        ),
    )?;
    let status = cluster.status()?;
    let ids: Vec<String> = status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_str().map(str::to_string))
        .collect();
    check(
        !ids.contains(&victim_id) && ids.contains(&newcomer),
        format!("the master should have forgotten {victim_id}: {ids:?}"),
    )?;
    // Open the gate: the job completes, with the right answer.
    std::fs::write(&gate, b"open")?;
    let code = job.wait(Duration::from_secs(120))?;
    check(
        code == 0,
        format!(
            "the job exited {code}: {}\n{}",
            tail(&job.stderr.text(), 30),
            cluster.logs()
        ),
    )?;
    let got: Vec<(i64, i64)> = serde_json::from_value(job.json()?["sums"].clone())?;
    check(
        got == gated_answer(),
        format!("wrong answer after losing a worker: {got:?}"),
    )?;
    check(
        job.stderr.text().contains("executor lost"),
        "the driver did not notice the lost executor",
    )?;
    cluster.shut_down()
}

fn bad_submissions_fail_clearly() -> TestResult {
    let cluster = Cluster::start(1, 1)?;
    // Not a flint program: it exits without registering.
    let mut s = cluster.submit(&["/bin/true"], &[])?;
    let code = s.wait(Duration::from_secs(30))?;
    let err = s.stderr.text();
    check(
        code == 1 && err.contains("/bin/true") && err.contains("probably not a flint program"),
        format!("/bin/true: exit {code}, stderr {err}"),
    )?;
    // Not a flint program: it runs but never registers (killed at the deadline).
    let script = cluster.dir.path().join("sleeper.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 600\n")?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let script = script.to_str().ok_or("path")?;
    let mut s = cluster.submit(&["--register-timeout", "2s", script], &[])?;
    let code = s.wait(Duration::from_secs(30))?;
    let err = s.stderr.text();
    check(
        code == 1 && err.contains("did not register") && err.contains("sleeper.sh"),
        format!("sleeper: exit {code}, stderr {err}"),
    )?;
    // An unreachable master: a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let unreachable = format!("flint://127.0.0.1:{port}");
    let mut s = Command::new(std::env::current_exe()?)
        .env(ROLE, "submit")
        .args(["flint-submit", "--master", &unreachable, WORDCOUNT, "x"])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err = String::new();
    s.stderr.take().ok_or("no stderr")?.read_to_string(&mut err)?;
    let status = s.wait()?;
    check(
        status.code() == Some(1) && err.contains(&format!("cannot reach the master at {unreachable}")),
        format!("unreachable master: {status}, stderr {err}"),
    )?;
    // A bad master URL.
    let out = Command::new(std::env::current_exe()?)
        .env(ROLE, "submit")
        .args(["flint-submit", "--master", "spark://x:1", "--status"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.code() == Some(2) && err.contains("flint://HOST:PORT"),
        format!("bad URL: {err}"),
    )?;
    cluster.shut_down()
}

fn too_few_cores_waits_with_a_warning() -> TestResult {
    let cluster = Cluster::start(1, 2)?;
    let text = write_text(cluster.dir.path())?;
    let mut s = cluster.submit(
        &[
            "--executor-cores",
            "64",
            "--conf",
            "starvation_timeout=1s",
            WORDCOUNT,
            text.to_str().ok_or("path")?,
        ],
        &[],
    )?;
    let warned = wait_until(Duration::from_secs(60), || {
        s.stderr.text().contains("has not accepted any resources")
    });
    check(
        warned,
        format!("no starvation warning: {}\n{}", s.stderr.text(), cluster.logs()),
    )?;
    let app = cluster.app("wordcount")?.ok_or("the application did not register")?;
    check(
        app["waiting_reason"]
            .as_str()
            .is_some_and(|r| r.contains("needs 64 cores") && r.contains("largest worker has 2")),
        format!("the master does not say why it waits: {app}"),
    )?;
    check(
        matches!(s.child.try_wait(), Ok(None)),
        "the driver should keep waiting, not fail",
    )?;
    // Stopping flint-submit stops the driver.
    let driver = app["driver_pid"].as_u64().ok_or("no driver pid")? as u32;
    stop(&mut s.child, Duration::from_secs(10));
    check(
        wait_until(Duration::from_secs(10), || !alive(driver)),
        format!("driver {driver} outlived flint-submit"),
    )?;
    cluster.shut_down()
}

/// Runs `flint-submit` with `args` against `cluster` to completion: (exit code, stdout, stderr).
fn submit_tool(cluster: &Cluster, args: &[&str]) -> Result<(i32, String, String), Failed> {
    let out = Command::new(std::env::current_exe()?)
        .env(ROLE, "submit")
        .args(["flint-submit", "--master", &cluster.url])
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn drain_a_worker_and_kill_an_application() -> TestResult {
    let cluster = Cluster::start(2, 2)?;
    let me = std::env::current_exe()?;
    let me = me.to_str().ok_or("path")?.to_string();
    let gate = cluster.dir.path().join("gate-a");
    let gate_str = gate.to_str().ok_or("path")?.to_string();
    let log = ("FLINT_LOG", "warn,flint_engine::cluster::backend=debug");
    let mut job = cluster.submit(&[&me, GATED_JOB_ARG], &[(GATE, &gate_str), log])?;
    let mut app = Value::Null;
    let running = wait_until(Duration::from_secs(60), || {
        app = cluster.app("gated").ok().flatten().unwrap_or(Value::Null);
        let ran = task_executors(&job.stderr.text());
        let ex = executors(&app);
        ex.len() == 2 && ex.iter().all(|e| ran.contains(&e.0))
    });
    check(running, format!("the job did not start on both workers: {app}"))?;
    let drained = cluster.workers[0].1.clone();
    let on_drained: Vec<u64> = executors(&app)
        .into_iter()
        .filter(|e| e.1 == drained)
        .map(|e| e.0)
        .collect();
    // Drain worker 1: its executor is decommissioned by the driver, not replaced there.
    let (code, _, err) = submit_tool(&cluster, &["--drain-worker", &drained])?;
    check(code == 0, format!("--drain-worker exited {code}: {err}"))?;
    let decommissioned = wait_until(Duration::from_secs(30), || {
        let log = job.stderr.text();
        on_drained.iter().all(|id| {
            log.lines()
                .any(|l| l.contains("decommissioning executor") && l.contains(&format!("executor={id}")))
        })
    });
    check(
        decommissioned,
        format!(
            "the driver did not decommission {on_drained:?}: {}",
            tail(&job.stderr.text(), 20)
        ),
    )?;
    let (code, out, _) = submit_tool(&cluster, &["--status", "--json"])?;
    let status: Value = serde_json::from_str(&out)?;
    let state = status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["id"] == drained.as_str())
        .map(|w| w["state"].clone());
    check(
        code == 0 && matches!(state.as_ref().and_then(|s| s.as_str()), Some("DRAINING" | "DRAINED")),
        format!("--status --json: {drained} is {state:?}"),
    )?;
    std::fs::write(&gate, b"open")?;
    let code = job.wait(Duration::from_secs(120))?;
    check(
        code == 0,
        format!("the job exited {code}: {}", tail(&job.stderr.text(), 30)),
    )?;
    let got: Vec<(i64, i64)> = serde_json::from_value(job.json()?["sums"].clone())?;
    check(got == gated_answer(), format!("wrong answer after a drain: {got:?}"))?;
    let app = cluster.app("gated")?.ok_or("no application")?;
    check(
        executors(&app).iter().filter(|e| e.1 == drained).count() == on_drained.len(),
        format!("a new executor was placed on the drained worker: {app}"),
    )?;

    // Kill a running application: its driver gives up and flint-submit reports the failure.
    let gate = cluster.dir.path().join("gate-b");
    let gate_str = gate.to_str().ok_or("path")?.to_string();
    let mut victim = cluster.submit(&[&me, GATED_JOB_ARG], &[(GATE, &gate_str)])?;
    let mut id = String::new();
    let registered = wait_until(Duration::from_secs(60), || {
        let Ok(status) = cluster.status() else { return false };
        match status["apps"]
            .as_array()
            .and_then(|apps| apps.iter().find(|a| a["name"] == "gated" && a["state"] == "RUNNING"))
        {
            Some(a) => {
                id = a["id"].as_str().unwrap_or_default().to_string();
                true
            }
            None => false,
        }
    });
    check(registered, "the second job did not start")?;
    let (code, _, err) = submit_tool(&cluster, &["--kill", &id])?;
    check(
        code == 0 && err.contains(&format!("killed {id}")),
        format!("--kill exited {code}: {err}"),
    )?;
    let code = victim.wait(Duration::from_secs(60))?;
    let err = victim.stderr.text();
    check(
        code != 0 && err.contains("was killed"),
        format!("the killed application exited {code}: {}", tail(&err, 20)),
    )?;
    let (code, _, err) = submit_tool(&cluster, &["--kill", &id])?;
    check(
        code == 1 && err.contains("not running"),
        format!("a second --kill: {code} {err}"),
    )?;
    cluster.shut_down()
}

/// Runs a command; its stdout, or an error with its stderr.
fn sh(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, Failed> {
    let out = Command::new(program).args(args).envs(env.iter().copied()).output()?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why Docker cannot be used here, if it cannot.
fn docker_missing() -> Option<String> {
    match Command::new("docker").arg("info").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`docker info` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Some(format!("no docker command: {e}")),
    }
    match Command::new("docker-compose").arg("version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no docker-compose command".into()),
    }
}

fn free_port() -> Result<u16, Failed> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A compose project of the flint image; torn down (containers, network, volumes, image)
/// when dropped.
struct Compose {
    project: String,
    image: String,
    file: PathBuf,
    env: Vec<(String, String)>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> Result<String, Failed> {
        let mut all = vec!["-p", &self.project, "-f", self.file.to_str().ok_or("path")?];
        all.extend(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sh("docker-compose", &all, &env)
    }

    /// What remains of the project: containers, networks, volumes.
    fn leftovers(&self) -> Result<String, Failed> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut out = String::new();
        for kind in ["ps -a", "network ls", "volume ls"] {
            let mut args: Vec<&str> = kind.split(' ').collect();
            args.extend(["-q", "--filter", &label]);
            out.push_str(sh("docker", &args, &[])?.trim());
        }
        Ok(out)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--timeout", "10"]);
        let _ = sh("docker", &["rmi", "-f", &self.image], &[]);
    }
}

/// The test's own build directory and profile (`<target>/<profile>/deps/<this binary>`).
fn build_dir() -> Result<(PathBuf, String), Failed> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("no profile directory")?;
    let profile = profile_dir
        .file_name()
        .ok_or("no profile")?
        .to_string_lossy()
        .into_owned();
    let target = profile_dir.parent().ok_or("no target directory")?.to_path_buf();
    Ok((target, profile))
}

/// The compose scenario: build the image, master + 3 workers, wordcount and
/// k-means against local mode, `docker kill` of a worker mid-job, a fourth worker mid-job,
/// and nothing left afterwards. Skipped, saying why, without Docker.
fn docker_compose_cluster() -> TestResult {
    if let Some(why) = docker_missing() {
        eprintln!("standalone::docker_compose_cluster skipped: {why}");
        return Ok(());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_path_buf();
    let (target, profile) = build_dir()?;
    let id = std::process::id();
    let image = format!("flint:test-{id}");
    // Built from this test's own profile (debug under `cargo test`); users get release.
    sh(
        repo.join("docker/build-image.sh").to_str().ok_or("path")?,
        &[],
        &[
            ("FLINT_PROFILE", &profile),
            ("FLINT_IMAGE", &image),
            ("CARGO_TARGET_DIR", target.to_str().ok_or("path")?),
        ],
    )?;
    // FLINT_DATA: the same absolute path on the host and in every container.
    let data = tempfile::tempdir()?;
    let data_dir = data.path().to_str().ok_or("path")?.to_string();
    let (port, web) = (free_port()?, free_port()?);
    let compose = Compose {
        project: format!("flinttest{id}"),
        image: image.clone(),
        file: repo.join("docker/docker-compose.yml"),
        env: vec![
            ("FLINT_IMAGE".into(), image.clone()),
            ("FLINT_DATA".into(), data_dir.clone()),
            ("FLINT_MASTER_PORT".into(), port.to_string()),
            ("FLINT_WEB_PORT".into(), web.to_string()),
            ("FLINT_WORKER_TIMEOUT".into(), "5s".into()),
        ],
    };
    compose.run(&["up", "-d", "--scale", "worker=3"])?;
    let url = format!("flint://127.0.0.1:{port}");
    let status = || -> Result<Value, Failed> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", web))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /json HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split_once("\r\n\r\n").ok_or("no HTTP body")?.1;
        Ok(serde_json::from_str(body)?)
    };
    let workers = |s: &Value| s["workers"].as_array().map_or(0, |w| w.len());
    check(
        wait_until(Duration::from_secs(60), || status().is_ok_and(|s| workers(&s) == 3)),
        "3 workers did not register",
    )?;
    // The driver runs here. It sets no FLINT_DRIVER_HOST: with the default `auto` it listens
    // on every interface and executors use the address the master saw it connect from (this
    // machine's address on the compose network).
    let submit = |args: &[&str], env: &[(&str, &str)]| -> Result<Submitted, Failed> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, "submit")
            .env("FLINT_PROGRESS", "false")
            .envs(env.iter().copied())
            .args(["flint-submit", "--master", &url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Captured::from(child.stdout.take().ok_or("no stdout")?);
        let stderr = Captured::from(child.stderr.take().ok_or("no stderr")?);
        Ok(Submitted { child, stdout, stderr })
    };

    // wordcount and k-means, against local mode.
    let text = write_text(data.path())?;
    let text = text.to_str().ok_or("path")?;
    let expected = answer(run_local(WORDCOUNT, &[text], &[])?);
    let got = submit(&[WORDCOUNT, text, "--json"], &[])?.json_on_success("wordcount", Duration::from_secs(180))?;
    check(answer(got) == expected, "wordcount on compose differs from local mode")?;
    let points = write_points(data.path(), 4000, 6)?;
    let points = points.to_str().ok_or("path")?;
    let args = [points, "--k", "4", "--iters", "10", "--init", "random"];
    let expected = run_local(KMEANS, &args, &[])?;
    let mut submit_args = vec![KMEANS];
    submit_args.extend(args);
    submit_args.push("--json");
    let got = submit(&submit_args, &[])?.json_on_success("kmeans", Duration::from_secs(180))?;
    check(
        same_kmeans(&got, &expected),
        format!("k-means on compose: {got}\nlocal: {expected}"),
    )?;

    // A gated job: kill a worker container mid-job, add a fourth worker mid-job.
    let gate = data.path().join("gate");
    let gate_str = gate.to_str().ok_or("path")?.to_string();
    let me = std::env::current_exe()?;
    let me = me.to_str().ok_or("path")?.to_string();
    let mut job = submit(
        &[&me, GATED_JOB_ARG],
        &[
            (GATE, &gate_str),
            ("FLINT_LOG", "warn,flint_engine::cluster::backend=debug"),
        ],
    )?;
    let app = |s: &Value| {
        s["apps"]
            .as_array()
            .and_then(|apps| apps.iter().rev().find(|a| a["name"] == "gated").cloned())
            .unwrap_or(Value::Null)
    };
    let mut seen = Value::Null;
    let started = wait_until(Duration::from_secs(120), || {
        seen = status().map(|s| app(&s)).unwrap_or(Value::Null);
        let ran = task_executors(&job.stderr.text());
        let ex = executors(&seen);
        ex.len() == 3 && ex.iter().all(|e| ran.contains(&e.0))
    });
    check(
        started,
        format!(
            "tasks did not reach 3 executors: {seen}\n{}",
            tail(&job.stderr.text(), 20)
        ),
    )?;
    let before = status()?;
    let victim = before["workers"][0].clone();
    let victim_ip = victim["host"].as_str().ok_or("no host")?.to_string();
    let containers = compose.run(&["ps", "-q", "worker"])?;
    let mut killed = false;
    for container in containers.split_whitespace() {
        let ip = sh(
            "docker",
            &[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                container,
            ],
            &[],
        )?;
        if ip.trim() == victim_ip {
            sh("docker", &["kill", container], &[])?;
            killed = true;
        }
    }
    check(killed, format!("no container has the address {victim_ip}"))?;
    compose.run(&["up", "-d", "--no-recreate", "--scale", "worker=4"])?;
    let known: Vec<Value> = before["workers"].as_array().cloned().unwrap_or_default();
    let mut newcomer = String::new();
    let joined = wait_until(Duration::from_secs(120), || {
        let Ok(s) = status() else { return false };
        let Some(new) = s["workers"]
            .as_array()
            .and_then(|w| w.iter().find(|w| !known.iter().any(|k| k["id"] == w["id"])).cloned())
        else {
            return false;
        };
        newcomer = new["id"].as_str().unwrap_or_default().to_string();
        let ran = task_executors(&job.stderr.text());
        executors(&app(&s))
            .iter()
            .any(|e| e.1 == newcomer && ran.contains(&e.0))
    });
    check(
        joined,
        format!(
            "the new worker ({newcomer:?}) got no tasks: {}",
            tail(&job.stderr.text(), 20)
        ),
    )?;
    std::fs::write(&gate, b"open")?;
    let code = job.wait(Duration::from_secs(180))?;
    check(
        code == 0,
        format!("the gated job exited {code}: {}", tail(&job.stderr.text(), 30)),
    )?;
    let got: Vec<(i64, i64)> = serde_json::from_value(job.json()?["sums"].clone())?;
    check(
        got == gated_answer(),
        format!("wrong answer after docker kill: {got:?}"),
    )?;
    check(
        job.stderr.text().contains("executor lost"),
        "the driver did not notice the lost executor",
    )?;

    // Tear down: nothing of the project is left.
    compose.run(&["down", "-v", "--timeout", "10"])?;
    let left = compose.leftovers()?;
    check(left.is_empty(), format!("left after compose down: {left}"))
}
