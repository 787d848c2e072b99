//! Priorities (#18): workers claim by priority, so an `interactive` job submitted behind a
//! backlog of `bulk` ones starts in the first claim — checked by the order the rows record
//! (`started_at`), never by wall time.

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(an_interactive_job_starts_before_a_bulk_backlog);

async fn an_interactive_job_starts_before_a_bulk_backlog(backend: Backend) {
    // No worker yet: everything waits.
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let bulk: Vec<Value> = (0..1000)
        .map(|_| json!({"kind": "noop", "priority": "bulk"}))
        .collect();
    let backlog = app.create_batch(bulk).await;
    let backlog: Vec<String> = backlog["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["priority"], "bulk");
            j["id"].as_str().unwrap().to_string()
        })
        .collect();
    let urgent = app.create_job("noop", json!({})).await;
    assert_eq!(urgent["priority"], "normal", "the default");
    let resp = app
        .post_json(
            "/api/v1/jobs",
            &json!({"kind": "noop", "priority": "interactive"}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let interactive = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let worker = app.start_worker().await;
    let done = app.wait_final(&interactive).await;
    assert_eq!(done["status"], "succeeded");
    let started = |job: &Value| {
        chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap()).unwrap()
    };
    let at = started(&done);
    let mut earlier = 0;
    for id in &backlog {
        let job = app.get_job(id).await;
        if job["started_at"].is_string() && started(&job) < at {
            earlier += 1;
        }
    }
    // One claim takes up to 100 noops: the interactive job is in the first.
    assert!(
        earlier < 100,
        "{earlier} bulk jobs started before the interactive one"
    );
    let bad = app
        .post_json(
            "/api/v1/jobs",
            &json!({"kind": "noop", "priority": "urgent"}),
        )
        .await;
    assert_eq!(bad.status(), 400, "an unknown priority is refused");
    worker.stop().await;
}
