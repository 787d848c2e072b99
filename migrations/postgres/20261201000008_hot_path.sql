-- Fewer index entries per job (#17). An update that cannot be HOT writes a new entry into
-- every index of the table, so each index costs every insert, claim and finish.
-- apalis-postgres 1.0 leaves two pairs of identical indexes on apalis.jobs (its first
-- migration's unique_job_id and LIdx, beside the primary key and idx_apalis_jobs_lock_by that
-- later ones added): keep one of each.
DROP INDEX IF EXISTS apalis.unique_job_id;
DROP INDEX IF EXISTS apalis.lidx;

-- The sweeper's indexes only ever look at finished jobs: queued and running ones need no
-- entry (the sweeper's statements say `finished_at < $1`, which implies the predicate).
DROP INDEX IF EXISTS offload_jobs_to_expire;
CREATE INDEX IF NOT EXISTS offload_jobs_to_expire ON offload_jobs (finished_at)
    WHERE expired_at IS NULL AND finished_at IS NOT NULL;
DROP INDEX IF EXISTS offload_jobs_by_finished;
CREATE INDEX IF NOT EXISTS offload_jobs_by_finished ON offload_jobs (finished_at)
    WHERE finished_at IS NOT NULL;

-- Room on each page for the new version of a row, so that updates touching no indexed column
-- (progress, steps, heartbeats of a running attempt) stay on the page (HOT).
ALTER TABLE offload_jobs SET (fillfactor = 85);
ALTER TABLE apalis.jobs SET (fillfactor = 85);
