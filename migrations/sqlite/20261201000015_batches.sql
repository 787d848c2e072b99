-- Batches (#18); see the Postgres migration of the same name.
CREATE TABLE IF NOT EXISTS offload_batches (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    callback_url    TEXT,
    idempotency_key TEXT UNIQUE,
    delivery_id     TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS offload_batches_by_created ON offload_batches (created_at);

ALTER TABLE offload_jobs ADD COLUMN batch_id TEXT;
ALTER TABLE offload_jobs ADD COLUMN batch_index BIGINT;
ALTER TABLE offload_jobs ADD COLUMN batch_notify BIGINT;
CREATE INDEX IF NOT EXISTS offload_jobs_by_batch ON offload_jobs (batch_id, batch_index)
    WHERE batch_id IS NOT NULL;
