//! Job metadata (#18): the caller's labels are checked at submit, echoed in the Job JSON and
//! filter the listing (`GET /jobs?metadata.<key>=<value>`).

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(labels_are_echoed_and_filter_the_listing);

async fn labels_are_echoed_and_filter_the_listing(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let submit = |metadata: Value| {
        let app = &app;
        async move {
            let resp = app
                .post_json(
                    "/api/v1/jobs",
                    &json!({"kind": "noop", "metadata": metadata}),
                )
                .await;
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, acme) = submit(json!({"customer": "acme", "order": "50%_off"})).await;
    assert_eq!(status, 202);
    assert_eq!(
        acme["metadata"],
        json!({"customer": "acme", "order": "50%_off"})
    );
    let (_, globex) = submit(json!({"customer": "globex"})).await;
    let (_, near) = submit(json!({"customer": "acme2", "xcustomer": "acme"})).await;
    let plain = app.create_job("noop", json!({})).await;
    assert_eq!(plain["metadata"], json!({}));
    let acme_id = acme["id"].as_str().unwrap().to_string();
    assert_eq!(app.get_job(&acme_id).await["metadata"]["customer"], "acme");

    let listed = job_ids(&app.list_jobs("metadata.customer=acme").await);
    assert_eq!(listed, vec![acme_id.clone()], "only the exact label");
    let both = job_ids(
        &app.list_jobs("metadata.customer=acme&metadata.order=50%25_off")
            .await,
    );
    assert_eq!(both, vec![acme_id.clone()]);
    assert!(job_ids(&app.list_jobs("metadata.order=50%25").await).is_empty());
    let globex_id = globex["id"].as_str().unwrap();
    assert_eq!(
        job_ids(&app.list_jobs("metadata.customer=globex").await),
        vec![globex_id]
    );
    let near_id = near["id"].as_str().unwrap();
    assert_eq!(
        job_ids(&app.list_jobs("metadata.xcustomer=acme").await),
        vec![near_id]
    );

    let (status, refused) = submit(json!({"no spaces": "x"})).await;
    assert_eq!(status, 422);
    assert_eq!(refused["code"], "invalid_arguments");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("body.metadata.no spaces:"),
        "{refused}"
    );
    let too_many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(submit(Value::Object(too_many)).await.0, 422);
    let resp = app.get("/api/v1/jobs?metadata.bad%20key=x").await;
    assert_eq!(resp.status(), 400);
    // A key given twice is refused alike by the listing and by the bulk delete of the same
    // query (which would otherwise have kept only its last value).
    for resp in [
        app.get("/api/v1/jobs?metadata.customer=acme&metadata.customer=globex")
            .await,
        app.delete("/api/v1/jobs?metadata.customer=acme&metadata.customer=globex")
            .await,
    ] {
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("given more than once"),
            "{body}"
        );
    }
    let kept = app.get(&format!("/api/v1/jobs/{acme_id}")).await;
    assert_eq!(kept.status(), 200, "the refused delete deleted nothing");
}
