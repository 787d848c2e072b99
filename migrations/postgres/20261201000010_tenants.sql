-- Tenants (#18): every job is one tenant's; existing jobs are the default tenant's. Every
-- listing is one tenant's, newest first, so the tenant leads the listing index (which takes
-- the place of the plain created_at one: no index more per row version, #17).
ALTER TABLE offload_jobs ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS offload_jobs_by_tenant ON offload_jobs (tenant, created_at DESC, id DESC);
DROP INDEX IF EXISTS offload_jobs_by_created;
