//! Typed configuration: documented keys, defaults, `FLINT_*` environment variables.
//!
//! | key (builder method)      | environment variable         | default                        |
//! |---------------------------|------------------------------|--------------------------------|
//! | `master`                  | `FLINT_MASTER`               | `local[*]`; or `local-cluster[E,C]`, `flint://HOST:PORT` |
//! | `app_name`                | `FLINT_APP_NAME`             | `flint`                        |
//! | `default_parallelism`     | `FLINT_DEFAULT_PARALLELISM`  | number of task slots (`flint://`: `total_executor_cores`, else 2) |
//! | `memory_limit_bytes`      | `FLINT_MEMORY_LIMIT`         | 512 MiB (shuffle, aggregation, sort buffers; spill past it) |
//! | `storage_memory_bytes`    | `FLINT_STORAGE_MEMORY`       | 1 GiB (cached partitions)      |
//! | `local_dir`               | `FLINT_LOCAL_DIR`            | the system temp directory      |
//! | `max_task_failures`       | `FLINT_MAX_TASK_FAILURES`    | 4 (attempts per task)          |
//! | `max_stage_attempts`      | `FLINT_MAX_STAGE_ATTEMPTS`   | 4 (resubmissions after fetch failures) |
//! | `shuffle_compress`        | `FLINT_SHUFFLE_COMPRESS`     | `true` (lz4)                   |
//! | `checkpoint_dir`          | `FLINT_CHECKPOINT_DIR`       | none (checkpoint needs one)    |
//! | `show_progress`           | `FLINT_PROGRESS`             | `true` (only drawn when stderr is a terminal) |
//! | `ship_tasks`              | `FLINT_SHIP_TASKS`           | `false` (see below)            |
//!
//! `ship_tasks` is a test mode of local masters: every task is encoded to bytes, decoded (as an
//! executor process would decode it, broadcast values fetched from the driver's registry), run,
//! and its end (result, map output, accumulator updates) encoded and decoded back, exactly as
//! distributed mode will ship them. It proves that every operation can run in another process
//! of the same build; it costs the encoding, so leave it off otherwise. The test suite runs
//! the integration tests a second time with `FLINT_SHIP_TASKS=1`.
//!
//! Distributed-mode keys (heartbeats, locality wait, result size) are listed in
//! [`crate::cluster::settings`]. The ML library reads its own setting, `flint.ml.device`
//! (`FLINT_ML_DEVICE`: `auto`, `cpu` or `gpu`; see `flint_mllib::device`), in each process.
//!
//! Sizes accept plain bytes or a suffix: `64k`, `512m`, `2g`. A value set through the builder
//! wins over the environment, which wins over the default.

use std::path::PathBuf;

use crate::error::{EngineError, Result};

/// Where and how jobs run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Master {
    /// Threads in this process: `local` (1), `local[N]`, `local[*]` (one per core).
    Local {
        /// Task slots (threads).
        threads: usize,
    },
    /// `local-cluster[E,C]`: E executor processes of this program with C task slots each, on
    /// loopback, talking to the driver over TCP (every distributed code path on one machine).
    LocalCluster {
        /// Executor processes.
        executors: usize,
        /// Task slots per executor.
        cores: usize,
    },
    /// `flint://HOST:PORT`: a standalone cluster's master, which starts this application's
    /// executors on its workers (`flint-master`, `flint-worker`, `flint-submit`).
    Standalone {
        /// The master's host name or address.
        host: String,
        /// The master's port.
        port: u16,
    },
}

impl Master {
    /// Parses a master URL: `local`, `local[N]`, `local[*]`, `local-cluster[E,C]` or
    /// `flint://HOST:PORT`.
    pub fn parse(url: &str) -> Result<Master> {
        let bad = || {
            EngineError::invalid(
                "master",
                url,
                "expected local, local[N], local[*], local-cluster[EXECUTORS,CORES] or flint://HOST:PORT",
            )
        };
        let url = url.trim();
        if let Some(address) = url.strip_prefix("flint://") {
            let bad_address =
                || EngineError::invalid("master", url, "expected flint://HOST:PORT, e.g. flint://127.0.0.1:7077");
            let (host, port) = address.rsplit_once(':').ok_or_else(bad_address)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad_address)?;
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(bad_address());
            }
            return Ok(Master::Standalone {
                host: host.to_string(),
                port,
            });
        }
        if let Some(inner) = url.strip_prefix("local-cluster[").and_then(|s| s.strip_suffix(']')) {
            let (e, c) = inner.split_once(',').ok_or_else(bad)?;
            let count = |s: &str| s.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad);
            return Ok(Master::LocalCluster {
                executors: count(e)?,
                cores: count(c)?,
            });
        }
        if url == "local" {
            return Ok(Master::Local { threads: 1 });
        }
        let inner = url
            .strip_prefix("local[")
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(bad)?;
        let threads = if inner == "*" {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            inner.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad)?
        };
        Ok(Master::Local { threads })
    }

    /// Task slots this master offers; a standalone cluster's are not known in advance (2, as
    /// Spark's minimum default parallelism).
    pub fn slots(&self) -> usize {
        match self {
            Master::Local { threads } => *threads,
            Master::LocalCluster { executors, cores } => executors * cores,
            Master::Standalone { .. } => 2,
        }
    }

    /// The URL this master was parsed from, normalised.
    pub fn url(&self) -> String {
        match self {
            Master::Local { threads } => format!("local[{threads}]"),
            Master::LocalCluster { executors, cores } => format!("local-cluster[{executors},{cores}]"),
            Master::Standalone { host, port } if host.contains(':') => format!("flint://[{host}]:{port}"),
            Master::Standalone { host, port } => format!("flint://{host}:{port}"),
        }
    }
}

/// The settings of one [`Context`](crate::Context). See the module docs for keys and defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// The master URL, parsed.
    pub master: Master,
    /// Application name (logs, UI).
    pub app_name: String,
    /// Partitions for operations that do not say (parallelize, shuffles).
    pub default_parallelism: usize,
    /// Memory for shuffle, aggregation and sort buffers, shared by running tasks; spill past it.
    pub memory_limit_bytes: u64,
    /// Memory for cached partitions; blocks past it go to disk or are dropped (per storage level).
    pub storage_memory_bytes: u64,
    /// Directory for shuffle, spill and disk-cached files (a fresh subdirectory is made per context).
    pub local_dir: PathBuf,
    /// Attempts per task before the job fails.
    pub max_task_failures: u32,
    /// Attempts per stage (resubmissions after fetch failures) before the job fails.
    pub max_stage_attempts: u32,
    /// Compress shuffle blocks with lz4.
    pub shuffle_compress: bool,
    /// Directory for `checkpoint`.
    pub checkpoint_dir: Option<PathBuf>,
    /// Draw a progress bar on stderr for long stages (only when stderr is a terminal).
    pub show_progress: bool,
    /// Distributed-mode settings (heartbeats, locality, result size); see [`crate::cluster`].
    pub cluster: crate::cluster::ClusterSettings,
    /// Encode and decode every task as if it ran in another process (a test mode; see the
    /// module docs).
    pub ship_tasks: bool,
}

/// Builds a [`Config`]; see the module docs for keys.
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    master: Option<String>,
    app_name: Option<String>,
    default_parallelism: Option<usize>,
    memory_limit_bytes: Option<u64>,
    storage_memory_bytes: Option<u64>,
    local_dir: Option<PathBuf>,
    max_task_failures: Option<u32>,
    max_stage_attempts: Option<u32>,
    shuffle_compress: Option<bool>,
    checkpoint_dir: Option<PathBuf>,
    show_progress: Option<bool>,
    cluster: Vec<(String, String)>,
    ship_tasks: Option<bool>,
}

impl ConfigBuilder {
    /// Master URL (`local`, `local[N]`, `local[*]`, `local-cluster[E,C]`, `flint://HOST:PORT`).
    pub fn master(mut self, url: impl Into<String>) -> Self {
        self.master = Some(url.into());
        self
    }
    /// Application name.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }
    /// Default number of partitions.
    pub fn default_parallelism(mut self, n: usize) -> Self {
        self.default_parallelism = Some(n);
        self
    }
    /// Shuffle/aggregation memory limit in bytes.
    pub fn memory_limit_bytes(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = Some(bytes);
        self
    }
    /// Cache memory in bytes.
    pub fn storage_memory_bytes(mut self, bytes: u64) -> Self {
        self.storage_memory_bytes = Some(bytes);
        self
    }
    /// Directory for shuffle and spill files.
    pub fn local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }
    /// Attempts per task.
    pub fn max_task_failures(mut self, n: u32) -> Self {
        self.max_task_failures = Some(n);
        self
    }
    /// Attempts per stage.
    pub fn max_stage_attempts(mut self, n: u32) -> Self {
        self.max_stage_attempts = Some(n);
        self
    }
    /// Compress shuffle blocks.
    pub fn shuffle_compress(mut self, on: bool) -> Self {
        self.shuffle_compress = Some(on);
        self
    }
    /// Checkpoint directory.
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }
    /// Progress bar on stderr.
    pub fn show_progress(mut self, on: bool) -> Self {
        self.show_progress = Some(on);
        self
    }
    /// Ship every task through its byte encoding, even in local mode (a test mode).
    pub fn ship_tasks(mut self, on: bool) -> Self {
        self.ship_tasks = Some(on);
        self
    }

    /// Sets a key by name, as a string (what `flint-submit --conf key=value` will use).
    pub fn set(self, key: &str, value: &str) -> Result<Self> {
        Ok(match key {
            "master" => self.master(value),
            "app_name" => self.app_name(value),
            "default_parallelism" => self.default_parallelism(parse_count(key, value)?),
            "memory_limit_bytes" => self.memory_limit_bytes(parse_bytes(key, value)?),
            "storage_memory_bytes" => self.storage_memory_bytes(parse_bytes(key, value)?),
            "local_dir" => self.local_dir(value),
            "max_task_failures" => self.max_task_failures(parse_count(key, value)? as u32),
            "max_stage_attempts" => self.max_stage_attempts(parse_count(key, value)? as u32),
            "shuffle_compress" => self.shuffle_compress(parse_bool(key, value)?),
            "checkpoint_dir" => self.checkpoint_dir(value),
            "show_progress" => self.show_progress(parse_bool(key, value)?),
            k if crate::cluster::settings::KEYS.contains(&k) => {
                let mut b = self;
                b.cluster.push((k.to_string(), value.to_string()));
                // Checked now, so a bad value is reported where it was set.
                crate::cluster::ClusterSettings::resolve(&b.cluster, &|_| None)?;
                b
            }
            "ship_tasks" => self.ship_tasks(parse_bool(key, value)?),
            _ => return Err(EngineError::invalid("configuration key", key, "not a known key")),
        })
    }

    /// Resolves builder values, then `FLINT_*` variables, then defaults, and checks them.
    pub fn build(self) -> Result<Config> {
        self.build_with_env(|k| std::env::var(k).ok())
    }

    fn build_with_env(self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let master_url = self
            .master
            .or_else(|| env("FLINT_MASTER"))
            .unwrap_or_else(|| "local[*]".into());
        let master = Master::parse(&master_url)?;
        let cluster = crate::cluster::ClusterSettings::resolve(&self.cluster, &env)?;
        let from_env = |var: &str, key: &str, parse: fn(&str, &str) -> Result<u64>| -> Result<Option<u64>> {
            env(var).map(|v| parse(key, &v)).transpose()
        };
        let default_parallelism = match self.default_parallelism {
            Some(n) => n,
            None => from_env("FLINT_DEFAULT_PARALLELISM", "default_parallelism", |k, v| {
                parse_count(k, v).map(|n| n as u64)
            })?
            .map(|n| n as usize)
            .unwrap_or(match (&master, cluster.total_executor_cores) {
                (Master::Standalone { .. }, Some(cores)) => cores,
                _ => master.slots(),
            }),
        };
        if default_parallelism == 0 {
            return Err(EngineError::invalid("default_parallelism", 0, "must be at least 1"));
        }
        let memory_limit_bytes = match self.memory_limit_bytes {
            Some(b) => b,
            None => from_env("FLINT_MEMORY_LIMIT", "memory_limit_bytes", parse_bytes)?.unwrap_or(512 << 20),
        };
        let storage_memory_bytes = match self.storage_memory_bytes {
            Some(b) => b,
            None => from_env("FLINT_STORAGE_MEMORY", "storage_memory_bytes", parse_bytes)?.unwrap_or(1 << 30),
        };
        let max_task_failures = match self.max_task_failures {
            Some(n) => n,
            None => from_env("FLINT_MAX_TASK_FAILURES", "max_task_failures", |k, v| {
                parse_count(k, v).map(|n| n as u64)
            })?
            .map(|n| n as u32)
            .unwrap_or(4),
        };
        let max_stage_attempts = match self.max_stage_attempts {
            Some(n) => n,
            None => from_env("FLINT_MAX_STAGE_ATTEMPTS", "max_stage_attempts", |k, v| {
                parse_count(k, v).map(|n| n as u64)
            })?
            .map(|n| n as u32)
            .unwrap_or(4),
        };
        if max_task_failures == 0 || max_stage_attempts == 0 {
            return Err(EngineError::invalid(
                "max_task_failures/max_stage_attempts",
                0,
                "must be at least 1",
            ));
        }
        let shuffle_compress = match self.shuffle_compress {
            Some(b) => b,
            None => env("FLINT_SHUFFLE_COMPRESS")
                .map(|v| parse_bool("shuffle_compress", &v))
                .transpose()?
                .unwrap_or(true),
        };
        let show_progress = match self.show_progress {
            Some(b) => b,
            None => env("FLINT_PROGRESS")
                .map(|v| parse_bool("show_progress", &v))
                .transpose()?
                .unwrap_or(true),
        };
        let ship_tasks = match self.ship_tasks {
            Some(b) => b,
            None => env("FLINT_SHIP_TASKS")
                .map(|v| parse_bool("ship_tasks", &v))
                .transpose()?
                .unwrap_or(false),
        };
        Ok(Config {
            master,
            app_name: self
                .app_name
                .or_else(|| env("FLINT_APP_NAME"))
                .unwrap_or_else(|| "flint".into()),
            default_parallelism,
            memory_limit_bytes,
            storage_memory_bytes,
            local_dir: self
                .local_dir
                .or_else(|| env("FLINT_LOCAL_DIR").map(PathBuf::from))
                .unwrap_or_else(std::env::temp_dir),
            max_task_failures,
            max_stage_attempts,
            shuffle_compress,
            checkpoint_dir: self
                .checkpoint_dir
                .or_else(|| env("FLINT_CHECKPOINT_DIR").map(PathBuf::from)),
            show_progress,
            cluster,
            ship_tasks,
        })
    }
}

pub(crate) fn parse_count(key: &str, value: &str) -> Result<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| EngineError::invalid(key, value, "expected a whole number of at least 1"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(EngineError::invalid(key, value, "expected true or false")),
    }
}

/// Parses `1234`, `64k`, `512m`, `2g` (binary units) into bytes.
pub fn parse_bytes(key: &str, value: &str) -> Result<u64> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (digits, shift) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 10),
        Some('m') => (&v[..v.len() - 1], 20),
        Some('g') => (&v[..v.len() - 1], 30),
        Some('t') => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| EngineError::invalid(key, value, "expected a size such as 1048576, 64k, 512m or 2g"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_parse() {
        assert_eq!(Master::parse("local").unwrap(), Master::Local { threads: 1 });
        assert_eq!(Master::parse("local[3]").unwrap(), Master::Local { threads: 3 });
        assert_eq!(
            Master::parse("local-cluster[3, 2]").unwrap(),
            Master::LocalCluster { executors: 3, cores: 2 }
        );
        assert_eq!(Master::parse("local-cluster[3,2]").unwrap().slots(), 6);
        for bad in ["local-cluster[3]", "local-cluster[0,1]", "local-cluster[a,b]"] {
            assert!(Master::parse(bad).is_err(), "{bad}");
        }
        assert!(Master::parse("local[*]").unwrap().slots() >= 1);
        assert_eq!(
            Master::parse("flint://127.0.0.1:7077").unwrap(),
            Master::Standalone {
                host: "127.0.0.1".into(),
                port: 7077
            }
        );
        assert_eq!(
            Master::parse("flint://master:7077").unwrap().url(),
            "flint://master:7077"
        );
        assert_eq!(Master::parse("flint://[::1]:7077").unwrap().url(), "flint://[::1]:7077");
        for bad in [
            "flint://",
            "flint://host",
            "flint://host:0",
            "flint://host:99999",
            "flint://:7077",
            "flint://a/b:1",
        ] {
            let e = Master::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("flint://HOST:PORT"), "{e}");
        }
        for bad in ["local[0]", "local[x]", "yarn", "local[2"] {
            let e = Master::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("k", "1234").unwrap(), 1234);
        assert_eq!(parse_bytes("k", "64k").unwrap(), 65536);
        assert_eq!(parse_bytes("k", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("k", "2gb").unwrap(), 2 << 30);
        assert!(parse_bytes("k", "lots").is_err());
    }

    #[test]
    fn builder_wins_over_environment_which_wins_over_defaults() {
        let env = |k: &str| match k {
            "FLINT_MASTER" => Some("local[3]".to_string()),
            "FLINT_MEMORY_LIMIT" => Some("64m".to_string()),
            _ => None,
        };
        let c = ConfigBuilder::default().build_with_env(env).unwrap();
        assert_eq!(c.master, Master::Local { threads: 3 });
        assert_eq!(c.default_parallelism, 3);
        assert_eq!(c.memory_limit_bytes, 64 << 20);
        assert_eq!(c.max_task_failures, 4);
        let c = ConfigBuilder::default()
            .master("local[2]")
            .memory_limit_bytes(1000)
            .build_with_env(env)
            .unwrap();
        assert_eq!(c.master, Master::Local { threads: 2 });
        assert_eq!(c.memory_limit_bytes, 1000);
    }

    #[test]
    fn bad_environment_values_name_the_key() {
        let env = |k: &str| (k == "FLINT_MAX_TASK_FAILURES").then(|| "zero".to_string());
        let e = ConfigBuilder::default().build_with_env(env).unwrap_err().to_string();
        assert!(e.contains("max_task_failures = zero"), "{e}");
    }
}
