//! Decoding an `offload_jobs` row into a [`JobRecord`], once, on either engine: ids into
//! `Uuid`s, the status into a [`JobStatus`], the JSON columns (args, steps, attempt errors)
//! into values, the file columns into an [`InputFile`] and a [`ResultFile`]. A row that does not
//! decode is a database error (nothing reads a half-parsed job).

use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::model::batch::{BatchRecord, BatchRef};
use crate::model::{InputFile, JobRecord, JobStatus, ResultFile};

fn bad(column: &str, why: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: why.to_string().into(),
    }
}

fn uuid(column: &str, text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| bad(column, e))
}

fn json<T: serde::de::DeserializeOwned + Default>(
    column: &str,
    text: Option<String>,
) -> Result<T, sqlx::Error> {
    match text {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| bad(column, e)),
    }
}

impl<'r, R> sqlx::FromRow<'r, R> for JobRecord
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let text = |c: &'r str| row.try_get::<String, _>(c);
        let maybe_text = |c: &'r str| row.try_get::<Option<String>, _>(c);
        let number = |c: &'r str| row.try_get::<i64, _>(c);
        let maybe_number = |c: &'r str| row.try_get::<Option<i64>, _>(c);
        let status = text("status")?;
        let input = match maybe_text("input_key")? {
            None => None,
            Some(key) => Some(InputFile {
                key,
                filename: maybe_text("input_filename")?.unwrap_or_default(),
                content_type: maybe_text("input_content_type")?.unwrap_or_default(),
                size: maybe_number("input_size")?.unwrap_or(0),
                format: maybe_text("input_format")?.unwrap_or_default(),
                sha256: maybe_text("input_sha256")?,
            }),
        };
        let result = match maybe_text("result_key")? {
            None => None,
            Some(key) => Some(ResultFile {
                key,
                filename: maybe_text("result_filename")?.unwrap_or_default(),
                content_type: maybe_text("result_content_type")?.unwrap_or_default(),
                size: maybe_number("result_size")?.unwrap_or(0),
                parts: match maybe_text("result_parts")? {
                    None => Default::default(),
                    Some(json) => {
                        serde_json::from_str(&json).map_err(|e| bad("result_parts", e))?
                    }
                },
            }),
        };
        Ok(JobRecord {
            id: uuid("id", &text("id")?)?,
            tenant: crate::model::Tenant::stored(text("tenant")?),
            metadata: crate::model::Metadata::stored(json("metadata", maybe_text("metadata")?)?),
            priority: {
                let p = text("priority")?;
                crate::model::Priority::parse(&p).ok_or_else(|| bad("priority", &p))?
            },
            kind: text("kind")?,
            status: JobStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
            args: serde_json::from_str(&text("args")?).map_err(|e| bad("args", e))?,
            task_id: text("task_id")?,
            attempts: number("attempts")?,
            max_attempts: number("max_attempts")?,
            progress_percent: number("progress_percent")?,
            progress_message: maybe_text("progress_message")?,
            error_code: maybe_text("error_code")?,
            error_message: maybe_text("error_message")?,
            input,
            result,
            idempotency_key: maybe_text("idempotency_key")?,
            created_at: number("created_at")?,
            started_at: maybe_number("started_at")?,
            finished_at: maybe_number("finished_at")?,
            updated_at: number("updated_at")?,
            expired_at: maybe_number("expired_at")?,
            attempt_errors: json("attempt_errors", maybe_text("attempt_errors")?)?,
            steps: json("steps", maybe_text("steps")?)?,
            parent_id: maybe_text("parent_id")?
                .map(|p| uuid("parent_id", &p))
                .transpose()?,
            part_index: maybe_number("part_index")?,
            waiting_parts: maybe_number("waiting_parts")?,
            callback_url: maybe_text("callback_url")?,
            run_at: maybe_number("run_at")?,
            secret: maybe_text("secret")?.map(crate::model::Sealed::new),
            cache_hit: maybe_number("cache_hit")?.is_some_and(|n| n != 0),
            batch: match maybe_text("batch_id")? {
                None => None,
                Some(id) => Some(BatchRef {
                    id: uuid("batch_id", &id)?,
                    index: maybe_number("batch_index")?.unwrap_or(0),
                    notify: maybe_number("batch_notify")?.is_some_and(|n| n != 0),
                }),
            },
        })
    }
}

impl<'r, R> sqlx::FromRow<'r, R> for BatchRecord
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let text = |c: &'r str| row.try_get::<String, _>(c);
        let maybe_text = |c: &'r str| row.try_get::<Option<String>, _>(c);
        Ok(BatchRecord {
            id: uuid("id", &text("id")?)?,
            tenant: crate::model::Tenant::stored(text("tenant")?),
            size: row.try_get("size")?,
            callback_url: maybe_text("callback_url")?,
            delivery_id: maybe_text("delivery_id")?
                .map(|d| uuid("delivery_id", &d))
                .transpose()?,
            created_at: row.try_get("created_at")?,
        })
    }
}
