//! Settings of distributed mode (`local-cluster[E,C]` and `flint://` standalone clusters).
//!
//! | key                      | environment variable            | default |
//! |--------------------------|---------------------------------|---------|
//! | `heartbeat_interval`     | `FLINT_HEARTBEAT_INTERVAL`      | `1s`    |
//! | `heartbeat_timeout`      | `FLINT_HEARTBEAT_TIMEOUT`       | `10s` (an executor silent this long is lost) |
//! | `locality_wait`          | `FLINT_LOCALITY_WAIT`           | `3s` (how long a task waits for a busy preferred executor) |
//! | `max_result_size`        | `FLINT_MAX_RESULT_SIZE`         | `1g` (encoded results of one job; more fails the job) |
//! | `executor_start_timeout` | `FLINT_EXECUTOR_START_TIMEOUT`  | `60s`   |
//! | `max_executor_restarts`  | `FLINT_MAX_EXECUTOR_RESTARTS`   | `2 × executors`, at least 3 (lost executors replaced) |
//! | `executor_program`       | `FLINT_EXECUTOR_PROGRAM`        | this program (executors must run the same build) |
//! | `starvation_timeout`     | `FLINT_STARVATION_TIMEOUT`      | `15s` (warn when tasks wait this long with no executor) |
//! | `executor_cores`         | `FLINT_EXECUTOR_CORES`          | `flint://`: all free cores of a worker (task slots per executor) |
//! | `executor_memory`        | `FLINT_EXECUTOR_MEMORY`         | `flint://`: `1g` (reserved on the worker per executor) |
//! | `total_executor_cores`   | `FLINT_TOTAL_EXECUTOR_CORES`    | `flint://`: unlimited (cores of all executors together) |
//! | `driver_host`            | `FLINT_DRIVER_HOST`             | `flint://`: `auto` (listen on every interface; executors use the address the master sees the driver at) |
//!
//! Durations take a unit: `250ms`, `2s`, `1m` (a plain number is milliseconds).

use std::time::Duration;

use crate::conf::{parse_bytes, parse_count};
use crate::error::{EngineError, Result};

/// Resolved distributed-mode settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// How often executors heartbeat.
    pub heartbeat_interval: Duration,
    /// An executor not heard from for this long is lost.
    pub heartbeat_timeout: Duration,
    /// How long a task with a preferred executor waits for it before running elsewhere.
    pub locality_wait: Duration,
    /// Most bytes of encoded task results one job may bring to the driver.
    pub max_result_size: u64,
    /// How long the driver waits for executors to register at start.
    pub executor_start_timeout: Duration,
    /// How many lost executors are replaced; `None` means the default for the cluster size.
    pub max_executor_restarts: Option<usize>,
    /// The executable executors run; `None` is this program. Another build is refused.
    pub executor_program: Option<std::path::PathBuf>,
    /// Tasks waiting this long with no executor registered log a warning (again every period).
    pub starvation_timeout: Duration,
    /// Standalone: task slots per executor; `None` takes all free cores of a worker.
    pub executor_cores: Option<usize>,
    /// Standalone: memory reserved for each executor on its worker.
    pub executor_memory_bytes: u64,
    /// Standalone: most cores of all this application's executors together; `None` is no limit.
    pub total_executor_cores: Option<usize>,
    /// Standalone: the host (name or address) the driver listens on and executors connect
    /// to; `auto` listens on every interface and advertises the address the master sees the
    /// driver connect from. (local-cluster drivers always use loopback.)
    pub driver_host: String,
}

/// Keys this module owns (the rest of `ConfigBuilder::set` is in `conf`).
pub(crate) const KEYS: &[&str] = &[
    "heartbeat_interval",
    "heartbeat_timeout",
    "locality_wait",
    "max_result_size",
    "executor_start_timeout",
    "max_executor_restarts",
    "executor_program",
    "starvation_timeout",
    "executor_cores",
    "executor_memory",
    "total_executor_cores",
    "driver_host",
];

impl ClusterSettings {
    /// Resolves `overrides` (set through the builder), then `FLINT_*` variables, then defaults.
    pub(crate) fn resolve(overrides: &[(String, String)], env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str| -> Option<String> {
            overrides
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .or_else(|| env(&format!("FLINT_{}", key.to_ascii_uppercase())))
        };
        let duration = |key: &str, default: Duration| -> Result<Duration> {
            get(key)
                .map(|v| parse_duration(key, &v))
                .transpose()
                .map(|d| d.unwrap_or(default))
        };
        let settings = ClusterSettings {
            heartbeat_interval: duration("heartbeat_interval", Duration::from_secs(1))?,
            heartbeat_timeout: duration("heartbeat_timeout", Duration::from_secs(10))?,
            locality_wait: duration("locality_wait", Duration::from_secs(3))?,
            max_result_size: get("max_result_size")
                .map(|v| parse_bytes("max_result_size", &v))
                .transpose()?
                .unwrap_or(1 << 30),
            executor_start_timeout: duration("executor_start_timeout", Duration::from_secs(60))?,
            max_executor_restarts: get("max_executor_restarts")
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| EngineError::invalid("max_executor_restarts", &v, "expected a whole number"))
                })
                .transpose()?,
            executor_program: get("executor_program").map(std::path::PathBuf::from),
            starvation_timeout: duration("starvation_timeout", Duration::from_secs(15))?,
            executor_cores: get("executor_cores")
                .map(|v| parse_count("executor_cores", &v))
                .transpose()?,
            executor_memory_bytes: get("executor_memory")
                .map(|v| parse_bytes("executor_memory", &v))
                .transpose()?
                .unwrap_or(1 << 30),
            total_executor_cores: get("total_executor_cores")
                .map(|v| parse_count("total_executor_cores", &v))
                .transpose()?,
            driver_host: get("driver_host")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "auto".into()),
        };
        if settings.heartbeat_timeout <= settings.heartbeat_interval {
            return Err(EngineError::invalid(
                "heartbeat_timeout",
                format!("{:?}", settings.heartbeat_timeout),
                &format!(
                    "must be longer than heartbeat_interval ({:?})",
                    settings.heartbeat_interval
                ),
            ));
        }
        Ok(settings)
    }

    /// Lost executors replaced at most, for a cluster of `executors`.
    pub fn restarts_for(&self, executors: usize) -> usize {
        self.max_executor_restarts.unwrap_or((2 * executors).max(3))
    }
}

/// Parses `250ms`, `2s`, `1m`, `1h`, or a plain number of milliseconds.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let v = value.trim().to_ascii_lowercase();
    let bad = || EngineError::invalid(key, value, "expected a duration such as 250ms, 2s or 1m");
    let (digits, unit_ms) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = v.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (v.as_str(), 1)
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("k", "250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("k", "2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("k", "1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("k", "40").unwrap(), Duration::from_millis(40));
        assert!(parse_duration("k", "soon").is_err());
    }

    #[test]
    fn builder_values_win_over_environment() {
        let env = |k: &str| (k == "FLINT_HEARTBEAT_TIMEOUT").then(|| "5s".to_string());
        let s = ClusterSettings::resolve(&[], &env).unwrap();
        assert_eq!(s.heartbeat_timeout, Duration::from_secs(5));
        let s = ClusterSettings::resolve(&[("heartbeat_timeout".into(), "3s".into())], &env).unwrap();
        assert_eq!(s.heartbeat_timeout, Duration::from_secs(3));
        assert_eq!(s.restarts_for(3), 6);
        assert_eq!(s.driver_host, "auto");
        assert_eq!(s.executor_memory_bytes, 1 << 30);
        let s = ClusterSettings::resolve(
            &[
                ("executor_cores".into(), "2".into()),
                ("executor_memory".into(), "512m".into()),
            ],
            &env,
        )
        .unwrap();
        assert_eq!((s.executor_cores, s.executor_memory_bytes), (Some(2), 512 << 20));
        assert!(ClusterSettings::resolve(&[("executor_cores".into(), "0".into())], &env).is_err());
        let bad = ClusterSettings::resolve(&[("heartbeat_timeout".into(), "500ms".into())], &env);
        assert!(bad.unwrap_err().to_string().contains("heartbeat_interval"));
    }
}
