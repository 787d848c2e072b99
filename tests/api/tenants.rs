//! Tenants (#18): keys of one tenant never reach another tenant's jobs — through any operation
//! of the spec, so a new endpoint cannot leak — and only the default tenant's keys see the
//! operator routes.

use offload::app::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const ACME: &str = "acme-key";
const GLOBEX: &str = "globex-key";
const OPERATOR: &str = "operator-key";

on_both_backends!(
    a_tenant_reaches_none_of_another_tenants_jobs,
    equal_idempotency_keys_of_two_tenants_make_two_jobs,
    the_queued_cap_and_the_upload_rate_are_each_tenants_own,
    a_backlog_of_one_tenant_does_not_hold_back_another,
    a_tenants_running_cap_holds_across_two_workers,
    the_stored_bytes_quota_is_each_tenants_own,
);

async fn two_tenants(backend: Backend) -> TestApp {
    spawn_app_with(backend, Role::Serve, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX},{OPERATOR}")
            .parse()
            .unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
    })
    .await
}

/// Every operation of the spec that names a job or a batch, with the id filled in (`job` or
/// `batch`), and the code an unknown id answers.
async fn job_operations(
    app: &TestApp,
    job: &str,
    batch: &str,
) -> Vec<(Method, String, &'static str)> {
    let spec: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.contains("{id}") {
            continue;
        }
        let (id, code) = match path.starts_with("/api/v1/batches/") {
            true => (batch, "batch_not_found"),
            false => (job, "job_not_found"),
        };
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, path.replace("{id}", id).replace("{n}", "1"), code));
        }
    }
    assert!(
        ops.len() >= 10,
        "the spec's job and batch operations: {ops:?}"
    );
    ops
}

async fn a_tenant_reaches_none_of_another_tenants_jobs(backend: Backend) {
    let app = two_tenants(backend).await;
    let (acme, globex) = (
        Api::with_key(&app.api.base, ACME),
        Api::with_key(&app.api.base, GLOBEX),
    );
    let job = acme.create_job("noop", json!({})).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(acme.wait_final(&id).await["status"], "succeeded");
    let batch = acme.create_batch(vec![json!({"kind": "noop"})]).await;
    let batch_id = batch["batch"]["id"].as_str().unwrap().to_string();
    let batch_job = job_ids(&batch)[0].clone();
    acme.wait_final(&batch_job).await;

    for (method, path, code) in job_operations(&app, &id, &batch_id).await {
        let resp = globex
            .client
            .request(method.clone(), globex.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
    }
    // Nor do the batch filters of the listing and the bulk actions reach into it.
    let by_batch = format!("batch_id={batch_id}");
    assert!(job_ids(&globex.list_jobs(&by_batch).await).is_empty());
    let cancel = globex
        .post_json(
            "/api/v1/jobs/cancel",
            &json!({"filter": {"batch_id": batch_id}}),
        )
        .await;
    assert_eq!(cancel.json::<Value>().await.unwrap()["matched"], 0);
    assert_eq!(job_ids(&acme.list_jobs(&by_batch).await), vec![batch_job]);
    // The job is still there, whole, for its own tenant.
    assert_eq!(acme.get_job(&id).await["status"], "succeeded");
    assert!(job_ids(&acme.list_jobs("").await).contains(&id));
    assert!(!job_ids(&globex.list_jobs("").await).contains(&id));
    let operator = Api::with_key(&app.api.base, OPERATOR);
    assert!(
        !job_ids(&operator.list_jobs("").await).contains(&id),
        "the default tenant is a tenant too"
    );
}

async fn equal_idempotency_keys_of_two_tenants_make_two_jobs(backend: Backend) {
    let app = two_tenants(backend).await;
    let submit = |key: &'static str| {
        let base = app.api.base.clone();
        async move {
            let api = Api::with_key(&base, key);
            let resp = api
                .client
                .post(api.url("/api/v1/jobs"))
                .header("Idempotency-Key", "order-42")
                .json(&json!({"kind": "noop"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (a1, a2, g1, o1) = (
        submit(ACME).await,
        submit(ACME).await,
        submit(GLOBEX).await,
        submit(OPERATOR).await,
    );
    assert_eq!(a1, a2, "the same tenant's retry gets its job back");
    assert_ne!(a1, g1);
    assert_ne!(a1, o1);
    assert_ne!(g1, o1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_default_tenants_keys_see_the_operator_routes() {
    let app = two_tenants(Backend::Sqlite).await;
    let board = format!("http://{}/", app.board_addr.expect("the board listens"));
    let routes = [app.api.url("/metrics"), app.api.url("/board"), board];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for url in routes {
        let tenant = client.get(&url).bearer_auth(ACME).send().await.unwrap();
        assert_eq!(tenant.status(), StatusCode::FORBIDDEN, "{url}");
        let body: Value = tenant.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{url}");
        let operator = client.get(&url).bearer_auth(OPERATOR).send().await.unwrap();
        assert!(
            operator.status().is_success() || operator.status().is_redirection(),
            "{url}: {}",
            operator.status()
        );
    }
}

async fn the_queued_cap_and_the_upload_rate_are_each_tenants_own(backend: Backend) {
    // No worker: submitted jobs stay queued.
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX},{OPERATOR}")
            .parse()
            .unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
        s.http.max_queued_jobs = 3;
        s.http.tenant_max_queued_jobs = "globex=5".parse().unwrap();
        s.http.uploads_per_minute = 2;
    })
    .await;
    let submit = |key: &'static str| {
        let base = app.api.base.clone();
        async move {
            let api = Api::with_key(&base, key);
            api.client
                .post(api.url("/api/v1/jobs"))
                .json(&json!({"kind": "noop"}))
                .send()
                .await
                .unwrap()
        }
    };
    for (key, cap) in [(ACME, 3), (GLOBEX, 5), (OPERATOR, 3)] {
        for n in 0..cap {
            assert_eq!(submit(key).await.status(), 202, "{key}: job {}", n + 1);
        }
        let refused = submit(key).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{key}");
        assert!(refused.headers().contains_key("retry-after"), "{key}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "overloaded", "{key}: {body}");
    }
    // At its cap a tenant can still cancel what waits (a bulk cancel queues nothing).
    let acme = Api::with_key(&app.api.base, ACME);
    let cancel = acme
        .post_json(
            "/api/v1/jobs/cancel",
            &json!({"filter": {"status": "queued"}}),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(cancel.json::<Value>().await.unwrap()["affected"], 3);

    // Uploads per minute count per key, not per address (every client here is 127.0.0.1).
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX}").parse().unwrap();
        s.http.max_queued_jobs = 0;
        s.http.uploads_per_minute = 2;
        s.http.tenant_uploads_per_minute = "globex=4".parse().unwrap();
    })
    .await;
    let bytes = std::fs::read(sample("report3.docx")).unwrap();
    let upload = |key: &'static str| {
        let (base, bytes) = (app.api.base.clone(), bytes.clone());
        async move {
            Api::with_key(&base, key)
                .upload_bytes("report3.docx", bytes, None)
                .await
        }
    };
    for _ in 0..2 {
        assert_eq!(upload(ACME).await.status(), 202);
    }
    let refused = upload(ACME).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    // globex's exception: its keys get 4 a minute (a bucket each), not the default's 2.
    for n in 0..4 {
        assert_eq!(
            upload(GLOBEX).await.status(),
            202,
            "another key's own minute, at its tenant's rate: upload {}",
            n + 1
        );
    }
    assert_eq!(upload(GLOBEX).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Fair claims: tenant A queues 2,000 jobs, then tenant B 20; once a worker starts, all of B's
/// jobs start before a tenth of A's backlog has — read from `started_at`, not from any clock.
async fn a_backlog_of_one_tenant_does_not_hold_back_another(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX}").parse().unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
    })
    .await;
    let (acme, globex) = (
        Api::with_key(&app.api.base, ACME),
        Api::with_key(&app.api.base, GLOBEX),
    );
    let batch =
        |n: usize| json!({"jobs": (0..n).map(|_| json!({"kind": "noop"})).collect::<Vec<_>>()});
    let mut backlog = Vec::new();
    for _ in 0..2 {
        let resp = acme.post_json("/api/v1/jobs/batch", &batch(1000)).await;
        assert_eq!(resp.status(), 202);
        backlog.extend(job_ids(&resp.json().await.unwrap()));
    }
    let resp = globex.post_json("/api/v1/jobs/batch", &batch(20)).await;
    let small = job_ids(&resp.json().await.unwrap());

    let worker = app.start_worker().await;
    let started = |job: &Value| {
        chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap()).unwrap()
    };
    let mut last = None;
    for id in &small {
        let job = globex.wait_final(id).await;
        assert_eq!(job["status"], "succeeded");
        last = last.max(Some(started(&job)));
    }
    let last = last.unwrap();
    assert_eq!(
        acme.wait_final(backlog.last().unwrap()).await["status"],
        "succeeded"
    );
    let mut before = 0;
    for id in &backlog {
        if started(&acme.get_job(id).await) < last {
            before += 1;
        }
    }
    assert!(
        before < backlog.len() / 10,
        "{before} of tenant A's jobs started before tenant B's last"
    );
    worker.stop().await;
}

/// A running cap (`TENANT_MAX_RUNNING_JOBS=acme=2`) holds across two worker processes: at no
/// moment the rows record (`started_at` … `finished_at`) do more than two of acme's jobs
/// overlap, while another tenant's run beside them.
async fn a_tenants_running_cap_holds_across_two_workers(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX}").parse().unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
        s.worker.tenant_max_running_jobs = "acme=2".parse().unwrap();
    })
    .await;
    let (acme, globex) = (
        Api::with_key(&app.api.base, ACME),
        Api::with_key(&app.api.base, GLOBEX),
    );
    let sleeps = |n: usize| json!({"jobs": (0..n).map(|_| json!({"kind": "sleep", "args": {"seconds": 0.2}})).collect::<Vec<_>>()});
    let ids = |created: Value| job_ids(&created);
    let capped = ids(acme
        .post_json("/api/v1/jobs/batch", &sleeps(12))
        .await
        .json()
        .await
        .unwrap());
    let free = ids(globex
        .post_json("/api/v1/jobs/batch", &sleeps(6))
        .await
        .json()
        .await
        .unwrap());
    let (one, two) = (app.start_worker().await, app.start_worker().await);
    let at = |job: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(job[field].as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    let mut spans = Vec::new();
    for id in &capped {
        let job = acme.wait_final(id).await;
        assert_eq!(job["status"], "succeeded");
        spans.push((at(&job, "started_at"), at(&job, "finished_at")));
    }
    let mut globex_spans = Vec::new();
    for id in &free {
        let job = globex.wait_final(id).await;
        assert_eq!(job["status"], "succeeded");
        globex_spans.push((at(&job, "started_at"), at(&job, "finished_at")));
    }
    // The most spans open at once: ends before starts at the same instant.
    let most_at_once = |spans: &[(i64, i64)]| {
        let mut edges: Vec<(i64, i32)> = spans
            .iter()
            .flat_map(|&(start, end)| [(start, 1), (end, -1)])
            .collect();
        edges.sort();
        edges
            .iter()
            .scan(0, |open, &(_, step)| {
                *open += step;
                Some(*open)
            })
            .max()
            .unwrap_or(0)
    };
    assert!(
        most_at_once(&spans) <= 2,
        "acme ran {} at once",
        most_at_once(&spans)
    );
    assert!(
        most_at_once(&globex_spans) > 2,
        "the control: an uncapped tenant runs more at once"
    );
    one.stop().await;
    two.stop().await;
}

async fn the_stored_bytes_quota_is_each_tenants_own(backend: Backend) {
    let bytes = std::fs::read(sample("report3.docx")).unwrap();
    let size = bytes.len() as u64;
    // Room for one document of acme's, not two; globex has no quota. No worker: no results.
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = format!("acme:{ACME},globex:{GLOBEX}").parse().unwrap();
        s.http.tenant_max_stored_bytes = format!("acme={}", size * 3 / 2).parse().unwrap();
    })
    .await;
    let upload = |key: &'static str| {
        let (base, bytes) = (app.api.base.clone(), bytes.clone());
        async move {
            let api = Api::with_key(&base, key);
            upload_at(&api.client, &base, "report3.docx", bytes).await
        }
    };
    let first = upload(ACME).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let refused = upload(ACME).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "storage_quota", "{body}");
    assert!(body["message"].as_str().unwrap().contains("acme"), "{body}");
    for _ in 0..2 {
        assert_eq!(upload(GLOBEX).await.status(), 202, "another tenant's quota");
    }
    // Deleting the stored job frees its bytes at once.
    let acme = Api::with_key(&app.api.base, ACME);
    assert_eq!(acme.delete_job(&id_of(&first)).await.status(), 204);
    assert_eq!(upload(ACME).await.status(), 202);
}
