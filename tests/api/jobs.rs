//! The job life cycle through the API, on both backends.

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(
    a_job_that_fails_twice_succeeds_on_its_third_attempt,
    unknown_ids_are_404_and_malformed_ids_400,
    a_queued_job_can_be_cancelled_and_never_runs,
    a_running_job_can_be_cancelled,
    failed_and_cancelled_jobs_can_be_retried,
    the_same_idempotency_key_creates_one_job,
    jobs_are_listed_newest_first_with_filters_and_pages,
    a_batch_creates_all_its_jobs_in_one_go,
    bad_job_requests_name_the_field,
);

async fn a_job_that_fails_twice_succeeds_on_its_third_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let job = app
        .create_job("sleep", json!({"seconds": 0.05, "fail_times": 2}))
        .await;
    assert_eq!(job["max_attempts"], 5);
    let events = app.events(&id_of(&job)).await;
    let done = events.last().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);
    assert_eq!(
        done["error"],
        Value::Null,
        "a success clears the last error"
    );
    // Between attempts the job waited as queued, showing why.
    let waiting = events
        .iter()
        .find(|e| e["status"] == "queued" && e["attempts"] == 1)
        .expect("a queued event after the first failure");
    assert_eq!(waiting["error"]["code"], "planned_failure");
    // The finished job keeps every failed attempt's error.
    let history: Vec<(u64, &str)> = done["attempt_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["attempt"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(history, [(1, "planned_failure"), (2, "planned_failure")]);
}

async fn unknown_ids_are_404_and_malformed_ids_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = uuid::Uuid::new_v4();
    let c = &app.client;
    let responses = vec![
        c.get(app.url(&format!("/api/v1/jobs/{id}")))
            .send()
            .await
            .unwrap(),
        c.get(app.url(&format!("/api/v1/jobs/{id}/result")))
            .send()
            .await
            .unwrap(),
        c.get(app.url(&format!("/api/v1/jobs/{id}/events")))
            .send()
            .await
            .unwrap(),
        c.post(app.url(&format!("/api/v1/jobs/{id}/cancel")))
            .send()
            .await
            .unwrap(),
        c.post(app.url(&format!("/api/v1/jobs/{id}/retry")))
            .send()
            .await
            .unwrap(),
        c.delete(app.url(&format!("/api/v1/jobs/{id}")))
            .send()
            .await
            .unwrap(),
    ];
    for resp in responses {
        let url = resp.url().clone();
        assert_eq!(resp.status(), 404, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "job_not_found", "{url}");
    }
    let resp = c
        .get(app.url("/api/v1/jobs/not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_parameter");
    assert!(body["message"].as_str().unwrap().contains("id"), "{body}");
    let resp = c
        .get(app.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

async fn a_queued_job_can_be_cancelled_and_never_runs(backend: Backend) {
    // An API-only process has no worker: the job stays queued until we look.
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let id = id_of(&app.create_job("sleep", json!({"seconds": 0})).await);
    let resp = app.cancel(&id).await;
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");
    assert!(job["finished_at"].is_string());
    let again = app.cancel(&id).await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await.unwrap()["code"], "wrong_state");

    // A worker on the same database runs a later job but never the cancelled one.
    let worker = app.start_worker().await;
    let later = id_of(&app.create_job("sleep", json!({"seconds": 0})).await);
    assert_eq!(app.wait_final(&later).await["status"], "succeeded");
    let job = app.get_job(&id).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["attempts"], 0);
    worker.stop().await;
}

async fn a_running_job_can_be_cancelled(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = id_of(&app.create_job("sleep", json!({"seconds": 60})).await);
    app.wait_running(&id).await;
    let resp = app.cancel(&id).await;
    assert_eq!(resp.status(), 200);
    let done = app.wait_final(&id).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["attempts"], 1);
    // The attempt stopped: the sleep slot is free and the next job runs at once.
    let next = id_of(&app.create_job("sleep", json!({"seconds": 0})).await);
    assert_eq!(app.wait_final(&next).await["status"], "succeeded");
    let job = app.get_job(&id).await;
    assert_eq!(
        job["status"], "cancelled",
        "a stopped attempt does not overwrite the cancel"
    );
    assert!(job["progress"]["percent"].as_u64().unwrap() < 100);
}

async fn failed_and_cancelled_jobs_can_be_retried(backend: Backend) {
    let app = spawn_app(backend).await;
    // A failed job: the corrupt deck fails on its first attempt.
    let failed = id_of(&app.upload("corrupt_truncated.pptx").await);
    assert_eq!(app.wait_final(&failed).await["status"], "failed");
    let resp = app.retry(&failed).await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["error"], Value::Null);
    let done = app.wait_final(&failed).await;
    assert_eq!(done["status"], "failed", "it ran again and failed again");
    assert_eq!(done["attempts"], 1);

    // A cancelled job comes back and finishes.
    let cancelled = id_of(&app.create_job("sleep", json!({"seconds": 0.2})).await);
    app.cancel(&cancelled).await;
    assert_eq!(app.wait_final(&cancelled).await["status"], "cancelled");
    assert_eq!(app.retry(&cancelled).await.status(), 202);
    assert_eq!(app.wait_final(&cancelled).await["status"], "succeeded");

    // A succeeded job cannot be retried.
    let resp = app.retry(&cancelled).await;
    assert_eq!(resp.status(), 409);
}

async fn the_same_idempotency_key_creates_one_job(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = app
            .client
            .post(app.url("/api/v1/jobs"))
            .header("Idempotency-Key", "order-42")
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        ids.push(id_of(&resp.json().await.unwrap()));
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let list = app.list_jobs("").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
}

async fn jobs_are_listed_newest_first_with_filters_and_pages(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { "noop" } else { "sleep" };
        created.push(id_of(&app.create_job(kind, json!({})).await));
    }
    let cancelled = created[4].clone();
    app.cancel(&cancelled).await;

    let get = |q: String| {
        let url = app.url(&format!("/api/v1/jobs{q}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    // Pages of two, newest first, cover everything once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let page: Value = get(q).await.json().await.unwrap();
        seen.extend(page["jobs"].as_array().unwrap().iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let sleeps: Value = get("?kind=sleep".into()).await.json().await.unwrap();
    assert_eq!(sleeps["jobs"].as_array().unwrap().len(), 2);
    let done: Value = get("?status=cancelled".into()).await.json().await.unwrap();
    let ids: Vec<String> = done["jobs"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, vec![cancelled]);

    for bad in ["?limit=0", "?limit=501", "?status=done", "?cursor=xyz"] {
        let resp = get(bad.into()).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["message"].is_string(), "{bad}: {body}");
    }
}

async fn a_batch_creates_all_its_jobs_in_one_go(backend: Backend) {
    let app = spawn_app(backend).await;
    let jobs: Vec<Value> = (0..3)
        .map(|_| json!({"kind": "noop", "args": {}}))
        .collect();
    let resp = app
        .post_json("/api/v1/jobs/batch", &json!({"jobs": jobs}))
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let ids: Vec<String> = body["jobs"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert_eq!(app.wait_final(id).await["status"], "succeeded");
    }

    // All or nothing: one bad entry refuses the whole batch and names it.
    let mixed = json!({"jobs": [{"kind": "noop"}, {"kind": "nope"}]});
    let resp = app.post_json("/api/v1/jobs/batch", &mixed).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("body.jobs[1].kind"),
        "{body}"
    );
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"kind": "noop"})).collect();
    let resp = app
        .post_json("/api/v1/jobs/batch", &json!({"jobs": too_many}))
        .await;
    assert_eq!(resp.status(), 422);
    let list = app.list_jobs("").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        3,
        "the refused batches created nothing"
    );
}

async fn bad_job_requests_name_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let post = |body: Value| {
        let req = app.client.post(app.url("/api/v1/jobs")).json(&body);
        async move { req.send().await.unwrap() }
    };
    let cases = [
        (
            json!({"kind": "teleport"}),
            422,
            "unknown_kind",
            "body.kind",
        ),
        (
            json!({"kind": "export"}),
            422,
            "upload_required",
            "body.kind",
        ),
        (
            json!({"kind": "sleep", "args": {"seconds": "soon"}}),
            422,
            "invalid_arguments",
            "body.args",
        ),
        (
            json!({"kind": "sleep", "args": {"seconds": -1}}),
            422,
            "invalid_arguments",
            "body.args",
        ),
        (
            json!({"args": {}}),
            400,
            "invalid_body",
            "body: missing field `kind`",
        ),
        (json!({"kind": 5}), 400, "invalid_body", "body.kind"),
    ];
    for (body, status, code, names) in cases {
        let resp = post(body.clone()).await;
        assert_eq!(resp.status(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], code, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(names),
            "{body}: {err}"
        );
    }
    let resp = app
        .client
        .post(app.url("/api/v1/jobs"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_request_fields_are_refused_naming_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    for field in ["optoins", "fromat"] {
        let part = reqwest::multipart::Part::bytes(deck.clone()).file_name("deck5.pptx");
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text(field, "pdf");
        let resp = app.post_form(form).await;
        assert_eq!(resp.status(), 400, "{field}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_form", "{body}");
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    let cases = [
        (
            "/api/v1/jobs",
            json!({"kind": "noop", "args": {}, "priorty": "high"}),
            "priorty",
        ),
        (
            "/api/v1/jobs",
            json!({"kind": "sleep", "args": {"secnds": 1}}),
            "args.secnds",
        ),
        (
            "/api/v1/jobs/batch",
            json!({"jobs": [{"kind": "noop"}, {"kind": "noop", "arg": {}}]}),
            "arg",
        ),
    ];
    for (path, body, field) in cases {
        let resp = app.post_json(path, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["code"], "invalid_body", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    let list = app.list_jobs("").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
    // The spec says so: request objects admit no other fields.
    let spec = app.json("/openapi.json").await;
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["NewJob_sleep"]["additionalProperties"], false,
        "{}",
        schemas["NewJob_sleep"]
    );
    let sleep_args = schemas
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.contains("SleepArgs"))
        .map(|(_, s)| s.clone())
        .expect("sleep's arguments are in the spec");
    assert_eq!(sleep_args["additionalProperties"], false, "{sleep_args}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_keys_the_demo_kinds_are_off_unless_enabled() {
    const KEY: &str = "demo-test-key";
    let kinds_of = |spec: &Value| -> Vec<String> {
        spec["components"]["schemas"]["JobKind"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    let keyed = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.http.api_keys = KEY.parse().unwrap();
    })
    .await;
    let resp = keyed
        .client
        .post(keyed.url("/api/v1/jobs"))
        .bearer_auth(KEY)
        .json(&json!({"kind": "sleep", "args": {"seconds": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unknown_kind");
    let spec = keyed.json("/openapi.json").await;
    assert!(
        !kinds_of(&spec).contains(&"sleep".to_string()),
        "{:?}",
        kinds_of(&spec)
    );
    assert!(kinds_of(&spec).contains(&"export".to_string()));
    let listed = |kinds: &Value| field_pairs(&kinds["kinds"], "name", "created_by");
    let discovered = keyed
        .client
        .get(keyed.url("/api/v1/kinds"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let discovered = listed(&discovered);
    assert!(
        discovered.contains(&("export".into(), "exports".into()))
            && discovered.contains(&("merge".into(), "internal".into())),
        "{discovered:?}"
    );
    assert!(
        !discovered
            .iter()
            .any(|(name, _)| name == "sleep" || name == "noop"),
        "{discovered:?}"
    );

    let enabled = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.http.api_keys = KEY.parse().unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
    })
    .await;
    let resp = enabled
        .client
        .post(enabled.url("/api/v1/jobs"))
        .bearer_auth(KEY)
        .json(&json!({"kind": "noop", "args": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // Without keys (the zero-setup default) they are there.
    let open = spawn_app(Backend::Sqlite).await;
    assert!(kinds_of(&open.json("/openapi.json").await).contains(&"sleep".to_string()));
    assert!(listed(&open.json("/api/v1/kinds").await).contains(&("sleep".into(), "jobs".into())));
}
