//! The queue's hot statements stay cheap as its tables grow (#8) — checked through what the
//! database says it will do and what it sends, never through timings.

use std::collections::HashSet;
use std::time::Duration;

use offload::app::Role;
use offload::queue::NewJob;
use serde_json::{Value, json};

use crate::helpers::*;

/// apalis-sqlite 1.0's ack (`queries/task/ack.sql`) and lock (`queries/task/lock.sql`), as
/// its workers run them after every batch of tasks.
const APALIS_SQLITE_ACK: &str = "\
WITH j AS (SELECT value ->> 'task_id' AS task_id, value ->> 'attempt' AS attempt,
                  value ->> 'result' AS result, value ->> 'status' AS status
           FROM json_each(?1))
UPDATE Jobs SET status = j.status, attempts = j.attempt, last_result = j.result,
    done_at = strftime('%s', 'now')
FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?2";
const APALIS_SQLITE_LOCK: &str = "\
UPDATE Jobs SET status = 'Running', lock_at = strftime('%s', 'now'), lock_by = ?2
WHERE id IN (SELECT value FROM json_each(?1))
  AND (status = 'Queued' OR status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))";

/// Without planner statistics SQLite walks every row the worker ever locked (the ack) or
/// every pending row (the lock) for each batch: a drain that slows as the backlog grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acks_and_locks_find_tasks_by_id() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |_| {}).await;
    let pool = sqlx::SqlitePool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    for sql in [APALIS_SQLITE_ACK, APALIS_SQLITE_LOCK] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&pool)
                .await
                .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
        let by_id = plan
            .iter()
            .any(|step| step.contains("SEARCH Jobs USING INDEX sqlite_autoindex_Jobs_1"));
        let scans = plan
            .iter()
            .any(|step| step.contains("LIdx") || step.contains("idx_jobs_status_run_at"));
        assert!(by_id && !scans, "{sql}\nplan: {plan:#?}");
    }
    pool.close().await;
}

/// A batch insert tells the workers of a kind once, not once per job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_wakes_the_workers_of_a_kind_once() {
    let app = spawn_app_with(Backend::Postgres, Role::Api, |_| {}).await;
    let mut listener = sqlx::postgres::PgListener::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    listener.listen("apalis::job::insert").await.unwrap();
    let noops = |n| (0..n).map(|_| NewJob::new("noop", json!({}), 3)).collect();
    let batch = app.queue.enqueue(noops(50)).await.unwrap();
    // Notifications arrive in commit order: everything the batch sent comes before this one's.
    let marker = app.queue.enqueue(noops(1)).await.unwrap().remove(0).job;
    let mut from_batch = Vec::new();
    loop {
        let note = tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("the marker job's notification")
            .unwrap();
        let payload: Value = serde_json::from_str(note.payload()).unwrap();
        if payload["id"] == marker.task_id.as_str() {
            break;
        }
        from_batch.push(payload);
    }
    assert_eq!(from_batch.len(), 1, "{from_batch:#?}");
    let task_ids: HashSet<&str> = batch.iter().map(|e| e.job.task_id.as_str()).collect();
    assert_eq!(from_batch[0]["job_type"], "noop");
    assert!(task_ids.contains(from_batch[0]["id"].as_str().unwrap()));
}

/// apalis-postgres 1.0's stock body of `apalis.get_jobs` (its migration
/// `20260902075949_remove_pl_in_get_jobs.sql`), the control: its generic plan hashes the table.
const APALIS_GET_JOBS: &str = "\
    WITH jobs AS (
        SELECT id FROM apalis.jobs
        WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
          AND run_at < now() AND job_type = v_job_type
        ORDER BY priority DESC, run_at ASC LIMIT v_job_count FOR UPDATE SKIP LOCKED)
    UPDATE apalis.jobs j SET status = 'Queued', lock_by = worker_id, lock_at = now()
    FROM jobs WHERE j.id = jobs.id RETURNING j.*";

/// The plan Postgres uses for a body of `apalis.get_jobs` when it runs as the function does:
/// generic, the batch size a parameter.
async fn generic_plan(conn: &mut sqlx::PgConnection, name: &str, body: &str) -> String {
    let sql = body
        .replace("worker_id", "$1")
        .replace("v_job_type", "$2")
        .replace("v_job_count", "$3");
    generic_plan_of(conn, name, &sql).await
}

/// A connection of its own to `app`'s Postgres database.
async fn connect(app: &TestApp) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(app.settings.database.url.expose())
        .await
        .unwrap()
}

/// The fetch that claims a worker's next tasks (here from a backlog of 10,000 beside 50,000
/// finished ones) finds them by id however large the table; the stock body's generic plan hashes every row of apalis.jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fetches_claim_tasks_by_id_at_any_table_size() {
    let app = spawn_app_with(Backend::Postgres, Role::Api, |_| {}).await;
    let mut conn = connect(&app).await;
    sqlx::raw_sql(
        "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, done_at)
         SELECT '\\x00'::bytea, 'done-' || g, 'noop', 'Done', 1, 5, now(), now()
         FROM generate_series(1, 50000) g;
         INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at)
         SELECT '\\x00'::bytea, 'todo-' || g, 'noop', 'Pending', 0, 5, now()
         FROM generate_series(1, 10000) g;
         ANALYZE apalis.jobs;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let installed: String = sqlx::query_scalar(
        "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'apalis' AND p.proname = 'get_jobs'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let body = installed.trim().trim_end_matches(';');
    assert!(
        body.contains("ANY(ARRAY("),
        "offload's body is installed: {body}"
    );
    let ours = generic_plan(&mut conn, "ours", body).await;
    assert!(
        ours.contains("Index Scan using jobs_pkey") && !ours.contains("Seq Scan on jobs"),
        "{ours}"
    );
    let stock = generic_plan(&mut conn, "stock", APALIS_GET_JOBS).await;
    assert!(stock.contains("Seq Scan on jobs"), "the control: {stock}");
}

/// Finished jobs, analyzed, then a burst of 10,000 submissions: Postgres's statistics say
/// almost no job is queued or running. The claim, the attempts' starts, ends and undos still
/// find their batch's jobs by primary key, not by walking `offload_jobs_by_status` over the
/// whole backlog for every batch (which made a drain beside 100,000 finished jobs 20–25%
/// slower than on an empty table); apalis's tasks are acked by primary key too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batch_updates_find_jobs_by_id_after_a_burst() {
    let app = spawn_app_with(Backend::Postgres, Role::Api, |_| {}).await;
    let mut conn = connect(&app).await;
    let jobs = |status: &str, count: u32| {
        format!(
            "INSERT INTO offload_jobs (id, kind, status, args, task_id, max_attempts,
               created_at, updated_at)
             SELECT gen_random_uuid()::text, 'noop', '{status}', '{{}}', '{status}-' || g, 3, g, g
             FROM generate_series(1, {count}) g;"
        )
    };
    // apalis's side: tasks done by a thousand workers, so that a worker's own look few.
    let tasks = "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
           SELECT 'w-' || g, 'noop', 'PgStorage', '', now() FROM generate_series(1, 1000) g;
         INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at,
           done_at, lock_by)
         SELECT '\\x00'::bytea, 'done-' || g, 'noop', 'Done', 1, 5, now(), now(),
           'w-' || (g % 1000 + 1)
         FROM generate_series(1, 50000) g;";
    let seed = format!(
        "{tasks} {} ANALYZE offload_jobs; ANALYZE apalis.jobs; {}",
        jobs("succeeded", 50_000),
        jobs("queued", 10_000)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
        .execute(&mut conn)
        .await
        .unwrap();
    for (name, sql) in offload::queue::POSTGRES_BATCH_UPDATES {
        let plan = generic_plan_of(&mut conn, name, sql).await;
        let updates = subtrees(&plan, "Update on ");
        assert!(!updates.is_empty(), "{name}: {plan}");
        for update in updates {
            assert!(
                update.contains("Index Cond: (id = ")
                    && !update.contains("offload_jobs_by_status")
                    && !update.contains("idx_apalis_jobs_lock_by"),
                "{name}: {plan}"
            );
        }
    }
}

/// The generic plan of `sql` (as a prepared statement run often gets), prepared as `name` and
/// explained with every parameter NULL.
async fn generic_plan_of(conn: &mut sqlx::PgConnection, name: &str, sql: &str) -> String {
    use sqlx::Row;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE {name} AS {sql}"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    let params: i64 = sqlx::query_scalar(
        "SELECT cardinality(parameter_types)::bigint FROM pg_prepared_statements WHERE name = $1",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let nulls = vec!["NULL"; params as usize].join(", ");
    let explain = format!("EXPLAIN (COSTS OFF) EXECUTE {name}({nulls})");
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    lines.join("\n")
}

/// Each node of `plan` whose line contains `node`, with its children (the lines indented
/// deeper below it).
fn subtrees(plan: &str, node: &str) -> Vec<String> {
    let depth = |line: &str| line.len() - line.trim_start().len();
    let lines: Vec<&str> = plan.lines().collect();
    let heads = (0..lines.len()).filter(|&i| lines[i].contains(node));
    heads
        .map(|i| {
            let children = lines[i + 1..]
                .iter()
                .take_while(|line| depth(line) > depth(lines[i]));
            std::iter::once(&lines[i])
                .chain(children)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// offload's Postgres backend (#17): the claim starts the attempt and marks the task
/// `Running` in one statement; the attempt's end acks its task in the statement that records
/// it. After a drain every task is `Done` with apalis's success result, was locked by a worker
/// of this process, and no job ran twice; an index apalis left twice is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_start_attempts_and_their_ends_ack_the_tasks() {
    let app = spawn_app_with(Backend::Postgres, Role::Serve, |_| {}).await;
    let noops = (0..300)
        .map(|_| NewJob::new("noop", json!({}), 3))
        .collect();
    let jobs = app.queue.enqueue(noops).await.unwrap();
    for job in &jobs {
        assert_eq!(
            app.api.wait_final(&job.job.id.to_string()).await["status"],
            "succeeded"
        );
    }
    let mut conn = connect(&app).await;
    let tasks: Vec<(String, i32, Option<Value>, Option<String>)> = sqlx::query_as(
        "SELECT status, attempts, last_result, lock_by FROM apalis.jobs WHERE job_type = 'noop'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(tasks.len(), jobs.len());
    for (status, attempts, result, lock_by) in &tasks {
        assert_eq!(status, "Done");
        assert_eq!(*attempts, 1);
        assert_eq!(result.as_ref(), Some(&json!({"Ok": null})));
        assert!(
            lock_by.as_deref().is_some_and(|w| w.starts_with("noop@")),
            "{lock_by:?}"
        );
    }
    let ran_twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM offload_jobs WHERE kind = 'noop' AND attempts <> 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(ran_twice, 0);
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = 'apalis'
           AND indexname IN ('unique_job_id', 'lidx')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
}

/// A batch job's end counts what is left of its batch (for the batch's callback) by the index
/// of unfinished batch jobs: 1 row read with 999 of the 1,000 ended, not the whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_jobs_end_reads_only_what_is_left_of_its_batch() {
    let app = spawn_app_with(Backend::Postgres, Role::Api, |_| {}).await;
    let jobs = (0..1000)
        .map(|_| NewJob::new("noop", json!({}), 3))
        .collect();
    let batch = offload::model::batch::NewBatch::new(Default::default());
    let id = app.queue.enqueue_batch(batch, jobs).await.unwrap().batch.id;
    let mut conn = connect(&app).await;
    sqlx::query(
        "UPDATE offload_jobs SET status = 'succeeded', finished_at = created_at
         WHERE batch_id = $1 AND batch_index > 0",
    )
    .bind(id.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql("ANALYZE offload_jobs")
        .execute(&mut conn)
        .await
        .unwrap();
    // The statement of `Queue::batch_job_ended` (src/queue/batches.rs).
    let count = format!(
        "SELECT count(*) FROM offload_jobs WHERE batch_id = '{id}' AND finished_at IS NULL \
         AND status IN ('queued', 'running')"
    );
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 1);
    use sqlx::Row;
    let plan: Vec<String> = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {count}"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let scan = plan
        .iter()
        .find(|line| line.contains("offload_jobs_unfinished_in_batch"));
    assert!(
        scan.is_some_and(|line| line.contains("rows=1 loops=1")),
        "{}",
        plan.join("\n")
    );
}
