-- The caller's labels on a job (#18): compact JSON of up to 16 string keys, or NULL.
ALTER TABLE offload_jobs ADD COLUMN metadata TEXT;
