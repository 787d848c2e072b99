-- Each apalis task knows its job's tenant (#18), as on Postgres, where the claim takes tasks
-- round-robin across tenants. (SQLite's workers still use apalis-sqlite's own claim.)
ALTER TABLE Jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
