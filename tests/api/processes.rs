//! offload as separate real processes: an API process and worker processes sharing a database
//! and a storage directory, the way it scales out.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::helpers::*;

/// A running `offload` process, killed when dropped. Its log lines arrive on `lines`.
pub struct Process {
    child: Child,
    pub lines: mpsc::Receiver<String>,
    /// Every line the process logged, read or not.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offload"));
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.env("RUST_LOG", "info,offload::jobs::runner=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start offload");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines, log }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// SIGKILL: the process gets no chance to clean up, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the process");
        self.child.wait().expect("reap the process");
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a pid we own and have not reaped; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "signal {signal} to {pid}"
        );
    }

    /// The exit status if the process has ended, `None` while it runs.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits (up to [`PATIENCE`]) for the process to exit; its exit code, `None` if a signal
    /// ended it. Log lines keep arriving on `lines` meanwhile.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not exit"
            );
            // Polling a child's exit status has no event to await short of a SIGCHLD handler.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Blocks until a log line contains `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => eprintln!("[child] {line}"),
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// Every line the process has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The base URL an API process announced in its `listening addr=...` line.
    pub fn wait_listening(&self) -> String {
        let line = self.wait_for_line("listening addr=");
        let addr = line
            .split("listening addr=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        format!("http://{addr}")
    }
}

/// Environment for processes sharing `db` and the files under `dir`.
pub fn shared_env(db: &TestDatabase, dir: &std::path::Path) -> Vec<(&'static str, String)> {
    std::fs::create_dir_all(dir.join("work")).unwrap();
    vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "STORAGE_URL",
            format!("fs://{}", dir.join("files").display()),
        ),
        ("WORK_DIR", dir.join("work").display().to_string()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("BOARD_ADDR", "127.0.0.1:0".into()),
        ("RETRY_BACKOFF_MS", "50".into()),
        ("POLL_INTERVAL_MS", "100".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_process_and_a_worker_process_share_work_through_postgres() {
    require_libreoffice();
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let env = shared_env(&db, dir.path());
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let worker = Process::start(&["worker"], &env);
    worker.wait_for_line("worker started");

    let client = reqwest::Client::new();
    let bytes = std::fs::read(sample("deck5.pptx")).unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("deck5.pptx"),
    );
    let resp = client
        .post(format!("{base}/api/v1/exports"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    let id = id_of(&job);

    // The worker process logs the attempt; the API process serves the result.
    let line = worker.wait_for_line("attempt succeeded");
    assert!(line.contains(&id), "{line}");
    let done: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(done["status"], "succeeded");
    let pdf = Api::at(&base)
        .get(&format!("/api/v1/jobs/{id}/result"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(pdf_pages(&pdf), 5);
    // The API process itself converts nothing.
    let ready: Value = Api::at(&base).json("/readyz").await;
    assert_eq!(ready["checks"]["converter"], "not used");
}

/// Collects the job ids of `attempt succeeded` lines until `want` distinct ones were seen.
fn succeeded_ids(workers: &[&Process], want: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut ids = Vec::new();
    while ids.iter().collect::<std::collections::BTreeSet<_>>().len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {want} completions logged",
            ids.len()
        );
        for worker in workers {
            while let Ok(line) = worker.lines.try_recv() {
                if line.contains("attempt succeeded") {
                    let id = line
                        .split("job_id=")
                        .nth(1)
                        .unwrap()
                        .split_whitespace()
                        .next()
                        .unwrap();
                    ids.push(id.to_string());
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_and_two_workers_convert_twenty_uploads_on_postgres_and_s3() {
    require_libreoffice();
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_env(&db, dir.path());
    env.retain(|(k, _)| *k != "STORAGE_URL");
    env.push(("STORAGE_URL", store_url(Store::S3, dir.path())));
    env.push(("WORKER_CONCURRENCY", "1".into()));
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let workers = [
        Process::start(&["worker"], &env),
        Process::start(&["worker"], &env),
    ];
    for w in &workers {
        w.wait_for_line("worker started");
    }

    let client = reqwest::Client::new();
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    let uploads = (0..20).map(|i| {
        let (client, deck, base) = (client.clone(), deck.clone(), base.clone());
        async move {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(deck).file_name(format!("deck-{i}.pptx")),
            );
            let resp = client
                .post(format!("{base}/api/v1/exports"))
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            id_of(&resp.json::<Value>().await.unwrap())
        }
    });
    let mut ids: Vec<String> = futures::future::join_all(uploads).await;

    let mut logged = tokio::task::block_in_place(|| succeeded_ids(&[&workers[0], &workers[1]], 20));
    logged.sort();
    ids.sort();
    assert_eq!(
        logged, ids,
        "every job succeeded exactly once, across the two workers"
    );
    for id in &ids {
        let job: Value = Api::at(&base).json(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(
            (job["status"].as_str(), job["attempts"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{job}"
        );
        let pdf = Api::at(&base)
            .get(&format!("/api/v1/jobs/{id}/result"))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(pdf_pages(&pdf), 5);
    }
}
