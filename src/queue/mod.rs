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
//! differ ([`postgres`], [`sqlite`]). The hot writes — batch inserts ([`insert`]), and the
//! start and end of every attempt — are multi-row statements; attempt starts and ends from
//! concurrent workers share one commit ([`writer`]).
//!
//! By concern: [`submit`] (creating jobs), [`batches`] (jobs submitted together, their
//! once-only callback), [`reads`], [`attempts`] (an attempt's own fenced
//! writes), [`workflow`] (cancel, retry, delete, and the moves that follow a job's end),
//! [`retention`] (for the sweeper), [`follow`] (one job's changes), [`workers`] (apalis workers
//! from plain plans); [`row`] decodes rows once, [`conn`] runs statements in a transaction on
//! either engine, [`config`] is what the queue takes from the service's configuration.

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

mod attempts;
mod batches;
mod cache;
mod claim;
mod claiming;
mod claims;
mod config;
mod conn;
mod follow;
mod insert;
mod postgres;
mod reads;
pub mod restart;
mod retention;
mod row;
mod sql;
mod sqlite;
mod sqlite_claim;
mod submit;
mod workers;
mod workflow;
mod writer;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::SqlStr;
use ulid::Ulid;
use uuid::Uuid;

use crate::events::{Change, Feed, Wakers};
pub use crate::model::{
    AttemptError, InputFile, JobRecord, JobStatus, Lease, NewJob, ResultFile, now_micros,
};
pub use attempts::Failure;
pub use batches::BatchEnqueued;
pub use cache::CacheEntry;
pub use config::{Callbacks, DatabaseUrl, Engine, QueueConfig, RunningCaps, WorkerPlan};
pub use follow::{BatchFollow, Follow, Seen};
pub use reads::ListFilter;
pub use submit::Enqueued;
pub use workers::{AttemptEnd, Attempts};

/// offload's Postgres statements that update a batch of rows (ours or apalis's tasks) found
/// through a join, by name: for tests/api/queue_plans.rs to check the plans Postgres makes of
/// the very text the queue runs (each row must be found by primary key, whatever the
/// statistics say).
#[doc(hidden)]
pub const POSTGRES_BATCH_UPDATES: &[(&str, &str)] = &[
    ("claim", claim::CLAIM),
    ("undo_starts", claim::UNDO_STARTS),
    ("ack", claim::ACK),
    ("begin_many", writer::PG_BEGIN_MANY),
    ("finish_many", writer::PG_FINISH_MANY),
];

/// The payload apalis carries for every job: a pointer to our row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRef {
    pub job_id: Uuid,
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

/// The statements on apalis's tables, which differ per engine.
#[derive(Debug)]
pub(crate) struct Dialect {
    begin_write: &'static str,
    /// Run first in a submit's transaction, where the engine plans statements (Postgres).
    submit_plans: Option<&'static str>,
    /// A read-only transaction whose statements all see one snapshot.
    begin_snapshot: &'static str,
    /// Binds `(task id, kind, payload, max attempts, run at, priority, tenant)` as `$1..$7`;
    /// run at is unix seconds or NULL for now, priority apalis's rank (`Priority::rank`).
    insert_task: &'static str,
    delete_task: &'static str,
    kill_pending_task: &'static str,
    /// Deletes finished apalis tasks whose `done_at` is before `$1` (unix seconds).
    prune_done_tasks: &'static str,
    /// Unlocks a task whose worker stopped mid-attempt, for any worker to take.
    requeue_task: &'static str,
    /// Counts the tasks of queue `$1` waiting for a worker.
    pending_tasks: &'static str,
    // apalis's worker rows: apalis registers and heartbeats them but never deletes one. A task
    // names its worker (`lock_by`, a foreign key), so finished tasks let go of it first; a
    // worker still named by a queued or running task stays until orphan recovery moves that
    // task on.
    /// Unlocks the finished tasks of the workers named in `$1` (a JSON array of names).
    release_workers: &'static str,
    /// Deletes the workers named in `$1` that no task names.
    delete_workers: &'static str,
    /// Unlocks the finished tasks of workers silent for `$1` seconds.
    release_dead: &'static str,
    /// Deletes the workers silent for `$1` seconds that no task names.
    delete_dead: &'static str,
}

/// The queue: our job rows plus apalis tasks, behind one API. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) db: Db,
    feed: Feed,
    wakers: Wakers,
    config: Arc<QueueConfig>,
    /// Group commit for starting and ending attempts.
    writer: Arc<writer::Writer>,
    /// What this process's claims handed over (attempts started, tasks acked).
    claims: Arc<claims::Claims>,
    /// The apalis worker names this process registered.
    workers: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The newest version of job `id` among `rows`.
fn latest(rows: &[JobRecord], id: Uuid) -> Option<JobRecord> {
    rows.iter().rev().find(|r| r.id == id).cloned()
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
        let claims = Arc::new(claims::Claims::default());
        Ok(Self {
            writer: Arc::new(writer::Writer::spawn(db.clone(), claims.clone())),
            claims,
            workers: Arc::default(),
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

    /// Runs `work` in one write transaction on a [`conn::Conn`], then announces every row it
    /// changed (it pushes them onto the list it is given); returns its value and those rows.
    async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut conn::Conn<'_>, &mut Vec<JobRecord>) -> Result<T, QueueError>,
    ) -> Result<(T, Vec<JobRecord>), QueueError> {
        let mut changed = Vec::new();
        let out = self
            .in_transaction(self.dialect().begin_write, async |conn| {
                work(conn, &mut changed).await
            })
            .await?;
        self.announce(&changed);
        Ok((out, changed))
    }

    /// Runs `work`'s reads in one read-only transaction: they all see the same snapshot.
    async fn read_together<T>(
        &self,
        work: impl AsyncFnOnce(&mut conn::Conn<'_>) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.in_transaction(self.dialect().begin_snapshot, work)
            .await
    }

    /// Runs `work` in a transaction opened by `begin` and commits it.
    async fn in_transaction<T>(
        &self,
        begin: &'static str,
        work: impl AsyncFnOnce(&mut conn::Conn<'_>) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        Ok(on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let out = work(&mut conn::Conn::from(&mut *tx)).await?;
            tx.commit().await?;
            out
        }))
    }

    /// Runs `work` on a connection of the pool, outside a transaction (reads).
    async fn read<T>(
        &self,
        work: impl AsyncFnOnce(&mut conn::Conn<'_>) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        Ok(on_db!(&self.db, pool => {
            let mut c = pool.acquire().await?;
            work(&mut conn::Conn::from(&mut *c)).await?
        }))
    }

    /// Publishes rows that changed on the feed and wakes the workers of their kinds.
    pub(super) fn announce<'a>(&self, rows: impl IntoIterator<Item = &'a JobRecord>) {
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
}
