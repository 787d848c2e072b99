-- Unique keys that most rows do not have (#17): a btree indexes NULLs too, so every version of
-- every job row added an entry to each of these two indexes although no job without an
-- idempotency key can conflict. Partial, they hold only the rows that have one.
CREATE UNIQUE INDEX IF NOT EXISTS offload_jobs_by_idempotency_key ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE offload_jobs DROP CONSTRAINT IF EXISTS offload_jobs_idempotency_key_key;

-- apalis's own (job_type, idempotency_key) key: same name, so its migrations still find it;
-- none of its statements names it in ON CONFLICT.
DROP INDEX IF EXISTS apalis.idx_jobs_idempotency_key;
CREATE UNIQUE INDEX IF NOT EXISTS idx_jobs_idempotency_key ON apalis.jobs (job_type, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
