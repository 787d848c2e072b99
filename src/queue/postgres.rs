//! Postgres: pool, migrations, apalis's `apalis.jobs` rows, and task sources fed by
//! LISTEN/NOTIFY.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::claim::ClaimingPersistence;
use super::claiming::{ClaimingStorage, Slots};
use super::config::WorkerPlan;
use super::{Db, Dialect, Queue, QueueError, TaskRef};

/// apalis's side of the queue in Postgres.
pub(super) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    // Postgres planned the bulk insert anew for each one-job call (the custom plan sees the
    // arrays' sizes, so it always looked cheaper than the generic one): 0.48 ms of bind against
    // 0.52 ms of execution. Its generic plan is the same for any number of jobs (the two CTEs
    // hash-joined: 17-18 ms for 1,000 either way), so submits plan it once per connection —
    // as do the key and cache lookups in the same transaction, all by unique or partial index.
    submit_plans: Some("SET LOCAL plan_cache_mode = force_generic_plan"),
    // Read committed would give each statement its own snapshot.
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    insert_task: "\
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, tenant)
VALUES ($1, $2, $3, 'Pending', 0, $4, COALESCE(to_timestamp($5), now()), $6, $7)",
    delete_task: "DELETE FROM apalis.jobs WHERE id = $1",
    kill_pending_task: "\
UPDATE apalis.jobs SET status = 'Killed', done_at = now()
WHERE id = $1 AND status IN ('Pending', 'Failed')",
    prune_done_tasks: "\
DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at < to_timestamp($1)",
    requeue_task: "\
UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
WHERE id = $1 AND status IN ('Running', 'Queued')",
    pending_tasks: "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending'",
    release_workers: "\
UPDATE apalis.jobs SET lock_by = NULL
WHERE lock_by IN (SELECT jsonb_array_elements_text($1::jsonb))
  AND status NOT IN ('Queued', 'Running')",
    delete_workers: "\
DELETE FROM apalis.workers w
WHERE w.id IN (SELECT jsonb_array_elements_text($1::jsonb))
  AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    release_dead: "\
UPDATE apalis.jobs SET lock_by = NULL
WHERE status NOT IN ('Queued', 'Running')
  AND lock_by IN (SELECT id FROM apalis.workers
                  WHERE last_seen < now() - make_interval(secs => $1::float8))",
    delete_dead: "\
DELETE FROM apalis.workers w
WHERE w.last_seen < now() - make_interval(secs => $1::float8)
  AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
};

/// Fail fast while the database is down instead of hanging requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    // No JIT: every statement here is a short OLTP one, and once a table is large enough for
    // the planner's estimate of the claim to pass `jit_above_cost`, Postgres compiles it with
    // LLVM on every execution — ~90 ms per claim where the claim itself takes 3 ms (seen at
    // 10,000 queued jobs in a table of twice the pages). Set per connection, so restarted
    // workers' pools (made from these options) have it too.
    let options = PgConnectOptions::from_str(url)?
        .application_name("offload")
        .options([("jit", "off")]);
    super::restart::ping_when_idle(PgPoolOptions::new())
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
}

pub(super) async fn migrate(pool: &PgPool) -> Result<(), QueueError> {
    apalis_postgres::PostgresStorage::migrations()
        .run(pool)
        .await?;
    let mut ours = sqlx::migrate!("./migrations/postgres");
    // apalis keeps its history in `apalis._sqlx_migrations`; ours gets its own table.
    ours.dangerous_set_table_name("offload_migrations");
    ours.run(pool).await?;
    // Several processes may start at once: one at a time replaces the function.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offload.get_jobs'))")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(GET_JOBS).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Our body of apalis's fetch function (why: the file's header), applied after every
/// migration run.
pub const GET_JOBS: &str = include_str!("get_jobs.sql");

pub(super) fn board_api(pool: &PgPool, kinds: &[&'static str]) -> axum::Router {
    use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
    let mut api = ApiBuilder::new(axum::Router::new());
    for kind in kinds {
        let storage =
            PostgresStorage::<TaskRef>::new(pool).with_config(Config::default().queue(kind));
        api = RegisterRoute::<_, TaskRef>::register(api, kind, storage);
    }
    api.build()
}

/// The apalis backend a worker of `plan` pulls from: NOTIFY wakes idle workers within
/// milliseconds of an insert anywhere; the local waker skips even that round trip; the interval
/// catches retries and anything the listener missed while reconnecting.
pub(super) fn task_source(
    queue: &Queue,
    plan: &WorkerPlan,
    restarts: usize,
) -> PollWith<ClaimingStorage<ClaimingPersistence>, Strategy> {
    let Db::Postgres(pool) = &queue.db else {
        unreachable!("a Postgres queue")
    };
    let pool = super::restart::generation_pool(pool, restarts, ACQUIRE_TIMEOUT);
    let config = Config::default()
        .queue(plan.kind)
        .batch_size(plan.batch_size)
        .heartbeat_interval(queue.config.heartbeat())
        .missed_heartbeats(3);
    let strategy = Strategy::new()
        .stream(Pubsub::new(pool.clone(), plan.kind.to_string()))
        .stream(queue.wakers.stream(plan.kind))
        .interval(queue.config.poll_interval);
    ClaimingStorage::new(ClaimingPersistence {
        pool: pool.clone(),
        config,
        slots: Slots::of(queue, plan),
    })
    .poll_with_strategy(strategy)
}
