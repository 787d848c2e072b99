//! Batches (#18): several jobs submitted together — the files of one export form sent without
//! `merge`, or the jobs of one `POST /jobs/batch` — followed as one: counts per status, one
//! event stream, and an optional callback fired once when every job in it has ended.
//!
//! A batch is its own row ([`BatchRecord`]); its jobs point at it (`JobRecord::batch_id`, with
//! their place in request order). Counts are read from the jobs, never kept in the batch row,
//! so a retry or a delete cannot leave them wrong.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::view::Job;
use super::{JobRecord, JobStatus, Tenant};

/// A job's place in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef {
    pub id: Uuid,
    /// Its place in request order, from 0.
    pub index: i64,
    /// The batch has a callback: the job's end checks whether it was the batch's last.
    pub notify: bool,
}

/// A batch to create, with its jobs.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: Uuid,
    pub tenant: Tenant,
    /// Where to POST the batch (signed) once every job in it has ended (checked by the caller).
    pub callback_url: Option<String>,
    /// Stored tenant-prefixed, like a job's.
    pub idempotency_key: Option<String>,
}

impl NewBatch {
    pub fn new(tenant: Tenant) -> Self {
        Self {
            id: Uuid::new_v4(),
            tenant,
            callback_url: None,
            idempotency_key: None,
        }
    }
}

/// A batch as stored.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: Uuid,
    pub tenant: Tenant,
    /// How many jobs it was created with.
    pub size: i64,
    pub callback_url: Option<String>,
    /// The delivery job of its callback, once queued (it is queued once, ever).
    pub delivery_id: Option<Uuid>,
    /// Unix microseconds.
    pub created_at: i64,
}

/// Jobs of a batch per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object, serde::Serialize)]
pub struct BatchCounts {
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl BatchCounts {
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a JobStatus>) -> Self {
        let mut counts = BatchCounts::default();
        for status in statuses {
            let slot = match status {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Running => &mut counts.running,
                JobStatus::Succeeded => &mut counts.succeeded,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Cancelled => &mut counts.cancelled,
            };
            *slot += 1;
        }
        counts
    }

    /// Jobs still queued or running.
    pub fn unfinished(&self) -> u32 {
        self.queued + self.running
    }
}

/// A batch: its jobs in request order and how far they are.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename = "Batch")]
pub struct Batch {
    pub id: Uuid,
    #[serde(serialize_with = "super::view::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Jobs it was created with (a deleted job leaves `jobs` and `counts`, not `size`).
    pub size: u32,
    /// Its jobs per status.
    pub counts: BatchCounts,
    /// Every job in it has ended (succeeded, failed or was cancelled).
    pub ended: bool,
    /// When the last job ended (`null` while some have not).
    #[oai(nullable)]
    #[serde(serialize_with = "super::view::rfc3339_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Where the batch is POSTed, once, when every job in it has ended.
    #[oai(nullable)]
    pub callback_url: Option<String>,
    /// The delivery job of that callback (`GET /api/v1/jobs/{id}`), once queued.
    #[oai(nullable)]
    pub callback_delivery: Option<Uuid>,
    /// Its jobs, in request (upload) order.
    pub jobs: Vec<Job>,
}

impl Batch {
    /// The view of `batch` with `jobs` (its jobs, in order).
    pub fn of(batch: BatchRecord, jobs: Vec<JobRecord>) -> Self {
        let counts = BatchCounts::of(jobs.iter().map(|j| &j.status));
        let ended = counts.unfinished() == 0;
        let ended_at = ended
            .then(|| jobs.iter().filter_map(|j| j.finished_at).max())
            .flatten()
            .and_then(DateTime::from_timestamp_micros);
        Batch {
            id: batch.id,
            created_at: DateTime::from_timestamp_micros(batch.created_at).unwrap_or_default(),
            size: u32::try_from(batch.size).unwrap_or(0),
            counts,
            ended,
            ended_at,
            callback_url: batch.callback_url,
            callback_delivery: batch.delivery_id,
            jobs: jobs.into_iter().map(Job::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_status() {
        let statuses = [
            JobStatus::Queued,
            JobStatus::Succeeded,
            JobStatus::Succeeded,
            JobStatus::Running,
            JobStatus::Cancelled,
        ];
        let counts = BatchCounts::of(&statuses);
        assert_eq!(
            counts,
            BatchCounts {
                queued: 1,
                running: 1,
                succeeded: 2,
                failed: 0,
                cancelled: 1
            }
        );
        assert_eq!(counts.unfinished(), 2);
    }
}
