//! Postgres: pool, migrations, apalis's `apalis.jobs` rows, and workers fed by LISTEN/NOTIFY.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Dialect, QueueConfig, QueueError, TaskRef};
use crate::jobs::runner::{self, Runtime};

/// apalis's side of the queue in Postgres.
pub(super) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    insert_task: "\
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
VALUES ($1, $2, $3, 'Pending', 0, $4, COALESCE(to_timestamp($5), now()), 0)",
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
};

/// Fail fast while the database is down instead of hanging requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("offload");
    PgPoolOptions::new()
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
    Ok(())
}

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

pub(super) fn register_workers(
    mut monitor: Monitor,
    pool: &PgPool,
    rt: Arc<Runtime>,
    config: &QueueConfig,
) -> Monitor {
    for kind in rt.registry().iter() {
        let (name, policy) = (kind.name(), kind.policy().clone());
        let (pool, rt, config) = (pool.clone(), rt.clone(), config.clone());
        monitor = monitor.register(move |restarts| {
            let pool = super::restart::generation_pool(&pool, restarts, ACQUIRE_TIMEOUT);
            let storage_config = Config::default()
                .queue(name)
                .batch_size(policy.batch_size)
                .heartbeat_interval(config.heartbeat())
                .missed_heartbeats(3);
            // NOTIFY wakes idle workers within milliseconds of an insert anywhere; the local
            // waker skips even that round trip; the interval catches retries and anything the
            // listener missed while reconnecting.
            let strategy = Strategy::new()
                .stream(Pubsub::new(pool.clone(), name.to_string()))
                .stream(rt.wakers().stream(name))
                .interval(config.poll_interval);
            let backend = PostgresStorage::<TaskRef>::new(&pool)
                .with_config(storage_config)
                .poll_with_strategy(strategy);
            WorkerBuilder::new(runner::worker_name(name, restarts))
                .backend(backend)
                .data(rt.clone())
                .concurrency(policy.concurrency)
                .retry(runner::retry_policy(&policy))
                .timeout(runner::backstop_timeout(&policy))
                .catch_panic()
                .build(runner::handle)
        });
    }
    monitor
}
