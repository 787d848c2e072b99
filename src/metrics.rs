//! `/metrics` in Prometheus text format.
//!
//! Job counts by kind and status (and so queue depth) come from the database, so every API
//! process reports the whole cluster. Attempt durations and conversions in flight are this
//! process's own (they are zero in an API-only process; scrape the workers for them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the attempt-duration histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// This process's job metrics.
#[derive(Default)]
pub struct Metrics {
    /// (kind, outcome) → attempt durations.
    attempts: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    conversions_in_flight: AtomicI64,
}

/// Decrements the in-flight gauge when the conversion ends, however it ends.
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished attempt; `outcome` is `succeeded`, `failed`, `retried` or
    /// `cancelled`.
    pub fn attempt(&self, kind: &str, outcome: &'static str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut attempts = self.attempts.lock().expect("metrics lock");
        let h = attempts.entry((kind.to_string(), outcome)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn conversion_started(&self) -> InFlight<'_> {
        self.conversions_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.conversions_in_flight)
    }

    /// The exposition: `jobs` are `(kind, status, count)` rows from the database.
    pub fn render(&self, jobs: &[(String, String, i64)], kinds: &[&str]) -> String {
        let mut out = String::new();
        out.push_str("# HELP offload_jobs Jobs in the database by kind and status.\n# TYPE offload_jobs gauge\n");
        let mut known: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for kind in kinds {
            for status in crate::jobs::JobStatus::ALL {
                known.insert((kind, status.as_str()), 0);
            }
        }
        for (kind, status, n) in jobs {
            known.insert((kind.as_str(), status.as_str()), *n);
        }
        for ((kind, status), n) in &known {
            let _ = writeln!(
                out,
                "offload_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP offload_queue_depth Jobs waiting for a worker (queued), by kind.\n# TYPE offload_queue_depth gauge\n");
        for kind in kinds {
            let n = known.get(&(*kind, "queued")).copied().unwrap_or(0);
            let _ = writeln!(out, "offload_queue_depth{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP offload_conversions_in_flight Document conversions running in this process.\n# TYPE offload_conversions_in_flight gauge\n");
        let _ = writeln!(
            out,
            "offload_conversions_in_flight {}",
            self.conversions_in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP offload_attempt_duration_seconds Duration of job attempts run by this process, by kind and outcome.\n# TYPE offload_attempt_duration_seconds histogram\n");
        for ((kind, outcome), h) in self.attempts.lock().expect("metrics lock").iter() {
            let labels = format!("kind=\"{kind}\",outcome=\"{outcome}\"");
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "offload_attempt_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "offload_attempt_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "offload_attempt_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "offload_attempt_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_zeroes_filled_in() {
        let m = Metrics::default();
        m.attempt("sleep", "succeeded", Duration::from_millis(30));
        m.attempt("sleep", "succeeded", Duration::from_secs(3));
        let _busy = m.conversion_started();
        let text = m.render(
            &[("sleep".into(), "queued".into(), 4)],
            &["export", "sleep"],
        );
        assert!(text.contains("offload_jobs{kind=\"sleep\",status=\"queued\"} 4\n"));
        assert!(text.contains("offload_jobs{kind=\"export\",status=\"failed\"} 0\n"));
        assert!(text.contains("offload_queue_depth{kind=\"sleep\"} 4\n"));
        assert!(text.contains("offload_conversions_in_flight 1\n"));
        assert!(text.contains("offload_attempt_duration_seconds_bucket{kind=\"sleep\",outcome=\"succeeded\",le=\"0.05\"} 1\n"));
        assert!(text.contains("offload_attempt_duration_seconds_bucket{kind=\"sleep\",outcome=\"succeeded\",le=\"5\"} 2\n"));
        assert!(text.contains(
            "offload_attempt_duration_seconds_count{kind=\"sleep\",outcome=\"succeeded\"} 2\n"
        ));
    }
}
