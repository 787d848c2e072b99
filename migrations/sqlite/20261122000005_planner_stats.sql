-- Planner statistics for apalis's `Jobs` table, so its per-batch statements stay index
-- lookups as the table grows (#8). Without statistics SQLite guesses that `lock_by = ?` and
-- `status = ?` are selective, and plans
--   * the ack (`UPDATE Jobs … FROM json_each(?) WHERE Jobs.id = j.task_id AND lock_by = ?`)
--     as a walk over every row this worker ever locked — done ones included, since apalis
--     never clears `lock_by` — re-parsing the JSON array for each: cost grows with history;
--   * the lock (`… WHERE id IN (SELECT value FROM json_each(?)) AND status IN (…)`) as a walk
--     over every pending row: cost grows with the backlog.
-- That is why a raw apalis-sqlite drain falls from ~800 jobs/s with 2,000 queued jobs to ~80
-- with 20,000. These rows say what is true of a queue table: an id names one row, a worker or
-- a status names a large share of them. SQLite reads them when it loads the schema; a later
-- `ANALYZE` replaces them with measured figures, which say the same once the table is large.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('Jobs', 'sqlite_autoindex_Jobs_1', '100000 1'),
    ('Jobs', 'LIdx', '100000 50000'),
    ('Jobs', 'idx_jobs_status_run_at', '100000 20000 2');
ANALYZE sqlite_schema; -- reloads the figures on this connection too
