//! Typed settings: command-line flags, then environment variables, then defaults — parsed once,
//! at the edge, into the values each component takes (`SocketAddr`s, a `DatabaseUrl`, a
//! `StorageUrl`, `ApiKeys`, a cron `Schedule`, an `Outbound` allow-list, …). Only `app`, `cli`
//! and `main` see this module; every component gets its own small section or config struct.
//!
//! clap does the layering (`#[arg(long, env = ...)]`) and the parsing; a value that does not
//! parse stops start-up with one line naming its variable (see [`crate::cli::parse`]).
//! [`Settings::validate`] then checks what no single value can say (a public listener without
//! API keys, records that would outlive… their files' retention).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::api::auth::ApiKeys;
use crate::convert::sandbox::SandboxMode;
use crate::outbound::Outbound;
use crate::queue::DatabaseUrl;
use crate::storage::StorageUrl;

/// Every knob of the service, by section. Field docs double as `--help` text.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub storage: StorageSettings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub convert: ConvertSettings,
    #[command(flatten)]
    pub retention: RetentionSettings,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    pub secrets: SecretSettings,
    #[command(flatten)]
    pub testing: TestSettings,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// Job database: `sqlite://PATH` (created if missing) or `postgres://user:pass@host/db`.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://./data/offload.db",
        hide_env_values = true
    )]
    pub url: DatabaseUrl,

    /// How long a dead worker's jobs stay locked before another worker takes them, in seconds
    /// (heartbeats run every third of it).
    #[arg(long = "worker-lease-secs", env = "WORKER_LEASE_SECS", default_value_t = 6,
          value_parser = at_least::<u64, 2>)]
    pub lease_secs: u64,

    /// How often idle workers look for due jobs (retries, delayed jobs, other processes' inserts).
    #[arg(long = "poll-interval-ms", env = "POLL_INTERVAL_MS", default_value_t = 500,
          value_parser = at_least::<u64, 1>)]
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Storage")]
pub struct StorageSettings {
    /// Object store for inputs and results: `fs://DIR`, `s3://BUCKET?endpoint=URL&region=R`
    /// (credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`) or
    /// `azblob://CONTAINER?endpoint=URL` (`AZURE_STORAGE_ACCOUNT_NAME`/`_KEY`); `&root=/prefix`
    /// keeps several services in one bucket.
    #[arg(
        id = "storage_url",
        long = "storage-url",
        env = "STORAGE_URL",
        default_value = "fs://./data/files"
    )]
    pub url: StorageUrl,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Address the HTTP API listens on.
    #[arg(long = "bind", env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The apalis board's own listener (`off` disables it). Its UI owns `/` and `/api/v1`, so
    /// it cannot share the API's port; `GET /board` on the API port redirects here.
    #[arg(
        long = "board-addr",
        env = "BOARD_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub board: BoardAddr,

    /// API keys, comma-separated. Set: every route but /healthz, /readyz, /docs and
    /// /openapi.json needs `Authorization: Bearer <key>`. Unset: the service refuses to listen
    /// beyond loopback.
    #[arg(
        long = "api-keys",
        env = "API_KEYS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub api_keys: ApiKeys,

    /// Most jobs one tenant may have waiting in the queue; its submits beyond it get 429 (0: no
    /// cap).
    #[arg(long, env = "MAX_QUEUED_JOBS", default_value_t = 100_000)]
    pub max_queued_jobs: u64,

    /// Per-tenant exceptions to `MAX_QUEUED_JOBS`: `acme=500000,trial=100`.
    #[arg(long, env = "TENANT_MAX_QUEUED_JOBS", default_value = "")]
    pub tenant_max_queued_jobs: crate::model::tenant::TenantCaps,

    /// Most bytes of documents and results one tenant may keep stored (jobs not yet past
    /// `RESULT_RETENTION`); its uploads beyond it get 413 `storage_quota` (0: no quota).
    #[arg(long, env = "MAX_STORED_BYTES", default_value_t = 0)]
    pub max_stored_bytes: u64,

    /// Per-tenant exceptions to `MAX_STORED_BYTES`: `acme=10000000000,trial=100000000`.
    #[arg(long, env = "TENANT_MAX_STORED_BYTES", default_value = "")]
    pub tenant_max_stored_bytes: crate::model::tenant::TenantCaps,

    /// Uploads (`POST /exports`) one client may make per minute — one API key when keys are
    /// on, else one address (0: no limit).
    #[arg(long, env = "UPLOADS_PER_MINUTE", default_value_t = 120)]
    pub uploads_per_minute: u32,

    /// Per-tenant exceptions to `UPLOADS_PER_MINUTE` (per key of that tenant):
    /// `acme=600,trial=10` (0: no limit for that tenant).
    #[arg(long, env = "TENANT_UPLOADS_PER_MINUTE", default_value = "")]
    pub tenant_uploads_per_minute: crate::model::tenant::TenantCaps,

    /// Longest a request may take to get its response started, in seconds (uploads excepted).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = at_least::<u64, 1>)]
    pub request_timeout_secs: u64,

    /// Longest an upload request may take, in seconds.
    #[arg(long, env = "UPLOAD_TIMEOUT_SECS", default_value_t = 600,
          value_parser = at_least::<u64, 1>)]
    pub upload_timeout_secs: u64,

    /// A client must send each request's head within this many seconds (slow-loris guard).
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = at_least::<u64, 1>)]
    pub header_timeout_secs: u64,

    /// Largest JSON request body, in bytes.
    #[arg(long, env = "MAX_JSON_BYTES", default_value_t = 1024 * 1024,
          value_parser = at_least::<u64, 1>)]
    pub max_json_bytes: u64,

    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024,
          value_parser = at_least::<u64, 1>)]
    pub max_upload_bytes: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Workers")]
pub struct WorkerSettings {
    /// Concurrent export conversions per worker process.
    #[arg(long = "concurrency", env = "WORKER_CONCURRENCY", default_value_t = 2,
          value_parser = at_least::<usize, 1>)]
    pub concurrency: usize,

    /// Most jobs one tenant may have running at once across every worker (0: no cap).
    #[arg(long, env = "MAX_RUNNING_JOBS_PER_TENANT", default_value_t = 0)]
    pub max_running_jobs_per_tenant: u64,

    /// Per-tenant exceptions to `MAX_RUNNING_JOBS_PER_TENANT`: `acme=50,trial=2`.
    #[arg(long, env = "TENANT_MAX_RUNNING_JOBS", default_value = "")]
    pub tenant_max_running_jobs: crate::model::tenant::TenantCaps,

    /// Most pages one image export renders (png, jpeg, webp); pages beyond it are left out
    /// and the job's progress says so.
    #[arg(long, env = "MAX_RENDER_PAGES", default_value_t = 200,
          value_parser = at_least::<u32, 1>)]
    pub max_render_pages: u32,

    /// Attempts a job gets before it is `failed` for good.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5,
          value_parser = at_least::<u32, 1>)]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; doubles per attempt (with jitter) up to 60 s.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 1000)]
    pub retry_backoff_ms: u64,

    /// Time limit of one export attempt, in seconds.
    #[arg(long, env = "EXPORT_TIMEOUT_SECS", default_value_t = 120,
          value_parser = at_least::<u64, 1>)]
    pub export_timeout_secs: u64,

    /// Grace period for running jobs on SIGINT/SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Directory for per-job scratch space and LibreOffice profiles (default: the system temp dir).
    #[arg(long, env = "WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// The demo and benchmark kinds `sleep` and `noop`: `auto` offers them only without API
    /// keys (the zero-setup default), `on` and `off` decide. A keyed, public service should not
    /// let any client queue day-long sleeps.
    #[arg(long, env = "DEMO_KINDS", value_enum, default_value_t = DemoKinds::Auto)]
    pub demo_kinds: DemoKinds,
}

/// Whether `sleep` and `noop` are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoKinds {
    /// Only without API keys.
    Auto,
    On,
    Off,
}

/// Which LibreOffice the workers keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConverterMode {
    /// One long-lived LibreOffice per conversion slot.
    Warm,
    /// One LibreOffice per document.
    Cold,
}

impl std::str::FromStr for ConverterMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, true)
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Conversion")]
pub struct ConvertSettings {
    /// `warm` keeps one LibreOffice per conversion slot running; `cold` starts one per document.
    #[arg(long, env = "CONVERTER", value_enum, default_value_t = ConverterMode::Warm)]
    pub converter: ConverterMode,

    /// Conversions after which a warm LibreOffice is replaced by a fresh one.
    #[arg(long, env = "WARM_RESTART_AFTER", default_value_t = 200,
          value_parser = at_least::<u32, 1>)]
    pub warm_restart_after: u32,

    /// Address-space cap of each LibreOffice process in MiB (0: none).
    #[arg(long, env = "CONVERT_MEMORY_LIMIT_MB", default_value_t = 3072)]
    pub convert_memory_limit_mb: u64,

    /// CPU seconds one conversion may use before it fails as `document_too_complex` (0: no
    /// budget). Separate from the wall-clock EXPORT_TIMEOUT_SECS: a layout that never
    /// converges is stopped by this, at once and for good, however busy the machine is.
    #[arg(long, env = "CONVERT_CPU_SECS", default_value_t = 60)]
    pub convert_cpu_secs: u64,

    /// `bwrap`: every LibreOffice runs in a bubblewrap sandbox (no network, no files but its
    /// own, a cleared environment); if the sandbox cannot be made, exports fail with
    /// `converter_unavailable`. `off`: no sandbox (only where namespaces are impossible; a
    /// crafted document can then read the worker's files and reach its network).
    #[arg(long, env = "CONVERT_SANDBOX", default_value = "bwrap")]
    pub convert_sandbox: SandboxMode,

    /// The bubblewrap binary (Debian: bubblewrap).
    #[arg(long, env = "BWRAP_PATH", default_value = "bwrap")]
    pub bwrap_path: String,

    /// A Python with LibreOffice's `uno` module (Debian: python3-uno), for warm mode.
    #[arg(long, env = "UNO_PYTHON", default_value = "/usr/bin/python3")]
    pub uno_python: String,

    /// The LibreOffice binary.
    #[arg(long, env = "SOFFICE_PATH", default_value = "soffice")]
    pub soffice_path: String,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Retention")]
pub struct RetentionSettings {
    /// Seconds a finished job keeps its stored files (input and result); then its result
    /// answers 410. Default: 7 days.
    #[arg(long, env = "RESULT_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    pub result_retention_secs: u64,

    /// Seconds a finished job's record is kept at all. Default: 30 days.
    #[arg(long, env = "JOB_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub job_retention_secs: u64,

    /// Seconds a converted result stays in the result cache for repeats of the same export.
    /// Default: 7 days.
    #[arg(long, env = "CACHE_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    pub cache_retention_secs: u64,

    /// When the sweeper runs (cron with seconds); one process in the cluster sweeps per tick.
    #[arg(long, env = "SWEEP_SCHEDULE", default_value = "0 */5 * * * *")]
    pub sweep_schedule: cron::Schedule,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Secrets")]
pub struct SecretSettings {
    /// Key that seals document passwords in the database (32 bytes, base64 or hex: `openssl
    /// rand -base64 32`); every API and worker process needs the same one. Without it, `offload
    /// serve` makes one for its own lifetime, and split API/worker processes refuse passwords.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<crate::secrets::SecretKey>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookSettings {
    /// Key that signs completion webhooks (`Offload-Signature`); `callback_url` needs it.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub webhook_secret: String,

    /// Hosts, addresses and CIDR networks webhooks may go to besides public addresses
    /// (comma-separated), e.g. `127.0.0.1` for a receiver on the same machine.
    #[arg(long, env = "OUTBOUND_ALLOW", default_value = "")]
    pub outbound_allow: Outbound,
}

/// Fault injection and checks for the test suite. Never set them in production.
#[derive(Debug, Clone, Args)]
pub struct TestSettings {
    /// Test-only: a worker stops (forever) just before a job's `publish` step, so a test can
    /// kill it there.
    #[arg(long, env = "OFFLOAD_TEST_PAUSE_BEFORE_PUBLISH", hide = true)]
    pub pause_before_publish: bool,

    /// Test-only: convert documents with their external references left in, so a test can
    /// show that the sandbox alone stops them.
    #[arg(long, env = "OFFLOAD_TEST_KEEP_EXTERNAL_REFERENCES", hide = true)]
    pub keep_external_references: bool,
}

/// `BOARD_ADDR`: a socket address or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardAddr(pub Option<SocketAddr>);

impl std::str::FromStr for BoardAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse()
            .map(|a| Self(Some(a)))
            .map_err(|_| format!("not a socket address (host:port) or `off`: {s:?}"))
    }
}

/// A combination of settings that cannot be used, with the variable to change.
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

    /// Checks what no single value can say; the first problem stops start-up.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.http.api_keys.enabled() {
            let bind = self.http.bind;
            if !bind.ip().is_loopback() {
                return Err(bad(
                    "BIND_ADDR",
                    format!("{bind} is reachable beyond this machine; set API_KEYS first"),
                ));
            }
            if let Some(board) = self.http.board.0.filter(|b| !b.ip().is_loopback()) {
                return Err(bad(
                    "BOARD_ADDR",
                    format!("{board} is reachable beyond this machine; set API_KEYS first"),
                ));
            }
        }
        let retention = &self.retention;
        if retention.job_retention_secs < retention.result_retention_secs {
            return Err(bad(
                "JOB_RETENTION_SECS",
                "must be at least RESULT_RETENTION_SECS (records outlive their files)",
            ));
        }
        Ok(())
    }

    pub fn export_timeout(&self) -> Duration {
        Duration::from_secs(self.worker.export_timeout_secs)
    }

    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.worker.retry_backoff_ms)
    }

    pub fn worker_lease(&self) -> Duration {
        Duration::from_secs(self.database.lease_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.database.poll_interval_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.worker.shutdown_grace_secs)
    }

    /// The CPU budget of one conversion.
    pub fn convert_cpu_budget(&self) -> Option<Duration> {
        let secs = self.convert.convert_cpu_secs;
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// The per-process memory cap for LibreOffice, in bytes.
    pub fn convert_memory_limit(&self) -> Option<u64> {
        let mb = self.convert.convert_memory_limit_mb;
        (mb > 0).then(|| mb * 1024 * 1024)
    }

    pub fn retention(&self) -> crate::sweeper::Retention {
        crate::sweeper::Retention {
            results: Duration::from_secs(self.retention.result_retention_secs),
            jobs: Duration::from_secs(self.retention.job_retention_secs),
            cache: self.cache_retention(),
        }
    }

    pub fn cache_retention(&self) -> Duration {
        Duration::from_secs(self.retention.cache_retention_secs)
    }

    /// Whether the demo kinds `sleep` and `noop` are registered.
    pub fn demo_kinds(&self) -> bool {
        match self.worker.demo_kinds {
            DemoKinds::On => true,
            DemoKinds::Off => false,
            DemoKinds::Auto => !self.http.api_keys.enabled(),
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        self.worker
            .work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }
}

/// A whole number of at least `MIN`, refused in words ("must be a whole number of at least
/// 2") where clap's own range parser says "1 is not in 2..18446744073709551615".
fn at_least<T: TryFrom<u64>, const MIN: u64>(s: &str) -> Result<T, String> {
    let refuse = || format!("must be a whole number of at least {MIN}");
    let n: u64 = s.trim().parse().map_err(|_| refuse())?;
    if n < MIN {
        return Err(refuse());
    }
    T::try_from(n).map_err(|_| "is too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let s = Settings::defaults();
        s.validate().unwrap();
        assert_eq!(
            s.database.url,
            "sqlite://./data/offload.db".parse().unwrap()
        );
        assert_eq!(s.storage.url, "fs://./data/files".parse().unwrap());
        assert_eq!(s.http.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.worker.max_attempts, 5);
    }

    #[test]
    fn without_api_keys_only_loopback_is_allowed() {
        let mut s = Settings::defaults();
        s.http.bind = "0.0.0.0:8080".parse().unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("BIND_ADDR: ")
        );
        s.http.api_keys = "secret".parse().unwrap();
        s.http.board = "0.0.0.0:8081".parse().unwrap();
        s.validate().unwrap();
        s.http.api_keys = ApiKeys::default();
        s.http.bind = "127.0.0.1:8080".parse().unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("BOARD_ADDR: ")
        );
    }
}
