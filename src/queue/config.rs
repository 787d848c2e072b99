//! The queue's own configuration, parsed once at the edge: which database, and the few knobs
//! the seam needs (lease, poll interval, what to queue when a job with a callback ends).

use std::time::Duration;

/// The database engines offload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// A `DATABASE_URL`: `sqlite://PATH` or `postgres://user:pass@host/db`. Its `Debug` hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    engine: Engine,
    url: String,
}

impl DatabaseUrl {
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL as given (with its password: for connecting, never for logs).
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            let shown = url.split('@').next_back().unwrap_or_default();
            return Err(format!(
                "expected sqlite://PATH or postgres://..., got {shown:?}"
            ));
        };
        Ok(Self {
            engine,
            url: url.to_string(),
        })
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match self.url.split_once('@') {
            Some((_, host)) => format!("{:?}://…@{host}", self.engine).to_lowercase(),
            None => self.url.clone(),
        };
        f.write_str(&shown)
    }
}

/// The job queued, in the same transaction, when a job with a `callback_url` ends: its
/// completion webhook, a kind that lives above the queue.
#[derive(Debug, Clone, Copy)]
pub struct Callbacks {
    pub kind: &'static str,
    pub max_attempts: u32,
}

/// Everything the queue takes from the service's configuration.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub database: DatabaseUrl,
    /// How long a dead worker's tasks stay locked.
    pub lease: Duration,
    /// How often idle workers look for due tasks.
    pub poll_interval: Duration,
    pub callbacks: Callbacks,
    /// How many jobs of one tenant may run at once across the cluster.
    pub running_caps: RunningCaps,
}

/// Per-tenant caps of running jobs (#18): `default` for every tenant (0: none), with
/// exceptions. Claims take no more of a tenant's tasks than its cap leaves.
#[derive(Debug, Clone, Default)]
pub struct RunningCaps {
    pub default: u64,
    pub exceptions: crate::model::tenant::TenantCaps,
}

impl RunningCaps {
    /// Whether any tenant has a cap (claims then serialize, so that two workers' counts
    /// cannot both admit the same free place).
    pub fn active(&self) -> bool {
        self.default > 0 || !self.exceptions.is_empty()
    }

    /// `tenant`'s cap (0: none).
    pub fn cap(&self, tenant: &crate::model::Tenant) -> u64 {
        self.exceptions.cap(tenant, self.default)
    }
}

impl QueueConfig {
    /// Heartbeats run three times per lease, so one late heartbeat does not lose a live job.
    pub fn heartbeat(&self) -> Duration {
        self.lease / 3
    }
}

/// One kind's worker.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub kind: &'static str,
    /// Attempts of this kind running at once in this process.
    pub concurrency: usize,
    /// Tasks claimed per fetch.
    pub batch_size: usize,
    /// Attempts before the job fails for good (the first run counts).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt with jitter, capped at a minute.
    pub backoff: Duration,
    /// The kind's own time limit (the backstop waits a little longer).
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_names_its_engine_and_hides_its_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db:5432/offload".parse().unwrap();
        assert_eq!(url.engine(), Engine::Postgres);
        assert!(!format!("{url:?}").contains("s3cret"));
        let lite: DatabaseUrl = "sqlite://./data/offload.db".parse().unwrap();
        assert_eq!(lite.engine(), Engine::Sqlite);
        let err = "mysql://u:pw@x/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }
}
