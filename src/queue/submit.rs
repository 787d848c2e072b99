//! Creating jobs: our rows and their apalis tasks in one transaction (so an accepted job always
//! has its task), with idempotency keys handing back the job an earlier request created.

use std::collections::HashMap;

use super::conn::Conn;
use uuid::Uuid;

use super::{JobRecord, NewJob, Queue, QueueError, ResultFile, now_micros, sql};
use crate::model::steps::{self, StepStatus};

/// A job answered from the result cache, done at creation: `$1` id, `$2..$5` the result,
/// `$6` now, `$7` its steps.
const COMPLETE_CACHED: &str = "\
UPDATE offload_jobs
SET status = 'succeeded', progress_percent = 100, progress_message = 'cached', cache_hit = 1,
    result_key = $2, result_filename = $3, result_content_type = $4, result_size = $5,
    started_at = $6, finished_at = $6, updated_at = $6, steps = $7
WHERE id = $1
RETURNING *";

/// The result of a submit: the job, and whether this call created it (an idempotency key
/// seen before returns the earlier job with `created: false`).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: JobRecord,
    pub created: bool,
}

impl Queue {
    /// Creates jobs (one transaction for all of them) and their apalis tasks.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, QueueError> {
        let created = self
            .submit(&jobs, now_micros(), async |_| Ok(Some(())))
            .await?;
        Ok(created.map(|(_, out)| out).unwrap_or_default())
    }

    /// Creates `jobs` and their apalis tasks in one transaction, after `first` (a statement of
    /// the same transaction: a batch's row) answered `Some`; on its `None` (a statement that
    /// wrote nothing: the batch's key was taken) nothing is created.
    pub(super) async fn submit<T>(
        &self,
        jobs: &[NewJob],
        now: i64,
        first: impl AsyncFnOnce(&mut Conn<'_>) -> Result<Option<T>, QueueError>,
    ) -> Result<Option<(T, Vec<Enqueued>)>, QueueError> {
        let by_key = self.sql(sql::BY_IDEMPOTENCY_KEY);
        let d = self.dialect();
        let mut out = Vec::with_capacity(jobs.len());
        // Rows that cached jobs' ends changed (merge jobs moved on, webhooks queued).
        let mut finished = Vec::new();
        let made = self
            .in_transaction(d.begin_write, async |conn| {
                if let Some(plans) = d.submit_plans {
                    conn.execute(plans, &[]).await?;
                }
                let Some(made) = first(conn).await? else {
                    return Ok(None);
                };
                let mut created: HashMap<Uuid, JobRecord> = conn
                    .insert_jobs(jobs, now)
                    .await?
                    .into_iter()
                    .map(|r| (r.id, r))
                    .collect();
                for job in jobs {
                    if let (Some(result), Some(row)) = (&job.cached, created.get(&job.id)) {
                        let done = self
                            .complete_cached(conn, row, result, now, &mut finished)
                            .await?;
                        created.insert(job.id, done);
                    }
                }
                // A merge job moved on by its cached parts is newer than its inserted row.
                for row in finished.iter().filter(|r| r.is_parent()) {
                    if let Some(slot) = created.get_mut(&row.id) {
                        *slot = row.clone();
                    }
                }
                for job in jobs {
                    let enqueued = match created.remove(&job.id) {
                        Some(row) => Enqueued {
                            job: row,
                            created: true,
                        },
                        // The idempotency key was used before: hand back that job.
                        None => Enqueued {
                            job: conn
                                .row(by_key.clone(), &[job.idempotency_key.clone().into()])
                                .await?
                                .ok_or(QueueError::NotFound)?,
                            created: false,
                        },
                    };
                    out.push(enqueued);
                }
                Ok(Some(made))
            })
            .await?;
        let Some(made) = made else {
            return Ok(None);
        };
        self.announce(out.iter().filter(|e| e.created).map(|e| &e.job));
        self.announce(&finished);
        Ok(Some((made, out)))
    }

    /// Marks `row` (just inserted) succeeded with the cached `result`, in the submit's
    /// transaction, then does what any job's end does (a merge job moves on, a webhook is
    /// queued); the rows that changed go onto `changed`. Returns the finished row.
    async fn complete_cached(
        &self,
        conn: &mut Conn<'_>,
        row: &JobRecord,
        result: &ResultFile,
        now: i64,
        changed: &mut Vec<JobRecord>,
    ) -> Result<JobRecord, QueueError> {
        let mut list = row.steps.clone();
        for step in list.iter_mut().filter(|s| s.name != steps::NOTIFY) {
            step.status = StepStatus::Done;
            step.started_at = Some(now);
            step.finished_at = Some(now);
        }
        let args = [
            row.id.to_string().into(),
            result.key.clone().into(),
            result.filename.clone().into(),
            result.content_type.clone().into(),
            result.size.into(),
            now.into(),
            steps::to_column(&list).into(),
        ];
        let done = conn
            .row(self.sql(COMPLETE_CACHED), &args)
            .await?
            .ok_or(QueueError::NotFound)?;
        let mut after = Vec::new();
        self.after_final(conn, done.clone(), now, &mut after)
            .await?;
        let latest = super::latest(&after, done.id).unwrap_or(done);
        changed.extend(after);
        Ok(latest)
    }
}
