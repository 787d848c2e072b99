-- Priorities (#18): `interactive`, `normal` (the default), `bulk`, kept with the job and as
-- the apalis task's priority (2, 1, 0), by which the claim orders. Tasks already waiting
-- were all priority 0: they are normal.
ALTER TABLE offload_jobs ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
UPDATE Jobs SET priority = 1 WHERE priority = 0 AND status IN ('Pending', 'Failed');
