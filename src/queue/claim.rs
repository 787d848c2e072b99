//! offload's claiming persistence on Postgres (driven by [`super::claiming::ClaimingStorage`]): apalis's tables, worker rows, heartbeats, orphan
//! recovery, retry layers and board, with the hot path reshaped (#17). apalis-postgres 1.0's
//! own backend spends per batch a fetch, a separate lock event, then per task our attempt's
//! start, its end and apalis's ack — five commits and twenty-odd round trips for 64 jobs, and
//! its ack statement reads every task the worker ever locked. Here, on apalis-core's public
//! [`Persistence`] trait:
//! - one statement claims up to the worker's free slots *and* starts their attempts in
//!   `offload_jobs` (the task `Running` at once: no lock event);
//! - an attempt's end acks its task in the same statement (`writer`), committed before the
//!   handler returns, so the completion event apalis sends afterwards is dropped here;
//!   completions that did not go that way (failures, timeouts, panics) are acked by primary key;
//! - tasks still buffered at shutdown go back to `Pending` and their attempts are undone.
//!
//! Registering, heartbeats and orphan recovery are apalis-postgres's own queries.

use apalis_core::backend::persistence::{Persistence, TaskEvent};
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config, Error};
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::JobRecord;
use super::claiming::{Claimed, Claimer};

/// Claims up to `$3` due tasks of queue `$2` for worker `$1` and starts the attempts of
/// those whose job is waiting for them (`queued`, or `running` under this very task: its
/// worker was lost and orphan recovery handed the task on), stamped when the statement
/// runs (`clock_timestamp()`: a claim that waited for the claim lock does not date its jobs'
/// start back to before it got it).
///
/// Fair across tenants (#18): the tenants with due tasks are found by a skip scan of the
/// `offload_fair_claim` index (one probe per tenant, however long its queue); each offers its
/// next tasks in apalis's order (priority, then due time) — about an equal share of the batch,
/// locked `SKIP LOCKED` — and the claim takes them by priority, then turn by turn across
/// tenants, so one tenant's backlog never holds another's jobs behind it. A tenant with a
/// running cap (`$4`: `{tenant: cap}`, `$5`: everyone else's, 0 for none) offers no more than
/// its cap leaves beside its running jobs. Locks taken and not
/// claimed end with the statement. The claimed tasks are updated by primary key (see
/// `get_jobs.sql` for why not by a join), and so are their jobs: the status test is written
/// `status || ''` so that no index can serve it (see UNINDEXED_STATUS in `writer.rs`).
pub(super) const CLAIM: &str = "\
WITH RECURSIVE waiting(tenant) AS (
    (SELECT tenant FROM apalis.jobs
     WHERE job_type = $2 AND status = 'Pending' AND run_at < now()
     ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant FROM apalis.jobs j
            WHERE j.job_type = $2 AND j.status = 'Pending' AND j.run_at < now()
              AND j.tenant > w.tenant
            ORDER BY j.tenant LIMIT 1)
    FROM waiting w WHERE w.tenant IS NOT NULL
), tenants AS (
    SELECT w.tenant,
           CASE WHEN COALESCE(($4::jsonb ->> w.tenant)::bigint, $5) = 0 THEN $3
                ELSE GREATEST(COALESCE(($4::jsonb ->> w.tenant)::bigint, $5)
                              - (SELECT COUNT(*) FROM offload_jobs r
                                 WHERE r.status = 'running' AND r.tenant = w.tenant), 0)
           END AS room_left
    FROM waiting w WHERE w.tenant IS NOT NULL
), offered AS (
    SELECT c.id, c.priority, c.run_at, tn.room_left,
           row_number() OVER (PARTITION BY tn.tenant ORDER BY c.priority DESC, c.run_at) AS turn
    FROM tenants tn CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM apalis.jobs
        WHERE job_type = $2 AND status = 'Pending' AND run_at < now() AND tenant = tn.tenant
        ORDER BY priority DESC, run_at ASC
        LIMIT (SELECT $3 / COUNT(*) + 1 FROM tenants)
        FOR UPDATE SKIP LOCKED) c
), claimed AS (
    UPDATE apalis.jobs t
    SET status = 'Running', lock_by = $1, lock_at = now()
    WHERE t.id = ANY(ARRAY(
        SELECT id FROM offered WHERE turn <= room_left
        ORDER BY priority DESC, turn, run_at LIMIT $3))
    RETURNING t.id, t.job, t.attempts, t.max_attempts, t.priority,
              EXTRACT(EPOCH FROM t.run_at)::bigint AS run_at_secs
),
started AS (
    UPDATE offload_jobs j
    SET status = 'running', attempts = j.attempts + 1, progress_percent = 0,
        progress_message = 'started', started_at = COALESCE(j.started_at, n.now), updated_at = n.now
    FROM claimed c,
         (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint AS now) AS n
    WHERE j.id = convert_from(c.job, 'UTF8')::jsonb ->> 'job_id'
      AND j.task_id = c.id AND (j.status || '') IN ('queued', 'running')
    RETURNING j.*
)
SELECT c.id AS claimed_id, c.job AS claimed_job, c.attempts AS claimed_attempts,
       c.max_attempts AS claimed_max_attempts, c.priority AS claimed_priority,
       c.run_at_secs AS claimed_run_at, s.*
FROM claimed c LEFT JOIN started s ON s.task_id = c.id";

/// Acks completions by primary key (apalis's own ack first reads every task the worker ever
/// locked; the worker test is written `lock_by || ''` so that `idx_apalis_jobs_lock_by` cannot
/// lead Postgres back there). Rows: `{task_id, attempt, status, result}`.
pub(super) const ACK: &str = "\
UPDATE apalis.jobs t
SET status = v.status, attempts = v.attempt, last_result = v.result, done_at = now()
FROM (SELECT value ->> 'task_id' AS task_id, (value ->> 'attempt')::integer AS attempt,
             value ->> 'status' AS status, value -> 'result' AS result
      FROM jsonb_array_elements($1::jsonb) AS value) AS v
WHERE t.id = v.task_id AND (t.lock_by || '') = $2";

/// apalis-postgres's worker registration (its query function takes a type it does not
/// export), unchanged.
const REGISTER: &str = "\
INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (id) DO UPDATE
SET worker_type = EXCLUDED.worker_type, storage_name = EXCLUDED.storage_name,
    layers = EXCLUDED.layers, last_seen = now()
WHERE pg_try_advisory_lock(hashtext(workers.id))";

/// Undoes the attempts a claim started for tasks that never reached their handler.
pub(super) const UNDO_STARTS: &str = "\
UPDATE offload_jobs AS j
SET status = 'queued', attempts = j.attempts - 1, progress_message = 'queued',
    started_at = CASE WHEN j.attempts = 1 THEN NULL ELSE j.started_at END, updated_at = $4
FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS v(id, task_id, attempts)
WHERE j.id = v.id AND j.task_id = v.task_id AND j.attempts = v.attempts
  AND (j.status || '') = 'running'";

/// Notes the tasks of dead workers that orphan recovery put back in the queue.
fn log_recovered(recovered: u64, worker: &WorkerContext) {
    if recovered > 0 {
        tracing::debug!(
            recovered,
            worker = worker.name(),
            "re-enqueued orphaned tasks"
        );
    }
}

/// The Postgres persistence behind a worker's [`super::claiming::ClaimingStorage`].
pub(super) type ClaimingPersistence = Claimer<PgPool, Config>;

impl ClaimingPersistence {
    fn task(&self, row: &sqlx::postgres::PgRow, worker: &str) -> Result<Task<Vec<u8>>, Error> {
        let wide =
            |c: &str| -> Result<i64, sqlx::Error> { Ok(i64::from(row.try_get::<i32, _>(c)?)) };
        let claimed = Claimed {
            id: row.try_get("claimed_id")?,
            job: row.try_get("claimed_job")?,
            attempts: wide("claimed_attempts")?,
            max_attempts: wide("claimed_max_attempts")?,
            priority: wide("claimed_priority")?,
            run_at: row.try_get("claimed_run_at")?,
        };
        claimed
            .into_task(self.slots.kind, worker)
            .map_err(|why| Error::Database(sqlx::Error::Decode(why.into())))
    }
}

impl Persistence for ClaimingPersistence {
    type Compact = Vec<u8>;
    type Error = Error;
    type Response = Value;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let dead_for = self.config.orphaned_duration().as_secs();
        let recovered =
            apalis_postgres::queries::reenqueue_orphaned(&mut *tx, self.slots.kind, dead_for)
                .await?;
        let done = sqlx::query(REGISTER)
            .bind(worker.name())
            .bind(self.slots.kind)
            .bind("PgStorage")
            .bind(worker.get_service())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::WorkerAlreadyExists(worker.name().to_owned()));
        }
        tx.commit().await?;
        self.slots.claims.forget(self.slots.kind);
        log_recovered(recovered, worker);
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let dead_for = self.config.orphaned_duration().as_secs();
        apalis_postgres::queries::keep_alive(&mut *tx, self.slots.kind, worker).await?;
        let recovered =
            apalis_postgres::queries::reenqueue_orphaned(&mut *tx, self.slots.kind, dead_for)
                .await?;
        tx.commit().await?;
        log_recovered(recovered, worker);
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<Task<Vec<u8>>>, Error> {
        let room = self.slots.room().await;
        let caps = &self.slots.caps;
        let claim = sqlx::query(CLAIM)
            .bind(worker.name())
            .bind(self.slots.kind)
            .bind(room)
            .bind(self.slots.caps_json.as_str())
            .bind(i64::try_from(caps.default).unwrap_or(i64::MAX));
        let rows = if caps.active() {
            // Claims take turns, and each counts running jobs after the one before it
            // committed (a statement's snapshot is taken when it starts: after the lock), so
            // two workers cannot both give a tenant its last free place.
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('offload.claim'))")
                .execute(&mut *tx)
                .await?;
            let rows = claim.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        } else {
            claim.fetch_all(&self.pool).await?
        };
        let mut tasks = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = self.task(row, worker.name())?;
            let started = match row.try_get::<Option<String>, _>("id")? {
                Some(_) => Some(<JobRecord as sqlx::FromRow<_>>::from_row(row)?),
                None => None,
            };
            let task_id: String = row.try_get("claimed_id")?;
            self.slots
                .claims
                .claimed(self.slots.kind, &task_id, started);
            tasks.push(task);
        }
        Ok(tasks)
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.task_id().map(|id| id.to_string()))
            .collect();
        let undo = self.slots.abandon(&ids);
        let mut tx = self.pool.begin().await?;
        let count = apalis_postgres::queries::reenqueue_abandoned(
            &mut *tx,
            self.slots.kind,
            worker.name(),
            &ids,
        )
        .await?;
        sqlx::query(UNDO_STARTS)
            .bind(undo.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
            .bind(undo.iter().map(|r| r.task_id.clone()).collect::<Vec<_>>())
            .bind(undo.iter().map(|r| r.attempts).collect::<Vec<_>>())
            .bind(super::now_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), Error> {
        let acks: Vec<Value> = self
            .slots
            .unacked(events)
            .into_iter()
            .map(|done| {
                serde_json::json!({
                    "task_id": done.task_id.to_string(),
                    "attempt": done.attempt,
                    "status": done.status.to_string(),
                    "result": match &done.result {
                        Ok(v) => serde_json::json!({ "Ok": v }),
                        Err(e) => serde_json::json!({ "Err": e }),
                    },
                })
            })
            .collect();
        if acks.is_empty() {
            return Ok(());
        }
        sqlx::query(ACK)
            .bind(Value::Array(acks))
            .bind(worker.name())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        apalis_postgres::queries::push_tasks(&mut *tx, self.slots.kind, tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}
