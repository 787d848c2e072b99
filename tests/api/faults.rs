//! Faults with real processes and real signals: a worker killed mid-job, shutdown with and
//! without patience, and a storage outage. Nothing accepted is lost; nothing runs twice.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::processes::{Process, shared_env};

/// Counts every transition of a job to `succeeded` in a table of its own (installed by the
/// test in its private database), so "completed exactly once" is a fact, not an inference.
async fn install_completion_counter(db: &TestDatabase, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE TABLE completions (job_id TEXT NOT NULL)",
            "CREATE FUNCTION count_completion() RETURNS trigger AS $$ \
             BEGIN INSERT INTO completions (job_id) VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER count_completion AFTER UPDATE OF status ON offload_jobs FOR EACH ROW \
             WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded') EXECUTE FUNCTION count_completion()",
        ],
        Backend::Sqlite => &[
            "CREATE TABLE completions (job_id TEXT NOT NULL)",
            "CREATE TRIGGER count_completion AFTER UPDATE OF status ON offload_jobs \
             WHEN NEW.status = 'succeeded' AND OLD.status <> 'succeeded' \
             BEGIN INSERT INTO completions (job_id) VALUES (NEW.id); END",
        ],
    };
    for statement in statements {
        execute(&db.url, statement).await;
    }
}

/// Runs one statement on the test's database, whichever engine it is.
async fn execute(url: &str, statement: &str) {
    let sql = sqlx::AssertSqlSafe(statement.to_string());
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn completions(db: &TestDatabase) -> Vec<String> {
    const SQL: &str = "SELECT job_id FROM completions";
    if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// Job ids from a worker's `attempt <event>` log lines, until `want` distinct ones were seen.
fn logged(worker: &Process, event: &str, want: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut ids = BTreeSet::new();
    while ids.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = worker
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only {} of {want} `{event}`", ids.len()));
        if line.contains(&format!("attempt {event}"))
            && let Some(id) = line
                .split("job_id=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
        {
            ids.insert(id.to_string());
        }
    }
    ids
}

async fn a_killed_workers_jobs_finish_exactly_once_elsewhere(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let env = shared_env(&db, dir.path());
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    install_completion_counter(&db, backend).await;
    let first = Process::start(&["worker"], &env);
    first.wait_for_line("worker started");

    let jobs: Vec<Value> = (0..20)
        .map(|_| json!({"kind": "sleep", "args": {"seconds": 3}}))
        .collect();
    let created: Value = Api::at(&base).create_batch(jobs).await;
    let ids: BTreeSet<String> = created["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    let running = tokio::task::block_in_place(|| logged(&first, "started", 20));
    assert_eq!(running, ids, "all 20 run on the first worker");

    let second = Process::start(&["worker"], &env);
    second.wait_for_line("worker started");
    let mut first = first;
    first.kill();
    let finished = tokio::task::block_in_place(|| logged(&second, "succeeded", 20));
    assert_eq!(finished, ids, "the second worker finished every job");

    let counted = completions(&db).await;
    assert_eq!(counted.len(), 20, "20 completions, none twice: {counted:?}");
    assert_eq!(counted.iter().collect::<BTreeSet<_>>().len(), 20);
    for id in &ids {
        let job: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(job["status"], "succeeded");
        assert_eq!(job["attempts"], 2, "the lost attempt counts: {job}");
        assert_eq!(job["attempt_errors"][0]["code"], "worker_lost", "{job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_jobs_finish_exactly_once_elsewhere_on_postgres() {
    a_killed_workers_jobs_finish_exactly_once_elsewhere(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_jobs_finish_exactly_once_elsewhere_on_sqlite() {
    a_killed_workers_jobs_finish_exactly_once_elsewhere(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_shutdown_deadline_running_jobs_go_back_to_the_queue() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_env(&db, dir.path());
    env.push(("SHUTDOWN_GRACE_SECS", "1".into()));
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let mut worker = Process::start(&["worker"], &env);
    worker.wait_for_line("worker started");
    // Far longer than the grace period: the attempt can only end at the deadline. (A job that
    // could finish within it made this test wait for a requeue that never came whenever the
    // signal reached the worker a second late: the job had simply succeeded.)
    let job = Api::at(&base)
        .post_json(
            "/api/v1/jobs",
            &json!({"kind": "sleep", "args": {"seconds": 3600}}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = id_of(&job);
    tokio::task::block_in_place(|| worker.wait_for_line("attempt started"));
    worker.signal(libc::SIGTERM);
    let line = tokio::task::block_in_place(|| worker.wait_for_line("went back to the queue"));
    assert!(line.contains("requeued=1"), "{line}");
    assert_eq!(
        worker.wait_exit(),
        Some(0),
        "a clean exit after the grace period"
    );
    let job: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "queued", "not failed: {job}");
    assert_eq!(job["attempts"], 1, "{job}");

    // Another worker picks it up at once (no lease to wait out).
    let next = Process::start(&["worker"], &env);
    let started = tokio::task::block_in_place(|| next.wait_for_line("attempt started"));
    assert!(started.contains(&id), "{started}");
    let job: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["attempts"], 2, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_env(&db, dir.path());
    env.push(("SHUTDOWN_GRACE_SECS", "600".into()));
    let mut server = Process::start(&["serve"], &env);
    let base = server.wait_listening();
    reqwest::Client::new()
        .post(format!("{base}/api/v1/jobs"))
        .json(&json!({"kind": "sleep", "args": {"seconds": 600}}))
        .send()
        .await
        .unwrap();
    tokio::task::block_in_place(|| server.wait_for_line("attempt started"));
    server.signal(libc::SIGTERM);
    tokio::task::block_in_place(|| server.wait_for_line("shutting down"));
    server.signal(libc::SIGTERM);
    // Without the second signal it would wait out the 10-minute grace period.
    assert_eq!(server.wait_exit(), Some(130));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_fails_the_attempt_transiently_and_it_retries() {
    require_libreoffice();
    // An API-only app accepts the upload; no worker runs yet.
    let api = spawn_app_with(Backend::Sqlite, offload::app::Role::Api, |s| {
        s.worker.retry_backoff_ms = 500
    })
    .await;
    let id = id_of(&api.upload("deck5.pptx").await);
    let input = api.storage_dir.join(format!("jobs/{id}/input"));
    let hidden = api.storage_dir.join(format!("{id}.away"));
    std::fs::rename(&input, &hidden).unwrap();

    let worker =
        offload::app::Application::build(api.settings_for_worker(), offload::app::Role::Worker)
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // The first attempt cannot read the input: a retryable failure, the job waits to retry.
    let events = api
        .events_until(&id, |e| e["status"] == "queued" && e["attempts"] == 1)
        .await;
    let waiting = events.last().unwrap();
    assert_eq!(waiting["error"]["code"], "storage_unavailable", "{waiting}");
    // The store is back: the retry succeeds.
    std::fs::rename(&hidden, &input).unwrap();
    let done = api.wait_final(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// The apalis worker rows (what the board's Workers tab lists) of process `pid`.
async fn worker_rows(db: &TestDatabase, pid: i32) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers WHERE id LIKE $1")
        .bind(format!("%-{pid}-%"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Waits until process `pid`'s workers have registered (apalis does it when they first poll,
/// after the process says it started; another process's database rows are not an event we can
/// await from here, so this polls, up to [`PATIENCE`]).
async fn wait_registered(db: &TestDatabase, pid: i32) {
    let deadline = Instant::now() + PATIENCE;
    while worker_rows(db, pid).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the workers of {pid} never registered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_leave_the_board_when_they_stop_or_die() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let env = shared_env(&db, dir.path());
    let mut clean = Process::start(&["worker"], &env);
    clean.wait_for_line("worker started");
    let pid = clean.pid();
    wait_registered(&db, pid).await;
    clean.signal(libc::SIGTERM);
    assert_eq!(clean.wait_exit(), Some(0));
    assert_eq!(
        worker_rows(&db, pid).await,
        0,
        "a clean stop takes it off the list"
    );

    let mut killed = Process::start(&["worker"], &env);
    killed.wait_for_line("worker started");
    let pid = killed.pid();
    wait_registered(&db, pid).await;
    killed.kill();
    assert!(
        worker_rows(&db, pid).await > 0,
        "a killed worker cannot say goodbye"
    );
    // A live worker takes it off once it has been silent for two leases (here 4 s).
    let mut survivor_env = env.clone();
    survivor_env.push(("WORKER_LEASE_SECS", "2".into()));
    let survivor = Process::start(&["worker"], &survivor_env);
    survivor.wait_for_line("worker started");
    survivor.wait_for_line("dead workers taken off the board");
    assert_eq!(
        worker_rows(&db, pid).await,
        0,
        "the live worker took the dead one off"
    );
    assert!(
        worker_rows(&db, survivor.pid()).await > 0,
        "and left itself on"
    );
}
