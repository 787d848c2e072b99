//! `/metrics` in the Prometheus/OpenMetrics text format, through `prometheus-client`.
//!
//! Label values are kind names (which the registry holds to `[a-z0-9_]`), tenant names (held to
//! `[a-z0-9_-]`), statuses and outcomes (fixed sets): none needs escaping, which matters because prometheus-client 0.24
//! writes label values as they are.
//!
//! Job counts by kind and status (and so queue depth) come from the database at each scrape,
//! so every API process reports the whole cluster. Attempt durations and conversions in flight
//! are this process's own (they are zero in an API-only process; scrape the workers for them).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::JobStatus;

/// Upper bounds (seconds) of the attempt-duration histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStatus {
    tenant: String,
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    tenant: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    tenant: String,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// What the result cache said to one export submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Not looked up: `cache=bypass` or `refresh`, or a password-protected document.
    Skipped,
}

impl CacheOutcome {
    fn label(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Skipped => "skipped",
        }
    }
}

type Durations = Family<KindOutcome, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// This process's metrics, and the cluster's job counts as of the last scrape.
pub struct Metrics {
    registry: Registry,
    jobs: Family<KindStatus, Gauge>,
    queue_depth: Family<Kind, Gauge>,
    conversions_in_flight: Gauge,
    attempts: Durations,
    cache: Family<Outcome, Counter>,
    /// One scrape at a time sets the job gauges and encodes them.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let jobs = Family::<KindStatus, Gauge>::default();
        let queue_depth = Family::<Kind, Gauge>::default();
        let conversions_in_flight = Gauge::default();
        let attempts: Durations = Family::new_with_constructor(duration_histogram);
        let cache = Family::<Outcome, Counter>::default();
        registry.register(
            "offload_cache_lookups",
            "Export submits answered from the result cache (hit), converted after a lookup \
             (miss) or without one (skipped), in this process",
            cache.clone(),
        );
        registry.register(
            "offload_jobs",
            "Jobs in the database by tenant, kind and status",
            jobs.clone(),
        );
        registry.register(
            "offload_queue_depth",
            "Jobs waiting for a worker (queued), by tenant and kind",
            queue_depth.clone(),
        );
        registry.register(
            "offload_conversions_in_flight",
            "Document conversions running in this process",
            conversions_in_flight.clone(),
        );
        registry.register(
            "offload_attempt_duration_seconds",
            "Duration of job attempts run by this process, by tenant, kind and outcome",
            attempts.clone(),
        );
        Self {
            registry,
            jobs,
            queue_depth,
            conversions_in_flight,
            attempts,
            cache,
            scrape: Mutex::new(()),
        }
    }
}

/// Decrements the in-flight gauge when the conversion ends, however it ends.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Records one finished attempt; `outcome` is `succeeded`, `failed`, `retried` or
    /// `cancelled`.
    pub fn attempt(&self, tenant: &str, kind: &str, outcome: &'static str, took: Duration) {
        let labels = KindOutcome {
            tenant: tenant.to_string(),
            kind: kind.to_string(),
            outcome: outcome.to_string(),
        };
        self.attempts
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts one export submit's use of the result cache.
    pub fn cache_lookup(&self, outcome: CacheOutcome) {
        let labels = Outcome {
            outcome: outcome.label().to_string(),
        };
        self.cache.get_or_create(&labels).inc();
    }

    pub fn conversion_started(&self) -> InFlight<'_> {
        self.conversions_in_flight.inc();
        InFlight(&self.conversions_in_flight)
    }

    /// The exposition: `jobs` are `(tenant, kind, status, count)` rows from the database;
    /// every kind and status of every tenant in `tenants` or in the rows gets a value, zero
    /// when it has no row.
    pub fn render(
        &self,
        jobs: &[(String, String, String, i64)],
        kinds: &[&str],
        tenants: &[String],
    ) -> String {
        let _one_at_a_time = self.scrape.lock().expect("metrics lock");
        let count = |tenant: &str, kind: &str, status: JobStatus| {
            jobs.iter()
                .find(|(t, k, s, _)| t == tenant && k == kind && s == status.as_str())
                .map_or(0, |(_, _, _, n)| *n)
        };
        let mut all: std::collections::BTreeSet<&str> =
            tenants.iter().map(String::as_str).collect();
        all.extend(jobs.iter().map(|(t, _, _, _)| t.as_str()));
        for tenant in all {
            for kind in kinds {
                for status in JobStatus::ALL {
                    let labels = KindStatus {
                        tenant: tenant.to_string(),
                        kind: kind.to_string(),
                        status: status.as_str().to_string(),
                    };
                    self.jobs
                        .get_or_create(&labels)
                        .set(count(tenant, kind, status));
                }
                let labels = Kind {
                    tenant: tenant.to_string(),
                    kind: kind.to_string(),
                };
                self.queue_depth
                    .get_or_create(&labels)
                    .set(count(tenant, kind, JobStatus::Queued));
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_zeroes_filled_in() {
        let m = Metrics::default();
        m.attempt("acme", "sleep", "succeeded", Duration::from_millis(30));
        m.attempt("acme", "sleep", "succeeded", Duration::from_secs(3));
        let _busy = m.conversion_started();
        let text = m.render(
            &[("acme".into(), "sleep".into(), "queued".into(), 4)],
            &["export", "sleep"],
            &["default".to_string()],
        );
        assert!(
            text.contains("offload_jobs{tenant=\"acme\",kind=\"sleep\",status=\"queued\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("offload_jobs{tenant=\"default\",kind=\"sleep\",status=\"queued\"} 0\n")
        );
        assert!(
            text.contains("offload_jobs{tenant=\"acme\",kind=\"export\",status=\"failed\"} 0\n")
        );
        assert!(text.contains("offload_queue_depth{tenant=\"acme\",kind=\"sleep\"} 4\n"));
        assert!(text.contains("offload_conversions_in_flight 1\n"));
        assert!(text.contains(
            "offload_attempt_duration_seconds_bucket{le=\"0.05\",tenant=\"acme\",kind=\"sleep\",outcome=\"succeeded\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "offload_attempt_duration_seconds_bucket{le=\"5.0\",tenant=\"acme\",kind=\"sleep\",outcome=\"succeeded\"} 2\n"
        ));
        assert!(text.contains(
            "offload_attempt_duration_seconds_count{tenant=\"acme\",kind=\"sleep\",outcome=\"succeeded\"} 2\n"
        ));
    }
}
