//! SQLite: pool, migrations, apalis's `Jobs` rows, and task sources woken in-process or by
//! polling.
//!
//! Durability: every connection runs in WAL mode with `synchronous = NORMAL`, so a committed
//! job survives a process crash and a power cut loses at most the last transactions that were
//! never acknowledged to a client. We run apalis's migrations ourselves instead of its `setup()`,
//! which would switch a pooled connection to `synchronous = OFF`.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::*;
use apalis_sqlite::{Config, SqliteStorage};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::claiming::{ClaimingStorage, Slots};
use super::config::WorkerPlan;
use super::sqlite_claim::SqliteClaims;
use super::{Db, Dialect, Queue, QueueError, TaskRef};

/// apalis's side of the queue in SQLite. Placeholders are numbered like Postgres's so the
/// caller binds the same values in the same order.
pub(super) const DIALECT: Dialect = Dialect {
    // A transaction that writes more than once takes the write lock up front: a deferred one
    // that upgrades from read to write can fail with SQLITE_BUSY instead of waiting.
    begin_write: "BEGIN IMMEDIATE",
    submit_plans: None,
    // In WAL mode a deferred transaction reads one snapshot from its first read on.
    begin_snapshot: "BEGIN",
    insert_task: "\
INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, tenant)
VALUES (?3, ?1, ?2, 'Pending', 0, ?4, COALESCE(?5, strftime('%s', 'now')), ?6, ?7)",
    delete_task: "DELETE FROM Jobs WHERE id = ?1",
    kill_pending_task: "\
UPDATE Jobs SET status = 'Killed', done_at = strftime('%s', 'now')
WHERE id = ?1 AND status IN ('Pending', 'Failed')",
    prune_done_tasks: "DELETE FROM Jobs WHERE status IN ('Done', 'Killed') AND done_at < ?1",
    requeue_task: "\
UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
WHERE id = ?1 AND status IN ('Running', 'Queued')",
    pending_tasks: "SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 AND status = 'Pending'",
    release_workers: "\
UPDATE Jobs SET lock_by = NULL
WHERE lock_by IN (SELECT value FROM json_each(?1)) AND status NOT IN ('Queued', 'Running')",
    delete_workers: "\
DELETE FROM Workers
WHERE id IN (SELECT value FROM json_each(?1))
  AND NOT EXISTS (SELECT 1 FROM Jobs WHERE Jobs.lock_by = Workers.id)",
    release_dead: "\
UPDATE Jobs SET lock_by = NULL
WHERE status NOT IN ('Queued', 'Running')
  AND lock_by IN (SELECT id FROM Workers WHERE last_seen < strftime('%s', 'now') - ?1)",
    delete_dead: "\
DELETE FROM Workers
WHERE last_seen < strftime('%s', 'now') - ?1
  AND NOT EXISTS (SELECT 1 FROM Jobs WHERE Jobs.lock_by = Workers.id)",
};

/// Writers queue behind one another; a long wait means something is wrong.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Statement journals and temporary b-trees in memory: by default each multi-row
        // UPDATE of the hot path (a claim, a group commit of ends) created, wrote and
        // deleted an `etilqs_` file — open, unlink and inode eviction per statement (#17).
        .pragma("temp_store", "memory")
        .busy_timeout(Duration::from_secs(10));
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    }
    super::restart::ping_when_idle(SqlitePoolOptions::new())
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
}

pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), QueueError> {
    SqliteStorage::migrations().run(pool).await?;
    let mut ours = sqlx::migrate!("./migrations/sqlite");
    // apalis's migrations use the default `_sqlx_migrations` table here; ours get their own.
    ours.dangerous_set_table_name("offload_migrations");
    ours.run(pool).await?;
    Ok(())
}

pub(super) fn board_api(pool: &SqlitePool, kinds: &[&'static str]) -> axum::Router {
    use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
    let mut api = ApiBuilder::new(axum::Router::new());
    for kind in kinds {
        let storage =
            SqliteStorage::<TaskRef>::new(pool).with_config(Config::default().queue(kind));
        api = RegisterRoute::<_, TaskRef>::register(api, kind, storage);
    }
    api.build()
}

/// The apalis backend a worker of `plan` pulls from. SQLite has no NOTIFY: this process's
/// inserts wake the worker directly, other processes' inserts are found by the interval poll.
pub(super) fn task_source(
    queue: &Queue,
    plan: &WorkerPlan,
    restarts: usize,
) -> PollWith<ClaimingStorage<SqliteClaims>, Strategy> {
    let Db::Sqlite(pool) = &queue.db else {
        unreachable!("a SQLite queue")
    };
    let pool = super::restart::generation_pool(pool, restarts, ACQUIRE_TIMEOUT);
    let config = Config::default()
        .queue(plan.kind)
        .batch_size(plan.batch_size)
        .heartbeat_interval(queue.config.heartbeat())
        .missed_heartbeats(3);
    let strategy = Strategy::new()
        .stream(queue.wakers.stream(plan.kind))
        .interval(queue.config.poll_interval);
    ClaimingStorage::new(SqliteClaims {
        pool: pool.clone(),
        config,
        slots: Slots::of(queue, plan),
    })
    .poll_with_strategy(strategy)
}
