//! Transitions that move more than one row: a job ending (its webhook delivery is queued in the
//! same transaction; a part moves its merge job on), cancel and retry (a merge job takes its
//! parts along), delete, and step checkpoints.
//!
//! Fan-in is a counter: a merge job is created with `waiting_parts = N` and no apalis task.
//! Each part that succeeds decrements it in the part's own completing transaction; the one
//! that reaches 0 pushes the merge job's task. The decrement is a single guarded `UPDATE`, so
//! two parts finishing at once on two workers cannot both (or neither) push it. A part that
//! fails for good fails the merge job with the part's error and cancels the other parts.

use serde_json::json;
use uuid::Uuid;

use super::batch::Finish;
use super::conn::{Arg, Conn};
use super::{
    AttemptError, Db, Failure, JobRecord, Lease, NewJob, Queue, QueueError, ResultFile,
    history_json, new_task_id, now_micros, sql, task_payload,
};
use crate::model::JobStatus;
use crate::model::steps::{self, Step, StepStatus};

/// The merge job's error when part `row` ended without succeeding.
fn part_failure(row: &JobRecord) -> (String, String) {
    let code = row.error_code.clone().unwrap_or_else(|| "cancelled".into());
    let why = row
        .error_message
        .clone()
        .unwrap_or_else(|| "the part was cancelled".into());
    let name = row.input_filename().unwrap_or("document");
    let n = row.part_index.unwrap_or(0) + 1;
    (code, format!("part {n} ({name}): {why}"))
}

/// The `notify` step of a job whose delivery `delivery` was just queued.
fn notified(row: &JobRecord, delivery: Uuid, now: i64) -> String {
    let mut list = row.steps.clone();
    steps::update(&mut list, steps::NOTIFY, |s| {
        s.status = StepStatus::Done;
        s.started_at = Some(now);
        s.finished_at = Some(now);
        s.output = Some(json!({ "delivery": delivery }));
    });
    steps::to_column(&list)
}

impl Queue {
    /// In the transaction that ended `row` (a final status): moves a part's merge job on, and
    /// queues the completion webhook of every job that ended here and asked for one. Pushes
    /// every row it wrote onto `changed`.
    async fn after_final(
        &self,
        conn: &mut Conn<'_>,
        row: JobRecord,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<(), QueueError> {
        let mut ended = vec![row];
        if let Some(parent) = ended[0].parent_id {
            if ended[0].status == JobStatus::Succeeded {
                self.part_succeeded(conn, parent, now, changed).await?;
            } else if let Some(merge) = self
                .part_failed(conn, &ended[0], parent, now, changed)
                .await?
            {
                ended.push(merge);
            }
        }
        for row in ended {
            match row.callback_url.clone() {
                None => changed.push(row),
                Some(url) => self.queue_callback(conn, row, &url, now, changed).await?,
            }
        }
        Ok(())
    }

    /// One more part of merge job `parent` succeeded; the last one pushes its task.
    async fn part_succeeded(
        &self,
        conn: &mut Conn<'_>,
        parent: Uuid,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<(), QueueError> {
        let args = [parent.to_string().into(), now.into()];
        let Some(merge) = conn.row(self.sql(sql::PART_SUCCEEDED), &args).await? else {
            return Ok(());
        };
        if merge.waiting_parts == Some(0) {
            self.push_task(conn, &merge).await?;
        }
        changed.push(merge);
        Ok(())
    }

    /// Part `part` of merge job `parent` ended without succeeding: the merge job fails with
    /// its error and the other parts are cancelled. Returns the failed merge job.
    async fn part_failed(
        &self,
        conn: &mut Conn<'_>,
        part: &JobRecord,
        parent: Uuid,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<Option<JobRecord>, QueueError> {
        let (code, message) = part_failure(part);
        let args = [
            parent.to_string().into(),
            code.into(),
            message.into(),
            now.into(),
        ];
        let Some(merge) = conn.row(self.sql(sql::PART_FAILED), &args).await? else {
            return Ok(None);
        };
        let why = "cancelled: another part of the merge failed";
        changed.extend(self.cancel_parts(conn, parent, now, why).await?);
        Ok(Some(merge))
    }

    /// Cancels the unfinished parts of merge job `parent` (their tasks too); returns them.
    async fn cancel_parts(
        &self,
        conn: &mut Conn<'_>,
        parent: Uuid,
        now: i64,
        why: &str,
    ) -> Result<Vec<JobRecord>, QueueError> {
        let args = [parent.to_string().into(), now.into(), why.into()];
        let parts = conn.rows(self.sql(sql::CANCEL_PARTS), &args).await?;
        for part in &parts {
            let task = [part.task_id.clone().into()];
            conn.execute(self.dialect().kill_pending_task, &task)
                .await?;
        }
        Ok(parts)
    }

    /// Queues the completion webhook of `row` (ended, with a callback) and marks its `notify`
    /// step done.
    async fn queue_callback(
        &self,
        conn: &mut Conn<'_>,
        row: JobRecord,
        url: &str,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<(), QueueError> {
        let callbacks = self.config.callbacks;
        let args = json!({ "job_id": row.id, "url": url });
        let delivery = NewJob::new(callbacks.kind, args, callbacks.max_attempts);
        changed.extend(
            conn.insert_jobs(std::slice::from_ref(&delivery), now)
                .await?,
        );
        let args = [
            row.id.to_string().into(),
            notified(&row, delivery.id, now).into(),
            now.into(),
        ];
        let row = conn.row(self.sql(sql::SET_FINAL_STEPS), &args).await?;
        changed.extend(row);
        Ok(())
    }

    /// Pushes the apalis task of `job` (a merge job whose parts are all done, or a retry).
    async fn push_task(&self, conn: &mut Conn<'_>, job: &JobRecord) -> Result<(), QueueError> {
        let args = [
            job.task_id.clone().into(),
            job.kind.clone().into(),
            Arg::Bytes(task_payload(job.id)),
            Arg::Int32(job.max_attempts as i32),
            Arg::MaybeInt(None),
        ];
        conn.execute(self.dialect().insert_task, &args).await?;
        Ok(())
    }
}

/// The newest version of job `id` among `rows`.
fn latest(rows: &[JobRecord], id: Uuid) -> Option<JobRecord> {
    rows.iter().rev().find(|r| r.id == id).cloned()
}

impl Queue {
    /// Cancels a queued or running job (a merge job with its unfinished parts; a part fails
    /// its merge job). A running attempt notices through the feed (this process) or its next
    /// poll (other processes) and stops.
    pub async fn cancel(&self, id: Uuid) -> Result<JobRecord, QueueError> {
        let (d, now) = (self.dialect(), now_micros());
        let mut changed = Vec::new();
        let row = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let row = self.cancel_in(&mut Conn::from(&mut *tx), id, now, &mut changed).await?;
            tx.commit().await?;
            row
        });
        let row = self.transitioned(id, row).await?;
        self.announce(&changed);
        Ok(latest(&changed, row.id).unwrap_or(row))
    }

    async fn cancel_in(
        &self,
        conn: &mut Conn<'_>,
        id: Uuid,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<Option<JobRecord>, QueueError> {
        let args = [id.to_string().into(), now.into()];
        let Some(row) = conn.row(self.sql(sql::CANCEL), &args).await? else {
            return Ok(None);
        };
        // Keep apalis from handing out a task that would only find the job cancelled.
        let task = [row.task_id.clone().into()];
        conn.execute(self.dialect().kill_pending_task, &task)
            .await?;
        if row.is_parent() {
            let why = "cancelled with its merge job";
            changed.extend(self.cancel_parts(conn, row.id, now, why).await?);
        }
        self.after_final(conn, row.clone(), now, changed).await?;
        Ok(Some(row))
    }

    /// Puts a failed or cancelled job back in the queue with a fresh set of attempts, under a
    /// new apalis task (so a straggler of the old task cannot run it). Finished steps keep
    /// their checkpoints. A merge job re-runs only its parts that did not succeed.
    pub async fn retry(&self, id: Uuid) -> Result<JobRecord, QueueError> {
        let (d, now) = (self.dialect(), now_micros());
        let mut changed = Vec::new();
        let row = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let row = self.retry_in(&mut Conn::from(&mut *tx), id, now, &mut changed).await?;
            tx.commit().await?;
            row
        });
        let row = self.transitioned(id, row).await?;
        self.announce(&changed);
        Ok(row)
    }

    async fn retry_in(
        &self,
        conn: &mut Conn<'_>,
        id: Uuid,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<Option<JobRecord>, QueueError> {
        let current = conn
            .row(self.sql(sql::GET), &[id.to_string().into()])
            .await?
            .ok_or(QueueError::NotFound)?;
        if let (Some(parent), Some(index)) = (current.parent_id, current.part_index) {
            return Err(QueueError::PartOfMerge { parent, index });
        }
        let mut jobs = vec![current];
        if jobs[0].is_parent() {
            let parts = conn
                .rows(self.sql(sql::PARTS), &[id.to_string().into()])
                .await?;
            jobs.extend(
                parts
                    .into_iter()
                    .filter(|p| p.status != JobStatus::Succeeded),
            );
        }
        let mut retried = None;
        for job in jobs {
            let mut list = job.steps.clone();
            steps::reset_unfinished(&mut list);
            let args = [
                job.id.to_string().into(),
                new_task_id().into(),
                now.into(),
                steps::to_column(&list).into(),
            ];
            let Some(mut row) = conn.row(self.sql(sql::RETRY), &args).await? else {
                break;
            };
            if row.is_parent() {
                let args = [row.id.to_string().into()];
                row = conn
                    .row(self.sql(sql::WAIT_FOR_PARTS), &args)
                    .await?
                    .ok_or(QueueError::NotFound)?;
            }
            if row.waiting_parts.unwrap_or(0) == 0 {
                self.push_task(conn, &row).await?;
            }
            retried.get_or_insert_with(|| row.clone());
            changed.push(row);
        }
        Ok(retried)
    }

    /// Deletes the job row (a merge job with its parts) and their apalis tasks; returns the
    /// deleted rows so the caller can remove their stored files. `Ok(vec![])`: no such job.
    /// A running attempt finds its lease gone and stops.
    pub async fn delete(&self, id: Uuid) -> Result<Vec<JobRecord>, QueueError> {
        let d = self.dialect();
        let rows = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let current = sqlx::query_as::<_, JobRecord>(self.sql(sql::GET))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(current) = current else { return Ok(Vec::new()) };
            if let (Some(parent), Some(index)) = (current.parent_id, current.part_index) {
                return Err(QueueError::PartOfMerge { parent, index });
            }
            let mut rows = sqlx::query_as::<_, JobRecord>(self.sql(sql::DELETE))
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
            if current.is_parent() {
                rows.extend(
                    sqlx::query_as::<_, JobRecord>(self.sql(sql::DELETE_PARTS))
                        .bind(id.to_string())
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            for row in &rows {
                sqlx::query(d.delete_task).bind(&row.task_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows
        });
        for row in &rows {
            self.feed.publish(crate::events::Change {
                job: row.id,
                status: None,
                row: None,
            });
        }
        Ok(rows)
    }

    /// The parts of merge job `parent`, in upload order.
    pub async fn parts(&self, parent: Uuid) -> Result<Vec<JobRecord>, QueueError> {
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(self.sql(sql::PARTS))
            .bind(parent.to_string())
            .fetch_all(pool)
            .await)?;
        Ok(rows)
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
        let (d, now, lease) = (self.dialect(), now_micros(), started.lease());
        let effects = started.parent_id.is_some() || started.callback_url.is_some();
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
                    finished_at: Some(now),
                    history: history_json(history),
                    steps: Some(steps::to_column(list)),
                })
                .await;
        }
        let mut changed = Vec::new();
        let row = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let row = sqlx::query_as::<_, JobRecord>(self.sql(sql::SUCCEED))
                .bind(lease.job.to_string())
                .bind(&lease.task_id)
                .bind(lease.attempt)
                .bind(result.map(|r| r.key.as_str()))
                .bind(result.map(|r| r.filename.as_str()))
                .bind(result.map(|r| r.content_type.as_str()))
                .bind(result.map(|r| r.size))
                .bind(now)
                .bind(history_json(history))
                .bind(steps::to_column(list))
                .fetch_optional(&mut *tx)
                .await?;
            match &row {
                Some(row) if effects => self.after_final(&mut Conn::from(&mut *tx), row.clone(), now, &mut changed).await?,
                Some(row) => changed.push(row.clone()),
                None => {}
            }
            tx.commit().await?;
            row
        });
        self.announce(&changed);
        Ok(row.and_then(|r| latest(&changed, r.id)))
    }

    /// Records a failed attempt: back to `queued` (with the error shown) or `failed` for good
    /// (with the same effects as [`Self::succeed`]). `None` when the lease is gone.
    pub async fn fail(
        &self,
        started: &JobRecord,
        failure: &Failure<'_>,
    ) -> Result<Option<JobRecord>, QueueError> {
        let (d, now, lease) = (self.dialect(), now_micros(), started.lease());
        let effects =
            failure.is_final && (started.parent_id.is_some() || started.callback_url.is_some());
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
                    finished_at: finished,
                    history: history_json(failure.history),
                    steps: None,
                })
                .await;
        }
        let mut changed = Vec::new();
        let row = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let row = sqlx::query_as::<_, JobRecord>(self.sql(sql::FAIL))
                .bind(lease.job.to_string())
                .bind(&lease.task_id)
                .bind(lease.attempt)
                .bind(status.as_str())
                .bind(failure.code)
                .bind(failure.message)
                .bind(finished)
                .bind(now)
                .bind(message)
                .bind(history_json(failure.history))
                .fetch_optional(&mut *tx)
                .await?;
            match &row {
                Some(row) if effects => self.after_final(&mut Conn::from(&mut *tx), row.clone(), now, &mut changed).await?,
                Some(row) => changed.push(row.clone()),
                None => {}
            }
            tx.commit().await?;
            row
        });
        self.announce(&changed);
        Ok(row.and_then(|r| latest(&changed, r.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parts_failure_names_the_part() {
        let (code, message) = part_failure(&part_row());
        assert_eq!(code, "document_corrupt");
        assert_eq!(message, "part 2 (b.pptx): damaged");
    }

    fn part_row() -> JobRecord {
        JobRecord {
            id: Uuid::nil(),
            kind: "export".into(),
            status: JobStatus::Failed,
            args: json!({}),
            task_id: "t".into(),
            attempts: 1,
            max_attempts: 5,
            progress_percent: 0,
            progress_message: None,
            error_code: Some("document_corrupt".into()),
            error_message: Some("damaged".into()),
            input: Some(crate::model::InputFile {
                key: "k".into(),
                filename: "b.pptx".into(),
                content_type: String::new(),
                size: 0,
                format: "pptx".into(),
            }),
            result: None,
            idempotency_key: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            updated_at: 0,
            expired_at: None,
            attempt_errors: Vec::new(),
            steps: Vec::new(),
            parent_id: Some(Uuid::nil()),
            part_index: Some(1),
            waiting_parts: None,
            callback_url: None,
            run_at: None,
        }
    }
}
