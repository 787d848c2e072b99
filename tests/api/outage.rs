//! Postgres goes away under load: a private cluster (its own data directory and port, so no
//! other test notices) is stopped for 10 s in the middle of 200 jobs. Meanwhile the API answers
//! 503 at once instead of hanging; afterwards the processes reconnect by themselves and every
//! job succeeds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::processes::Process;

/// A Postgres cluster of the test's own, removed with its directory when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

/// The Postgres server binaries (`TEST_PG_BIN`, set by scripts/test, or the newest installed).
fn postgres_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TEST_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.map(|e| e.unwrap().path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|bin| bin.join("pg_ctl").is_file())
        .expect("no Postgres server binaries (pg_ctl): run scripts/test, which installs them")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivatePostgres {
    fn start() -> Self {
        let pg = PrivatePostgres {
            bin: postgres_bin(),
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        if is_root() {
            // Postgres refuses to run as root; its own account owns the cluster.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.ctl("start");
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start` or `stop` (fast: connections are cut, as in a crash of the server).
    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-w", "-m", "fast", "-l", &log, action];
        if action == "start" {
            args.extend(["-o", &options]);
        }
        self.run("pg_ctl", &args);
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

async fn succeeded(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM offload_jobs WHERE status = 'succeeded'")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

fn env_for(pg: &PrivatePostgres, dir: &Path) -> Vec<(&'static str, String)> {
    std::fs::create_dir_all(dir.join("work")).unwrap();
    vec![
        ("DATABASE_URL", pg.url()),
        (
            "STORAGE_URL",
            format!("fs://{}", dir.join("files").display()),
        ),
        ("WORK_DIR", dir.join("work").display().to_string()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("BOARD_ADDR", "127.0.0.1:0".into()),
        ("RETRY_BACKOFF_MS", "200".into()),
        ("POLL_INTERVAL_MS", "200".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_ten_seconds_loses_no_job() {
    let pg = tokio::task::block_in_place(PrivatePostgres::start);
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&pg, dir.path());
    let mut api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let mut worker = Process::start(&["worker"], &env);
    worker.wait_for_line("worker started");
    // Generous, only so a hang fails the test instead of stalling it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let jobs: Vec<Value> = (0..200)
        .map(|_| json!({"kind": "sleep", "args": {"seconds": 0.5}}))
        .collect();
    let created: Value = Api::at(&base).create_batch(jobs).await;
    let ids: Vec<String> = created["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids.len(), 200);
    tokio::task::block_in_place(|| {
        for _ in 0..20 {
            worker.wait_for_line("attempt succeeded");
        }
    });

    tokio::task::block_in_place(|| pg.ctl("stop"));
    let outage = Instant::now();
    // A read, a submit and the readiness probe, side by side: each answers 503 instead of
    // hanging (the pool gives up on the missing database after its acquire timeout).
    let get = client
        .get(format!("{base}/api/v1/jobs/{}", ids[199]))
        .send();
    let post = client
        .post(format!("{base}/api/v1/jobs"))
        .json(&json!({"kind": "noop", "args": {}}))
        .send();
    let ready = client.get(format!("{base}/readyz")).send();
    let (get, post, ready) = tokio::join!(get, post, ready);
    let get = get.unwrap();
    assert_eq!(get.status(), 503, "reads say the database is away");
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert_eq!(post.unwrap().status(), 503, "submits are refused, not lost");
    assert_eq!(ready.unwrap().status(), 503);
    // The outage itself is the scenario: ten seconds without a database.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    assert!(api.try_exit().is_none(), "the API process is still up");
    assert!(
        worker.try_exit().is_none(),
        "the worker process is still up"
    );
    tokio::task::block_in_place(|| pg.ctl("start"));

    // Nothing to await but the database itself: poll the count until every job is done.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done = succeeded(&pg.url()).await;
        if done == 200 {
            break;
        }
        // The worker's log explains a failure here.
        while let Ok(line) = worker.lines.try_recv() {
            eprintln!("[worker] {line}");
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of 200 jobs succeeded after the outage"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in &ids {
        let job: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let ready = Api::at(&base).get("/readyz").await;
    assert_eq!(ready.status(), 200, "the API reconnected by itself");
}
