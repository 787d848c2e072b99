//! An attempt's own writes, all fenced by its lease: its start and its end (through the
//! group-commit writer when nothing follows from them; in one transaction with the moves that
//! follow — a webhook, a merge job — otherwise), progress, step checkpoints, and going back to
//! the queue when its worker stops at the shutdown deadline.

use uuid::Uuid;

use super::conn::Arg;
use super::writer::Finish;
use super::{
    AttemptError, Db, JobRecord, JobStatus, Lease, Queue, QueueError, ResultFile, history_json,
    latest, now_micros, sql,
};
use crate::model::steps::{self, Step};

/// How an attempt failed, as stored.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub code: &'a str,
    pub message: &'a str,
    /// No attempt follows: the job becomes `failed`; otherwise it goes back to `queued`.
    pub is_final: bool,
    /// The job's attempt history including this failure.
    pub history: &'a [AttemptError],
}

impl Queue {
    /// Starts an attempt of the job carried by apalis task `task_id`: `running`, one more
    /// attempt. `None` when there is nothing to run — the job was cancelled, deleted, already
    /// finished, or re-queued under a newer task.
    pub async fn begin_attempt(
        &self,
        id: Uuid,
        task_id: &str,
    ) -> Result<Option<JobRecord>, QueueError> {
        // Started by the claim itself; otherwise (an in-process retry, a job that was not
        // runnable at the claim) started here.
        let row = match self.claims.take_started(task_id) {
            Some(row) if row.id == id => Some(row),
            _ => {
                self.writer
                    .begin(id.to_string(), task_id.to_string())
                    .await?
            }
        };
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row)
    }

    /// Records progress; `false` when the lease is gone (cancelled, deleted, superseded).
    pub async fn progress(
        &self,
        lease: &Lease,
        percent: u8,
        message: &str,
    ) -> Result<bool, QueueError> {
        let q = self.sql(sql::PROGRESS);
        let row = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(q)
            .bind(lease.job.to_string())
            .bind(&lease.task_id)
            .bind(lease.attempt)
            .bind(i64::from(percent.min(100)))
            .bind(message)
            .bind(now_micros())
            .fetch_optional(pool)
            .await)?;
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row.is_some())
    }

    /// Puts an attempt that its worker abandoned (shutdown deadline) back in the queue: the
    /// row to `queued`, the apalis task unlocked. `false` when the lease had already moved on.
    pub async fn requeue_interrupted(&self, lease: &Lease) -> Result<bool, QueueError> {
        let (q, d) = (self.sql(sql::REQUEUE_INTERRUPTED), self.dialect());
        let row = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let row = sqlx::query_as::<_, JobRecord>(q)
                .bind(lease.job.to_string())
                .bind(&lease.task_id)
                .bind(lease.attempt)
                .bind(now_micros())
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                sqlx::query(d.requeue_task).bind(&lease.task_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            row
        });
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row.is_some())
    }

    /// Stores the running attempt's step checkpoints; `false` when the lease is gone.
    pub async fn checkpoint(&self, lease: &Lease, list: &[Step]) -> Result<bool, QueueError> {
        let row = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(self.sql(sql::SET_STEPS))
            .bind(lease.job.to_string())
            .bind(&lease.task_id)
            .bind(lease.attempt)
            .bind(steps::to_column(list))
            .bind(now_micros())
            .fetch_optional(pool)
            .await)?;
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row.is_some())
    }

    /// Ends an attempt without side effects through the group-commit writer, and publishes
    /// the row it wrote (`None` when the lease is gone).
    async fn finish_batched(&self, row: Finish) -> Result<Option<JobRecord>, QueueError> {
        let row = self.writer.finish(row).await?;
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row)
    }

    /// Marks the attempt's job `succeeded` with its final `steps`; `None` when the lease is
    /// gone. `started` is the row as the attempt began (it says whether the job has a webhook
    /// or a merge job to move on, which then happens in the same transaction).
    pub async fn succeed(
        &self,
        started: &JobRecord,
        result: Option<&ResultFile>,
        history: &[AttemptError],
        list: &[Step],
    ) -> Result<Option<JobRecord>, QueueError> {
        let (now, lease) = (now_micros(), started.lease());
        let effects = has_effects(started);
        if !effects {
            return self
                .finish_batched(Finish {
                    id: lease.job.to_string(),
                    task_id: lease.task_id.clone(),
                    attempts: lease.attempt,
                    status: JobStatus::Succeeded.as_str(),
                    percent: Some(100),
                    message: "done".into(),
                    error_code: None,
                    error_message: None,
                    result_key: result.map(|r| r.key.clone()),
                    result_filename: result.map(|r| r.filename.clone()),
                    result_content_type: result.map(|r| r.content_type.clone()),
                    result_size: result.map(|r| r.size),
                    result_parts: result.and_then(|r| r.parts.to_column()),
                    finished_at: Some(now),
                    history: history_json(history),
                    steps: Some(steps::to_column(list)),
                })
                .await;
        }
        let args = [
            lease.job.to_string().into(),
            lease.task_id.clone().into(),
            lease.attempt.into(),
            result.map(|r| r.key.clone()).into(),
            result.map(|r| r.filename.clone()).into(),
            result.map(|r| r.content_type.clone()).into(),
            result.map(|r| r.size).into(),
            now.into(),
            history_json(history).into(),
            steps::to_column(list).into(),
            result.and_then(|r| r.parts.to_column()).into(),
        ];
        self.end_with_effects(sql::SUCCEED, &args, now).await
    }

    /// Records a failed attempt: back to `queued` (with the error shown) or `failed` for good
    /// (with the same effects as [`Self::succeed`]). `None` when the lease is gone.
    pub async fn fail(
        &self,
        started: &JobRecord,
        failure: &Failure<'_>,
    ) -> Result<Option<JobRecord>, QueueError> {
        let (now, lease) = (now_micros(), started.lease());
        let effects = failure.is_final && has_effects(started);
        let (status, finished, message) = if failure.is_final {
            (JobStatus::Failed, Some(now), "failed")
        } else {
            (JobStatus::Queued, None, "waiting to retry")
        };
        if !effects {
            return self
                .finish_batched(Finish {
                    id: lease.job.to_string(),
                    task_id: lease.task_id.clone(),
                    attempts: lease.attempt,
                    status: status.as_str(),
                    percent: None,
                    message: message.into(),
                    error_code: Some(failure.code.to_string()),
                    error_message: Some(failure.message.to_string()),
                    result_key: None,
                    result_filename: None,
                    result_content_type: None,
                    result_size: None,
                    result_parts: None,
                    finished_at: finished,
                    history: history_json(failure.history),
                    steps: None,
                })
                .await;
        }
        let args = [
            lease.job.to_string().into(),
            lease.task_id.clone().into(),
            lease.attempt.into(),
            status.as_str().into(),
            failure.code.into(),
            failure.message.into(),
            finished.into(),
            now.into(),
            message.into(),
            history_json(failure.history).into(),
        ];
        self.end_with_effects(sql::FAIL, &args, now).await
    }

    /// Ends an attempt with `statement` (fenced by the lease among `args`) and, in the same
    /// transaction, the moves that follow (a webhook, a merge job); `None` when the lease is
    /// gone.
    async fn end_with_effects(
        &self,
        statement: &'static str,
        args: &[Arg],
        now: i64,
    ) -> Result<Option<JobRecord>, QueueError> {
        let (row, changed) = self
            .write(async |conn, changed| {
                let row = conn.row(self.sql(statement), args).await?;
                if let Some(row) = &row {
                    self.after_final(conn, row.clone(), now, changed).await?;
                }
                Ok(row)
            })
            .await?;
        Ok(row.and_then(|r| latest(&changed, r.id)))
    }
}

/// Whether a job's end moves more than its own row — a merge job, a webhook, a batch's
/// callback — and so takes a transaction of its own rather than the group commit.
fn has_effects(started: &JobRecord) -> bool {
    started.parent_id.is_some()
        || started.callback_url.is_some()
        || started.batch.is_some_and(|b| b.notify)
}
