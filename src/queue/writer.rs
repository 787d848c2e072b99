//! Group commit for the worker's hot writes: starting an attempt and recording how it ended.
//!
//! Each of those is one small fenced `UPDATE`; run one by one, every job pays its own commit
//! (a WAL flush on Postgres, the write lock on SQLite), and that — not the work — capped the
//! queue at a few hundred jobs per second. Here they go through one writer task: it takes
//! whatever is waiting (up to [`MAX_BATCH`]), applies all starts in one multi-row `UPDATE` and
//! all ends in another (on SQLite in one transaction; on Postgres each statement commits by
//! itself), and answers each caller with its own row. Nothing
//! waits for company: a lone write goes out at once, so latency stays that of a single write;
//! under load, writes that arrive while a batch commits share the next commit.
//!
//! Fencing is unchanged: each row of a batch carries its own `(id, task_id, attempts)`
//! condition, and a job appears at most once per batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::json;
use sqlx::{FromRow, Row};
use tokio::sync::{mpsc, oneshot};

use super::claims::Claims;
use super::{Db, JobRecord, QueueError};

/// Most writes committed together.
const MAX_BATCH: usize = 512;
/// Under load (the last batch had company), how many times the writer lets other tasks run
/// before it takes what is waiting: attempts that are about to end then share this commit
/// instead of each starting the next one. Yields, not a timer: nothing waits when nothing runs.
const GATHER_YIELDS: usize = 4;

/// How an attempt ended, as one row of a batched `UPDATE`.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Finish {
    pub id: String,
    pub task_id: String,
    pub attempts: i64,
    pub status: &'static str,
    /// `None` keeps the current percent.
    pub percent: Option<i64>,
    pub message: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result_key: Option<String>,
    pub result_filename: Option<String>,
    pub result_content_type: Option<String>,
    pub result_size: Option<i64>,
    pub result_parts: Option<String>,
    pub finished_at: Option<i64>,
    pub history: Option<String>,
    /// `None` keeps the current steps.
    pub steps: Option<String>,
}

type Reply = oneshot::Sender<Result<Option<JobRecord>, QueueError>>;

enum Op {
    Begin {
        id: String,
        task_id: String,
        reply: Reply,
    },
    Finish {
        row: Box<Finish>,
        reply: Reply,
    },
}

impl Op {
    fn id(&self) -> &str {
        match self {
            Op::Begin { id, .. } => id,
            Op::Finish { row, .. } => &row.id,
        }
    }
}

/// The handle to the writer task; the task ends when the last handle is dropped.
#[derive(Debug)]
pub(super) struct Writer {
    ops: mpsc::UnboundedSender<Op>,
}

impl Writer {
    pub fn spawn(db: Db, claims: Arc<Claims>) -> Self {
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, claims, rx));
        Self { ops }
    }

    async fn ask(&self, op: impl FnOnce(Reply) -> Op) -> Result<Option<JobRecord>, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(op(reply))
            .map_err(|_| QueueError::Db(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| QueueError::Db(sqlx::Error::PoolClosed))?
    }

    /// Starts an attempt (see `Queue::begin_attempt`).
    pub async fn begin(
        &self,
        id: String,
        task_id: String,
    ) -> Result<Option<JobRecord>, QueueError> {
        self.ask(|reply| Op::Begin { id, task_id, reply }).await
    }

    /// Ends an attempt (see `Queue::succeed`, `Queue::fail`).
    pub async fn finish(&self, row: Finish) -> Result<Option<JobRecord>, QueueError> {
        self.ask(|reply| Op::Finish {
            row: Box::new(row),
            reply,
        })
        .await
    }
}

async fn run(db: Db, claims: Arc<Claims>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut deferred: VecDeque<Op> = VecDeque::new();
    let mut busy = false;
    // Postgres runs two batches at once on two connections, so one statement's round trip
    // and commit do not idle the server; SQLite has one writer anyway. A job's writes never
    // overlap: each caller waits for its answer before its next write.
    let slots = Arc::new(tokio::sync::Semaphore::new(match db {
        Db::Postgres(_) => 2,
        Db::Sqlite(_) => 1,
    }));
    loop {
        let first = match deferred.pop_front() {
            Some(op) => op,
            None => match rx.recv().await {
                Some(op) => op,
                None => return,
            },
        };
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        if busy {
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
            }
        }
        let mut seen: HashSet<String> = HashSet::from([first.id().to_string()]);
        let mut batch = vec![first];
        // A second write of a job already in this batch waits for the next one.
        let mut later = VecDeque::new();
        while batch.len() < MAX_BATCH {
            let Some(op) = deferred.pop_front().or_else(|| rx.try_recv().ok()) else {
                break;
            };
            if seen.insert(op.id().to_string()) {
                batch.push(op);
            } else {
                later.push_back(op);
            }
        }
        later.extend(deferred.drain(..));
        deferred = later;
        busy = batch.len() > 1;
        let (db, claims) = (db.clone(), claims.clone());
        tokio::spawn(async move {
            apply(&db, &claims, batch).await;
            drop(slot);
        });
    }
}

/// Applies the batch — on SQLite in one transaction, on Postgres as one statement for the
/// starts and one for the ends — and answers every caller with its row or its statement's
/// error.
async fn apply(db: &Db, claims: &Claims, batch: Vec<Op>) {
    let (mut begins, mut finishes) = (Vec::new(), Vec::new());
    let (mut begin_replies, mut finish_replies) = (HashMap::new(), HashMap::new());
    for op in batch {
        match op {
            Op::Begin { id, task_id, reply } => {
                begins.push(json!({ "id": id, "task_id": task_id }));
                begin_replies.insert(id, reply);
            }
            Op::Finish { row, reply } => {
                finish_replies.insert(row.id.clone(), reply);
                finishes.push(*row);
            }
        }
    }
    if matches!(db, Db::Sqlite(_)) {
        begin_replies.extend(finish_replies);
        let result = write(db, claims, &begins, &finishes).await;
        return answer(begin_replies, result);
    }
    if !begins.is_empty() {
        answer(begin_replies, write(db, claims, &begins, &[]).await);
    }
    if !finishes.is_empty() {
        answer(finish_replies, write(db, claims, &[], &finishes).await);
    }
}

fn answer(replies: HashMap<String, Reply>, result: Result<Vec<JobRecord>, sqlx::Error>) {
    match result {
        Ok(rows) => {
            let mut rows: HashMap<String, JobRecord> =
                rows.into_iter().map(|r| (r.id.to_string(), r)).collect();
            for (id, reply) in replies {
                let _ = reply.send(Ok(rows.remove(&id)));
            }
        }
        Err(e) => {
            let why = e.to_string();
            for (_, reply) in replies {
                let _ = reply.send(Err(QueueError::Db(sqlx::Error::Protocol(why.clone()))));
            }
        }
    }
}

async fn write(
    db: &Db,
    claims: &Claims,
    begins: &[serde_json::Value],
    finishes: &[Finish],
) -> Result<Vec<JobRecord>, sqlx::Error> {
    let now = super::now_micros();
    let mut rows = Vec::with_capacity(begins.len() + finishes.len());
    match db {
        // One statement, committing by itself (`apply` sends starts and ends apart): a
        // transaction around it would only add BEGIN and COMMIT round trips.
        Db::Postgres(pool) => {
            if !begins.is_empty() {
                let ids: Vec<&str> = begins
                    .iter()
                    .map(|b| b["id"].as_str().unwrap_or(""))
                    .collect();
                let tasks: Vec<&str> = begins
                    .iter()
                    .map(|b| b["task_id"].as_str().unwrap_or(""))
                    .collect();
                rows.extend(
                    sqlx::query_as::<_, JobRecord>(PG_BEGIN_MANY)
                        .bind(ids)
                        .bind(tasks)
                        .bind(now)
                        .fetch_all(pool)
                        .await?,
                );
            }
            let mut acked = Vec::new();
            if !finishes.is_empty() {
                for row in pg_finish_many(finishes, now).fetch_all(pool).await? {
                    let job = JobRecord::from_row(&row)?;
                    if row.try_get::<bool, _>("acked")? {
                        acked.push(job.task_id.clone());
                    }
                    rows.push(job);
                }
            }
            // Before anyone hears of the end: apalis's completion event comes after.
            claims.acked(acked);
        }
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            if !begins.is_empty() {
                rows.extend(
                    sqlx::query_as::<_, JobRecord>(SQLITE_BEGIN_MANY)
                        .bind(serde_json::to_string(begins).expect("serializes"))
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            let mut acked = Vec::new();
            if !finishes.is_empty() {
                let ended = sqlx::query_as::<_, JobRecord>(SQLITE_FINISH_MANY)
                    .bind(serde_json::to_string(finishes).expect("serializes"))
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                let succeeded: Vec<serde_json::Value> = ended
                    .iter()
                    .filter(|r| r.status == super::JobStatus::Succeeded)
                    .map(|r| json!({ "task_id": r.task_id, "attempts": r.attempts }))
                    .collect();
                if !succeeded.is_empty() {
                    acked = sqlx::query_scalar::<_, String>(SQLITE_ACK_SUCCEEDED)
                        .bind(serde_json::Value::Array(succeeded).to_string())
                        .fetch_all(&mut *tx)
                        .await?;
                }
                rows.extend(ended);
            }
            tx.commit().await?;
            claims.acked(acked);
        }
    }
    Ok(rows)
}

// UNINDEXED_STATUS. Postgres has the same temptation as SQLite below, whenever its statistics
// were taken while few jobs were queued or running (a table of finished jobs, analyzed, then
// a burst of submissions): it plans these multi-row updates as a scan of
// `offload_jobs_by_status` for every queued (or running) job, hashed against the batch —
// 12.6 ms instead of 3.5 ms per claim of 64 beside a backlog of 10,000 (EXPLAIN ANALYZE), cost
// growing with the backlog. `status || ''` is Postgres's unary `+`: the same test, which no
// index can serve, so the batch drives and each of its rows is one primary-key lookup.
// tests/api/queue_plans.rs checks the plans in that state.
pub(super) const PG_BEGIN_MANY: &str = "\
UPDATE offload_jobs AS j
SET status = 'running', attempts = j.attempts + 1, progress_percent = 0,
    progress_message = 'started', started_at = COALESCE(j.started_at, $3), updated_at = $3
FROM UNNEST($1::text[], $2::text[]) AS v(id, task_id)
WHERE j.id = v.id AND j.task_id = v.task_id AND (j.status || '') IN ('queued', 'running')
RETURNING j.*";

// SQLite's planner would rather walk `offload_jobs_by_status` — every queued job — and scan
// the JSON array once per row (re-parsing it each time): cost backlog × batch, which made a
// 10,000-job drain crawl at under 100 jobs/s. The unary `+` takes the status index out of the
// running, so the array drives and each element is one primary-key lookup.
pub(super) const SQLITE_BEGIN_MANY: &str = "\
UPDATE offload_jobs
SET status = 'running', attempts = attempts + 1, progress_percent = 0,
    progress_message = 'started', started_at = COALESCE(started_at, ?2), updated_at = ?2
FROM (SELECT value ->> 'id' AS id, value ->> 'task_id' AS task_id FROM json_each(?1)) AS v
WHERE offload_jobs.id = v.id AND offload_jobs.task_id = v.task_id
  AND +offload_jobs.status IN ('queued', 'running')
RETURNING *";

/// Ends attempts and, for those that succeeded, acks their apalis task in the same statement
/// (`acked` says which; see `claim`). `acked` is a hashed `IN`: a join of the two CTEs was
/// planned as a nested loop (their sizes are unknown to the planner), a comparison per pair —
/// at 512 ends, 262,144 of them, a third of the statement's time.
pub(super) const PG_FINISH_MANY: &str = "\
WITH fin AS (
UPDATE offload_jobs AS j
SET status = v.status, progress_percent = COALESCE(v.percent, j.progress_percent),
    progress_message = v.message, error_code = v.error_code, error_message = v.error_message,
    result_key = v.result_key, result_filename = v.result_filename,
    result_content_type = v.result_content_type, result_size = v.result_size,
    result_parts = v.result_parts,
    finished_at = v.finished_at, updated_at = $16, attempt_errors = v.history,
    steps = COALESCE(v.steps, j.steps)
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
            $13::bigint[], $14::text[], $15::text[], $17::text[])
    AS v(id, task_id, attempts, status, percent, message, error_code, error_message,
         result_key, result_filename, result_content_type, result_size, finished_at,
         history, steps, result_parts)
WHERE j.id = v.id AND j.task_id = v.task_id AND j.attempts = v.attempts
  AND (j.status || '') = 'running'
RETURNING j.*
), ack AS (
    UPDATE apalis.jobs t
    SET status = 'Done', attempts = f.attempts, last_result = '{\"Ok\":null}', done_at = now()
    FROM fin f
    WHERE t.id = f.task_id AND f.status = 'succeeded' AND t.status = 'Running'
    RETURNING t.id
)
SELECT fin.*, (fin.task_id IN (SELECT id FROM ack)) AS acked FROM fin";

fn pg_finish_many(
    rows: &[Finish],
    now: i64,
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn col<T>(rows: &[Finish], f: impl Fn(&Finish) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    sqlx::query(PG_FINISH_MANY)
        .bind(col(rows, |r| r.id.clone()))
        .bind(col(rows, |r| r.task_id.clone()))
        .bind(col(rows, |r| r.attempts))
        .bind(col(rows, |r| r.status.to_string()))
        .bind(col(rows, |r| r.percent))
        .bind(col(rows, |r| r.message.clone()))
        .bind(col(rows, |r| r.error_code.clone()))
        .bind(col(rows, |r| r.error_message.clone()))
        .bind(col(rows, |r| r.result_key.clone()))
        .bind(col(rows, |r| r.result_filename.clone()))
        .bind(col(rows, |r| r.result_content_type.clone()))
        .bind(col(rows, |r| r.result_size))
        .bind(col(rows, |r| r.finished_at))
        .bind(col(rows, |r| r.history.clone()))
        .bind(col(rows, |r| r.steps.clone()))
        .bind(now)
        .bind(col(rows, |r| r.result_parts.clone()))
}

/// Acks, in the transaction that ended their attempts, the tasks of succeeded jobs that a
/// claim set `Running` (`sqlite_claim`); returns their ids.
const SQLITE_ACK_SUCCEEDED: &str = "\
UPDATE Jobs SET status = 'Done', attempts = v.attempts, last_result = '{\"Ok\":null}',
    done_at = strftime('%s', 'now')
FROM (SELECT value ->> 'task_id' AS task_id, value ->> 'attempts' AS attempts
      FROM json_each(?1)) AS v
WHERE Jobs.id = v.task_id AND Jobs.status = 'Running'
RETURNING Jobs.id";

const SQLITE_FINISH_MANY: &str = "\
UPDATE offload_jobs
SET status = v.status,
    progress_percent = COALESCE(v.percent, offload_jobs.progress_percent),
    progress_message = v.message, error_code = v.error_code, error_message = v.error_message,
    result_key = v.result_key, result_filename = v.result_filename,
    result_content_type = v.result_content_type, result_size = v.result_size,
    result_parts = v.result_parts,
    finished_at = v.finished_at, updated_at = ?2, attempt_errors = v.history,
    steps = COALESCE(v.steps, offload_jobs.steps)
FROM (SELECT value ->> 'id' AS id, value ->> 'task_id' AS task_id,
             value ->> 'attempts' AS attempts, value ->> 'status' AS status,
             value ->> 'percent' AS percent, value ->> 'message' AS message,
             value ->> 'error_code' AS error_code, value ->> 'error_message' AS error_message,
             value ->> 'result_key' AS result_key, value ->> 'result_filename' AS result_filename,
             value ->> 'result_content_type' AS result_content_type,
             value ->> 'result_size' AS result_size, value ->> 'finished_at' AS finished_at,
             value ->> 'result_parts' AS result_parts,
             value ->> 'history' AS history, value ->> 'steps' AS steps
      FROM json_each(?1)) AS v
WHERE offload_jobs.id = v.id AND offload_jobs.task_id = v.task_id
  AND offload_jobs.attempts = v.attempts AND +offload_jobs.status = 'running'
RETURNING *";
