-- offload's SQLite claim (#17, #18): the tenants with due tasks by a skip scan, then each
-- tenant's queue in apalis's order — both from this index. Its planner statistics say what
-- is true of a queue table (a kind and status name many rows, a tenant fewer), as the
-- figures of `…05_planner_stats.sql` do for apalis's own indexes.
CREATE INDEX IF NOT EXISTS offload_fair_claim ON Jobs (job_type, status, tenant, priority DESC, run_at);
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'offload_fair_claim';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('Jobs', 'offload_fair_claim', '100000 20000 10000 1000 500 1');
ANALYZE sqlite_schema;
