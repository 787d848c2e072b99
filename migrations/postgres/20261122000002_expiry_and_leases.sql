-- Retention: when a finished job's files were deleted by the sweeper (its result then answers
-- 410), and a cheap way to find the next jobs to expire.
ALTER TABLE offload_jobs ADD COLUMN expired_at BIGINT;
CREATE INDEX IF NOT EXISTS offload_jobs_to_expire ON offload_jobs (finished_at) WHERE expired_at IS NULL;
CREATE INDEX IF NOT EXISTS offload_jobs_by_finished ON offload_jobs (finished_at);

-- Cluster-wide leases: a periodic task (the sweeper) runs in one process per period.
CREATE TABLE IF NOT EXISTS offload_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
