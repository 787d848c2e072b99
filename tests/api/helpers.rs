//! `spawn_app` → [`TestApp`]: a real offload on port 0 with its own database (a fresh SQLite
//! file or a fresh Postgres database) and its own storage directory, plus HTTP helpers.
//!
//! Waiting is done on the job's SSE stream (an event), never by sleeping.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use offload::app::{Application, Role};
use offload::queue::Queue;
use offload::settings::Settings;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Every wait in the suite gives up after this, with a message saying what it waited for.
pub const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The Postgres server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database only this test uses, dropped (with its connections) when the guard goes.
pub struct TestDatabase {
    pub url: String,
    name: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("offload.db").display());
                TestDatabase {
                    url,
                    name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("offload_test_{}", Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("Postgres is not reachable at {admin} ({e}); run scripts/test, which starts it")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let (base, _) = admin.rsplit_once('/').unwrap();
                TestDatabase {
                    url: format!("{base}/{name}"),
                    name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                }
            })
        })
        .join();
    }
}

/// Settings for a test: fast retries and polls, private directories, port 0.
pub fn test_settings(database_url: &str, dir: &Path) -> Settings {
    let mut s = Settings::defaults();
    s.database.url = database_url.parse().unwrap();
    s.storage.url = format!("fs://{}", dir.join("files").display())
        .parse()
        .unwrap();
    s.http.bind = "127.0.0.1:0".parse().unwrap();
    s.http.board = "127.0.0.1:0".parse().unwrap();
    s.worker.retry_backoff_ms = 50;
    s.database.poll_interval_ms = 100;
    s.worker.shutdown_grace_secs = 5;
    s.worker.work_dir = Some(dir.join("work"));
    std::fs::create_dir_all(dir.join("work")).unwrap();
    s
}

/// Where a test app keeps its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Fs,
    /// moto's S3 server, started by scripts/test.
    S3,
    /// Azurite's Blob service, started by scripts/test.
    Azblob,
}

fn emulator(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test, which starts the S3 (moto) and Azure Blob (Azurite) emulators")
    })
}

/// A `STORAGE_URL` for `store`, private to one test (its own directory or key prefix).
pub fn store_url(store: Store, dir: &Path) -> String {
    let prefix = format!("/t-{}", Uuid::new_v4().simple());
    match store {
        Store::Fs => format!("fs://{}", dir.join("files").display()),
        Store::S3 => format!(
            "s3://offload-test?endpoint={}&region=us-east-1&root={prefix}",
            emulator("TEST_S3_ENDPOINT")
        ),
        Store::Azblob => format!(
            "azblob://offload-test?endpoint={}&root={prefix}",
            emulator("TEST_AZBLOB_ENDPOINT")
        ),
    }
}

/// A running offload's HTTP API, one method per endpoint (an in-process [`TestApp`] derefs to
/// one; a separate process is reached through `Api::at(base)`).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

pub struct TestApp {
    pub api: Api,
    pub queue: Queue,
    pub storage_dir: PathBuf,
    pub settings: Settings,
    pub board_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the app must stop before its database and files go.
    _dir: TempDir,
    _db: TestDatabase,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Role::Serve, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    role: Role,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_on(backend, Store::Fs, role, tweak).await
}

pub async fn spawn_app_on(
    backend: Backend,
    store: Store,
    role: Role,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    offload::telemetry::init();
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&db.url, dir.path());
    settings.storage.url = store_url(store, dir.path()).parse().unwrap();
    tweak(&mut settings);
    let app = Application::build(settings.clone(), role)
        .await
        .expect("app builds");
    let addr: SocketAddr = app.local_addr().expect("the API listens");
    let board_addr = app.board_addr();
    let queue = app.queue().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        api: Api::at(&format!("http://{addr}")),
        queue,
        storage_dir: dir.path().join("files"),
        settings,
        board_addr,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
        _db: db,
    }
}

impl TestApp {
    /// Stops the app as a signal would and waits until it has finished shutting down.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stops cleanly");
        }
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A sample document (copies of `../shared/samples`, kept in the repo so a clean clone tests).
/// A worker (in this test process) on a test app's database and storage.
pub struct Worker {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// Starts a worker on this app's database and storage (for apps started as `Role::Api`).
    pub async fn start_worker(&self) -> Worker {
        let worker = Application::build(self.settings_for_worker(), Role::Worker)
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Worker { stop, task }
    }
}

impl Worker {
    /// Stops it cleanly and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// The ids of a page of jobs (`GET /jobs`) or of a batch's answer, in their order.
pub fn job_ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn sample(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(name);
    assert!(path.is_file(), "missing sample {}", path.display());
    path
}

/// Conversions need LibreOffice; say how to get it instead of failing obscurely.
pub fn require_libreoffice() {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join("soffice").is_file());
    assert!(
        found,
        "LibreOffice (soffice) is not installed: run scripts/test, which installs it"
    );
}

pub fn pdf_pages(bytes: &[u8]) -> usize {
    lopdf::Document::load_mem(bytes)
        .expect("a parsable PDF")
        .get_pages()
        .len()
}

impl TestApp {
    /// The app's store, opened the way the app opens it.
    pub async fn storage(&self) -> offload::storage::Storage {
        offload::storage::Storage::open(&self.settings.storage.url)
            .await
            .expect("the store opens")
    }

    /// Settings for another process (or in-process app) sharing this app's database and files.
    pub fn settings_for_worker(&self) -> Settings {
        self.settings.clone()
    }
}

impl Api {
    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// A client of `base` that sends API key `key` with every request.
    pub fn with_key(base: &str, key: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {key}").parse().unwrap();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            base: base.to_string(),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn upload_bytes(
        &self,
        filename: &str,
        bytes: Vec<u8>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string());
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut req = self
            .client
            .post(self.url("/api/v1/exports"))
            .multipart(form);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await.unwrap()
    }

    /// `POST /api/v1/exports` with any form (tests of what the form may and may not hold).
    pub async fn post_form(&self, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/exports"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads several documents as one merge (`merge=true`); returns the accepted merge job.
    pub async fn upload_merge(&self, files: Vec<(&str, Vec<u8>)>) -> Value {
        let mut form = reqwest::multipart::Form::new().text("merge", "true");
        for (name, bytes) in files {
            let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
            form = form.part("file", part);
        }
        let resp = self.post_form(form).await;
        assert_eq!(resp.status(), 202, "merge upload");
        resp.json().await.unwrap()
    }

    /// Uploads a sample and returns the accepted job.
    pub async fn upload(&self, sample_name: &str) -> Value {
        let bytes = std::fs::read(sample(sample_name)).unwrap();
        let resp = self.upload_bytes(sample_name, bytes, None).await;
        assert_eq!(resp.status(), 202, "upload of {sample_name}");
        resp.json().await.unwrap()
    }

    pub async fn create_job(&self, kind: &str, args: Value) -> Value {
        let resp = self
            .client
            .post(self.url("/api/v1/jobs"))
            .json(&json!({ "kind": kind, "args": args }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "create {kind}");
        resp.json().await.unwrap()
    }

    pub async fn get_job(&self, id: &str) -> Value {
        let resp = self
            .client
            .get(self.url(&format!("/api/v1/jobs/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, expecting 200 and JSON.
    pub async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// `GET /api/v1/jobs?query`.
    pub async fn list_jobs(&self, query: &str) -> Value {
        self.json(&format!("/api/v1/jobs?{query}")).await
    }

    /// `POST /api/v1/jobs/batch`, expecting 202.
    pub async fn create_batch(&self, jobs: Vec<Value>) -> Value {
        let resp = self
            .post_json("/api/v1/jobs/batch", &json!({ "jobs": jobs }))
            .await;
        assert_eq!(resp.status(), 202, "batch");
        resp.json().await.unwrap()
    }

    pub async fn cancel(&self, id: &str) -> reqwest::Response {
        self.post(&format!("/api/v1/jobs/{id}/cancel")).await
    }

    pub async fn retry(&self, id: &str) -> reqwest::Response {
        self.post(&format!("/api/v1/jobs/{id}/retry")).await
    }

    pub async fn delete_job(&self, id: &str) -> reqwest::Response {
        self.delete(&format!("/api/v1/jobs/{id}")).await
    }

    /// Every event of the job's SSE stream until the server ends it (after a final status).
    pub async fn events(&self, id: &str) -> Vec<Value> {
        self.events_until(id, |_| false).await
    }

    /// SSE events until the stream ends or `stop` accepts one (which is included).
    pub async fn events_until(&self, id: &str, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        events_at(&self.client, &self.base, id, stop).await
    }

    /// Every event of batch `id`'s SSE stream until the server ends it (the batch ended).
    pub async fn batch_events(&self, id: &str) -> Vec<Value> {
        let url = self.url(&format!("/api/v1/batches/{id}/events"));
        sse_at(&self.client, &url, |_| false).await
    }

    /// Waits (on the event stream) for a final status and returns the job.
    pub async fn wait_final(&self, id: &str) -> Value {
        wait_final_at(&self.client, &self.base, id).await
    }

    /// Waits until the job is running (on the event stream).
    pub async fn wait_running(&self, id: &str) -> Value {
        let events = self.events_until(id, |e| e["status"] == "running").await;
        events.last().cloned().unwrap()
    }

    pub async fn download(&self, id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/jobs/{id}/result")))
            .send()
            .await
            .unwrap()
    }
}

/// `(a, b)` of each object of the array `items`: `[{"name": "x", "status": "y"}]` → `[("x", "y")]`.
pub fn field_pairs(items: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    let text = |item: &Value, field: &str| item[field].as_str().unwrap().to_string();
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (text(item, a), text(item, b)))
        .collect()
}

pub fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

pub fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("job has an id").to_string()
}

/// Runs each named `async fn(Backend)` as two tests, `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::helpers::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    )*};
}

/// SSE events of job `id` at the service `base` until the stream ends or `stop` accepts one
/// (which is included).
pub async fn events_at(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    stop: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let url = format!("{base}/api/v1/jobs/{id}/events");
    sse_at(client, &url, stop).await
}

/// The SSE events at `url` (a job's or a batch's stream) until the stream ends or `stop`
/// accepts one (which is included).
pub async fn sse_at(
    client: &reqwest::Client,
    url: &str,
    stop: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let id = url;
    let resp = client.get(url).send().await.unwrap();

    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let event: Value = serde_json::from_str(data.trim()).unwrap();
                        let done = stop(&event);
                        events.push(event);
                        if done {
                            return;
                        }
                    }
                }
            }
        }
    };
    if tokio::time::timeout(PATIENCE, read).await.is_err() {
        panic!(
            "{id}: no end of the event stream within {PATIENCE:?}; last events: {:?}",
            events.last()
        );
    }
    events
}

/// `POST /api/v1/exports` of `bytes` named `filename` to the service at `base`.
pub async fn upload_at(
    client: &reqwest::Client,
    base: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string());
    let form = reqwest::multipart::Form::new().part("file", part);
    client
        .post(format!("{base}/api/v1/exports"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Waits (on the event stream) for job `id` at `base` to end; returns it.
pub async fn wait_final_at(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let events = events_at(client, base, id, |_| false).await;
    let last = events.last().cloned().expect("at least one event");
    assert!(
        is_final(&last),
        "stream ended before a final status: {last}"
    );
    last
}

/// Every file under `dir`, relative to it.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}
