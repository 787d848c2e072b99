//! Bulk actions (#18): cancel, retry and delete by filter, a page at a time, counting what
//! matched, changed and was skipped — only ever the caller's tenant's jobs.

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(bulk_actions_take_the_matching_jobs_a_page_at_a_time);

async fn bulk_actions_take_the_matching_jobs_a_page_at_a_time(backend: Backend) {
    // No worker: jobs stay queued until the actions move them.
    let app = spawn_app_with(backend, Role::Api, |s| {
        s.http.api_keys = "acme:acme-key,globex:globex-key".parse().unwrap();
        s.worker.demo_kinds = offload::settings::DemoKinds::On;
    })
    .await;
    let (acme, globex) = (
        Api::with_key(&app.api.base, "acme-key"),
        Api::with_key(&app.api.base, "globex-key"),
    );
    let job = |batch: &str| json!({"kind": "noop", "metadata": {"batch": batch}});
    let jobs: Vec<Value> = (0..30)
        .map(|_| job("b1"))
        .chain((0..5).map(|_| job("b2")))
        .collect();
    assert_eq!(
        acme.post_json("/api/v1/jobs/batch", &json!({ "jobs": jobs }))
            .await
            .status(),
        202
    );
    let other = globex.create_job("noop", json!({})).await;
    let call = |api: &Api, path: &str, body: Value| {
        let (client, url) = (api.client.clone(), api.url(path));
        async move {
            let resp = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{body}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let b1 = json!({"metadata": {"batch": "b1"}});
    let page = call(
        &acme,
        "/api/v1/jobs/cancel",
        json!({"filter": b1, "limit": 20}),
    )
    .await;
    assert_eq!(
        (page["matched"].clone(), page["affected"].clone()),
        (json!(20), json!(20))
    );
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = call(
        &acme,
        "/api/v1/jobs/cancel",
        json!({"filter": b1, "limit": 20, "cursor": cursor}),
    )
    .await;
    assert_eq!(rest["matched"], 10);
    assert_eq!(rest["affected"], 10);
    assert!(rest["next_cursor"].is_null());
    let again = call(&acme, "/api/v1/jobs/cancel", json!({"filter": b1})).await;
    assert_eq!(
        (again["matched"].clone(), again["skipped"].clone()),
        (json!(30), json!(30))
    );
    let count = |page: Value| page["jobs"].as_array().unwrap().len();
    assert_eq!(
        count(acme.list_jobs("status=queued").await),
        5,
        "b2 is left alone"
    );

    // Another tenant's filter never reaches these jobs.
    let theirs = call(&globex, "/api/v1/jobs/cancel", json!({"filter": {}})).await;
    assert_eq!(theirs["matched"], 1);
    assert_eq!(
        globex.get_job(other["id"].as_str().unwrap()).await["status"],
        "cancelled"
    );

    let retried = call(
        &acme,
        "/api/v1/jobs/retry",
        json!({"filter": {"status": "cancelled", "metadata": {"batch": "b1"}}}),
    )
    .await;
    assert_eq!(retried["affected"], 30);
    assert_eq!(count(acme.list_jobs("status=queued&limit=100").await), 35);

    let resp = acme
        .client
        .delete(acme.url("/api/v1/jobs?metadata.batch=b1&status=queued"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deleted: Value = resp.json().await.unwrap();
    assert_eq!(deleted["affected"], 30);
    assert_eq!(count(acme.list_jobs("limit=100").await), 5);
    assert_eq!(count(globex.list_jobs("").await), 1);

    let bad = acme
        .client
        .post(acme.url("/api/v1/jobs/cancel"))
        .json(&json!({"filter": {"kind": "nope"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("filter.kind"),
        "{body}"
    );
}
