//! Bulk insert: any number of jobs and their apalis tasks in one statement on Postgres (two on
//! SQLite), in the caller's transaction, on either engine (`InsertJobs` on both engines'
//! connections), so a submit of 1,000 jobs costs one round trip, not 2,000. The statements
//! hand back only the ids they created: the rows are built from what was bound (a new row has
//! no column the database fills in), not read back and decoded again.

use std::collections::HashSet;

use super::{JobRecord, JobStatus};
use crate::model::steps::Step;

/// The columns of one new job row, as bound to a bulk insert.
#[derive(serde::Serialize)]
struct NewRow<'a> {
    id: String,
    tenant: &'a str,
    priority: &'static str,
    metadata: Option<String>,
    kind: &'a str,
    args: String,
    task_id: String,
    max_attempts: i64,
    message: String,
    input_key: Option<&'a str>,
    input_filename: Option<&'a str>,
    input_content_type: Option<&'a str>,
    input_size: Option<i64>,
    input_format: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    steps: String,
    /// What `steps` encodes, for the row handed back.
    #[serde(skip)]
    step_list: Vec<Step>,
    callback_url: Option<&'a str>,
    run_at: Option<i64>,
    parent_id: Option<String>,
    part_index: Option<i64>,
    waiting_parts: Option<i64>,
    input_sha256: Option<&'a str>,
    secret: Option<&'a str>,
    batch_id: Option<String>,
    batch_index: Option<i64>,
    batch_notify: Option<i64>,
}

impl<'a> NewRow<'a> {
    fn of(job: &'a super::NewJob, now: i64) -> Self {
        let input = job.input.as_ref();
        let step_list = job.initial_steps();
        Self {
            id: job.id.to_string(),
            tenant: job.tenant.as_str(),
            priority: job.priority.as_str(),
            metadata: job.metadata.to_column(),
            kind: &job.kind,
            args: job.args.to_string(),
            task_id: super::new_task_id(),
            max_attempts: i64::from(job.max_attempts),
            message: job.initial_message(now),
            input_key: input.map(|i| i.key.as_str()),
            input_filename: input.map(|i| i.filename.as_str()),
            input_content_type: input.map(|i| i.content_type.as_str()),
            input_size: input.map(|i| i.size),
            input_format: input.map(|i| i.format.as_str()),
            idempotency_key: job.idempotency_key.as_deref(),
            steps: crate::model::steps::to_column(&step_list),
            step_list,
            callback_url: job.callback_url.as_deref(),
            run_at: job.run_at,
            parent_id: job.part_of.map(|(p, _)| p.to_string()),
            part_index: job.part_of.map(|(_, i)| i),
            waiting_parts: job.waiting_parts,
            input_sha256: input.and_then(|i| i.sha256.as_deref()),
            secret: job.secret.as_ref().map(|s| s.as_str()),
            batch_id: job.batch.map(|b| b.id.to_string()),
            batch_index: job.batch.map(|b| b.index),
            batch_notify: job.batch.map(|b| i64::from(b.notify)),
        }
    }
}

impl NewRow<'_> {
    /// The row this insert wrote for `job`, as a read of it would decode it.
    fn into_record(self, job: &super::NewJob, now: i64) -> JobRecord {
        JobRecord {
            id: job.id,
            tenant: job.tenant.clone(),
            priority: job.priority,
            metadata: job.metadata.clone(),
            kind: job.kind.clone(),
            status: JobStatus::Queued,
            args: job.args.clone(),
            task_id: self.task_id,
            attempts: 0,
            max_attempts: self.max_attempts,
            progress_percent: 0,
            progress_message: Some(self.message),
            error_code: None,
            error_message: None,
            input: job.input.clone(),
            result: None,
            idempotency_key: job.idempotency_key.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            expired_at: None,
            attempt_errors: Vec::new(),
            steps: self.step_list,
            parent_id: job.part_of.map(|(p, _)| p),
            part_index: job.part_of.map(|(_, i)| i),
            waiting_parts: job.waiting_parts,
            callback_url: job.callback_url.clone(),
            run_at: job.run_at,
            secret: job.secret.clone(),
            cache_hit: false,
            batch: job.batch,
        }
    }
}

/// The records of the rows among `rows` (bound for `jobs`, in order) whose ids the insert
/// handed back: a job whose idempotency key was taken got no row.
fn created(
    rows: Vec<NewRow>,
    jobs: &[super::NewJob],
    ids: Vec<String>,
    now: i64,
) -> Vec<JobRecord> {
    let ids: HashSet<String> = ids.into_iter().collect();
    rows.into_iter()
        .zip(jobs)
        .filter(|(row, _)| ids.contains(&row.id))
        .map(|(row, job)| row.into_record(job, now))
        .collect()
}

/// The apalis task of an inserted row (none for a merge job waiting for its parts).
#[derive(serde::Serialize)]
struct NewTask {
    id: String,
    tenant: String,
    kind: String,
    job: String,
    max_attempts: i64,
    run_at: Option<i64>,
    priority: i32,
}

/// The tasks of `rows` (inserted from `jobs`): none for a merge job waiting for its parts, nor
/// for a job answered from the cache.
fn tasks_of(rows: &[JobRecord], jobs: &[super::NewJob]) -> Vec<NewTask> {
    let cached: Vec<uuid::Uuid> = jobs
        .iter()
        .filter(|j| j.cached.is_some())
        .map(|j| j.id)
        .collect();
    rows.iter()
        .filter(|r| r.waiting_parts.is_none() && !cached.contains(&r.id))
        .map(|r| NewTask {
            id: r.task_id.clone(),
            tenant: r.tenant.to_string(),
            kind: r.kind.clone(),
            job: String::from_utf8(super::task_payload(r.id)).expect("JSON is UTF-8"),
            max_attempts: r.max_attempts,
            run_at: r.run_at.map(|at| at / 1_000_000),
            priority: r.priority.rank(),
        })
        .collect()
}

/// Bulk insert on either engine's connection, so code that runs inside `on_db!`
/// inserts jobs the same way whatever the backend.
pub(super) trait InsertJobs {
    /// Inserts `jobs` and their apalis tasks with two statements, in the caller's
    /// transaction; returns the rows created (a job whose idempotency key was taken is not
    /// among them).
    async fn insert_jobs(
        &mut self,
        jobs: &[super::NewJob],
        now: i64,
    ) -> Result<Vec<JobRecord>, sqlx::Error>;
}

impl InsertJobs for sqlx::PgConnection {
    async fn insert_jobs(
        &mut self,
        jobs: &[super::NewJob],
        now: i64,
    ) -> Result<Vec<JobRecord>, sqlx::Error> {
        insert_jobs_pg(self, jobs, now).await
    }
}

impl InsertJobs for sqlx::SqliteConnection {
    async fn insert_jobs(
        &mut self,
        jobs: &[super::NewJob],
        now: i64,
    ) -> Result<Vec<JobRecord>, sqlx::Error> {
        insert_jobs_sqlite(self, jobs, now).await
    }
}

/// Inserts `jobs` and their apalis tasks with one statement (whatever their number), in
/// the caller's transaction; returns the rows created (a job whose idempotency key was taken
/// is not among them).
async fn insert_jobs_pg(
    tx: &mut sqlx::PgConnection,
    jobs: &[super::NewJob],
    now: i64,
) -> Result<Vec<JobRecord>, sqlx::Error> {
    let rows: Vec<NewRow> = jobs.iter().map(|j| NewRow::of(j, now)).collect();
    fn col<'a, T>(rows: &'a [NewRow<'a>], f: impl Fn(&'a NewRow<'a>) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    let ids = sqlx::query_scalar::<_, String>(PG_INSERT_MANY)
        .bind(col(&rows, |r| r.id.as_str()))
        .bind(col(&rows, |r| r.kind))
        .bind(col(&rows, |r| r.args.as_str()))
        .bind(col(&rows, |r| r.task_id.as_str()))
        .bind(col(&rows, |r| r.max_attempts))
        .bind(col(&rows, |r| r.message.as_str()))
        .bind(col(&rows, |r| r.input_key))
        .bind(col(&rows, |r| r.input_filename))
        .bind(col(&rows, |r| r.input_content_type))
        .bind(col(&rows, |r| r.input_size))
        .bind(col(&rows, |r| r.input_format))
        .bind(col(&rows, |r| r.idempotency_key))
        .bind(col(&rows, |r| r.steps.as_str()))
        .bind(col(&rows, |r| r.callback_url))
        .bind(col(&rows, |r| r.run_at))
        .bind(col(&rows, |r| r.parent_id.as_deref()))
        .bind(col(&rows, |r| r.part_index))
        .bind(col(&rows, |r| r.waiting_parts))
        .bind(col(&rows, |r| r.input_sha256))
        .bind(col(&rows, |r| r.secret))
        .bind(now)
        .bind(jobs.iter().map(|j| j.cached.is_none()).collect::<Vec<_>>())
        .bind(col(&rows, |r| r.tenant))
        .bind(col(&rows, |r| r.priority))
        .bind(jobs.iter().map(|j| j.priority.rank()).collect::<Vec<_>>())
        .bind(col(&rows, |r| r.metadata.as_deref()))
        .bind(col(&rows, |r| r.batch_id.as_deref()))
        .bind(col(&rows, |r| r.batch_index))
        .bind(col(&rows, |r| r.batch_notify))
        .fetch_all(&mut *tx)
        .await?;
    Ok(created(rows, jobs, ids, now))
}

/// [`insert_jobs_pg`] for SQLite: the rows travel as one JSON array.
async fn insert_jobs_sqlite(
    tx: &mut sqlx::SqliteConnection,
    jobs: &[super::NewJob],
    now: i64,
) -> Result<Vec<JobRecord>, sqlx::Error> {
    let rows: Vec<NewRow> = jobs.iter().map(|j| NewRow::of(j, now)).collect();
    let ids = sqlx::query_scalar::<_, String>(SQLITE_INSERT_MANY)
        .bind(serde_json::to_string(&rows).expect("serializes"))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let inserted = created(rows, jobs, ids, now);
    let tasks = tasks_of(&inserted, jobs);
    if !tasks.is_empty() {
        sqlx::query(SQLITE_INSERT_TASKS)
            .bind(serde_json::to_string(&tasks).expect("serializes"))
            .execute(&mut *tx)
            .await?;
    }
    Ok(inserted)
}

/// The rows and their apalis tasks in one statement: a job whose idempotency key was taken
/// gets neither; a merge job waiting for its parts (`waiting_parts`) and a job answered from
/// the cache (`$22` false) get no task. The task's payload is `TaskRef`'s JSON, byte for byte
/// (`{"job_id":"<id>"}`, which every worker decodes with apalis's JSON codec).
const PG_INSERT_MANY: &str = "\
WITH v AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bigint[],
        $18::bigint[], $19::text[], $20::text[], $22::bool[], $23::text[], $24::text[], $25::int[], $26::text[],
        $27::text[], $28::bigint[], $29::bigint[])
    AS v(id, kind, args, task_id, max_attempts, message, input_key, input_filename,
         input_content_type, input_size, input_format, idempotency_key, steps, callback_url,
         run_at, parent_id, part_index, waiting_parts, input_sha256, secret, queue, tenant, priority, rank, metadata,
         batch_id, batch_index, batch_notify)
), ins AS (
    INSERT INTO offload_jobs (
        id, kind, status, args, task_id, attempts, max_attempts, progress_percent,
        progress_message, input_key, input_filename, input_content_type, input_size,
        input_format, idempotency_key, created_at, updated_at, steps, callback_url, run_at,
        parent_id, part_index, waiting_parts, input_sha256, secret, tenant, priority, metadata,
        batch_id, batch_index, batch_notify)
    SELECT v.id, v.kind, 'queued', v.args, v.task_id, 0, v.max_attempts, 0, v.message,
        v.input_key, v.input_filename, v.input_content_type, v.input_size, v.input_format,
        v.idempotency_key, $21, $21, v.steps, v.callback_url, v.run_at, v.parent_id,
        v.part_index, v.waiting_parts, v.input_sha256, v.secret, v.tenant, v.priority, v.metadata,
        v.batch_id, v.batch_index, v.batch_notify
    FROM v
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, task_id, kind, max_attempts, run_at, waiting_parts, tenant
), tasks AS (
    INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority,
        tenant)
    SELECT ins.task_id, ins.kind, convert_to('{\"job_id\":\"' || ins.id || '\"}', 'UTF8'),
        'Pending', 0, ins.max_attempts::int,
        COALESCE(to_timestamp(ins.run_at / 1000000), now()), v.rank, ins.tenant
    FROM ins JOIN v ON v.id = ins.id
    WHERE v.queue AND ins.waiting_parts IS NULL
)
SELECT id FROM ins";

const SQLITE_INSERT_MANY: &str = "\
INSERT INTO offload_jobs (
    id, kind, status, args, task_id, attempts, max_attempts, progress_percent, progress_message,
    input_key, input_filename, input_content_type, input_size, input_format,
    idempotency_key, created_at, updated_at,
    steps, callback_url, run_at, parent_id, part_index, waiting_parts, input_sha256, secret,
    tenant, priority, metadata, batch_id, batch_index, batch_notify)
SELECT value ->> 'id', value ->> 'kind', 'queued', value ->> 'args', value ->> 'task_id', 0,
    value ->> 'max_attempts', 0, value ->> 'message',
    value ->> 'input_key', value ->> 'input_filename', value ->> 'input_content_type',
    value ->> 'input_size', value ->> 'input_format', value ->> 'idempotency_key', ?2, ?2,
    value ->> 'steps', value ->> 'callback_url', value ->> 'run_at', value ->> 'parent_id',
    value ->> 'part_index', value ->> 'waiting_parts', value ->> 'input_sha256',
    value ->> 'secret', value ->> 'tenant', value ->> 'priority',
    value ->> 'metadata', value ->> 'batch_id', value ->> 'batch_index', value ->> 'batch_notify'
FROM json_each(?1) WHERE true
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id";

const SQLITE_INSERT_TASKS: &str = "\
INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, tenant)
SELECT CAST(value ->> 'job' AS BLOB), value ->> 'id', value ->> 'kind', 'Pending', 0,
    value ->> 'max_attempts', COALESCE(value ->> 'run_at', strftime('%s', 'now')),
    value ->> 'priority', value ->> 'tenant'
FROM json_each(?1)";
