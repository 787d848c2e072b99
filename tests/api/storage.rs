//! Object storage: the job flow on local disk, S3 (moto) and Azure Blob (Azurite), start-up
//! errors, and retention (expiry, pruning, the scheduled sweeper).

use std::time::Duration;

use offload::app::{Application, Role};
use offload::sweeper::{Retention, sweep};
use serde_json::{Value, json};

use crate::helpers::*;

/// Runs each named `async fn(Store)` as `<name>::fs`, `<name>::s3` and `<name>::azblob`.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::helpers::Store;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fs() { super::$name(Store::Fs).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() { super::$name(Store::S3).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn azblob() { super::$name(Store::Azblob).await }
        }
    )*};
}

on_every_store!(
    a_deck_round_trips_through_the_store,
    finished_jobs_expire_and_are_pruned
);

async fn a_deck_round_trips_through_the_store(store: Store) {
    require_libreoffice();
    let app = spawn_app_on(Backend::Sqlite, store, Role::Serve, |_| {}).await;
    let storage = app.storage().await;
    let id = id_of(&app.upload("deck5.pptx").await);
    let uuid = id.parse().unwrap();
    let done = app.wait_final(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let objects = storage.job_objects(uuid).await.unwrap();
    assert_eq!(objects.len(), 2, "input and result: {objects:?}");
    assert!(objects.iter().any(|k| k.ends_with("/input")), "{objects:?}");

    let pdf = app.download(&id).await.bytes().await.unwrap();
    assert_eq!(pdf_pages(&pdf), 5);
    let resp = app.delete_job(&id).await;
    assert_eq!(resp.status(), 204);
    assert!(
        storage.job_objects(uuid).await.unwrap().is_empty(),
        "deleted with the job"
    );
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["storage"], "ok");
}

async fn finished_jobs_expire_and_are_pruned(store: Store) {
    let app = spawn_app_on(Backend::Sqlite, store, Role::Serve, |_| {}).await;
    let storage = app.storage().await;
    // A failed export keeps its input until it expires; a noop job has no files at all.
    let failed = id_of(&app.upload("corrupt_truncated.pptx").await);
    let noop = id_of(&app.create_job("noop", json!({})).await);
    assert_eq!(app.wait_final(&failed).await["status"], "failed");
    assert_eq!(app.wait_final(&noop).await["status"], "succeeded");
    let running = id_of(&app.create_job("sleep", json!({"seconds": 60})).await);
    app.wait_running(&running).await;
    assert_eq!(
        storage
            .job_objects(failed.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );

    let keep_records = Retention {
        results: Duration::ZERO,
        jobs: Duration::from_secs(3600),
        cache: std::time::Duration::from_secs(3600),
    };
    let swept = sweep(&app.queue, &storage, &keep_records).await.unwrap();
    assert_eq!(
        (swept.expired, swept.pruned),
        (2, 0),
        "the two finished jobs expire, the running one not"
    );
    assert!(
        storage
            .job_objects(failed.parse().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    let job = app.get_job(&failed).await;
    assert!(job["expired_at"].is_string(), "{job}");
    let retry = app.retry(&failed).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(
        retry.json::<Value>().await.unwrap()["code"],
        "input_expired"
    );
    assert_eq!(app.get_job(&running).await["expired_at"], Value::Null);
    let again = sweep(&app.queue, &storage, &keep_records).await.unwrap();
    assert_eq!(
        (again.expired, again.pruned),
        (0, 0),
        "a second sweep finds nothing"
    );

    let forget = Retention {
        results: Duration::ZERO,
        jobs: Duration::ZERO,
        cache: std::time::Duration::from_secs(3600),
    };
    let swept = sweep(&app.queue, &storage, &forget).await.unwrap();
    assert_eq!(swept.pruned, 2);
    for id in [&failed, &noop] {
        let resp = app.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(resp.status(), 404, "{id} was pruned");
    }
    assert_eq!(
        app.get_job(&running).await["status"],
        "running",
        "unfinished jobs stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_result_answers_410() {
    require_libreoffice();
    let app = spawn_app(Backend::Postgres).await;
    let id = id_of(&app.upload("deck5.pptx").await);
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    let retention = Retention {
        results: Duration::ZERO,
        jobs: Duration::from_secs(3600),
        cache: std::time::Duration::from_secs(3600),
    };
    assert_eq!(
        sweep(&app.queue, &app.storage().await, &retention)
            .await
            .unwrap()
            .expired,
        1
    );
    let resp = app.download(&id).await;
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "result_expired");
    assert!(
        body["message"].as_str().unwrap().contains("retention"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_sweeper_expires_jobs_without_being_asked() {
    // Two worker processes' sweepers tick every second on one database; retention is zero.
    let api = spawn_app_with(Backend::Postgres, Role::Api, |_| {}).await;
    let mut settings = api.settings_for_worker();
    settings.retention.sweep_schedule = "* * * * * *".parse().unwrap();
    settings.retention.result_retention_secs = 0;
    let mut stops = Vec::new();
    for _ in 0..2 {
        let worker = Application::build(settings.clone(), Role::Worker)
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(worker.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }
    let id = id_of(&api.create_job("noop", json!({})).await);
    assert_eq!(api.wait_final(&id).await["status"], "succeeded");
    // Expiry is the sweeper's own timer firing: poll for its effect.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if api.get_job(&id).await["expired_at"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never expired the job"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_bad_credentials_stop_start_up_with_one_line() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&db.url, dir.path());
    let s3 = store_url(Store::S3, dir.path()).replace("s3://offload-test", "s3://no-such-bucket");
    settings.storage.url = s3.parse().unwrap();
    let err = Application::build(settings.clone(), Role::Serve)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        format!("{err:#}"),
        "STORAGE_URL: the bucket or container does not exist"
    );
    settings.storage.url = store_url(Store::Azblob, dir.path())
        .replace("azblob://offload-test", "azblob://nope")
        .parse()
        .unwrap();
    let err = Application::build(settings, Role::Serve)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        format!("{err:#}"),
        "STORAGE_URL: the bucket or container does not exist"
    );
}
