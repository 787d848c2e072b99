-- Export options, password-protected inputs and the result cache (#15).

-- The upload's SHA-256 (the cache's key), a document password sealed under SECRET_KEY, and
-- whether the job was answered from the cache.
ALTER TABLE offload_jobs ADD COLUMN IF NOT EXISTS input_sha256 TEXT;
ALTER TABLE offload_jobs ADD COLUMN IF NOT EXISTS secret TEXT;
ALTER TABLE offload_jobs ADD COLUMN IF NOT EXISTS cache_hit BIGINT;

-- A password lives only as long as its job runs: whatever statement ends the job (an
-- attempt's end, a cancel, a merge failing its parts), the database wipes it there.
CREATE OR REPLACE FUNCTION offload_wipe_secret() RETURNS TRIGGER AS $$
BEGIN
    NEW.secret := NULL;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER offload_jobs_wipe_secret
BEFORE UPDATE ON offload_jobs
FOR EACH ROW
WHEN (NEW.secret IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
EXECUTE FUNCTION offload_wipe_secret();

-- Converted results by what made them: `key` hashes the scope (API key), the input's
-- SHA-256, the canonical options, the output format and offload's version; `converter` is
-- the LibreOffice version that converted it (an entry of another version is not used);
-- `input_sha256` lets deleting a job take its document's cached results along.
CREATE TABLE IF NOT EXISTS offload_cache (
    key          TEXT PRIMARY KEY,
    input_sha256 TEXT NOT NULL,
    converter    TEXT NOT NULL,
    result_key   TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS offload_cache_by_created ON offload_cache (created_at);
CREATE INDEX IF NOT EXISTS offload_cache_by_input ON offload_cache (input_sha256);

-- The LibreOffice versions workers run, newest start last; submits look up cache entries of
-- the newest.
CREATE TABLE IF NOT EXISTS offload_converters (
    version TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
