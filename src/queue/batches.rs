//! Batches (#18, see [`crate::model::batch`]): created with their jobs in one transaction, read
//! with their jobs, and the once-only callback.
//!
//! The callback is queued in the transaction that ends a batch's last unfinished job. That
//! transaction first locks the batch row (a guarded no-op update, only while a callback is
//! still owed), then counts the batch's unfinished jobs. Two last jobs ending at once on two
//! workers therefore take turns on the lock, and the second one's count (a new statement, so a
//! new snapshot under read committed) sees the first one ended: exactly one of them finds 0.
//! The delivery id stored in the batch row makes it once, ever: a retried job that ends again
//! finds no callback owed.

use serde_json::json;
use uuid::Uuid;

use super::conn::Conn;
use super::{JobRecord, NewJob, Queue, QueueError, now_micros};
use crate::model::batch::{BatchRecord, BatchRef, NewBatch};

/// `$1` id, `$2` tenant, `$3` size, `$4` callback url, `$5` idempotency key, `$6` now.
const INSERT_BATCH: &str = "\
INSERT INTO offload_batches (id, tenant, size, callback_url, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *";

const GET_BATCH: &str = "SELECT * FROM offload_batches WHERE id = $1";

const BATCH_BY_KEY: &str = "SELECT * FROM offload_batches WHERE idempotency_key = $1";

const BATCH_JOBS: &str = "SELECT * FROM offload_jobs WHERE batch_id = $1 ORDER BY batch_index";

/// Locks batch `$1` while its callback is still owed (see the module comment).
const LOCK_OWED_CALLBACK: &str = "\
UPDATE offload_batches SET delivery_id = NULL
WHERE id = $1 AND callback_url IS NOT NULL AND delivery_id IS NULL
RETURNING *";

/// By `offload_jobs_unfinished_in_batch` (its predicate: queued and running jobs have no
/// `finished_at`), so a job's end reads what is left of its batch, not all of it.
const UNFINISHED_IN_BATCH: &str = "\
SELECT count(*) FROM offload_jobs
WHERE batch_id = $1 AND finished_at IS NULL AND status IN ('queued', 'running')";

/// `$1` the delivery job, `$2` the batch (in order of appearance: raw dialect text).
const SET_DELIVERY: &str = "UPDATE offload_batches SET delivery_id = $1 WHERE id = $2";

/// A batch just submitted (or, for a repeated idempotency key, found).
#[derive(Debug, Clone)]
pub struct BatchEnqueued {
    pub batch: BatchRecord,
    /// Its jobs in request order.
    pub jobs: Vec<JobRecord>,
    /// `false`: the idempotency key named an earlier batch, which this is.
    pub created: bool,
}

impl Queue {
    /// Creates `batch` with `jobs` (in request order; each is marked as the batch's) in one
    /// transaction, with their apalis tasks.
    pub async fn enqueue_batch(
        &self,
        batch: NewBatch,
        mut jobs: Vec<NewJob>,
    ) -> Result<BatchEnqueued, QueueError> {
        let notify = batch.callback_url.is_some();
        for (index, job) in jobs.iter_mut().enumerate() {
            job.batch = Some(BatchRef {
                id: batch.id,
                index: index as i64,
                notify,
            });
        }
        let (now, size) = (now_micros(), jobs.len() as i64);
        let args = [
            batch.id.to_string().into(),
            batch.tenant.to_string().into(),
            size.into(),
            batch.callback_url.clone().into(),
            batch.idempotency_key.clone().into(),
            now.into(),
        ];
        let insert = self.sql(INSERT_BATCH);
        let created = self
            .submit(&jobs, now, async |conn| {
                Ok(conn.batch(insert, &args).await?)
            })
            .await?;
        if let Some((inserted, enqueued)) = created {
            let jobs: Vec<JobRecord> = enqueued.into_iter().map(|e| e.job).collect();
            // A batch answered all from the cache has its callback queued already: its row is
            // newer than the one inserted.
            let batch = match jobs.iter().any(|j| j.cache_hit) {
                false => inserted,
                true => {
                    let args = [inserted.id.to_string().into()];
                    let sql = self.sql(GET_BATCH);
                    let reread = self.read(async |c| Ok(c.batch(sql, &args).await?)).await?;
                    reread.unwrap_or(inserted)
                }
            };
            return Ok(BatchEnqueued {
                batch,
                jobs,
                created: true,
            });
        }
        // The idempotency key named an earlier batch: that one stands.
        let key = batch.idempotency_key.as_deref().unwrap_or_default();
        let (batch, jobs) = self.batch_by_key(key).await?.ok_or(QueueError::NotFound)?;
        Ok(BatchEnqueued {
            batch,
            jobs,
            created: false,
        })
    }

    /// Batch `id` and its jobs in request order.
    pub async fn batch(
        &self,
        id: Uuid,
    ) -> Result<Option<(BatchRecord, Vec<JobRecord>)>, QueueError> {
        self.batch_where(GET_BATCH, id.to_string()).await
    }

    /// The batch an idempotency key (stored form) created, with its jobs.
    pub async fn batch_by_key(
        &self,
        key: &str,
    ) -> Result<Option<(BatchRecord, Vec<JobRecord>)>, QueueError> {
        self.batch_where(BATCH_BY_KEY, key.to_string()).await
    }

    /// The batch `find` (binding `value`) names, and its jobs, read from one snapshot (so a
    /// batch whose last job just ended never shows as ended with its callback not yet queued).
    async fn batch_where(
        &self,
        find: &'static str,
        value: String,
    ) -> Result<Option<(BatchRecord, Vec<JobRecord>)>, QueueError> {
        let (find, jobs) = (self.sql(find), self.sql(BATCH_JOBS));
        self.read_together(async |conn| {
            let Some(batch) = conn.batch(find, &[value.into()]).await? else {
                return Ok(None);
            };
            let rows = conn.rows(jobs, &[batch.id.to_string().into()]).await?;
            Ok(Some((batch, rows)))
        })
        .await
    }

    /// In the transaction where a job of batch `batch` ended (or was deleted): if that was the
    /// last unfinished one and the batch's callback is owed, queues its delivery.
    pub(super) async fn batch_job_ended(
        &self,
        conn: &mut Conn<'_>,
        batch: Uuid,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<(), QueueError> {
        let args = [batch.to_string().into()];
        let Some(owed) = conn.batch(self.sql(LOCK_OWED_CALLBACK), &args).await? else {
            return Ok(());
        };
        if conn.count(self.sql(UNFINISHED_IN_BATCH), &args).await? > 0 {
            return Ok(());
        }
        let url = owed.callback_url.clone().unwrap_or_default();
        let callbacks = self.config.callbacks;
        let body = json!({ "batch_id": owed.id, "url": url });
        let mut delivery = NewJob::new(callbacks.kind, body, callbacks.max_attempts);
        delivery.tenant = owed.tenant.clone();
        changed.extend(
            conn.insert_jobs(std::slice::from_ref(&delivery), now)
                .await?,
        );
        let args = [delivery.id.to_string().into(), batch.to_string().into()];
        conn.execute(SET_DELIVERY, &args).await?;
        Ok(())
    }
}
