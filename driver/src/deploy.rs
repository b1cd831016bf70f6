//! The command lines of `flint-master`, `flint-worker` and `flint-submit` (the binaries are
//! thin `main`s over these functions; the daemons themselves are
//! `flint_executor::standalone`). The daemons log at `info` unless `FLINT_LOG` says
//! otherwise.
//!
//! ```text
//! flint-master [--host 127.0.0.1] [--port 7077] [--web-port 8080]
//! flint-worker flint://127.0.0.1:7077 [--cores N] [--memory 4g]
//! flint-submit --master flint://127.0.0.1:7077 [--executor-cores C] [--executor-memory M]
//!              [--total-executor-cores N] [--conf key=value]... APP_BINARY [--] [APP_ARGS]...
//! flint-submit --master flint://127.0.0.1:7077 --status [--json]
//! flint-submit --master flint://127.0.0.1:7077 --kill app-0001
//! flint-submit --master flint://127.0.0.1:7077 --drain-worker worker-2
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flint_executor::standalone::protocol::MasterStatus;
use flint_executor::standalone::{self, MasterUrl, Submission, master, worker};

/// Runs the standalone master.
#[derive(Parser, Debug)]
#[command(name = "flint-master", version)]
struct MasterArgs {
    /// Address to listen on (`0.0.0.0` for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port for workers, drivers and flint-submit (`0`: any free port).
    #[arg(long, default_value_t = 7077)]
    port: u16,
    /// Port of the status page, `GET /json` (`0`: any free port).
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
    /// Serve no status page.
    #[arg(long)]
    no_web: bool,
    /// Where uploaded application binaries are kept (default: a new directory under the
    /// system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A worker silent this long is forgotten (`250ms`, `10s`, `1m`).
    #[arg(long, default_value = "30s")]
    worker_timeout: String,
    /// Pack an application's executors onto as few workers as possible (default: spread).
    #[arg(long)]
    pack: bool,
    /// Executors of one application that may exit unasked before it gets no more.
    #[arg(long, default_value_t = 10)]
    max_executor_failures: u32,
}

/// Runs a worker of a standalone cluster.
#[derive(Parser, Debug)]
#[command(name = "flint-worker", version)]
struct WorkerArgs {
    /// The master, `flint://HOST:PORT`.
    master: String,
    /// Cores to offer (default: every core of this machine).
    #[arg(long)]
    cores: Option<usize>,
    /// Memory to offer executors (`512m`, `4g`; default: this machine's memory less 1 GiB).
    #[arg(long)]
    memory: Option<String>,
    /// Host this worker's executors listen on and advertise (reachable by the driver and
    /// other workers); `auto`: the address this machine reaches the master from.
    #[arg(long, default_value = "auto")]
    host: String,
    /// Application binaries and executor logs (default: a new directory under the system
    /// temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// How often to heartbeat the master (and pick up its orders).
    #[arg(long, default_value = "1s")]
    heartbeat_interval: String,
}

/// Submits an application to a standalone cluster (the driver runs here, in client mode),
/// or asks the master for its status, to kill an application or to drain a worker.
///
/// `--conf key=value` sets any flint setting for the application, passed to the driver as
/// its environment variable (`executor_cores` -> `FLINT_EXECUTOR_CORES`,
/// `memory_limit_bytes` -> `FLINT_MEMORY_LIMIT`, `storage_memory_bytes` ->
/// `FLINT_STORAGE_MEMORY`, `show_progress` -> `FLINT_PROGRESS`, any other key -> `FLINT_` and
/// the key in capitals).
#[derive(Parser, Debug)]
#[command(name = "flint-submit", version)]
struct SubmitArgs {
    /// The master, `flint://HOST:PORT` (default: `FLINT_MASTER`).
    #[arg(long)]
    master: Option<String>,
    /// Task slots per executor (default: all free cores of a worker).
    #[arg(long)]
    executor_cores: Option<usize>,
    /// Memory reserved per executor on its worker (`512m`, `2g`; default `1g`).
    #[arg(long)]
    executor_memory: Option<String>,
    /// Most cores of all the application's executors together (default: no limit).
    #[arg(long)]
    total_executor_cores: Option<usize>,
    /// A setting for the application, `key=value` (repeatable).
    #[arg(long = "conf", value_name = "KEY=VALUE")]
    conf: Vec<String>,
    /// The driver must register with the master within this long, or it is killed.
    #[arg(long, default_value = "60s")]
    register_timeout: String,
    /// Print the master's workers, applications and executors.
    #[arg(long)]
    status: bool,
    /// With `--status`: as JSON.
    #[arg(long)]
    json: bool,
    /// Kill an application (`app-0001`).
    #[arg(long, value_name = "APP_ID")]
    kill: Option<String>,
    /// Drain a worker (`worker-2`): no new executors there; drivers decommission the
    /// executors it runs.
    #[arg(long, value_name = "WORKER_ID")]
    drain_worker: Option<String>,
    /// The application binary (a flint program).
    app: Option<PathBuf>,
    /// The application's arguments (after `--` when one starts with `-`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    app_args: Vec<OsString>,
}

fn fail(tool: &str, e: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("{tool}: error: {}", crate::report(e));
    ExitCode::from(1)
}

fn usage(tool: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{tool}: error: {message}");
    ExitCode::from(2)
}

fn duration(tool: &str, key: &str, value: &str) -> Result<Duration, ExitCode> {
    flint_engine::cluster::settings::parse_duration(key, value).map_err(|e| fail(tool, &e))
}

fn bytes(tool: &str, key: &str, value: &str) -> Result<u64, ExitCode> {
    flint_engine::conf::parse_bytes(key, value).map_err(|e| fail(tool, &e))
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `flint-master`: runs until SIGTERM or SIGINT.
pub fn master_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    const TOOL: &str = "flint-master";
    crate::init_logging("info");
    let args = match MasterArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let worker_timeout = match duration(TOOL, "--worker-timeout", &args.worker_timeout) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let config = master::MasterConfig {
        host: args.host,
        port: args.port,
        web_port: (!args.no_web).then_some(args.web_port),
        work_dir: args
            .work_dir
            .unwrap_or_else(|| std::env::temp_dir().join(format!("flint-master-{}", std::process::id()))),
        worker_timeout,
        spread: !args.pack,
        max_executor_failures: args.max_executor_failures,
    };
    let running = match master::start(config) {
        Ok(r) => r,
        Err(e) => return fail(TOOL, &e),
    };
    match running.web_address {
        Some(web) => print_line(&format!(
            "flint-master listening on {} (status: http://{web}/json)",
            running.url()
        )),
        None => print_line(&format!("flint-master listening on {}", running.url())),
    }
    running.wait_for_signal();
    eprintln!("flint-master: stopping");
    ExitCode::SUCCESS
}

/// This machine's memory less 1 GiB (at least 1 GiB), from `/proc/meminfo`.
fn default_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    total.map_or(1 << 30, |t| t.saturating_sub(1 << 30).max(1 << 30))
}

/// `flint-worker`: runs until SIGTERM or SIGINT.
pub fn worker_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    const TOOL: &str = "flint-worker";
    crate::init_logging("info");
    let args = match WorkerArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let master = match MasterUrl::parse(&args.master) {
        Ok(m) => m,
        Err(e) => return usage(TOOL, e),
    };
    let heartbeat_interval = match duration(TOOL, "--heartbeat-interval", &args.heartbeat_interval) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let memory_bytes = match args.memory.as_deref().map(|m| bytes(TOOL, "--memory", m)).transpose() {
        Ok(m) => m.unwrap_or_else(default_memory),
        Err(code) => return code,
    };
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if cores == 0 {
        return usage(TOOL, "--cores must be at least 1");
    }
    let config = worker::WorkerConfig {
        master_url: master.url.clone(),
        master_address: master.address,
        host: args.host,
        cores,
        memory_bytes,
        work_dir: args
            .work_dir
            .unwrap_or_else(|| std::env::temp_dir().join(format!("flint-worker-{}", std::process::id()))),
        heartbeat_interval,
    };
    let url = master.url;
    match worker::run(config, move |id| {
        print_line(&format!("flint-worker registered with {url} as {id}"))
    }) {
        Ok(()) => {
            eprintln!("flint-worker: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(TOOL, &e),
    }
}

/// The environment variable that carries setting `key` to a driver.
pub fn setting_env_var(key: &str) -> String {
    match key {
        "memory_limit_bytes" => "FLINT_MEMORY_LIMIT".into(),
        "storage_memory_bytes" => "FLINT_STORAGE_MEMORY".into(),
        "show_progress" => "FLINT_PROGRESS".into(),
        other => format!("FLINT_{}", other.to_ascii_uppercase()),
    }
}

fn print_status(status: &MasterStatus) {
    let mut out = String::new();
    out.push_str(&format!("master {}", status.url));
    if let Some(web) = &status.web_url {
        out.push_str(&format!(" (status page {web})"));
    }
    out.push_str(&format!("\n\nworkers ({}):\n", status.workers.len()));
    for w in &status.workers {
        out.push_str(&format!(
            "  {:<10} {:<16} {:<8} cores {}/{} memory {}/{} MiB\n",
            w.id,
            w.host,
            w.state,
            w.cores_used,
            w.cores,
            w.memory_used_bytes >> 20,
            w.memory_bytes >> 20
        ));
    }
    out.push_str(&format!("\napplications ({}):\n", status.apps.len()));
    for a in &status.apps {
        out.push_str(&format!(
            "  {:<9} {:<16} {:<10} cores {} driver {}\n",
            a.id, a.name, a.state, a.cores_granted, a.driver_address
        ));
        if let Some(why) = &a.waiting_reason {
            out.push_str(&format!("            waiting: {why}\n"));
        }
        for e in &a.executors {
            out.push_str(&format!(
                "            executor {:<4} on {:<10} cores {} pid {:<8} {}\n",
                e.id,
                e.worker,
                e.cores,
                e.pid.map_or("-".into(), |p| p.to_string()),
                e.state
            ));
        }
    }
    print!("{out}");
}

/// `flint-submit`: returns the application's exit status (or 1 when it could not run).
pub fn submit_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    const TOOL: &str = "flint-submit";
    crate::init_logging("warn");
    let args = match SubmitArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let Some(url) = args.master.clone().or_else(|| std::env::var("FLINT_MASTER").ok()) else {
        return usage(TOOL, "--master flint://HOST:PORT is required (or FLINT_MASTER)");
    };
    let master = match MasterUrl::parse(&url) {
        Ok(m) => m,
        Err(e) => return usage(TOOL, e),
    };
    if args.status {
        return match standalone::status(&master) {
            Ok(status) => {
                if args.json {
                    print_line(&serde_json::to_string_pretty(&status).unwrap_or_default());
                } else {
                    print_status(&status);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(TOOL, &e),
        };
    }
    if let Some(app) = &args.kill {
        return match standalone::kill(&master, app) {
            Ok(()) => {
                eprintln!("{TOOL}: killed {app}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(TOOL, &e),
        };
    }
    if let Some(worker) = &args.drain_worker {
        return match standalone::drain(&master, worker) {
            Ok(()) => {
                eprintln!("{TOOL}: draining {worker}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(TOOL, &e),
        };
    }
    let Some(program) = args.app.clone() else {
        return usage(
            TOOL,
            "nothing to do: give an APP_BINARY to submit, or --status, --kill or --drain-worker",
        );
    };
    let mut settings: Vec<(String, String)> = Vec::new();
    if let Some(c) = args.executor_cores {
        settings.push(("executor_cores".into(), c.to_string()));
    }
    if let Some(m) = &args.executor_memory {
        settings.push(("executor_memory".into(), m.clone()));
    }
    if let Some(c) = args.total_executor_cores {
        settings.push(("total_executor_cores".into(), c.to_string()));
    }
    for kv in &args.conf {
        let Some((k, v)) = kv.split_once('=') else {
            return usage(TOOL, format!("--conf {kv:?}: expected KEY=VALUE"));
        };
        settings.push((k.trim().to_string(), v.to_string()));
    }
    // Checked here, so a bad value is reported before anything starts.
    let mut check = crate::ConfigBuilder::default();
    for (k, v) in &settings {
        check = match check.set(k, v) {
            Ok(b) => b,
            Err(e) => return fail(TOOL, &e),
        };
    }
    let register_timeout = match duration(TOOL, "--register-timeout", &args.register_timeout) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let submission = Submission {
        master,
        program,
        args: args.app_args,
        env: settings.iter().map(|(k, v)| (setting_env_var(k), v.clone())).collect(),
        register_timeout,
    };
    let url = submission.master.url.clone();
    match standalone::submit(submission, |app| {
        eprintln!("{TOOL}: application {app} registered with {url}")
    }) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => fail(TOOL, &e),
    }
}
