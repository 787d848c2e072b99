//! The closed set of job states, and who moves a job in and out of each.
//!
//! ```text
//!            POST /exports, /jobs, /jobs/batch      worker picks it up
//!   (new) ─────────────────────────────► queued ─────────────────────► running
//!                                          ▲  ▲                         │ │ │
//!          POST /jobs/{id}/retry           │  └── transient error,      │ │ │
//!   failed|cancelled ──────────────────────┘      attempts left ────────┘ │ │
//!                                                                          │ │
//!   running ── handler returns Ok ──────────────────────────► succeeded ◄──┘ │
//!   running ── fatal error, or transient with no attempts left ─► failed ◄───┘
//!   queued|running ── POST /jobs/{id}/cancel ─────────────────► cancelled
//! ```
//!
//! - `queued`: written by the API on submit and on retry, and by the worker when an attempt
//!   fails transiently with attempts left (the job then also carries `error`, and waits out its
//!   backoff). Left by a worker starting an attempt, or by cancel.
//! - `running`: written only by a worker starting an attempt (`attempts` goes up by one; that
//!   number is the attempt's lease). A worker that dies leaves the job `running`; its lease runs
//!   out and another worker starts a new attempt.
//! - `succeeded`, `failed`, `cancelled` are final. Only retry leaves `failed` and `cancelled`;
//!   nothing leaves `succeeded` but `DELETE`.
//! - Merge jobs (several files, `merge=true`) stay `queued` until their last part succeeds
//!   (the part's completing transaction pushes their task); a part failing for good moves them
//!   to `failed` and their unfinished parts to `cancelled`. Cancelling a merge job cancels its
//!   parts. Delayed jobs (`run_at`) stay `queued` until their time.

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

/// Where a job is in its life. Final states are `succeeded`, `failed` and `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (also between retries: then `attempts >= 1` and `error` is set).
    Queued,
    /// A worker is running an attempt.
    Running,
    /// Done; the result (if the kind makes one) can be downloaded.
    Succeeded,
    /// Failed for good: a fatal error, or the last attempt failed.
    Failed,
    /// Cancelled by a user before it finished.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(JobStatus::parse("done"), None);
    }
}
