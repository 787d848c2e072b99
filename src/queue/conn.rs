//! A connection (inside a transaction) on either engine, for ordinary functions that run
//! several statements in the caller's transaction — a job's final moves, say — without a macro
//! to expand them once per engine. Statements are our portable SQL ([`super::sql`]) or a
//! [`super::Dialect`] statement; their parameters are [`Arg`]s, bound in order.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, SqlStr};

use super::insert::InsertJobs;
use super::{JobRecord, NewJob};
use crate::model::batch::BatchRecord;

/// One bound parameter.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
    MaybeInt(Option<i64>),
    Int32(i32),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl From<Option<i64>> for Arg {
    fn from(n: Option<i64>) -> Self {
        Arg::MaybeInt(n)
    }
}

impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Self {
        Arg::MaybeText(s)
    }
}

/// The caller's connection, on whichever engine it is.
pub(super) enum Conn<'a> {
    Postgres(&'a mut sqlx::PgConnection),
    Sqlite(&'a mut sqlx::SqliteConnection),
}

impl<'a> From<&'a mut sqlx::PgConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

impl<'a> From<&'a mut sqlx::SqliteConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

/// Binds `args` to a sqlx query of either kind (`query` or `query_as`), in order.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::MaybeText(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
                Arg::MaybeInt(v) => q.bind(*v),
                Arg::Int32(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

impl Conn<'_> {
    /// The rows a statement returns, as `T`.
    pub async fn fetch<T>(&mut self, sql: SqlStr, args: &[Arg]) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        match self {
            Conn::Postgres(c) => {
                bind_all!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
            Conn::Sqlite(c) => {
                bind_all!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
        }
    }

    /// The job rows a statement returns.
    pub async fn rows(&mut self, sql: SqlStr, args: &[Arg]) -> sqlx::Result<Vec<JobRecord>> {
        self.fetch(sql, args).await
    }

    /// The batch row a statement returns, if any.
    pub async fn batch(&mut self, sql: SqlStr, args: &[Arg]) -> sqlx::Result<Option<BatchRecord>> {
        Ok(self.fetch(sql, args).await?.into_iter().next())
    }

    /// The number a `SELECT count(*)` returns.
    pub async fn count(&mut self, sql: SqlStr, args: &[Arg]) -> sqlx::Result<i64> {
        let rows: Vec<(i64,)> = self.fetch(sql, args).await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }

    /// The row a statement returns, if any.
    pub async fn row(&mut self, sql: SqlStr, args: &[Arg]) -> sqlx::Result<Option<JobRecord>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// Runs a statement that returns no rows; returns how many rows it changed.
    pub async fn execute(&mut self, sql: &'static str, args: &[Arg]) -> sqlx::Result<u64> {
        match self {
            Conn::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
            Conn::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    /// Inserts jobs and their tasks (see [`InsertJobs`]).
    pub async fn insert_jobs(&mut self, jobs: &[NewJob], now: i64) -> sqlx::Result<Vec<JobRecord>> {
        match self {
            Conn::Postgres(c) => c.insert_jobs(jobs, now).await,
            Conn::Sqlite(c) => c.insert_jobs(jobs, now).await,
        }
    }
}
