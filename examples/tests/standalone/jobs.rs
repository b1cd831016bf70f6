//! Jobs on the cluster: answers equal to local mode's, and a job that survives losing a
//! worker (SIGKILL) and uses one that joins mid-job.

use super::*;

/// Runs an example locally (the reference answer); its JSON line.
pub(crate) fn run_local(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Value, Failed> {
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

pub(crate) fn write_text(dir: &Path) -> Result<PathBuf, Failed> {
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
pub(crate) fn write_points(dir: &Path, rows: usize, dims: usize) -> Result<PathBuf, Failed> {
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
pub(crate) fn answer(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for timing in ["seconds", "train_seconds", "load_seconds"] {
            o.remove(timing);
        }
    }
    v
}

pub(crate) fn same_kmeans(got: &Value, expected: &Value) -> bool {
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

pub(crate) fn wordcount_and_kmeans_match_local_mode() -> TestResult {
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

    kmeans_like_local(
        cluster.dir.path(),
        &cluster.url,
        Duration::from_secs(120),
        "the cluster",
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
pub(crate) const GATE: &str = "FLINT_TEST_GATE";
pub(crate) const GATED_PARTITIONS: usize = 48;
/// The argument that makes this binary run the gated job.
pub(crate) const GATED_JOB_ARG: &str = "--gated-job";

/// The gated job's answer: sums of `0..4800` by residue mod 7.
pub(crate) fn gated_answer() -> Vec<(i64, i64)> {
    let mut sums = std::collections::BTreeMap::new();
    for x in 0..4800i64 {
        *sums.entry(x % 7).or_insert(0) += x;
    }
    sums.into_iter().collect()
}

/// A driver (this binary, submitted as the application) whose map tasks wait for a gate
/// file: the test decides how long the job runs, whatever the machine's speed. Prints its
/// answer as JSON.
pub(crate) fn gated_job() -> ExitCode {
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
pub(crate) fn executors(app: &Value) -> Vec<(u64, String, Option<u32>, String)> {
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
pub(crate) fn task_executors(driver_log: &str) -> std::collections::BTreeSet<u64> {
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

pub(crate) fn a_job_survives_a_lost_worker_and_uses_a_new_one() -> TestResult {
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

/// Submits k-means (4,000 points written to `dir`, random init) to the master at `url` and
/// checks its answer against local mode's; `place` names the cluster in the failure.
pub(crate) fn kmeans_like_local(dir: &Path, url: &str, timeout: Duration, place: &str) -> TestResult {
    let points = write_points(dir, 4000, 6)?;
    let points = points.to_str().ok_or("path")?;
    let args = [points, "--k", "4", "--iters", "10", "--init", "random"];
    let expected = run_local(KMEANS, &args, &[])?;
    let mut submit_args = vec![KMEANS];
    submit_args.extend(args);
    submit_args.push("--json");
    let got = submit_to(url, &submit_args, &[])?.json_on_success("kmeans", timeout)?;
    check(
        same_kmeans(&got, &expected),
        format!("k-means on {place}: {got}\nlocal: {expected}"),
    )
}
