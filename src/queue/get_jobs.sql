-- apalis-postgres 1.0's apalis.get_jobs, with the claimed ids looked up by primary key.
-- Its stock body joins the UPDATE to the claiming CTE; the function's plan is generic (the
-- batch size is a parameter), and Postgres 15 plans that join as a hash over every row of
-- apalis.jobs: 18 ms per fetch with 50,000 finished tasks in the table, 3.5 ms this way
-- (EXPLAIN ANALYZE on a seeded copy, plan_cache_mode = force_generic_plan). Same claim
-- (FOR UPDATE SKIP LOCKED, same order and filter), same result rows. offload applies it after
-- every migration run, so an apalis upgrade that rewrites the function cannot undo it
-- unnoticed (tests/api/queue_plans.rs checks the installed body).
CREATE OR REPLACE FUNCTION apalis.get_jobs(
    worker_id TEXT,
    v_job_type TEXT,
    v_job_count INTEGER DEFAULT 5
)
RETURNS SETOF apalis.jobs
LANGUAGE sql
VOLATILE
AS $$
    UPDATE apalis.jobs j
    SET
        status = 'Queued',
        lock_by = worker_id,
        lock_at = now()
    WHERE j.id = ANY(ARRAY(
        SELECT id
        FROM apalis.jobs
        WHERE
            (
                status = 'Pending'
                OR (
                    status = 'Failed'
                    AND attempts < max_attempts
                )
            )
            AND run_at < now()
            AND job_type = v_job_type
        ORDER BY priority DESC, run_at ASC
        LIMIT v_job_count
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.*;
$$;
