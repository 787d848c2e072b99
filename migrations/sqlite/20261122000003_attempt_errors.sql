-- Every failed attempt's error, as a JSON array of {attempt, code, message, at}: a dead job
-- shows its whole history, not only the last error.
ALTER TABLE offload_jobs ADD COLUMN attempt_errors TEXT;
