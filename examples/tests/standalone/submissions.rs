//! Submissions: bad ones fail clearly, too few cores waits with a warning, draining a
//! worker and killing an application.

use super::*;

pub(crate) fn bad_submissions_fail_clearly() -> TestResult {
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

pub(crate) fn too_few_cores_waits_with_a_warning() -> TestResult {
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
pub(crate) fn submit_tool(cluster: &Cluster, args: &[&str]) -> Result<(i32, String, String), Failed> {
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

pub(crate) fn drain_a_worker_and_kill_an_application() -> TestResult {
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
