//! Queue benchmark (`scripts/bench`): how fast offload's queue path is, on Postgres and SQLite,
//! next to the Postgres queues people pick today (pg-boss, graphile-worker, procrastinate),
//! run on the same database server with the same job counts, interleaved A B A B.
//!
//! Figures, per backend, with no-op jobs:
//! - enqueue rate: one job per HTTP request (32 clients at once), 1,000-job batches over HTTP,
//!   and 1,000-job batches through the library;
//! - drain throughput: N jobs queued with no worker running, then one worker process drains
//!   them (N = 10,000 and 100,000 by default);
//! - pickup latency p50/p99: 200 jobs submitted 20 ms apart to a running service, from the
//!   submit's commit (`created_at`) to the attempt's start (`started_at`);
//! - `GET /api/v1/jobs/{id}` requests/s with `wrk` (32 connections, 5 s);
//! - the service's resident memory after the largest drain.
//!
//! Environment: `DATABASE_URL` (a Postgres server to create databases on; default the local
//! one), `BENCH_BACKENDS` (`postgres,sqlite`), `BENCH_DRAIN` (`10000,100000`),
//! `BENCH_ROUNDS` (2), `BENCH_PEERS` (`pg-boss,graphile-worker,procrastinate`, or `none`),
//! `BENCH_PEERS_DIR` (where scripts/bench installed them). Prints a Markdown table, then one
//! JSON line per figure. Not a test: nothing is asserted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use offload::app::{Application, Role};
use offload::queue::{NewJob, Queue};
use offload::settings::Settings;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const BATCH: usize = 1000;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "none")
        .collect()
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin(sql: &str) {
    let pool = sqlx::PgPool::connect(&admin_url())
        .await
        .expect("connect to Postgres (DATABASE_URL)");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// A fresh database of `backend`: its URL and what to drop afterwards.
struct Database {
    url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl Database {
    async fn create(backend: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if backend == "sqlite" {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            return Self {
                url,
                pg_name: None,
                _dir: dir,
            };
        }
        let name = format!("offload_bench_{}", uuid::Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}")).await;
        let base = admin_url()
            .split('?')
            .next()
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .0
            .to_string();
        Self {
            url: format!(
                "{base}/{name}{}",
                admin_url()
                    .split_once('?')
                    .map(|(_, q)| format!("?{q}"))
                    .unwrap_or_default()
            ),
            pg_name: Some(name),
            _dir: dir,
        }
    }

    async fn drop_it(self) {
        if let Some(name) = &self.pg_name {
            admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

fn settings(db: &Database) -> Settings {
    let mut s = Settings::defaults();
    s.database.url = db.url.clone().parse().unwrap();
    s.storage.url = format!("fs://{}", db._dir.path().join("files").display())
        .parse()
        .unwrap();
    s.http.bind = "127.0.0.1:0".parse().unwrap();
    s.http.board = "off".parse().unwrap();
    s.http.max_queued_jobs = 0;
    s.http.uploads_per_minute = 0;
    s.worker.work_dir = Some(db._dir.path().to_path_buf());
    s.retention.sweep_schedule = "0 0 0 1 1 *".parse().unwrap();
    s
}

/// An in-process offload of `role`, stopped on drop.
struct Service {
    base: String,
    queue: Queue,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    async fn start(settings: Settings, role: Role) -> Self {
        let app = Application::build(settings, role)
            .await
            .expect("offload starts");
        let base = app
            .local_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let queue = app.queue().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            queue,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn noops(n: usize) -> Vec<NewJob> {
    (0..n).map(|_| NewJob::new("noop", json!({}), 5)).collect()
}

async fn succeeded(queue: &Queue) -> i64 {
    queue
        .counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|(kind, status, _)| kind == "noop" && status == "succeeded")
        .map(|(_, _, n)| n)
        .sum()
}

/// One figure: what, where, value, unit.
#[derive(Clone)]
struct Figure {
    system: String,
    backend: String,
    what: String,
    value: f64,
    unit: &'static str,
}

fn fig(system: &str, backend: &str, what: &str, value: f64, unit: &'static str) -> Figure {
    let f = Figure {
        system: system.into(),
        backend: backend.into(),
        what: what.into(),
        value,
        unit,
    };
    eprintln!("  {system} {backend} {what}: {value:.1} {unit}");
    f
}

async fn enqueue_figures(backend: &str) -> Vec<Figure> {
    let db = Database::create(backend).await;
    let svc = Service::start(settings(&db), Role::Api).await;
    let client = reqwest::Client::new();
    let mut out = Vec::new();

    // One job per request, 32 clients.
    let n = 4000;
    let started = Instant::now();
    let per_client = n / 32;
    let clients = (0..32).map(|_| {
        let (client, base) = (client.clone(), svc.base.clone());
        async move {
            for _ in 0..per_client {
                let r = client
                    .post(format!("{base}/api/v1/jobs"))
                    .json(&json!({"kind": "noop"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        }
    });
    futures::future::join_all(clients).await;
    let rate = (per_client * 32) as f64 / started.elapsed().as_secs_f64();
    out.push(fig(
        "offload",
        backend,
        "enqueue, one per HTTP request (32 clients)",
        rate,
        "jobs/s",
    ));

    // Batches over HTTP.
    let n = 10_000;
    let body = json!({"jobs": (0..BATCH).map(|_| json!({"kind": "noop"})).collect::<Vec<_>>()});
    let started = Instant::now();
    for _ in 0..n / BATCH {
        let r = client
            .post(format!("{}/api/v1/jobs/batch", svc.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    out.push(fig(
        "offload",
        backend,
        "enqueue 10,000, HTTP batches of 1,000",
        rate,
        "jobs/s",
    ));

    // Batches through the library.
    let started = Instant::now();
    for _ in 0..n / BATCH {
        svc.queue.enqueue(noops(BATCH)).await.unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    out.push(fig(
        "offload",
        backend,
        "enqueue 10,000, library batches of 1,000",
        rate,
        "jobs/s",
    ));
    svc.shutdown().await;
    db.drop_it().await;
    out
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Queues `n` jobs with no worker running, then times one worker draining them: from the
/// worker's start to the last job's `finished_at` (so the 250 ms completion poll, which counts
/// rows, neither adds to the time nor loads the database much).
async fn offload_drain(backend: &str, n: usize) -> (f64, f64) {
    let db = Database::create(backend).await;
    let api = Service::start(settings(&db), Role::Api).await;
    for _ in 0..n.div_ceil(BATCH) {
        api.queue.enqueue(noops(BATCH.min(n))).await.unwrap();
    }
    let started = offload::queue::now_micros();
    let worker = Service::start(settings(&db), Role::Worker).await;
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        let done = succeeded(&api.queue).await as usize;
        if done >= n {
            break;
        }
        if done != last {
            (last, moved) = (done, Instant::now());
        }
        assert!(
            moved.elapsed() < Duration::from_secs(60),
            "the drain of {n} stalled at {done}: {:?}",
            api.queue.counts().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished = last_finished(&db.url).await;
    let rate = n as f64 / ((finished - started) as f64 / 1e6);
    let rss = rss_mib();
    worker.shutdown().await;
    api.shutdown().await;
    db.drop_it().await;
    (rate, rss)
}

/// The latest `finished_at` (µs) of the jobs in the database at `url`.
async fn last_finished(url: &str) -> i64 {
    const SQL: &str = "SELECT MAX(finished_at) FROM offload_jobs";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let at = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        at
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let at = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        at
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// 200 jobs, 20 ms apart, to a running service; (p50, p99) of submit → attempt start, ms.
async fn offload_latency(backend: &str) -> (f64, f64) {
    let db = Database::create(backend).await;
    let svc = Service::start(settings(&db), Role::Serve).await;
    let client = reqwest::Client::new();
    // Warm up connections and the worker.
    for _ in 0..20 {
        client
            .post(format!("{}/api/v1/jobs", svc.base))
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        let job: Value = client
            .post(format!("{}/api/v1/jobs", svc.base))
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(uuid::Uuid::parse_str(job["id"].as_str().unwrap()).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for id in ids {
        let row = loop {
            let row = svc.queue.get(id).await.unwrap().unwrap();
            if row.started_at.is_some() {
                break row;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        latencies.push((row.started_at.unwrap() - row.created_at) as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    svc.shutdown().await;
    db.drop_it().await;
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

/// `wrk` against `GET /api/v1/jobs/{id}` for 5 s with 32 connections; requests/s.
async fn get_rate(backend: &str) -> Option<f64> {
    let db = Database::create(backend).await;
    let svc = Service::start(settings(&db), Role::Api).await;
    let job = svc.queue.enqueue(noops(1)).await.unwrap().remove(0).job;
    let url = format!("{}/api/v1/jobs/{}", svc.base, job.id);
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d5s", &url])
        .output()
        .await;
    svc.shutdown().await;
    db.drop_it().await;
    let out = out.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs a peer's script against a fresh database; its JSON line. scripts/bench installs the
/// peers into `BENCH_PEERS_DIR` and copies `benches/peers/*` there, so that Node resolves
/// their packages from the script's own directory.
async fn peer(name: &str, mode: &str, n: usize) -> Option<Value> {
    let dir = PathBuf::from(std::env::var("BENCH_PEERS_DIR").ok()?);
    let db = Database::create("postgres").await;
    let mut cmd = match name {
        "procrastinate" => {
            let mut c = tokio::process::Command::new(dir.join("venv/bin/python"));
            c.arg(dir.join("procrastinate_bench.py"));
            c
        }
        other => {
            let mut c = tokio::process::Command::new("node");
            c.arg(dir.join(format!("{other}.mjs")));
            c
        }
    };
    let out = cmd
        .args([mode, &db.url, &n.to_string()])
        .current_dir(&dir)
        .output()
        .await
        .ok()?;
    db.drop_it().await;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{'));
    if line.is_none() {
        eprintln!(
            "  {name} {mode} printed no result: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_str(line?).ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let backends = env_list("BENCH_BACKENDS", "postgres,sqlite");
    let drains: Vec<usize> = env_list("BENCH_DRAIN", "10000,100000")
        .iter()
        .map(|n| n.parse().expect("BENCH_DRAIN: numbers"))
        .collect();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let peers = env_list("BENCH_PEERS", "pg-boss,graphile-worker,procrastinate");
    let mut figures = Vec::new();
    for backend in &backends {
        eprintln!("{backend}: enqueue");
        figures.extend(enqueue_figures(backend).await);
        for &n in &drains {
            // Interleaved A B A B: offload, then each peer (Postgres only), per round.
            let mut rates: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut rss = 0.0;
            for _ in 0..rounds {
                eprintln!("{backend}: drain {n}");
                let (rate, mem) = offload_drain(backend, n).await;
                rates.entry("offload".into()).or_default().push(rate);
                rss = f64::max(rss, mem);
                if backend == "postgres" {
                    for p in &peers {
                        if let Some(r) = peer(p, "drain", n).await {
                            rates
                                .entry(p.clone())
                                .or_default()
                                .push(r["jobs_per_s"].as_f64().unwrap_or(0.0));
                        }
                    }
                }
            }
            for (system, r) in rates {
                figures.push(fig(
                    &system,
                    backend,
                    &format!("drain {n} queued"),
                    median(r),
                    "jobs/s",
                ));
            }
            figures.push(fig(
                "offload",
                backend,
                &format!("RSS after draining {n}"),
                rss,
                "MiB",
            ));
        }
        eprintln!("{backend}: pickup latency");
        let (p50, p99) = offload_latency(backend).await;
        figures.push(fig("offload", backend, "pickup latency p50", p50, "ms"));
        figures.push(fig("offload", backend, "pickup latency p99", p99, "ms"));
        if backend == "postgres" {
            for p in &peers {
                if let Some(r) = peer(p, "latency", 200).await {
                    figures.push(fig(
                        p,
                        backend,
                        "pickup latency p50",
                        r["p50_ms"].as_f64().unwrap_or(0.0),
                        "ms",
                    ));
                    figures.push(fig(
                        p,
                        backend,
                        "pickup latency p99",
                        r["p99_ms"].as_f64().unwrap_or(0.0),
                        "ms",
                    ));
                }
            }
        }
        match get_rate(backend).await {
            Some(r) => figures.push(fig(
                "offload",
                backend,
                "GET /jobs/{id} (wrk, 32 connections)",
                r,
                "req/s",
            )),
            None => eprintln!("  wrk is missing: scripts/bench installs it"),
        }
    }
    report(&figures);
}

/// The table (with offload/peer ratios next to peer figures), then JSON lines.
fn report(figures: &[Figure]) {
    println!("| system | backend | figure | value | offload ÷ system |");
    println!("|---|---|---|---|---|");
    for f in figures {
        let ratio = (f.system != "offload")
            .then(|| {
                figures
                    .iter()
                    .find(|o| o.system == "offload" && o.backend == f.backend && o.what == f.what)
                    .map(|o| format!("{:.2}×", o.value / f.value))
            })
            .flatten()
            .unwrap_or_default();
        println!(
            "| {} | {} | {} | {:.1} {} | {} |",
            f.system, f.backend, f.what, f.value, f.unit, ratio
        );
    }
    for f in figures {
        println!(
            "{}",
            json!({"bench": "queue", "system": f.system, "backend": f.backend, "figure": f.what, "value": f.value, "unit": f.unit})
        );
    }
}
