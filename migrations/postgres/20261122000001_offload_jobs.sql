-- offload's own job table: everything the API shows about a job. apalis keeps its own task
-- tables (schema `apalis`); each of our rows points at its current apalis task (`task_id`).
-- Portable types (TEXT ids, BIGINT unix microseconds) let one set of statements serve both
-- Postgres and SQLite.
CREATE TABLE IF NOT EXISTS offload_jobs (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    args                TEXT NOT NULL,
    task_id             TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    progress_percent    BIGINT NOT NULL DEFAULT 0,
    progress_message    TEXT,
    error_code          TEXT,
    error_message       TEXT,
    input_key           TEXT,
    input_filename      TEXT,
    input_content_type  TEXT,
    input_size          BIGINT,
    input_format        TEXT,
    result_key          TEXT,
    result_filename     TEXT,
    result_content_type TEXT,
    result_size         BIGINT,
    idempotency_key     TEXT UNIQUE,
    created_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    updated_at          BIGINT NOT NULL
);

-- GET /jobs: newest first, optionally by status or kind, paged by (created_at, id).
CREATE INDEX IF NOT EXISTS offload_jobs_by_created ON offload_jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS offload_jobs_by_status ON offload_jobs (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS offload_jobs_by_kind ON offload_jobs (kind, created_at DESC, id DESC);
