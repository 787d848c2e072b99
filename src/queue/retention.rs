//! What the sweeper needs: finished jobs whose files may go, pruning old rows, and the
//! cluster-wide lease that lets one process sweep per tick.

use uuid::Uuid;

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
}
