-- Workflows. `steps`: a JSON array of {name, status, attempt, started_at, finished_at, output}
-- — each step's checkpoint, so a new attempt resumes after the last finished step.
ALTER TABLE offload_jobs ADD COLUMN steps TEXT;
-- Fan-out/fan-in: a merge job (the parent) and its parts (children, in upload order). The
-- parent has no apalis task until `waiting_parts` reaches 0 (its last part succeeded).
ALTER TABLE offload_jobs ADD COLUMN parent_id TEXT;
ALTER TABLE offload_jobs ADD COLUMN part_index BIGINT;
ALTER TABLE offload_jobs ADD COLUMN waiting_parts BIGINT;
-- Completion webhooks and delayed jobs.
ALTER TABLE offload_jobs ADD COLUMN callback_url TEXT;
ALTER TABLE offload_jobs ADD COLUMN run_at BIGINT;
CREATE INDEX IF NOT EXISTS offload_jobs_by_parent ON offload_jobs (parent_id, part_index)
    WHERE parent_id IS NOT NULL;
