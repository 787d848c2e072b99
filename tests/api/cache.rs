//! The result cache: the same document exported the same way again is answered at submit,
//! already `succeeded`, without LibreOffice; anything that changes the output misses; one API
//! key's clients never see another's entries; entries expire.

use offload::app::Role;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::webhooks;

fn upload_form(name: &str, options: Value, cache: &str) -> Form {
    let bytes = std::fs::read(sample(name)).unwrap();
    Form::new()
        .part("file", Part::bytes(bytes).file_name(name.to_string()))
        .text("options", options.to_string())
        .text("cache", cache.to_string())
}

/// Submits `name` and waits for its end; the job as the submit answered it, and as it ended.
async fn export(api: &Api, name: &str, options: Value, cache: &str) -> (Value, Value) {
    let resp = api.post_form(upload_form(name, options, cache)).await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let done = api.wait_final(&id_of(&accepted)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    (accepted, done)
}

/// A sample line of `/metrics` (`name{labels}`), 0 when absent.
async fn metric(api: &Api, series: &str) -> f64 {
    let text = api.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Export attempts the service ran (each one a LibreOffice conversion; a cache hit has none),
/// from the jobs themselves: the attempt metric is recorded just after a job's end is
/// written, so a test that has seen the end could read it a moment too early.
async fn conversions(api: &Api) -> f64 {
    let page = api.list_jobs("limit=100").await;
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "export")
        .map(|j| j["attempts"].as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_export_is_answered_from_the_cache() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let (first, _) = export(&app, "deck5.pptx", json!({}), "use").await;
    assert_eq!(first["cache_hit"], false);
    assert_eq!(conversions(&app).await, 1.0);

    let resp = app
        .post_form(upload_form("deck5.pptx", json!({}), "use"))
        .await;
    assert_eq!(resp.status(), 202);
    let hit: Value = resp.json().await.unwrap();
    assert_eq!(hit["status"], "succeeded", "done at submit: {hit}");
    assert_eq!(hit["cache_hit"], true);
    assert_eq!(hit["progress"]["message"], "cached");
    assert_eq!(hit["attempts"], 0);
    assert_eq!(hit["result"]["filename"], "deck5.pdf");
    assert_eq!(hit["input"]["sha256"], first["input"]["sha256"]);
    let events = app.events(&id_of(&hit)).await;
    assert_eq!(events.last().unwrap()["status"], "succeeded", "{events:?}");
    let original = app.download(&id_of(&first)).await.bytes().await.unwrap();
    let cached = app.download(&id_of(&hit)).await.bytes().await.unwrap();
    assert_eq!(original, cached);
    assert_eq!(conversions(&app).await, 1.0, "nothing was converted");

    // Anything that changes the output is another entry; bypass converts and keeps nothing.
    let (other_options, _) = export(&app, "deck5.pptx", json!({"page_range": "1"}), "use").await;
    let (other_file, _) = export(&app, "deck5.odp", json!({}), "use").await;
    let (bypassed, _) = export(&app, "deck5.pptx", json!({}), "bypass").await;
    for job in [&other_options, &other_file, &bypassed] {
        assert_eq!(job["cache_hit"], false, "{job}");
    }
    assert_eq!(conversions(&app).await, 4.0);
    let (refreshed, _) = export(&app, "deck5.pptx", json!({"page_range": "1"}), "refresh").await;
    assert_eq!(refreshed["cache_hit"], false, "refresh converts");
    let (again, _) = export(&app, "deck5.pptx", json!({"page_range": "1"}), "use").await;
    assert_eq!(again["cache_hit"], true);
    assert_eq!(conversions(&app).await, 5.0);

    let hits = metric(&app, r#"offload_cache_lookups_total{outcome="hit"}"#).await;
    let misses = metric(&app, r#"offload_cache_lookups_total{outcome="miss"}"#).await;
    let skipped = metric(&app, r#"offload_cache_lookups_total{outcome="skipped"}"#).await;
    assert_eq!((hits, misses, skipped), (2.0, 3.0, 2.0));

    // A refresh replaced its entry's file: one file per entry (two documents × options).
    let cache_dir = app.storage_dir.join("cache");
    assert_eq!(
        files_under(&cache_dir).len(),
        3,
        "{:?}",
        files_under(&cache_dir)
    );

    // Deleting a job deletes its document from the cache too: the next export converts.
    let resp = app.delete_job(&id_of(&first)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        files_under(&cache_dir).len(),
        1,
        "only deck5.odp's entry is left"
    );
    let (after_delete, _) = export(&app, "deck5.pptx", json!({}), "use").await;
    assert_eq!(after_delete["cache_hit"], false);
    // Five conversions before, less the deleted job's, plus this one.
    assert_eq!(conversions(&app).await, 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_two_api_keys_do_not_share_entries() {
    require_libreoffice();
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.http.api_keys = "key-one,key-two".parse().unwrap();
    })
    .await;
    let (one, two) = (
        Api::with_key(&app.url(""), "key-one"),
        Api::with_key(&app.url(""), "key-two"),
    );
    let (first, _) = export(&one, "report3.docx", json!({}), "use").await;
    let (repeat, _) = export(&one, "report3.docx", json!({}), "use").await;
    let (stranger, _) = export(&two, "report3.docx", json!({}), "use").await;
    assert_eq!(
        [&first, &repeat, &stranger].map(|j| j["cache_hit"].as_bool().unwrap()),
        [false, true, false],
        "the second key's client cannot learn the document was exported before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_converts_again() {
    use offload::sweeper::{Retention, sweep};
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    export(&app, "deck5.pptx", json!({}), "use").await;
    let cached_files = || match app.storage_dir.join("cache") {
        dir if dir.is_dir() => files_under(&dir).len(),
        _ => 0,
    };
    assert_eq!(cached_files(), 1);
    let hour = std::time::Duration::from_secs(3600);
    let expire_cache = Retention {
        results: hour,
        jobs: hour,
        cache: std::time::Duration::ZERO,
    };
    let swept = sweep(&app.queue, &app.storage().await, &expire_cache)
        .await
        .unwrap();
    assert_eq!((swept.cache_expired, swept.expired), (1, 0));
    assert_eq!(cached_files(), 0, "its file went with it");
    let (again, _) = export(&app, "deck5.pptx", json!({}), "use").await;
    assert_eq!(again["cache_hit"], false);
    assert_eq!(conversions(&app).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_parts_merge_and_cache_hits_call_back() {
    require_libreoffice();
    let mut hooks = webhooks::receiver(Vec::new()).await;
    let app = webhooks::app_with_webhooks().await;
    export(&app, "deck5.pptx", json!({}), "use").await;
    export(&app, "report3.docx", json!({}), "use").await;
    let mut form = Form::new()
        .text("merge", "true")
        .text("callback_url", hooks.url.clone());
    for name in ["deck5.pptx", "report3.docx"] {
        let bytes = std::fs::read(sample(name)).unwrap();
        form = form.part("file", Part::bytes(bytes).file_name(name));
    }
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 202);
    let merge: Value = resp.json().await.unwrap();
    let done = app.wait_final(&id_of(&merge)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    for part in done["parts"].as_array().unwrap() {
        assert_eq!(app.get_job(&id_of(part)).await["cache_hit"], true);
    }
    let pdf = app.download(&id_of(&merge)).await.bytes().await.unwrap();
    assert_eq!(pdf_pages(&pdf), 5 + 4);
    let delivered: Value = serde_json::from_slice(&hooks.next().await.body).unwrap();
    assert_eq!(delivered["id"], merge["id"]);

    let form = upload_form("deck5.pptx", json!({}), "use").text("callback_url", hooks.url.clone());
    let hit: Value = app.post_form(form).await.json().await.unwrap();
    assert_eq!(hit["cache_hit"], true);
    let delivered: Value = serde_json::from_slice(&hooks.next().await.body).unwrap();
    assert_eq!(
        (&delivered["id"], &delivered["cache_hit"]),
        (&hit["id"], &json!(true))
    );
    assert_eq!(
        conversions(&app).await,
        2.0,
        "only the first two exports converted"
    );
}
