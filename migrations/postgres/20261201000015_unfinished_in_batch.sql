-- A batch job's end counts its batch's unfinished jobs (the once-only callback, #18). Through
-- offload_jobs_by_batch that count read every job of the batch, so a 1,000-job batch read
-- ~500,000 rows over its life. This index holds only the unfinished jobs of batches (an entry
-- is left behind with the job's end), so the count reads what is left. finished_at is indexed
-- already: no update that could be HOT stops being so.
CREATE INDEX IF NOT EXISTS offload_jobs_unfinished_in_batch ON offload_jobs (batch_id)
    WHERE batch_id IS NOT NULL AND finished_at IS NULL;
