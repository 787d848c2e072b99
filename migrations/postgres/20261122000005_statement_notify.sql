-- One NOTIFY per job kind per INSERT statement instead of one per row (#8).
-- apalis's trigger runs FOR EACH ROW with a payload unique to each row, so Postgres cannot fold
-- them: a 1,000-job batch queued 1,000 notifications, and every listening worker woke 1,000
-- times to fetch a queue it had already emptied. A worker only needs "kind K has new work"
-- once per statement; it then fetches in batches. The payload keeps apalis's shape
-- ({job_type, id, run_at}) so its listener reads it unchanged. Delayed jobs (run_at in the
-- future) still notify nobody: the poll interval finds them.
DROP TRIGGER IF EXISTS notify_workers ON apalis.jobs;

CREATE OR REPLACE FUNCTION apalis.offload_notify_new_jobs() RETURNS TRIGGER AS $$
DECLARE
    kind record;
BEGIN
    FOR kind IN
        SELECT job_type, min(id) AS id, min(run_at) AS run_at
        FROM new_jobs WHERE run_at <= now() GROUP BY job_type
    LOOP
        PERFORM pg_notify(
            'apalis::job::insert',
            json_build_object('job_type', kind.job_type, 'id', kind.id, 'run_at', kind.run_at)::text
        );
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER notify_workers
AFTER INSERT ON apalis.jobs
REFERENCING NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION apalis.offload_notify_new_jobs();
