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
mod postgres;
pub mod restart;
mod sql;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::SqlStr;
use ulid::Ulid;
use uuid::Uuid;

use crate::events::{Change, Feed, Wakers};
use crate::jobs::JobStatus;
use crate::settings::{DatabaseKind, Settings};
use batch::InsertJobs;

/// The payload apalis carries for every job: a pointer to our row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRef {
    pub job_id: Uuid,
}

/// A row of `offload_jobs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub args: String,
    pub task_id: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub progress_percent: i64,
    pub progress_message: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub input_key: Option<String>,
    pub input_filename: Option<String>,
    pub input_content_type: Option<String>,
    pub input_size: Option<i64>,
    pub input_format: Option<String>,
    pub result_key: Option<String>,
    pub result_filename: Option<String>,
    pub result_content_type: Option<String>,
    pub result_size: Option<i64>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// When the sweeper deleted the job's files (its result then answers 410).
    pub expired_at: Option<i64>,
    /// JSON array of [`AttemptError`]s.
    pub attempt_errors: Option<String>,
    /// JSON array of [`crate::jobs::steps::Step`] checkpoints.
    pub steps: Option<String>,
    /// The merge job this job is a part of.
    pub parent_id: Option<String>,
    /// This part's place in its merge job (upload order, from 0).
    pub part_index: Option<i64>,
    /// A merge job's parts not yet succeeded; its task is pushed when this reaches 0.
    pub waiting_parts: Option<i64>,
    /// Where to POST the job when it ends.
    pub callback_url: Option<String>,
    /// Not before this time (unix microseconds).
    pub run_at: Option<i64>,
}

/// One failed (or lost) attempt, as kept in the job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: i64,
    pub code: String,
    pub message: String,
    /// Unix microseconds.
    pub at: i64,
}

impl JobRecord {
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("job ids are uuids")
    }

    pub fn status(&self) -> JobStatus {
        JobStatus::parse(&self.status).expect("status column holds a known status")
    }

    pub fn args_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.args).unwrap_or(serde_json::Value::Null)
    }

    /// The failed attempts so far.
    pub fn attempt_history(&self) -> Vec<AttemptError> {
        self.attempt_errors
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    /// The job's step checkpoints.
    pub fn step_list(&self) -> Vec<crate::jobs::steps::Step> {
        crate::jobs::steps::parse(self.steps.as_deref())
    }

    pub fn parent(&self) -> Option<Uuid> {
        self.parent_id
            .as_deref()
            .and_then(|p| Uuid::parse_str(p).ok())
    }

    /// A merge job (it has parts).
    pub fn is_parent(&self) -> bool {
        self.waiting_parts.is_some()
    }

    /// The attempt this row is currently leased to.
    pub fn lease(&self) -> Lease {
        Lease {
            job: self.uuid(),
            task_id: self.task_id.clone(),
            attempt: self.attempts,
        }
    }
}

/// A stored input document.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// The detected document format (e.g. `pptx`), never the client's claim.
    pub format: String,
}

/// A stored result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: String,
    pub args: serde_json::Value,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    pub input: Option<InputFile>,
    /// Names of the kind's steps (the runner's own are added).
    pub steps: Vec<&'static str>,
    /// Where to POST the job when it ends (checked by the caller).
    pub callback_url: Option<String>,
    /// Not before this time (unix microseconds).
    pub run_at: Option<i64>,
    /// Part `index` of merge job `parent`.
    pub part_of: Option<(Uuid, i64)>,
    /// A merge job waiting for this many parts: it gets no task until they succeed.
    pub waiting_parts: Option<i64>,
}

impl NewJob {
    /// A job of `kind` with `args` and nothing else set.
    pub fn new(kind: &str, args: serde_json::Value, max_attempts: u32) -> Self {
        Self {
            id: Uuid::new_v4(),
            kind: kind.to_string(),
            args,
            max_attempts,
            idempotency_key: None,
            input: None,
            steps: Vec::new(),
            callback_url: None,
            run_at: None,
            part_of: None,
            waiting_parts: None,
        }
    }

    fn initial_steps(&self) -> String {
        let steps = crate::jobs::steps::initial(&self.steps, self.callback_url.is_some());
        crate::jobs::steps::to_column(&steps)
    }

    fn initial_message(&self, now: i64) -> String {
        match (self.waiting_parts, self.run_at) {
            (Some(n), _) => format!("waiting for {n} parts"),
            (None, Some(at)) if at > now => format!(
                "scheduled for {}",
                chrono::DateTime::from_timestamp_micros(at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            ),
            _ => "queued".into(),
        }
    }
}

/// The result of a submit: the job, and whether this call created it (an idempotency key
/// seen before returns the earlier job with `created: false`).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: JobRecord,
    pub created: bool,
}

/// One attempt's claim on a job; every write of the attempt is fenced by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: Uuid,
    pub task_id: String,
    pub attempt: i64,
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

/// Knobs the queue needs from the settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Attempts of a webhook delivery.
    pub webhook_attempts: u32,
}

impl QueueConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            lease: settings.worker_lease(),
            poll_interval: settings.poll_interval(),
            webhook_attempts: crate::jobs::kinds::webhook::attempts(settings),
        }
    }

    /// Heartbeats run three times per lease, so one late heartbeat does not lose a live job.
    pub fn heartbeat(&self) -> Duration {
        self.lease / 3
    }
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

pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn new_task_id() -> String {
    Ulid::generate().to_string()
}

/// What apalis stores as the task's arguments (its JSON codec's encoding of [`TaskRef`]).
fn task_payload(job_id: Uuid) -> Vec<u8> {
    serde_json::to_vec(&TaskRef { job_id }).expect("task ref serializes")
}

impl Queue {
    /// Connects to `DATABASE_URL` (creating a SQLite file and its directory if missing).
    pub async fn connect(settings: &Settings) -> Result<Self, QueueError> {
        let db = match settings
            .database_kind()
            .map_err(|e| sqlx::Error::Configuration(e.into()))?
        {
            DatabaseKind::Postgres => {
                Db::Postgres(postgres::connect(&settings.database_url).await?)
            }
            DatabaseKind::Sqlite => Db::Sqlite(sqlite::connect(&settings.database_url).await?),
        };
        Ok(Self {
            writer: Arc::new(batch::Writer::spawn(db.clone())),
            db,
            feed: Feed::default(),
            wakers: Wakers::default(),
            config: Arc::new(QueueConfig::from_settings(settings)),
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

    pub(crate) fn wakers(&self) -> &Wakers {
        &self.wakers
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
            job: job.uuid(),
            status: Some(job.status()),
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
                .map(|r| (r.id.clone(), r))
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
            if row.status() == JobStatus::Queued {
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
                Some(current) => Err(QueueError::WrongState(current.status())),
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
                job: row.uuid(),
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

    /// Registers one apalis worker per kind on `monitor`, pulling from this database.
    pub(crate) fn register_workers(
        &self,
        monitor: apalis::prelude::Monitor,
        runtime: Arc<crate::jobs::runner::Runtime>,
    ) -> apalis::prelude::Monitor {
        match &self.db {
            Db::Postgres(pool) => postgres::register_workers(monitor, pool, runtime, &self.config),
            Db::Sqlite(pool) => sqlite::register_workers(monitor, pool, runtime, &self.config),
        }
    }
}

mod workflow;
