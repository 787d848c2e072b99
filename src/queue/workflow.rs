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

use super::conn::{Arg, Conn};
use super::{
    Db, JobRecord, NewJob, Queue, QueueError, latest, new_task_id, now_micros, sql, task_payload,
};
use crate::model::JobStatus;
use crate::model::steps::{self, StepStatus};

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
    /// In the transaction that ended `row` (a final status): moves a part's merge job on,
    /// queues the completion webhook of every job that ended here and asked for one, and its
    /// batch's callback when it was the batch's last unfinished job. Pushes
    /// every row it wrote onto `changed`.
    pub(super) async fn after_final(
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
        for batch in ended.iter().filter_map(|r| r.batch.filter(|b| b.notify)) {
            self.batch_job_ended(conn, batch.id, now, changed).await?;
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
        let mut delivery = NewJob::new(callbacks.kind, args, callbacks.max_attempts);
        // The delivery is the job's own business: its tenant's, listed with its jobs, at its
        // priority.
        delivery.tenant = row.tenant.clone();
        delivery.priority = row.priority;
        delivery.metadata = row.metadata.clone();
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
            Arg::Int32(job.priority.rank()),
            job.tenant.to_string().into(),
        ];
        conn.execute(self.dialect().insert_task, &args).await?;
        Ok(())
    }
}

impl Queue {
    /// Cancels a queued or running job (a merge job with its unfinished parts; a part fails
    /// its merge job). A running attempt notices through the feed (this process) or its next
    /// poll (other processes) and stops.
    pub async fn cancel(&self, id: Uuid) -> Result<JobRecord, QueueError> {
        let now = now_micros();
        let (row, changed) = self
            .write(async |conn, changed| self.cancel_in(conn, id, now, changed).await)
            .await?;
        let row = self.transitioned(id, row).await?;
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
        let now = now_micros();
        let (row, _) = self
            .write(async |conn, changed| self.retry_in(conn, id, now, changed).await)
            .await?;
        self.transitioned(id, row).await
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
        let (d, now) = (self.dialect(), now_micros());
        let mut changed = Vec::new();
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
            // Deleting a batch's last unfinished job ends the batch.
            if let Some(batch) = current.batch.filter(|b| b.notify) {
                self.batch_job_ended(&mut Conn::from(&mut *tx), batch.id, now, &mut changed)
                    .await?;
            }
            tx.commit().await?;
            rows
        });
        self.announce(&changed);
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
            tenant: crate::model::Tenant::default_tenant(),
            priority: crate::model::Priority::Normal,
            metadata: Default::default(),
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
                sha256: None,
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
            secret: None,
            cache_hit: false,
            batch: None,
        }
    }
}
