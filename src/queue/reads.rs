//! Reading jobs: one, a page of them, their status, counts for `/metrics`, the apalis board.

use uuid::Uuid;

use super::{Db, JobRecord, JobStatus, Queue, QueueError, sql};

/// Filters and page of `GET /jobs`, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this tenant's jobs (always: nobody lists another tenant's).
    pub tenant: crate::model::Tenant,
    pub status: Option<JobStatus>,
    /// Only jobs with each of these labels (at most [`ListFilter::MAX_METADATA`]).
    pub metadata: Vec<(String, String)>,
    pub kind: Option<String>,
    pub limit: u32,
    /// Exclusive upper bound `(created_at, id)` from the previous page.
    pub before: Option<(i64, String)>,
    /// Only jobs created before this time (unix microseconds).
    pub created_before: Option<i64>,
    /// Only the jobs of this batch.
    pub batch: Option<Uuid>,
}

impl ListFilter {
    /// Label filters one listing takes.
    pub const MAX_METADATA: usize = 4;
}

impl Queue {
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
        let q = match filter.batch {
            None => self.sql(sql::LIST),
            Some(_) => self.sql(sql::LIST_IN_BATCH),
        };
        let batch = filter.batch.map(|b| b.to_string());
        assert!(
            filter.metadata.len() <= ListFilter::MAX_METADATA,
            "checked by the caller"
        );
        let patterns: Vec<String> = filter
            .metadata
            .iter()
            .map(|(k, v)| crate::model::Metadata::like_pattern(k, v))
            .collect();
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
            .bind(filter.tenant.as_str())
            .bind(patterns.first())
            .bind(patterns.get(1))
            .bind(patterns.get(2))
            .bind(patterns.get(3))
            .bind(filter.created_before)
            .bind(batch.as_deref())
            .fetch_all(pool)
            .await)?;
        Ok(rows)
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

    /// apalis tasks of `kind` waiting for a worker (a merge job waiting for its parts has none).
    pub async fn pending_tasks(&self, kind: &str) -> Result<i64, QueueError> {
        let q = self.dialect().pending_tasks;
        let n = on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(q).bind(kind).fetch_one(pool).await)?;
        Ok(n)
    }

    /// Jobs waiting for a worker.
    /// Jobs of `tenant` waiting for a worker.
    pub async fn queued_count(&self, tenant: &crate::model::Tenant) -> Result<i64, QueueError> {
        let q = self.sql(sql::QUEUED_COUNT);
        let n = on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(q)
            .bind(tenant.as_str())
            .fetch_one(pool)
            .await)?;
        Ok(n)
    }

    /// Bytes of documents and main results `tenant` keeps (jobs whose files are not expired).
    pub async fn stored_bytes(&self, tenant: &crate::model::Tenant) -> Result<i64, QueueError> {
        let q = self.sql(sql::STORED_BYTES);
        let n = on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(q)
            .bind(tenant.as_str())
            .fetch_one(pool)
            .await)?;
        Ok(n)
    }

    /// `(tenant, kind, status, count)` of every job in the database.
    pub async fn counts(&self) -> Result<Vec<(String, String, String, i64)>, QueueError> {
        let q = self.sql(sql::COUNTS);
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, (String, String, String, i64)>(q).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// The apalis board's JSON API over this database: one queue per kind, in `kinds` order
    /// (the board's overview shows the first).
    pub(crate) fn board_api(&self, kinds: &[&'static str]) -> axum::Router {
        match &self.db {
            Db::Postgres(pool) => super::postgres::board_api(pool, kinds),
            Db::Sqlite(pool) => super::sqlite::board_api(pool, kinds),
        }
    }
}
