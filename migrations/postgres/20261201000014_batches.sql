-- Batches (#18): jobs submitted together, followed as one, with a callback fired once when
-- every job in it has ended. Counts are read from the jobs (by the partial index below), never
-- kept here, so retries and deletes cannot leave them wrong.
CREATE TABLE IF NOT EXISTS offload_batches (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    callback_url    TEXT,
    -- Tenant-prefixed, like a job's; NULLs are distinct, so only given keys collide.
    idempotency_key TEXT UNIQUE,
    -- The callback's delivery job, once queued (it is queued once, ever).
    delivery_id     TEXT,
    created_at      BIGINT NOT NULL
);
-- The sweeper's purge of batches whose jobs are all gone.
CREATE INDEX IF NOT EXISTS offload_batches_by_created ON offload_batches (created_at);

ALTER TABLE offload_jobs
    ADD COLUMN IF NOT EXISTS batch_id TEXT,
    ADD COLUMN IF NOT EXISTS batch_index BIGINT,
    -- 1: the batch has a callback, so the job's end checks whether it was the last.
    ADD COLUMN IF NOT EXISTS batch_notify BIGINT;
CREATE INDEX IF NOT EXISTS offload_jobs_by_batch ON offload_jobs (batch_id, batch_index)
    WHERE batch_id IS NOT NULL;
