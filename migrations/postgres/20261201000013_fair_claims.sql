-- Fair claims (#18): each apalis task knows its job's tenant, so the claim can take tasks
-- round-robin across the tenants that have work waiting instead of oldest first (one tenant's
-- 100,000-job backfill would otherwise hold every other tenant behind it). The index serves
-- both the skip scan over waiting tenants and each tenant's queue in claim order; it holds
-- only pending tasks, so a claimed or finished task leaves it and adds no entry.
ALTER TABLE apalis.jobs ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS offload_fair_claim ON apalis.jobs (job_type, tenant, priority DESC, run_at)
    WHERE status = 'Pending';
