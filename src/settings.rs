//! Typed settings: command-line flags, then environment variables, then defaults.
//!
//! clap does the layering (`#[arg(long, env = ...)]`); [`Settings::validate`] then checks every
//! value once at start-up and turns a bad one into a one-line [`SettingsError`] that names the
//! environment variable, so an operator sees `BIND_ADDR: ...` rather than a stack trace.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Every knob of the service. Field docs double as `--help` text.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Job database: `sqlite://PATH` (created if missing) or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/offload.db",
        global = true
    )]
    pub database_url: String,

    /// Object store for inputs and results: `fs://DIR` (S3 and Azure come with their own issue).
    #[arg(
        long,
        env = "STORAGE_URL",
        default_value = "fs://./data/files",
        global = true
    )]
    pub storage_url: String,

    /// Address the HTTP API listens on.
    #[arg(
        long = "bind",
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind_addr: String,

    /// The apalis board's own listener (`off` disables it). Its UI owns `/` and `/api/v1`, so
    /// it cannot share the API's port; `GET /board` on the API port redirects here.
    #[arg(
        long = "board-addr",
        env = "BOARD_ADDR",
        default_value = "127.0.0.1:8081",
        global = true
    )]
    pub board_addr: String,

    /// API keys, comma-separated. Set: every route but /healthz, /readyz, /docs and
    /// /openapi.json needs `Authorization: Bearer <key>`. Unset: the service refuses to listen
    /// beyond loopback.
    #[arg(
        long,
        env = "API_KEYS",
        default_value = "",
        global = true,
        hide_env_values = true
    )]
    pub api_keys: String,

    /// Most jobs waiting in the queue; submits beyond it get 429 (0: no cap).
    #[arg(
        long,
        env = "MAX_QUEUED_JOBS",
        default_value_t = 100_000,
        global = true
    )]
    pub max_queued_jobs: u64,

    /// Uploads (`POST /exports`) one client address may make per minute (0: no limit).
    #[arg(long, env = "UPLOADS_PER_MINUTE", default_value_t = 120, global = true)]
    pub uploads_per_minute: u32,

    /// Longest a request may take to get its response started, in seconds (uploads excepted).
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,

    /// Longest an upload request may take, in seconds.
    #[arg(
        long,
        env = "UPLOAD_TIMEOUT_SECS",
        default_value_t = 600,
        global = true
    )]
    pub upload_timeout_secs: u64,

    /// A client must send each request's head within this many seconds (slow-loris guard).
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub header_timeout_secs: u64,

    /// Largest JSON request body, in bytes.
    #[arg(long, env = "MAX_JSON_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_json_bytes: u64,

    /// Concurrent export conversions per worker process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2, global = true)]
    pub concurrency: usize,

    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024, global = true)]
    pub max_upload_bytes: u64,

    /// Attempts a job gets before it is `failed` for good.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5, global = true)]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; doubles per attempt (with jitter) up to 60 s.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 1000, global = true)]
    pub retry_backoff_ms: u64,

    /// Time limit of one export attempt, in seconds.
    #[arg(
        long,
        env = "EXPORT_TIMEOUT_SECS",
        default_value_t = 120,
        global = true
    )]
    pub export_timeout_secs: u64,

    /// How long a dead worker's jobs stay locked before another worker takes them, in seconds.
    #[arg(long, env = "WORKER_LEASE_SECS", default_value_t = 6, global = true)]
    pub worker_lease_secs: u64,

    /// How often idle workers look for due jobs (retries, delayed jobs, other processes' inserts).
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 500, global = true)]
    pub poll_interval_ms: u64,

    /// Grace period for running jobs on SIGINT/SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30, global = true)]
    pub shutdown_grace_secs: u64,

    /// `warm` keeps one LibreOffice per conversion slot running; `cold` starts one per document.
    #[arg(long, env = "CONVERTER", default_value = "warm", global = true)]
    pub converter: String,

    /// Conversions after which a warm LibreOffice is replaced by a fresh one.
    #[arg(long, env = "WARM_RESTART_AFTER", default_value_t = 200, global = true)]
    pub warm_restart_after: u32,

    /// Address-space cap of each LibreOffice process in MiB (0: none).
    #[arg(
        long,
        env = "CONVERT_MEMORY_LIMIT_MB",
        default_value_t = 3072,
        global = true
    )]
    pub convert_memory_limit_mb: u64,

    /// CPU seconds one conversion may use before it fails as `document_too_complex` (0: no
    /// budget). Separate from the wall-clock EXPORT_TIMEOUT_SECS: a layout that never
    /// converges is stopped by this, at once and for good, however busy the machine is.
    #[arg(long, env = "CONVERT_CPU_SECS", default_value_t = 60, global = true)]
    pub convert_cpu_secs: u64,

    /// `bwrap`: every LibreOffice runs in a bubblewrap sandbox (no network, no files but its
    /// own, a cleared environment); if the sandbox cannot be made, exports fail with
    /// `converter_unavailable`. `off`: no sandbox (only where namespaces are impossible; a
    /// crafted document can then read the worker's files and reach its network).
    #[arg(long, env = "CONVERT_SANDBOX", default_value = "bwrap", global = true)]
    pub convert_sandbox: String,

    /// The bubblewrap binary (Debian: bubblewrap).
    #[arg(long, env = "BWRAP_PATH", default_value = "bwrap", global = true)]
    pub bwrap_path: String,

    /// A Python with LibreOffice's `uno` module (Debian: python3-uno), for warm mode.
    #[arg(
        long,
        env = "UNO_PYTHON",
        default_value = "/usr/bin/python3",
        global = true
    )]
    pub uno_python: String,

    /// Seconds a finished job keeps its stored files (input and result); then its result
    /// answers 410. Default: 7 days.
    #[arg(long, env = "RESULT_RETENTION_SECS", default_value_t = 7 * 24 * 3600, global = true)]
    pub result_retention_secs: u64,

    /// Seconds a finished job's record is kept at all. Default: 30 days.
    #[arg(long, env = "JOB_RETENTION_SECS", default_value_t = 30 * 24 * 3600, global = true)]
    pub job_retention_secs: u64,

    /// When the sweeper runs (cron with seconds); one process in the cluster sweeps per tick.
    #[arg(
        long,
        env = "SWEEP_SCHEDULE",
        default_value = "0 */5 * * * *",
        global = true
    )]
    pub sweep_schedule: String,

    /// The LibreOffice binary.
    #[arg(long, env = "SOFFICE_PATH", default_value = "soffice", global = true)]
    pub soffice_path: String,

    /// Directory for per-job scratch space and LibreOffice profiles (default: the system temp dir).
    #[arg(long, env = "WORK_DIR", global = true)]
    pub work_dir: Option<PathBuf>,

    /// Key that signs completion webhooks (`Offload-Signature`); `callback_url` needs it.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        default_value = "",
        global = true,
        hide_env_values = true
    )]
    pub webhook_secret: String,

    /// Hosts, addresses and CIDR networks webhooks may go to besides public addresses
    /// (comma-separated), e.g. `127.0.0.1` for a receiver on the same machine.
    #[arg(long, env = "OUTBOUND_ALLOW", default_value = "", global = true)]
    pub outbound_allow: String,

    /// Test-only fault injection: a worker stops (forever) just before a job's `publish`
    /// step, so a test can kill it there. Never set it in production.
    #[arg(
        long,
        env = "OFFLOAD_TEST_PAUSE_BEFORE_PUBLISH",
        hide = true,
        global = true
    )]
    pub test_pause_before_publish: bool,

    /// Test-only: convert documents with their external references left in, so a test can
    /// show that the sandbox alone stops them. Never set it in production.
    #[arg(
        long,
        env = "OFFLOAD_TEST_KEEP_EXTERNAL_REFERENCES",
        hide = true,
        global = true
    )]
    pub test_keep_external_references: bool,
}

/// A setting that cannot be used, with the variable that holds it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub problem: String,
}

fn bad(setting: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        setting,
        problem: problem.into(),
    }
}

/// Which database engine a `DATABASE_URL` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl Settings {
    /// Defaults for everything, as if no flag or variable were set.
    pub fn defaults() -> Self {
        use clap::{FromArgMatches, Parser};
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        // Parse an empty command line without reading the environment's values: clap's
        // `env` lookups are the only way in, so build from the defaults explicitly.
        let cmd = <Only as clap::CommandFactory>::command();
        let cmd = cmd.mut_args(|a| a.env(None::<&str>));
        let matches = cmd.get_matches_from(["offload"]);
        Only::from_arg_matches(&matches)
            .expect("defaults parse")
            .settings
    }

    /// Checks every setting once; the first bad one stops start-up.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.database_kind()?;
        let bind = self.bind_socket()?;
        let board = self.board_socket()?;
        if !crate::auth::ApiKeys::parse(&self.api_keys).enabled() {
            if !bind.ip().is_loopback() {
                return Err(bad(
                    "BIND_ADDR",
                    format!("{bind} is reachable beyond this machine; set API_KEYS first"),
                ));
            }
            if let Some(board) = board.filter(|b| !b.ip().is_loopback()) {
                return Err(bad(
                    "BOARD_ADDR",
                    format!("{board} is reachable beyond this machine; set API_KEYS first"),
                ));
            }
        }
        for (name, value) in [
            ("REQUEST_TIMEOUT_SECS", self.request_timeout_secs),
            ("UPLOAD_TIMEOUT_SECS", self.upload_timeout_secs),
            ("HEADER_TIMEOUT_SECS", self.header_timeout_secs),
            ("MAX_JSON_BYTES", self.max_json_bytes),
        ] {
            if value == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        crate::storage::StorageUrl::parse(&self.storage_url).map_err(|e| bad("STORAGE_URL", e))?;
        if self.concurrency == 0 {
            return Err(bad("WORKER_CONCURRENCY", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(bad("MAX_ATTEMPTS", "must be at least 1"));
        }
        if self.max_upload_bytes == 0 {
            return Err(bad("MAX_UPLOAD_BYTES", "must be at least 1"));
        }
        if self.export_timeout_secs == 0 {
            return Err(bad("EXPORT_TIMEOUT_SECS", "must be at least 1"));
        }
        if self.worker_lease_secs < 2 {
            return Err(bad(
                "WORKER_LEASE_SECS",
                "must be at least 2 (heartbeats run every third of it)",
            ));
        }
        if !matches!(self.converter.as_str(), "warm" | "cold") {
            return Err(bad(
                "CONVERTER",
                format!("expected warm or cold, got {:?}", self.converter),
            ));
        }
        self.sandbox_mode()?;
        if self.warm_restart_after == 0 {
            return Err(bad("WARM_RESTART_AFTER", "must be at least 1"));
        }
        crate::outbound::Outbound::parse(&self.outbound_allow)
            .map_err(|e| bad("OUTBOUND_ALLOW", e))?;
        crate::sweeper::parse_schedule(&self.sweep_schedule)
            .map_err(|e| bad("SWEEP_SCHEDULE", e))?;
        if self.job_retention_secs < self.result_retention_secs {
            return Err(bad(
                "JOB_RETENTION_SECS",
                "must be at least RESULT_RETENTION_SECS (records outlive their files)",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(bad("POLL_INTERVAL_MS", "must be at least 1"));
        }
        Ok(())
    }

    pub fn database_kind(&self) -> Result<DatabaseKind, SettingsError> {
        let url = self.database_url.as_str();
        if url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(bad(
                "DATABASE_URL",
                format!("expected sqlite://PATH or postgres://..., got {url:?}"),
            ))
        }
    }

    pub fn bind_socket(&self) -> Result<SocketAddr, SettingsError> {
        self.bind_addr.parse().map_err(|_| {
            bad(
                "BIND_ADDR",
                format!("not a socket address (host:port): {:?}", self.bind_addr),
            )
        })
    }

    /// `None` when the board is off.
    pub fn board_socket(&self) -> Result<Option<SocketAddr>, SettingsError> {
        if self.board_addr.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        self.board_addr.parse().map(Some).map_err(|_| {
            bad(
                "BOARD_ADDR",
                format!(
                    "not a socket address (host:port) or `off`: {:?}",
                    self.board_addr
                ),
            )
        })
    }

    pub fn export_timeout(&self) -> Duration {
        Duration::from_secs(self.export_timeout_secs)
    }

    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }

    pub fn worker_lease(&self) -> Duration {
        Duration::from_secs(self.worker_lease_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn sandbox_mode(&self) -> Result<crate::convert::sandbox::SandboxMode, SettingsError> {
        self.convert_sandbox
            .parse()
            .map_err(|e| bad("CONVERT_SANDBOX", e))
    }

    /// The CPU budget of one conversion.
    pub fn convert_cpu_budget(&self) -> Option<Duration> {
        (self.convert_cpu_secs > 0).then(|| Duration::from_secs(self.convert_cpu_secs))
    }

    /// The per-process memory cap for LibreOffice, in bytes.
    pub fn convert_memory_limit(&self) -> Option<u64> {
        (self.convert_memory_limit_mb > 0).then(|| self.convert_memory_limit_mb * 1024 * 1024)
    }

    pub fn retention(&self) -> crate::sweeper::Retention {
        crate::sweeper::Retention {
            results: Duration::from_secs(self.result_retention_secs),
            jobs: Duration::from_secs(self.job_retention_secs),
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let s = Settings::defaults();
        s.validate().unwrap();
        assert_eq!(s.database_url, "sqlite://./data/offload.db");
        assert_eq!(s.storage_url, "fs://./data/files");
        assert_eq!(s.bind_addr, "127.0.0.1:8080");
        assert_eq!(s.max_attempts, 5);
    }

    #[test]
    fn without_api_keys_only_loopback_is_allowed() {
        let mut s = Settings::defaults();
        s.bind_addr = "0.0.0.0:8080".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("BIND_ADDR: ")
        );
        s.api_keys = "secret".into();
        s.board_addr = "0.0.0.0:8081".into();
        s.validate().unwrap();
        s.api_keys = String::new();
        s.bind_addr = "127.0.0.1:8080".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("BOARD_ADDR: ")
        );
    }

    #[test]
    fn a_bad_setting_names_its_variable() {
        let mut s = Settings::defaults();
        s.bind_addr = "nonsense".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("BIND_ADDR: ")
        );
        let mut s = Settings::defaults();
        s.database_url = "mysql://x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("DATABASE_URL: ")
        );
        let mut s = Settings::defaults();
        s.storage_url = "ftp://x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("STORAGE_URL: ")
        );
    }
}
