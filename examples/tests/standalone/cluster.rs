//! The cluster under test: master and workers as processes of this binary, and the
//! applications submitted to it, their output captured.

use super::*;

/// Output collected from a child's pipe by a thread.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<String>>, Arc<AtomicBool>);

impl Captured {
    pub(crate) fn from(pipe: impl Read + Send + 'static) -> Captured {
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

    pub(crate) fn text(&self) -> String {
        self.0.lock().expect("capture lock").clone()
    }

    /// Waits until the pipe reached its end (every line read), at most `timeout`.
    pub(crate) fn wait_drained(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.1.load(Ordering::SeqCst))
    }
}

/// A started `flint-submit`.
pub(crate) struct Submitted {
    pub(crate) child: Child,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl Submitted {
    /// Waits for it to exit; its exit code, or an error with its output after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<i32, Failed> {
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
    pub(crate) fn json_on_success(&mut self, what: &str, timeout: Duration) -> Result<Value, Failed> {
        let code = self.wait(timeout)?;
        check(
            code == 0,
            format!("{what} exited {code}: {}", tail(&self.stderr.text(), 30)),
        )?;
        self.json()
    }

    /// The last line of stdout, as JSON (the examples' `--json`).
    pub(crate) fn json(&self) -> Result<Value, Failed> {
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

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Master and workers as processes of this binary, in a temporary directory.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) master: Child,
    pub(crate) url: String,
    pub(crate) web: String,
    pub(crate) workers: Vec<(Child, String)>,
}

impl Cluster {
    pub(crate) fn start(workers: usize, cores: usize) -> Result<Cluster, Failed> {
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
    pub(crate) fn add_worker(&mut self, cores: usize) -> Result<String, Failed> {
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
    pub(crate) fn status(&self) -> Result<Value, Failed> {
        let mut stream = std::net::TcpStream::connect(&self.web)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /json HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split_once("\r\n\r\n").ok_or("no HTTP body")?.1;
        check(response.starts_with("HTTP/1.1 200"), format!("status page: {response}"))?;
        Ok(serde_json::from_str(body)?)
    }

    pub(crate) fn app(&self, name: &str) -> Result<Option<Value>, Failed> {
        let status = self.status()?;
        Ok(status["apps"]
            .as_array()
            .and_then(|apps| apps.iter().rev().find(|a| a["name"] == name).cloned()))
    }

    pub(crate) fn submit(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Submitted, Failed> {
        submit_to(&self.url, args, env)
    }

    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["master.log", "worker1.log", "worker2.log", "worker3.log", "worker4.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                out.push_str(&format!("--- {name}\n{}\n", tail(&text, 15)));
            }
        }
        out
    }

    /// Every executor process the master ever reported.
    pub(crate) fn executor_pids(&self) -> Vec<u32> {
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
    pub(crate) fn shut_down(mut self) -> TestResult {
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

/// Starts `flint-submit --master url args` (this binary in the submit role), its output captured.
pub(crate) fn submit_to(url: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Submitted, Failed> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, "submit")
        .env("FLINT_PROGRESS", "false")
        .envs(env.iter().copied())
        .args(["flint-submit", "--master", url])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = Captured::from(child.stdout.take().ok_or("no stdout")?);
    let stderr = Captured::from(child.stderr.take().ok_or("no stderr")?);
    Ok(Submitted { child, stdout, stderr })
}
