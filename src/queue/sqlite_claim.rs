//! offload's claiming persistence on SQLite (driven by [`super::claiming::ClaimingStorage`]),
//! the counterpart of [`super::claim`]: one write transaction claims up to the worker's free
//! slots of due tasks — by priority, then turn by turn across the tenants that have work
//! waiting (#18) — marks them `Running` and starts their attempts; an attempt's end acks its
//! task in the writer's transaction (`writer.rs`). SQLite has one writer at a time, so the
//! claim needs no row locks: `BEGIN IMMEDIATE` is the lock.
//!
//! Registering, heartbeats, orphan recovery and acks of other completions are apalis-sqlite's
//! own queries.

use apalis_core::backend::WorkerFilter;
use apalis_core::backend::persistence::{Persistence, TaskEvent};
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use apalis_sqlite::queries as apalis;
use apalis_sqlite::{Config, Error};
use serde_json::Value;
use sqlx::{FromRow, Row, SqlitePool};

use super::claiming::{Claimed, Claimer};
use super::{JobRecord, TaskRef};

/// The tenants with due tasks of queue `?1` at `?2` (unix seconds): a skip scan of the
/// `offload_fair_claim` index (it orders by tenant after kind and status), one probe per
/// tenant however long its queue.
const WAITING_TENANTS: &str = "\
WITH RECURSIVE waiting(tenant) AS (
    SELECT (SELECT tenant FROM Jobs INDEXED BY offload_fair_claim
            WHERE job_type = ?1 AND status = 'Pending' AND lock_by IS NULL AND run_at <= ?2
            ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant FROM Jobs AS j INDEXED BY offload_fair_claim
            WHERE j.job_type = ?1 AND j.status = 'Pending' AND j.lock_by IS NULL
              AND j.run_at <= ?2 AND j.tenant > waiting.tenant
            ORDER BY j.tenant LIMIT 1)
    FROM waiting WHERE waiting.tenant IS NOT NULL
)
SELECT tenant FROM waiting WHERE tenant IS NOT NULL";

/// Tenant `?3`'s next `?4` due tasks of queue `?1`, in apalis's order (ties in insertion
/// order, as the index keeps them).
// `INDEXED BY`: given the choice, SQLite takes apalis's (job_type, status, run_at) index and
// reads — then sorts — every pending task of the kind for each claim, a cost that grows with
// the backlog; this index hands out one tenant's next tasks in claim order.
const TENANT_QUEUE: &str = "\
SELECT id, priority, run_at FROM Jobs INDEXED BY offload_fair_claim
WHERE job_type = ?1 AND status = 'Pending' AND tenant = ?3 AND lock_by IS NULL AND run_at <= ?2
ORDER BY priority DESC, run_at ASC
LIMIT ?4";

/// Jobs of tenant `?1` running anywhere.
const RUNNING_OF_TENANT: &str =
    "SELECT COUNT(*) FROM offload_jobs WHERE status = 'running' AND tenant = ?1";

/// Claims the tasks named in `?1` (a JSON array) for worker `?2`.
const CLAIM: &str = "\
UPDATE Jobs SET status = 'Running', lock_by = ?2, lock_at = strftime('%s', 'now')
WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'Pending'
RETURNING id, job, attempts, max_attempts, priority, run_at";

/// Undoes the attempts a claim started for tasks that never reached their handler (`?1`: a
/// JSON array of `{id, task_id, attempts}`).
const UNDO_STARTS: &str = "\
UPDATE offload_jobs
SET status = 'queued', attempts = offload_jobs.attempts - 1, progress_message = 'queued',
    started_at = CASE WHEN offload_jobs.attempts = 1 THEN NULL ELSE offload_jobs.started_at END,
    updated_at = ?2
FROM (SELECT value ->> 'id' AS id, value ->> 'task_id' AS task_id,
             value ->> 'attempts' AS attempts FROM json_each(?1)) AS v
WHERE offload_jobs.id = v.id AND offload_jobs.task_id = v.task_id
  AND offload_jobs.attempts = v.attempts AND +offload_jobs.status = 'running'";

/// The SQLite persistence behind a worker's [`super::claiming::ClaimingStorage`].
pub(super) type SqliteClaims = Claimer<SqlitePool, Config>;

/// One due task a tenant offers: `(id, priority, run_at)`.
type Offer = (String, i64, i64);

/// Takes up to `room` of the `offers` (one list per tenant, each in its own order): by
/// priority, then turn by turn across tenants, then due time.
fn fair_pick(offers: Vec<Vec<Offer>>, room: usize) -> Vec<String> {
    let mut all: Vec<(i64, usize, i64, String)> = offers
        .into_iter()
        .flat_map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(turn, (id, priority, run_at))| (-priority, turn, run_at, id))
        })
        .collect();
    all.sort();
    all.into_iter().take(room).map(|(_, _, _, id)| id).collect()
}

impl SqliteClaims {
    fn task(&self, row: &sqlx::sqlite::SqliteRow, worker: &str) -> Result<Task<Vec<u8>>, Error> {
        let claimed = Claimed {
            id: row.try_get("id")?,
            job: row.try_get("job")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            priority: row.try_get("priority")?,
            run_at: row.try_get("run_at")?,
        };
        claimed
            .into_task(self.slots.kind, worker)
            .map_err(|why| Error::Database(sqlx::Error::Decode(why.into())))
    }
}

impl Persistence for SqliteClaims {
    type Compact = Vec<u8>;
    type Error = Error;
    type Response = Value;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let dead_for = self.config.heartbeat_interval.as_secs() as i64;
        let queue = self.slots.kind;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let only = WorkerFilter::Only(worker.name().to_owned());
        apalis::reenqueue_orphaned(&mut *tx, dead_for, queue, &only).await?;
        apalis::register_worker(&mut *tx, &self.config, worker, "SqliteStorage").await?;
        tx.commit().await?;
        self.slots.claims.forget(queue);
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let dead_for = self.config.orphaned_duration().as_secs() as i64;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        apalis::keep_alive(&mut *tx, &self.config, worker).await?;
        let others = WorkerFilter::AllExcept(worker.name().to_owned());
        apalis::reenqueue_orphaned(&mut *tx, dead_for, self.slots.kind, &others).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<Task<Vec<u8>>>, Error> {
        let room = self.slots.room().await as usize;
        let (kind, now) = (self.slots.kind, chrono::Utc::now().timestamp());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let tenants: Vec<String> = sqlx::query_scalar(WAITING_TENANTS)
            .bind(kind)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        // About an equal share each; what one tenant leaves unused waits for the next claim.
        let share = (room / tenants.len().max(1)) as i64 + 1;
        let mut offers = Vec::with_capacity(tenants.len());
        for tenant in &tenants {
            // A running cap leaves what its running jobs do not take (the write lock makes the
            // count exact: no other claim runs meanwhile).
            let cap = self
                .slots
                .caps
                .cap(&crate::model::Tenant::stored(tenant.clone()));
            let limit = if cap == 0 {
                share
            } else {
                let running: i64 = sqlx::query_scalar(RUNNING_OF_TENANT)
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await?;
                share.min((cap as i64 - running).max(0))
            };
            if limit == 0 {
                continue;
            }
            let list: Vec<Offer> = sqlx::query_as(TENANT_QUEUE)
                .bind(kind)
                .bind(now)
                .bind(tenant)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            offers.push(list);
        }
        let chosen = fair_pick(offers, room);
        if chosen.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(CLAIM)
            .bind(serde_json::to_string(&chosen).expect("ids serialize"))
            .bind(worker.name())
            .fetch_all(&mut *tx)
            .await?;
        let mut tasks = Vec::with_capacity(rows.len());
        let mut starts = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = self.task(row, worker.name())?;
            let task_id: String = row.try_get("id")?;
            let payload: Vec<u8> = row.try_get("job")?;
            if let Ok(job) = serde_json::from_slice::<TaskRef>(&payload) {
                starts.push(serde_json::json!({"id": job.job_id, "task_id": task_id}));
            }
            tasks.push((task_id, task));
        }
        let started: Vec<JobRecord> = sqlx::query(super::writer::SQLITE_BEGIN_MANY)
            .bind(Value::Array(starts).to_string())
            .bind(super::now_micros())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(JobRecord::from_row)
            .collect::<Result<_, _>>()?;
        tx.commit().await?;
        let mut by_task: std::collections::HashMap<String, JobRecord> = started
            .into_iter()
            .map(|r| (r.task_id.clone(), r))
            .collect();
        Ok(tasks
            .into_iter()
            .map(|(task_id, task)| {
                let row = by_task.remove(&task_id);
                self.slots.claims.claimed(kind, &task_id, row);
                task
            })
            .collect())
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
        let undo: Vec<Value> = self
            .slots
            .abandon(&ids)
            .into_iter()
            .map(|r| serde_json::json!({"id": r.id, "task_id": r.task_id, "attempts": r.attempts}))
            .collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let count =
            apalis::reenqueue_abandoned(&mut *tx, self.slots.kind, worker.name(), &ids).await?;
        sqlx::query(UNDO_STARTS)
            .bind(Value::Array(undo).to_string())
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
        let acks: Vec<apalis::AckPayload> = self.slots.unacked(events);
        if acks.is_empty() {
            return Ok(());
        }
        let acks: Vec<&apalis::AckPayload> = acks.iter().collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        apalis::ack_tasks(&mut *tx, &acks, worker.name()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        apalis::push_tasks(&mut *tx, self.slots.kind, &tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_goes_by_priority_then_turn_by_turn() {
        let offer = |id: &str, priority, run_at| (id.to_string(), priority, run_at);
        let a = vec![offer("a1", 1, 1), offer("a2", 1, 2), offer("a3", 1, 3)];
        let b = vec![offer("b1", 1, 9), offer("b2", 1, 10)];
        assert_eq!(
            fair_pick(vec![a.clone(), b.clone()], 4),
            ["a1", "b1", "a2", "b2"]
        );
        let urgent = vec![offer("c1", 2, 50)];
        assert_eq!(fair_pick(vec![a, b, urgent], 2), ["c1", "a1"]);
    }
}
