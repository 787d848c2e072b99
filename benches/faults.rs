//! Crash-recovery benchmark (`scripts/bench-faults`): a worker process running 20 `sleep`
//! jobs is killed with SIGKILL; a second worker takes over. Reports, per backend, how long
//! until every job was running again (recovery) and until every job had succeeded, plus how
//! many jobs were lost or completed twice (a database trigger counts completions).
//!
//! Real processes (`offload api`, `offload worker` ×2), real Postgres (`TEST_POSTGRES_URL`,
//! default the local server) and a real SQLite file. Prints a Markdown table and JSON lines.
//! `BENCH_ROUNDS` (default 3) rounds per backend. Not a test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const JOBS: usize = 20;
const JOB_SECONDS: f64 = 3.0;
const PATIENCE: Duration = Duration::from_secs(120);

/// An `offload` child process whose log lines arrive, time-stamped, on `lines`.
struct Offload {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Offload {
    fn start(role: &str, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offload"));
        cmd.arg(role)
            .env("RUST_LOG", "info,offload::jobs::runner=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start offload");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Offload { child, lines }
    }

    fn wait_for(&self, needle: &str) -> String {
        loop {
            let (_, line) = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// First time each job id appears in an `attempt <event>` line, until `want` ids were seen.
    fn first_seen(&self, event: &str, want: usize) -> BTreeMap<String, Instant> {
        let mut seen = BTreeMap::new();
        let needle = format!("attempt {event}");
        while seen.len() < want {
            let (at, line) = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("only {} of {want} `{needle}`", seen.len()));
            if line.contains(&needle)
                && let Some(id) = line
                    .split("job_id=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
            {
                seen.entry(id.trim_end_matches('}').to_string())
                    .or_insert(at);
            }
        }
        seen
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database of the round's own, with a trigger that counts completions.
struct Database {
    url: String,
    drop_pg: Option<String>,
    _dir: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn execute(url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect to Postgres");
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn completions(url: &str) -> Vec<String> {
    const SQL: &str = "SELECT job_id FROM completions";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

impl Database {
    async fn create(backend: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if backend == "sqlite" {
            let url = format!("sqlite://{}", dir.path().join("offload.db").display());
            return Database {
                url,
                drop_pg: None,
                _dir: dir,
            };
        }
        let name = format!("offload_bench_{}", uuid::Uuid::new_v4().simple());
        execute(&admin_url(), &format!("CREATE DATABASE {name}")).await;
        let (base, _) = admin_url()
            .rsplit_once('/')
            .map(|(b, d)| (b.to_string(), d.to_string()))
            .unwrap();
        Database {
            url: format!("{base}/{name}"),
            drop_pg: Some(name),
            _dir: dir,
        }
    }

    /// Run after migrations (the API process runs them at start).
    async fn count_completions(&self) {
        let statements: &[&str] = if self.url.starts_with("postgres") {
            &[
                "CREATE TABLE completions (job_id TEXT NOT NULL)",
                "CREATE FUNCTION count_completion() RETURNS trigger AS $$ BEGIN INSERT INTO completions (job_id) VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER count_completion AFTER UPDATE OF status ON offload_jobs FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded') EXECUTE FUNCTION count_completion()",
            ]
        } else {
            &[
                "CREATE TABLE completions (job_id TEXT NOT NULL)",
                "CREATE TRIGGER count_completion AFTER UPDATE OF status ON offload_jobs WHEN NEW.status = 'succeeded' AND OLD.status <> 'succeeded' BEGIN INSERT INTO completions (job_id) VALUES (NEW.id); END",
            ]
        };
        for s in statements {
            execute(&self.url, s).await;
        }
    }

    async fn drop_database(self) {
        if let Some(name) = &self.drop_pg {
            execute(
                &admin_url(),
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

struct Round {
    recovery: Duration,
    finished: Duration,
    lost: usize,
    duplicated: usize,
}

async fn round(backend: &str) -> Round {
    let db = Database::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "STORAGE_URL",
            format!("fs://{}", dir.path().join("files").display()),
        ),
        ("WORK_DIR", dir.path().join("work").display().to_string()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("BOARD_ADDR", "127.0.0.1:0".into()),
    ];
    let api = Offload::start("api", &env);
    let line = api.wait_for("listening addr=");
    let addr = line
        .split("listening addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let base = format!("http://{}", addr.trim_start_matches("socket://"));
    db.count_completions().await;
    let mut first = Offload::start("worker", &env);
    first.wait_for("worker started");

    let jobs: Vec<Value> = (0..JOBS)
        .map(|_| json!({"kind": "sleep", "args": {"seconds": JOB_SECONDS}}))
        .collect();
    let created: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/jobs/batch"))
        .json(&json!({"jobs": jobs}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: BTreeSet<String> = created["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    first.first_seen("started", JOBS);
    let second = Offload::start("worker", &env);
    second.wait_for("worker started");

    let killed = Instant::now();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let restarted = second.first_seen("started", JOBS);
    let succeeded = second.first_seen("succeeded", JOBS);
    let recovery = restarted.values().map(|t| *t - killed).max().unwrap();
    let finished = succeeded.values().map(|t| *t - killed).max().unwrap();

    let counted = completions(&db.url).await;
    let distinct: BTreeSet<String> = counted.iter().cloned().collect();
    let result = Round {
        recovery,
        finished,
        lost: ids.difference(&distinct).count(),
        duplicated: counted.len() - distinct.len(),
    };
    drop((second, api));
    db.drop_database().await;
    result
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    println!(
        "| backend | round | all running again after kill | all succeeded after kill | lost | completed twice |"
    );
    println!("|---|---|---|---|---|---|");
    let mut json_lines = Vec::new();
    for backend in ["postgres", "sqlite"] {
        for n in 1..=rounds {
            let r = round(backend).await;
            println!(
                "| {backend} | {n} | {:.1} s | {:.1} s | {} | {} |",
                r.recovery.as_secs_f64(),
                r.finished.as_secs_f64(),
                r.lost,
                r.duplicated
            );
            json_lines.push(json!({
                "bench": "faults", "backend": backend, "round": n, "jobs": JOBS,
                "recovery_s": r.recovery.as_secs_f64(), "finished_s": r.finished.as_secs_f64(),
                "lost": r.lost, "duplicated": r.duplicated,
            }));
        }
    }
    for line in json_lines {
        println!("{line}");
    }
}
