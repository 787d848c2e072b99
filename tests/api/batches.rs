//! Batches (#18): several files without `merge`, or one `POST /jobs/batch`, make one batch —
//! read and followed as one, its counts moving as its jobs end, its callback fired exactly once
//! (signed), and its jobs taken by the bulk actions' `batch_id` filter.

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::webhooks::{app_with_webhooks_on, deliveries_settled, receiver};

on_both_backends!(
    a_batchs_counts_move_as_its_jobs_end,
    a_batch_callback_fires_once_signed,
    bulk_cancel_takes_a_whole_batch_of_500,
);

/// The batch's counts as `(queued, running, succeeded, failed, cancelled)`.
fn counts(batch: &Value) -> [u64; 5] {
    ["queued", "running", "succeeded", "failed", "cancelled"]
        .map(|k| batch["counts"][k].as_u64().unwrap())
}

async fn a_batchs_counts_move_as_its_jobs_end(backend: Backend) {
    // No worker yet: the batch's state is the API's alone until one starts.
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let jobs = vec![
        json!({"kind": "noop"}),
        json!({"kind": "sleep", "args": {"seconds": 0, "fail_times": 99}}),
        json!({"kind": "noop"}),
        json!({"kind": "sleep", "args": {"seconds": 60}}),
    ];
    let resp = app
        .post_json("/api/v1/jobs/batch", &json!({ "jobs": jobs }))
        .await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    let batch = &created["batch"];
    let id = batch["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/batches/{id}"));
    assert_eq!(batch["size"], 4);
    assert_eq!(counts(batch), [4, 0, 0, 0, 0]);
    assert_eq!(batch["ended"], false);
    let ids = job_ids(batch);
    assert_eq!(ids, job_ids(&created), "the same jobs, in request order");
    let kinds: Vec<&str> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["noop", "sleep", "noop", "sleep"]);
    assert_eq!(app.json(&location).await["jobs"][0]["id"], ids[0].as_str());
    assert_eq!(
        app.get_job(&ids[1]).await["batch_id"],
        id,
        "a job names its batch"
    );

    // Cancelled before any worker runs: one of four has ended.
    assert_eq!(app.cancel(&ids[3]).await.status(), 200);
    assert_eq!(counts(&app.json(&location).await), [3, 0, 0, 0, 1]);
    let listed = app.list_jobs(&format!("batch_id={id}")).await;
    let mut listed = job_ids(&listed);
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "the listing filters by batch");

    let worker = app.start_worker().await;
    let events = app.batch_events(id).await;
    let last = events.last().unwrap();
    assert_eq!(last["ended"], true, "the stream ends when the batch does");
    assert_eq!(counts(last), [0, 0, 2, 1, 1]);
    assert!(last["ended_at"].is_string());
    // Counts only ever move towards the end: ended jobs never un-end within one stream.
    let ended = |b: &Value| counts(b)[2..].iter().sum::<u64>();
    for pair in events.windows(2) {
        assert!(ended(&pair[0]) <= ended(&pair[1]), "{events:?}");
    }
    worker.stop().await;
}

async fn a_batch_callback_fires_once_signed(backend: Backend) {
    let app = app_with_webhooks_on(backend).await;
    let mut hook = receiver(vec![]).await;
    // Twenty jobs, most of them ending at about the same time on the worker's slots.
    let mut jobs: Vec<Value> = (0..19).map(|_| json!({"kind": "noop"})).collect();
    jobs.push(json!({"kind": "sleep", "args": {"seconds": 0, "fail_times": 99}}));
    let resp = app
        .post_json(
            "/api/v1/jobs/batch",
            &json!({"jobs": jobs, "batch_callback_url": hook.url}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let created: Value = resp.json().await.unwrap();
    let id = created["batch"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["batch"]["callback_url"], hook.url.as_str());

    let delivery = hook.next().await;
    assert!(delivery.signature_is_valid(), "signed like job webhooks");
    assert_eq!(delivery.event, "batch.ended");
    let body = delivery.job();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["ended"], true);
    assert_eq!(counts(&body), [0, 0, 19, 1, 0]);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 20);

    // The failed job, retried, ends again: the batch has had its callback.
    let failed = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "failed")
        .map(id_of)
        .unwrap();
    assert_eq!(app.retry(&failed).await.status(), 202);
    assert_eq!(app.wait_final(&failed).await["status"], "failed");
    let settled = deliveries_settled(&app).await;
    assert_eq!(settled.len(), 1, "one delivery, ever: {settled:?}");
    let batch = app.json(&format!("/api/v1/batches/{id}")).await;
    assert_eq!(batch["callback_delivery"], settled[0]["id"]);
    assert!(
        hook.deliveries.try_recv().is_err(),
        "and nothing more arrived"
    );
}

async fn bulk_cancel_takes_a_whole_batch_of_500(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let jobs: Vec<Value> = (0..500).map(|_| json!({"kind": "sleep"})).collect();
    let batch = app.create_batch(jobs).await;
    let id = batch["batch"]["id"].as_str().unwrap().to_string();
    // Another batch, the control: the filter must leave it alone.
    let other = app.create_batch(vec![json!({"kind": "sleep"})]).await;

    let resp = app
        .post_json("/api/v1/jobs/cancel", &json!({"filter": {"batch_id": id}}))
        .await;
    assert_eq!(resp.status(), 200);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(
        (&done["matched"], &done["affected"], &done["skipped"]),
        (&json!(500), &json!(500), &json!(0))
    );
    assert_eq!(done["next_cursor"], Value::Null);
    let after = app.json(&format!("/api/v1/batches/{id}")).await;
    assert_eq!(counts(&after), [0, 0, 0, 0, 500]);
    assert_eq!(after["ended"], true);
    let control = app.get_job(&job_ids(&other["batch"])[0]).await;
    assert_eq!(control["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_without_merge_make_a_batch() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let names = ["deck5.pptx", "report3.docx"];
    let mut form = reqwest::multipart::Form::new();
    for name in names {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(sample(name)).unwrap()).file_name(name),
        );
    }
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    let batch = &answer["batch"];
    let id = batch["id"].as_str().unwrap();
    let files: Vec<&str> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["input"]["filename"].as_str().unwrap())
        .collect();
    assert_eq!(files, names, "one export per file, in upload order");

    let last = app.batch_events(id).await.pop().unwrap();
    assert_eq!(counts(&last), [0, 0, 2, 0, 0], "{last}");
    for job in last["jobs"].as_array().unwrap() {
        let pdf = app.download(&id_of(job)).await.bytes().await.unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "each file has its own PDF");
    }
    let unknown = app
        .get(&format!("/api/v1/batches/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["code"],
        "batch_not_found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_callback_is_only_for_a_batch() {
    let app = app_with_webhooks_on(Backend::Sqlite).await;
    let hook = receiver(vec![]).await;
    let part = reqwest::multipart::Part::bytes(std::fs::read(sample("report3.docx")).unwrap())
        .file_name("report3.docx");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("batch_callback_url", hook.url.clone());
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("field batch_callback_url"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_batch_and_nothing_else() {
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |_| {}).await;
    let send = |path: &'static str, body: Value| {
        let api = Api::at(&app.base);
        async move {
            api.client
                .post(api.url(path))
                .header("idempotency-key", "nightly-2026-12-01")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let two = json!({"jobs": [{"kind": "noop"}, {"kind": "noop"}]});
    let first: Value = send("/api/v1/jobs/batch", two.clone())
        .await
        .json()
        .await
        .unwrap();
    let again: Value = send("/api/v1/jobs/batch", two).await.json().await.unwrap();
    assert_eq!(again["batch"]["id"], first["batch"]["id"], "the same batch");
    assert_eq!(job_ids(&again), job_ids(&first));
    let job = send("/api/v1/jobs", json!({"kind": "noop"})).await;
    assert_eq!(job.status(), 400);
    let body: Value = job.json().await.unwrap();
    assert_eq!(body["code"], "invalid_idempotency_key", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("batch"),
        "{body}"
    );
    assert_eq!(
        job_ids(&app.list_jobs("").await).len(),
        2,
        "nothing else was made"
    );
}
