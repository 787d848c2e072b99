//! What the sweeper needs: finished jobs whose files may go, pruning old rows, and the
//! cluster-wide lease that lets one process sweep per tick.

use uuid::Uuid;

use super::conn::Arg;
use super::{Change, Db, JobRecord, Queue, QueueError, now_micros, sql};

impl Queue {
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
    /// apalis tasks, apalis's own finished tasks older than that and batches created before it
    /// with no job left; returns the deleted job rows.
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
            sqlx::query(self.sql(sql::PRUNE_BATCHES)).bind(before).execute(&mut *tx).await?;
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

    /// Takes this process's workers off the board after a clean shutdown: apalis never
    /// deletes a worker's row, so every stop would leave one behind. (A worker row stays while a
    /// queued or running task still names it; a live worker's [`Self::prune_dead_workers`]
    /// takes it once that task has moved on.)
    pub async fn retire_workers(&self) -> Result<u64, QueueError> {
        let names: Vec<String> = self.workers.lock().expect("worker names lock").clone();
        let names = serde_json::to_string(&names).expect("names serialize");
        let d = self.dialect();
        self.remove_workers(d.release_workers, d.delete_workers, names.into())
            .await
    }

    /// Takes off the board the workers that have not heartbeated for `silent` (killed ones:
    /// their processes cannot say goodbye); returns how many.
    pub async fn prune_dead_workers(&self, silent: std::time::Duration) -> Result<u64, QueueError> {
        let secs = i64::try_from(silent.as_secs()).unwrap_or(i64::MAX);
        let d = self.dialect();
        self.remove_workers(d.release_dead, d.delete_dead, secs.into())
            .await
    }

    /// In one transaction: lets the finished tasks of some workers go of them (`release`),
    /// then deletes those workers (`delete`); both bind `arg` as `$1`.
    async fn remove_workers(
        &self,
        release: &'static str,
        delete: &'static str,
        arg: Arg,
    ) -> Result<u64, QueueError> {
        let args = [arg];
        let (removed, _) = self
            .write(async |conn, _| {
                conn.execute(release, &args).await?;
                Ok(conn.execute(delete, &args).await?)
            })
            .await?;
        Ok(removed)
    }
}
