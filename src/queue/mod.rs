//! The one seam to the database: job rows, state transitions and apalis tasks, on Postgres or
//! SQLite. Nothing outside this module knows which engine it talks to.
//!
//! Two kinds of rows live in the database:
//! - our `offload_jobs` table (migrations in `migrations/{postgres,sqlite}`): everything the API
//!   shows — status, progress, attempts, errors, input/result file info, idempotency key;
//! - apalis's task table, which carries `{"job_id": ...}` to the workers and owns fetching,
//!   locking, heartbeats and orphan recovery.
//!
//! A submit writes both in one transaction, so an accepted job always has its task. The worker
//! side moves our row through its states with *fenced* updates: every write of an attempt is
//! conditioned on `(task_id, attempts)` — the attempt's lease — so an attempt that was declared
//! dead and comes back cannot overwrite a newer attempt's result.
//!
//! Our table uses portable column types (TEXT ids, BIGINT microsecond timestamps) so that one
//! set of SQL statements ([`sql`]) serves both engines; only apalis's tables and bulk inserts
//! differ ([`postgres`], [`sqlite`]). The hot writes — batch inserts, and the start and end
//! of every attempt — are multi-row statements; attempt starts and ends from concurrent
//! workers share one commit ([`batch`]).

mod batch;
mod config;
mod conn;
mod follow;
mod postgres;
pub mod restart;
mod row;
mod sql;
mod sqlite;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::SqlStr;
use ulid::Ulid;
use uuid::Uuid;

use crate::events::{Change, Feed, Wakers};
pub use crate::model::{
    AttemptError, InputFile, JobRecord, JobStatus, Lease, NewJob, ResultFile, now_micros,
};
use batch::InsertJobs;
pub use config::{Callbacks, DatabaseUrl, Engine, QueueConfig, WorkerPlan};
pub use follow::{Follow, Seen};
pub use workers::{AttemptEnd, Attempts};

/// The payload apalis carries for every job: a pointer to our row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRef {
    pub job_id: Uuid,
}

/// The result of a submit: the job, and whether this call created it (an idempotency key
/// seen before returns the earlier job with `created: false`).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: JobRecord,
    pub created: bool,
}

/// Filters and page of `GET /jobs`, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub limit: u32,
    /// Exclusive upper bound `(created_at, id)` from the previous page.
    pub before: Option<(i64, String)>,
}

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

fn history_json(history: &[AttemptError]) -> Option<String> {
    (!history.is_empty()).then(|| serde_json::to_string(history).expect("history serializes"))
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("no such job")]
    NotFound,
    #[error("the job is {0}")]
    WrongState(JobStatus),
    #[error("the job is part {} of merge job {parent}; retry or delete that job", index + 1)]
    PartOfMerge { parent: Uuid, index: i64 },
}

/// The connection pool of the configured engine.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Runs the same statement text on whichever pool is configured. Both arms compile the body
/// separately, so it may only use types both engines encode and decode alike.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Postgres($pool) => $body,
            Db::Sqlite($pool) => $body,
        }
    };
}

/// The statements on apalis's tables, which differ per engine.
#[derive(Debug)]
pub(crate) struct Dialect {
    begin_write: &'static str,
    /// Binds `(task id, kind, payload, max attempts, run at)` as `$1..$5`; run at is unix
    /// seconds or NULL for now.
    insert_task: &'static str,
    delete_task: &'static str,
    kill_pending_task: &'static str,
    /// Deletes finished apalis tasks whose `done_at` is before `$1` (unix seconds).
    prune_done_tasks: &'static str,
    /// Unlocks a task whose worker stopped mid-attempt, for any worker to take.
    requeue_task: &'static str,
    /// Counts the tasks of queue `$1` waiting for a worker.
    pending_tasks: &'static str,
}

/// The queue: our job rows plus apalis tasks, behind one API. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) db: Db,
    feed: Feed,
    wakers: Wakers,
    config: Arc<QueueConfig>,
    /// Group commit for starting and ending attempts.
    writer: Arc<batch::Writer>,
}

fn new_task_id() -> String {
    Ulid::generate().to_string()
}

/// What apalis stores as the task's arguments (its JSON codec's encoding of [`TaskRef`]).
fn task_payload(job_id: Uuid) -> Vec<u8> {
    serde_json::to_vec(&TaskRef { job_id }).expect("task ref serializes")
}

impl Queue {
    /// Connects to the configured database (creating a SQLite file and its directory if
    /// missing).
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        let url = config.database.expose();
        let db = match config.database.engine() {
            Engine::Postgres => Db::Postgres(postgres::connect(url).await?),
            Engine::Sqlite => Db::Sqlite(sqlite::connect(url).await?),
        };
        Ok(Self {
            writer: Arc::new(batch::Writer::spawn(db.clone())),
            db,
            feed: Feed::default(),
            wakers: Wakers::default(),
            config: Arc::new(config),
        })
    }

    /// Creates or upgrades apalis's tables and ours.
    pub async fn migrate(&self) -> Result<(), QueueError> {
        match &self.db {
            Db::Postgres(pool) => postgres::migrate(pool).await,
            Db::Sqlite(pool) => sqlite::migrate(pool).await,
        }
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Readiness probe.
    pub async fn ping(&self) -> Result<(), QueueError> {
        on_db!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(&self.db, pool => pool.close().await)
    }

    pub(super) fn sql(&self, text: &'static str) -> SqlStr {
        sql::for_engine(&self.db, text)
    }

    pub(super) fn dialect(&self) -> &'static Dialect {
        match self.db {
            Db::Postgres(_) => &postgres::DIALECT,
            Db::Sqlite(_) => &sqlite::DIALECT,
        }
    }

    pub(super) fn publish(&self, job: &JobRecord) {
        self.feed.publish(Change {
            job: job.id,
            status: Some(job.status),
            row: Some(Arc::new(job.clone())),
        });
    }

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

    /// Publishes rows that changed on the feed and wakes the workers of their kinds.
    pub(super) fn announce(&self, rows: &[JobRecord]) {
        let mut woken = std::collections::BTreeSet::new();
        for row in rows {
            self.publish(row);
            if row.status == JobStatus::Queued {
                woken.insert(row.kind.clone());
            }
        }
        for kind in woken {
            self.wakers.wake(&kind);
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, QueueError> {
        let q = self.sql(sql::GET);
        let row = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(q)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await)?;
        Ok(row)
    }

    /// The public view of `row`: a merge job with its parts listed (one more query).
    pub async fn view(&self, row: JobRecord) -> Result<crate::model::view::Job, QueueError> {
        use crate::model::view::Job;
        if !row.is_parent() {
            return Ok(Job::from(row));
        }
        let parts = self.parts(row.id).await?;
        Ok(Job::with_parts(row, parts))
    }

    pub async fn find_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<JobRecord>, QueueError> {
        let q = self.sql(sql::BY_IDEMPOTENCY_KEY);
        let row = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(q)
            .bind(key)
            .fetch_optional(pool)
            .await)?;
        Ok(row)
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<JobRecord>, QueueError> {
        let q = self.sql(sql::LIST);
        let (before_at, before_id) = match &filter.before {
            Some((at, id)) => (Some(*at), Some(id.clone())),
            None => (None, None),
        };
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(q)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.kind.as_deref())
            .bind(before_at)
            .bind(before_id.as_deref())
            .bind(i64::from(filter.limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// `Some(row)` when a guarded update applied; otherwise tells a missing job from a job in
    /// the wrong state.
    pub(super) async fn transitioned(
        &self,
        id: Uuid,
        row: Option<JobRecord>,
    ) -> Result<JobRecord, QueueError> {
        match row {
            Some(row) => Ok(row),
            None => match self.get(id).await? {
                None => Err(QueueError::NotFound),
                Some(current) => Err(QueueError::WrongState(current.status)),
            },
        }
    }

    /// Starts an attempt of the job carried by apalis task `task_id`: `running`, one more
    /// attempt. `None` when there is nothing to run — the job was cancelled, deleted, already
    /// finished, or re-queued under a newer task.
    pub async fn begin_attempt(
        &self,
        id: Uuid,
        task_id: &str,
    ) -> Result<Option<JobRecord>, QueueError> {
        let row = self
            .writer
            .begin(id.to_string(), task_id.to_string())
            .await?;
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

    /// The job's status, or `None` if it no longer exists.
    pub async fn status(&self, id: Uuid) -> Result<Option<JobStatus>, QueueError> {
        let q = self.sql(sql::STATUS);
        let s: Option<String> = on_db!(&self.db, pool => sqlx::query_scalar(q)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await)?;
        Ok(s.and_then(|s| JobStatus::parse(&s)))
    }

    /// Finished jobs whose files are still stored and that finished before `before`
    /// (microseconds), oldest first.
    pub async fn expirable(&self, before: i64, limit: u32) -> Result<Vec<JobRecord>, QueueError> {
        let q = self.sql(sql::EXPIRABLE);
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, JobRecord>(q)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Records that a job's files are gone.
    pub async fn mark_expired(&self, id: Uuid) -> Result<(), QueueError> {
        let q = self.sql(sql::MARK_EXPIRED);
        on_db!(&self.db, pool => sqlx::query(q)
            .bind(id.to_string())
            .bind(now_micros())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Deletes up to `limit` job rows that finished before `before` (microseconds), with their
    /// apalis tasks, and apalis's own finished tasks older than that; returns the deleted rows.
    pub async fn prune(&self, before: i64, limit: u32) -> Result<Vec<JobRecord>, QueueError> {
        let (q, d) = (self.sql(sql::PRUNE), self.dialect());
        let rows = on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let rows = sqlx::query_as::<_, JobRecord>(q)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                sqlx::query(d.delete_task).bind(&row.task_id).execute(&mut *tx).await?;
            }
            sqlx::query(d.prune_done_tasks).bind(before / 1_000_000).execute(&mut *tx).await?;
            tx.commit().await?;
            rows
        });
        for row in &rows {
            self.feed.publish(Change {
                job: row.id,
                status: None,
                row: None,
            });
        }
        Ok(rows)
    }

    /// Takes the cluster-wide lease `name` until `until` (microseconds) if nobody holds it
    /// now; `true` for the one caller that got it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        until: i64,
    ) -> Result<bool, QueueError> {
        let q = self.sql(sql::ACQUIRE_LEASE);
        let won: Option<String> = on_db!(&self.db, pool => sqlx::query_scalar(q)
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now_micros())
            .fetch_optional(pool)
            .await)?;
        Ok(won.is_some())
    }

    /// apalis tasks of `kind` waiting for a worker (a merge job waiting for its parts has none).
    pub async fn pending_tasks(&self, kind: &str) -> Result<i64, QueueError> {
        let q = self.dialect().pending_tasks;
        let n = on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(q).bind(kind).fetch_one(pool).await)?;
        Ok(n)
    }

    /// Jobs waiting for a worker.
    pub async fn queued_count(&self) -> Result<i64, QueueError> {
        let q = self.sql(sql::QUEUED_COUNT);
        let n = on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(q).fetch_one(pool).await)?;
        Ok(n)
    }

    /// `(kind, status, count)` of every job, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(String, String, i64)>, QueueError> {
        let q = self.sql(sql::COUNTS);
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, (String, String, i64)>(q).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// The apalis board's JSON API over this database: one queue per kind, in `kinds` order
    /// (the board's overview shows the first).
    pub(crate) fn board_api(&self, kinds: &[&'static str]) -> axum::Router {
        match &self.db {
            Db::Postgres(pool) => postgres::board_api(pool, kinds),
            Db::Sqlite(pool) => sqlite::board_api(pool, kinds),
        }
    }
}

mod workflow;
