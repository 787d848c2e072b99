//! SQL on `offload_jobs` shared by both engines.
//!
//! Statements are written with Postgres's `$N` placeholders. SQLite reads `$N` as a *named*
//! parameter numbered by first appearance, which would silently misbind a statement that
//! mentions `$3` before `$2`; [`for_engine`] rewrites them to SQLite's positional `?N`.

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::Db;

/// The statement for `db`. Built only from the constants below, never from input.
pub(super) fn for_engine(db: &Db, text: &'static str) -> SqlStr {
    match db {
        Db::Postgres(_) => text.into_sql_str(),
        Db::Sqlite(_) => AssertSqlSafe(text.replace('$', "?")).into_sql_str(),
    }
}

pub(super) const GET: &str = "SELECT * FROM offload_jobs WHERE id = $1";

pub(super) const STATUS: &str = "SELECT status FROM offload_jobs WHERE id = $1";

/// The filters and page of [`LIST`] and [`LIST_IN_BATCH`]: `$1` status, `$2` kind, `$3`/`$4`
/// the cursor, `$5` the page size, `$6` the tenant, `$7..$10` label patterns, `$11` created
/// before, `$12` the batch.
macro_rules! list_filters {
    () => {
        "tenant = $6 AND ($1 IS NULL OR status = $1) AND ($12 IS NULL OR batch_id = $12)
  AND ($7 IS NULL OR metadata LIKE $7 ESCAPE '!') AND ($8 IS NULL OR metadata LIKE $8 ESCAPE '!')
  AND ($9 IS NULL OR metadata LIKE $9 ESCAPE '!') AND ($10 IS NULL OR metadata LIKE $10 ESCAPE '!')
  AND ($11 IS NULL OR created_at < $11)
  AND ($2 IS NULL OR kind = $2)
  AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4))
ORDER BY created_at DESC, id DESC
LIMIT $5"
    };
}

pub(super) const LIST: &str = concat!("SELECT * FROM offload_jobs WHERE ", list_filters!());

/// [`LIST`] within one batch (`$12`), read by the batch's index rather than the tenant's rows
/// (a generic plan of `$12 IS NULL OR ...` could not use it).
pub(super) const LIST_IN_BATCH: &str = concat!(
    "SELECT * FROM offload_jobs WHERE batch_id = $12 AND ",
    list_filters!()
);

pub(super) const BY_IDEMPOTENCY_KEY: &str = "SELECT * FROM offload_jobs WHERE idempotency_key = $1";

pub(super) const CANCEL: &str = "\
UPDATE offload_jobs
SET status = 'cancelled', progress_message = 'cancelled', finished_at = $2, updated_at = $2
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING *";

pub(super) const RETRY: &str = "\
UPDATE offload_jobs
SET status = 'queued', task_id = $2, attempts = 0, error_code = NULL, error_message = NULL,
    progress_percent = 0, progress_message = 'queued', started_at = NULL, finished_at = NULL,
    attempt_errors = NULL, updated_at = $3, steps = $4
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING *";

/// A step checkpoint of the running attempt (fenced by its lease).
pub(super) const SET_STEPS: &str = "\
UPDATE offload_jobs SET steps = $4, updated_at = $5
WHERE id = $1 AND task_id = $2 AND attempts = $3 AND status = 'running'
RETURNING *";

/// Steps of a job that has ended (its `notify` step).
pub(super) const SET_FINAL_STEPS: &str =
    "UPDATE offload_jobs SET steps = $2, updated_at = $3 WHERE id = $1 RETURNING *";

pub(super) const PARTS: &str =
    "SELECT * FROM offload_jobs WHERE parent_id = $1 ORDER BY part_index";

/// One part of merge job `$1` succeeded: one fewer to wait for, progress up to 90%.
pub(super) const PART_SUCCEEDED: &str = "\
UPDATE offload_jobs
SET waiting_parts = waiting_parts - 1,
    progress_percent = 90 * ((SELECT COUNT(*) FROM offload_jobs p WHERE p.parent_id = $1)
        - waiting_parts + 1) / (SELECT COUNT(*) FROM offload_jobs p WHERE p.parent_id = $1),
    progress_message = CASE WHEN waiting_parts = 1 THEN 'parts converted; waiting to merge'
        ELSE 'converted ' || CAST((SELECT COUNT(*) FROM offload_jobs p WHERE p.parent_id = $1)
            - waiting_parts + 1 AS TEXT)
        || ' of ' || CAST((SELECT COUNT(*) FROM offload_jobs p WHERE p.parent_id = $1) AS TEXT)
        || ' parts' END,
    updated_at = $2
WHERE id = $1 AND status = 'queued' AND waiting_parts > 0
RETURNING *";

/// A part of merge job `$1` failed for good (or was cancelled): so does the merge job.
pub(super) const PART_FAILED: &str = "\
UPDATE offload_jobs
SET status = 'failed', error_code = $2, error_message = $3, progress_message = 'failed',
    finished_at = $4, updated_at = $4
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING *";

/// Cancels the unfinished parts of merge job `$1`.
pub(super) const CANCEL_PARTS: &str = "\
UPDATE offload_jobs
SET status = 'cancelled', progress_message = $3, finished_at = $2, updated_at = $2
WHERE parent_id = $1 AND status IN ('queued', 'running')
RETURNING *";

/// A retried merge job waits for its parts that have not succeeded.
pub(super) const WAIT_FOR_PARTS: &str = "\
UPDATE offload_jobs
SET waiting_parts = (SELECT COUNT(*) FROM offload_jobs p WHERE p.parent_id = $1 AND p.status <> 'succeeded')
WHERE id = $1
RETURNING *";

pub(super) const DELETE_PARTS: &str = "DELETE FROM offload_jobs WHERE parent_id = $1 RETURNING *";

pub(super) const DELETE: &str = "DELETE FROM offload_jobs WHERE id = $1 RETURNING *";

pub(super) const PROGRESS: &str = "\
UPDATE offload_jobs
SET progress_percent = $4, progress_message = $5, updated_at = $6
WHERE id = $1 AND task_id = $2 AND attempts = $3 AND status = 'running'
RETURNING *";

pub(super) const SUCCEED: &str = "\
UPDATE offload_jobs
SET status = 'succeeded', progress_percent = 100, progress_message = 'done',
    error_code = NULL, error_message = NULL,
    result_key = $4, result_filename = $5, result_content_type = $6, result_size = $7,
    finished_at = $8, updated_at = $8, attempt_errors = $9, steps = $10, result_parts = $11
WHERE id = $1 AND task_id = $2 AND attempts = $3 AND status = 'running'
RETURNING *";

pub(super) const FAIL: &str = "\
UPDATE offload_jobs
SET status = $4, error_code = $5, error_message = $6, finished_at = $7, updated_at = $8,
    progress_message = $9, attempt_errors = $10
WHERE id = $1 AND task_id = $2 AND attempts = $3 AND status = 'running'
RETURNING *";

pub(super) const COUNTS: &str =
    "SELECT tenant, kind, status, COUNT(*) FROM offload_jobs GROUP BY tenant, kind, status";

/// Finished jobs whose files may go: a merge job and its parts are one unit, so a part waits
/// until its merge job has finished (and would expire) too.
pub(super) const EXPIRABLE: &str = "\
SELECT j.* FROM offload_jobs j
LEFT JOIN offload_jobs p ON p.id = j.parent_id
WHERE j.expired_at IS NULL AND j.finished_at IS NOT NULL AND j.finished_at < $1
  AND (p.id IS NULL OR (p.finished_at IS NOT NULL AND p.finished_at < $1))
ORDER BY j.finished_at
LIMIT $2";

pub(super) const MARK_EXPIRED: &str =
    "UPDATE offload_jobs SET expired_at = $2, updated_at = $2 WHERE id = $1 AND expired_at IS NULL";

/// Old finished rows, a merge job with its parts as one unit (as in [`EXPIRABLE`]).
pub(super) const PRUNE: &str = "\
DELETE FROM offload_jobs
WHERE id IN (
  SELECT j.id FROM offload_jobs j
  LEFT JOIN offload_jobs p ON p.id = j.parent_id
  WHERE j.finished_at < $1 AND (p.id IS NULL OR (p.finished_at IS NOT NULL AND p.finished_at < $1))
  ORDER BY j.finished_at LIMIT $2)
RETURNING *";

/// Batches created before `$1` whose jobs are all gone, and whose callback (if queued) has
/// been delivered or given up on (its delivery reads the batch).
pub(super) const PRUNE_BATCHES: &str = "\
DELETE FROM offload_batches
WHERE created_at < $1
  AND NOT EXISTS (SELECT 1 FROM offload_jobs j WHERE j.batch_id = offload_batches.id)
  AND NOT EXISTS (SELECT 1 FROM offload_jobs d
                  WHERE d.id = offload_batches.delivery_id AND d.finished_at IS NULL)";

/// Takes (or renews an expired) named lease; returns a row only to the winner.
pub(super) const ACQUIRE_LEASE: &str = "\
INSERT INTO offload_leases (name, holder, until) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = $2, until = $3 WHERE offload_leases.until < $4
RETURNING holder";

pub(super) const REQUEUE_INTERRUPTED: &str = "\
UPDATE offload_jobs
SET status = 'queued', progress_message = 'interrupted by a worker shutdown; waiting for a worker',
    updated_at = $4
WHERE id = $1 AND task_id = $2 AND attempts = $3 AND status = 'running'
RETURNING *";

pub(super) const STORED_BYTES: &str = "\
SELECT CAST(COALESCE(SUM(COALESCE(input_size, 0) + COALESCE(result_size, 0)), 0) AS BIGINT)
FROM offload_jobs WHERE tenant = $1 AND expired_at IS NULL";

pub(super) const QUEUED_COUNT: &str =
    "SELECT COUNT(*) FROM offload_jobs WHERE status = 'queued' AND tenant = $1";
