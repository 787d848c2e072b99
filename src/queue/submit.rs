//! Creating jobs: our rows and their apalis tasks in one transaction (so an accepted job always
//! has its task), with idempotency keys handing back the job an earlier request created.

use std::collections::HashMap;

use super::insert::InsertJobs;
use super::{Db, JobRecord, NewJob, Queue, QueueError, now_micros, sql};

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
        let by_key = self.sql(sql::BY_IDEMPOTENCY_KEY);
        let d = self.dialect();
        let now = now_micros();
        let mut out = Vec::with_capacity(jobs.len());
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let mut created: HashMap<String, JobRecord> = InsertJobs::insert_jobs(&mut *tx, &jobs, now)
                .await?
                .into_iter()
                .map(|r| (r.id.to_string(), r))
                .collect();
            for job in &jobs {
                let enqueued = match created.remove(&job.id.to_string()) {
                    Some(row) => Enqueued { job: row, created: true },
                    // The idempotency key was used before: hand back that job.
                    None => Enqueued {
                        job: sqlx::query_as::<_, JobRecord>(by_key.clone())
                            .bind(job.idempotency_key.as_deref())
                            .fetch_one(&mut *tx)
                            .await?,
                        created: false,
                    },
                };
                out.push(enqueued);
            }
            tx.commit().await?;
        });
        let created: Vec<JobRecord> = out
            .iter()
            .filter(|e| e.created)
            .map(|e| e.job.clone())
            .collect();
        self.announce(&created);
        Ok(out)
    }
}
