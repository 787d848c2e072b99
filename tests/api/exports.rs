//! Uploads and conversions, on both backends, with a real LibreOffice.

use offload::app::Role;
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(
    a_five_slide_deck_becomes_a_five_page_pdf,
    word_spreadsheet_and_opendocument_inputs_convert,
    a_truncated_deck_fails_once_with_a_readable_reason,
    a_file_that_is_not_a_document_is_refused_with_415,
    the_same_idempotency_key_uploads_one_job,
    deleting_a_job_removes_its_files,
);

async fn a_five_slide_deck_becomes_a_five_page_pdf(backend: Backend) {
    require_libreoffice();
    let app = spawn_app(backend).await;
    let job = app.upload("deck5.pptx").await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "export");
    assert_eq!(job["input"]["filename"], "deck5.pptx");
    let id = id_of(&job);

    let events = app.events(&id).await;
    let done = events.last().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["percent"], 100);
    assert_eq!(done["result"]["url"], format!("/api/v1/jobs/{id}/result"));
    let stages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["progress"]["message"].as_str())
        .collect();
    assert!(
        stages.iter().any(|s| s.contains("5 slides")),
        "the slide count is shown: {stages:?}"
    );

    let resp = app.download(&id).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"deck5.pdf\""),
        "{disposition}"
    );
    let pdf = resp.bytes().await.unwrap();
    assert_eq!(pdf_pages(&pdf), 5);
    assert_eq!(done["result"]["size"], pdf.len() as u64);
}

async fn word_spreadsheet_and_opendocument_inputs_convert(backend: Backend) {
    require_libreoffice();
    let app = spawn_app(backend).await;
    let jobs: Vec<(&str, Value)> = vec![
        ("report3.docx", app.upload("report3.docx").await),
        ("sales.xlsx", app.upload("sales.xlsx").await),
        ("deck5.odp", app.upload("deck5.odp").await),
    ];
    for (name, job) in jobs {
        let id = id_of(&job);
        let done = app.wait_final(&id).await;
        assert_eq!(done["status"], "succeeded", "{name}: {done}");
        let pdf = app.download(&id).await.bytes().await.unwrap();
        let pages = pdf_pages(&pdf);
        match name {
            "deck5.odp" => assert_eq!(pages, 5, "{name}"),
            // One page per sheet: the workbook has as many pages as its sheets.
            "sales.xlsx" => {
                let sheets = sheet_count(&sample(name));
                assert_eq!(pages, sheets, "{name}: one page per sheet");
            }
            _ => assert!(pages >= 1, "{name}"),
        }
    }
}

fn sheet_count(path: &std::path::Path) -> usize {
    let archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    archive
        .file_names()
        .filter(|n| n.starts_with("xl/worksheets/sheet") && n.ends_with(".xml"))
        .count()
}

async fn a_truncated_deck_fails_once_with_a_readable_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let job = app.upload("corrupt_truncated.pptx").await;
    let done = app.wait_final(&id_of(&job)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"], 1, "a corrupt document is not retried");
    assert_eq!(done["error"]["code"], "document_corrupt");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("damaged or incomplete"), "{message}");
    assert_eq!(app.download(&id_of(&job)).await.status(), 409);
}

async fn a_file_that_is_not_a_document_is_refused_with_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let garbage = std::fs::read(sample("garbage.pptx")).unwrap();
    let resp = app.upload_bytes("garbage.pptx", garbage, None).await;
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_type");
    assert!(
        body["message"].as_str().unwrap().contains("file"),
        "names the field: {body}"
    );

    let resp = app.upload_bytes("empty.docx", Vec::new(), None).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "empty_file");

    // Nothing was queued for either.
    let list = app.list_jobs("").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
}

fn stored_job_dirs(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(app.storage_dir.join("jobs")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn the_same_idempotency_key_uploads_one_job(backend: Backend) {
    let app = spawn_app_with(backend, Role::Api, |_| {}).await;
    let bytes = std::fs::read(sample("deck5.pptx")).unwrap();
    let first = app
        .upload_bytes("deck5.pptx", bytes.clone(), Some("upload-1"))
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = app
        .upload_bytes("deck5.pptx", bytes.clone(), Some("upload-1"))
        .await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let other: Value = app
        .upload_bytes("deck5.pptx", bytes, Some("upload-2"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["id"], other["id"]);
    let mut dirs = stored_job_dirs(&app);
    dirs.sort();
    let mut expected = vec![id_of(&first), id_of(&other)];
    expected.sort();
    assert_eq!(dirs, expected, "one stored input per job");
}

async fn deleting_a_job_removes_its_files(backend: Backend) {
    require_libreoffice();
    let app = spawn_app(backend).await;
    let id = id_of(&app.upload("deck5.pptx").await);
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    assert_eq!(stored_job_dirs(&app), vec![id.clone()]);

    let resp = app.delete_job(&id).await;
    assert_eq!(resp.status(), 204);
    assert!(
        stored_job_dirs(&app).is_empty(),
        "input and result are gone"
    );
    let resp = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(resp.status(), 404);
    let resp = app.delete_job(&id).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_libreoffice_the_service_starts_and_exports_fail_clearly() {
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.convert.soffice_path = "/nonexistent/soffice".into()
    })
    .await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        body["checks"]["converter"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{body}"
    );

    let done = app
        .wait_final(&id_of(&app.upload("deck5.pptx").await))
        .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "converter_unavailable");
    assert_eq!(done["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_filename_is_only_metadata() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let bytes = std::fs::read(sample("deck5.pptx")).unwrap();
    let name = "../../etc/\"passwd\"\u{e9}.pptx";
    let job: Value = app
        .upload_bytes(name, bytes, None)
        .await
        .json()
        .await
        .unwrap();
    let id = id_of(&job);
    assert_eq!(job["input"]["filename"], "\"passwd\"\u{e9}.pptx");
    assert_eq!(
        stored_job_dirs(&app),
        vec![id.clone()],
        "stored under the job id only"
    );
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    let resp = app.download(&id).await;
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"_passwd__.pdf\"; filename*=UTF-8''%22passwd%22%C3%A9.pdf"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_refused_with_413() {
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.http.max_upload_bytes = 10_000
    })
    .await;
    let resp = app
        .upload_bytes(
            "deck5.pptx",
            std::fs::read(sample("deck5.pptx")).unwrap(),
            None,
        )
        .await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "too_large");
    assert!(
        body["message"].as_str().unwrap().contains("10000"),
        "{body}"
    );
    assert!(stored_job_dirs(&app).is_empty(), "nothing was stored");
    let formats: Value = app.get("/api/v1/formats").await.json().await.unwrap();
    assert_eq!(formats["max_upload_bytes"], 10_000);
    let inputs: Vec<&str> = formats["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["extension"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        [
            "pptx", "ppt", "odp", "docx", "doc", "odt", "rtf", "xlsx", "xls", "ods"
        ]
    );
}
