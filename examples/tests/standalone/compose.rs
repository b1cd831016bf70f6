//! The docker-compose cluster: image built from this checkout, workers scaled, a job run.

use super::*;

/// Runs a command; its stdout, or an error with its stderr.
pub(crate) fn sh(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, Failed> {
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
pub(crate) fn docker_missing() -> Option<String> {
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

pub(crate) fn free_port() -> Result<u16, Failed> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A compose project of the flint image; torn down (containers, network, volumes, image)
/// when dropped.
pub(crate) struct Compose {
    pub(crate) project: String,
    pub(crate) image: String,
    pub(crate) file: PathBuf,
    pub(crate) env: Vec<(String, String)>,
}

impl Compose {
    pub(crate) fn run(&self, args: &[&str]) -> Result<String, Failed> {
        let mut all = vec!["-p", &self.project, "-f", self.file.to_str().ok_or("path")?];
        all.extend(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sh("docker-compose", &all, &env)
    }

    /// What remains of the project: containers, networks, volumes.
    pub(crate) fn leftovers(&self) -> Result<String, Failed> {
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
pub(crate) fn build_dir() -> Result<(PathBuf, String), Failed> {
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
pub(crate) fn docker_compose_cluster() -> TestResult {
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
    let submit = |args: &[&str], env: &[(&str, &str)]| submit_to(&url, args, env);

    // wordcount and k-means, against local mode.
    let text = write_text(data.path())?;
    let text = text.to_str().ok_or("path")?;
    let expected = answer(run_local(WORDCOUNT, &[text], &[])?);
    let got = submit(&[WORDCOUNT, text, "--json"], &[])?.json_on_success("wordcount", Duration::from_secs(180))?;
    check(answer(got) == expected, "wordcount on compose differs from local mode")?;
    kmeans_like_local(data.path(), &url, Duration::from_secs(180), "compose")?;

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
