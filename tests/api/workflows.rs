//! Durable workflows end to end: checkpointed steps surviving a kill -9 between `convert` and
//! `publish`, multi-document merges across worker processes, cancel/delete of merges, and
//! delayed jobs.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use offload::app::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;
use crate::processes::{Process, shared_env};

on_both_backends!(
    a_failing_part_fails_the_merge_with_its_error,
    a_delayed_job_waits_for_its_time,
);

fn step_names(job: &Value) -> Vec<(String, String)> {
    field_pairs(&job["steps"], "name", "status")
}

/// A `soffice` stand-in that records each conversion in `log`, then runs the real one.
fn counting_sandbox(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    // The count is kept by a wrapper around bubblewrap, outside the sandbox that LibreOffice
    // (and so a wrapper around it) cannot write out of.
    let log = dir.join("conversions.log");
    let script = dir.join("bwrap");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--convert-to*) echo run >> '{}';; esac\nexec /usr/bin/bwrap \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

async fn upload_to(base: &str, files: &[&str], merge: bool) -> Value {
    let mut form = reqwest::multipart::Form::new();
    for name in files {
        let bytes = std::fs::read(sample(name)).unwrap();
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
    }
    if merge {
        form = form.text("merge", "true");
    }
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/exports"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

async fn get_at(base: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs/{id}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_convert_and_publish_resumes_at_publish() {
    require_libreoffice();
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (bwrap, conversions) = counting_sandbox(dir.path());
    let mut env = shared_env(&db, dir.path());
    env.push(("CONVERTER", "cold".into()));
    env.push(("BWRAP_PATH", bwrap.display().to_string()));
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let mut paused = env.clone();
    paused.push(("OFFLOAD_TEST_PAUSE_BEFORE_PUBLISH", "true".into()));
    let mut first = Process::start(&["worker"], &paused);
    first.wait_for_line("worker started");

    let job = upload_to(&base, &["deck5.pptx"], false).await;
    let id = id_of(&job);
    assert_eq!(
        step_names(&job),
        [
            ("inspect".into(), "pending".into()),
            ("convert".into(), "pending".into()),
            ("publish".into(), "pending".into())
        ]
    );
    tokio::task::block_in_place(|| first.wait_for_line("pausing before publish"));
    let paused_job: Value = get_at(&base, &id).await.json().await.unwrap();
    assert_eq!(
        step_names(&paused_job)[..2],
        [
            ("inspect".into(), "done".into()),
            ("convert".into(), "done".into())
        ],
        "{paused_job}"
    );
    first.kill();

    let second = Process::start(&["worker"], &env);
    let line = tokio::task::block_in_place(|| second.wait_for_line("attempt succeeded"));
    assert!(line.contains(&id), "{line}");
    let done = wait_final_at(&reqwest::Client::new(), &base, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "the killed attempt counts");
    let steps = done["steps"].as_array().unwrap();
    assert_eq!(
        steps[1]["attempt"], 1,
        "converted by the first attempt: {done}"
    );
    assert_eq!(steps[2]["name"], "publish");
    assert_eq!(steps[2]["attempt"], 2, "published by the second: {done}");
    let runs = std::fs::read_to_string(&conversions).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "LibreOffice converted the deck once"
    );
    let pdf = reqwest::get(format!("{base}/api/v1/jobs/{id}/result"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(pdf_pages(&pdf), 5);
}

/// The text of each page, via poppler's `pdftotext` (pages end with a form feed).
fn page_texts(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils, installed by scripts/test)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    pages.pop(); // after the last form feed
    pages
}

/// Job ids from `attempt succeeded` lines a worker has logged so far.
fn converted_by(worker: &Process) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    while let Ok(line) = worker.lines.try_recv() {
        if line.contains("attempt succeeded")
            && let Some(id) = line
                .split("job_id=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
        {
            ids.insert(id.to_string());
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_documents_merge_into_one_pdf_across_two_workers() {
    require_libreoffice();
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_env(&db, dir.path());
    env.push(("WORKER_CONCURRENCY", "1".into()));
    let api = Process::start(&["api"], &env);
    let base = api.wait_listening();
    let workers = [
        Process::start(&["worker"], &env),
        Process::start(&["worker"], &env),
    ];
    for w in &workers {
        w.wait_for_line("worker started");
    }

    let files = ["deck5.pptx", "report3.docx", "sales.xlsx"];
    let merge = upload_to(&base, &files, true).await;
    assert_eq!(merge["kind"], "merge");
    let parts = merge["parts"].as_array().unwrap();
    let names: Vec<&str> = parts
        .iter()
        .map(|p| p["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, files, "parts in upload order");

    let client = reqwest::Client::new();
    let done = wait_final_at(&client, &base, &id_of(&merge)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["filename"], "deck5-merged.pdf");
    let api = Api::at(&base);
    let download = |id: String| {
        let api = api.clone();
        async move { api.download(&id).await.bytes().await.unwrap() }
    };
    let merged = download(id_of(&done)).await;
    let mut expected = Vec::new();
    for part in done["parts"].as_array().unwrap() {
        assert_eq!(part["status"], "succeeded");
        expected.extend(page_texts(&download(id_of(part)).await));
    }
    assert_eq!(pdf_pages(&merged), expected.len(), "every part's pages");
    assert_eq!(page_texts(&merged), expected, "in upload order");

    let part_ids: BTreeSet<String> = parts.iter().map(id_of).collect();
    let (a, b) = (converted_by(&workers[0]), converted_by(&workers[1]));
    assert!(
        !a.is_disjoint(&part_ids) && !b.is_disjoint(&part_ids),
        "both workers converted parts: {a:?} / {b:?}"
    );
}

async fn a_failing_part_fails_the_merge_with_its_error(backend: Backend) {
    require_libreoffice();
    let app = spawn_app(backend).await;
    let merge = upload_to(&app.base, &["deck5.pptx", "corrupt_truncated.pptx"], true).await;
    let done = app.wait_final(&id_of(&merge)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "document_corrupt");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("part 2 (corrupt_truncated.pptx): "),
        "{message}"
    );
    let parts = done["parts"].as_array().unwrap();
    assert_eq!(parts[1]["status"], "failed");
    // The other part either finished first or was cancelled when its sibling failed.
    let first = parts[0]["status"].as_str().unwrap();
    assert!(matches!(first, "succeeded" | "cancelled"), "{first}");
    assert!(app.download(&id_of(&done)).await.status() == 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_deleting_a_merge_takes_its_parts_along() {
    // No worker: everything stays queued until the test acts.
    let app = spawn_app_with(Backend::Sqlite, Role::Api, |_| {}).await;
    let merge = upload_to(&app.base, &["deck5.pptx", "report3.docx"], true).await;
    let parts: Vec<String> = merge["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(merge["progress"]["message"], "waiting for 2 parts");
    for part in &parts {
        let job = app.get_job(part).await;
        assert_eq!(job["parent_id"], merge["id"]);
        assert_eq!(job["status"], "queued");
    }
    let part_delete = app.delete(&format!("/api/v1/jobs/{}", parts[0])).await;
    assert_eq!(part_delete.status(), 409, "a part goes with its merge job");

    let cancelled = app
        .post(&format!("/api/v1/jobs/{}/cancel", id_of(&merge)))
        .await;
    assert_eq!(cancelled.status(), 200);
    for part in &parts {
        assert_eq!(app.get_job(part).await["status"], "cancelled");
    }

    let deleted = app.delete(&format!("/api/v1/jobs/{}", id_of(&merge))).await;
    assert_eq!(deleted.status(), 204);
    for part in &parts {
        let gone = app.get(&format!("/api/v1/jobs/{part}")).await;
        assert_eq!(gone.status(), 404);
    }
    assert!(
        !app.storage_dir.join("jobs").exists()
            || std::fs::read_dir(app.storage_dir.join("jobs"))
                .unwrap()
                .count()
                == 0,
        "the parts' uploads are gone too"
    );
}

async fn a_delayed_job_waits_for_its_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let resp = app
        .post_json(
            "/api/v1/jobs",
            &json!({"kind": "noop", "run_at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "queued");
    assert!(
        job["progress"]["message"]
            .as_str()
            .unwrap()
            .starts_with("scheduled for "),
        "{job}"
    );
    let done = app.wait_final(&id_of(&job)).await;
    assert_eq!(done["status"], "succeeded");
    let started =
        chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    // apalis keeps SQLite's run_at in whole seconds.
    let due = at - chrono::Duration::seconds(1);
    assert!(started >= due, "started {started}, due {at}");

    let bad = app
        .post_json(
            "/api/v1/jobs",
            &json!({"kind": "noop", "run_at": "tomorrow"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("run_at"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_and_its_parts_expire_as_one() {
    use offload::sweeper::{Retention, sweep};
    require_libreoffice();
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| s.worker.concurrency = 1).await;
    let storage = app.storage().await;
    let expire_all = Retention {
        results: std::time::Duration::ZERO,
        jobs: std::time::Duration::from_secs(3600),
        cache: std::time::Duration::from_secs(3600),
    };
    // A quick part, then one that converts for seconds: the sweeper runs between them.
    let merge = app
        .upload_merge(vec![
            ("deck5.pptx", std::fs::read(sample("deck5.pptx")).unwrap()),
            ("long.docx", crate::fixtures::long_docx(20_000)),
        ])
        .await;
    let quick = id_of(&merge["parts"][0]);
    assert_eq!(app.wait_final(&quick).await["status"], "succeeded");
    let swept = sweep(&app.queue, &storage, &expire_all).await.unwrap();
    assert_eq!(
        swept.expired, 0,
        "nothing of a merge that can still run expires"
    );
    let kept = storage.job_objects(quick.parse().unwrap()).await.unwrap();
    assert!(!kept.is_empty(), "the finished part keeps its files");
    let done = app.wait_final(&id_of(&merge)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let swept = sweep(&app.queue, &storage, &expire_all).await.unwrap();
    assert_eq!(swept.expired, 3, "the merge and both parts expire together");

    // A failed merge whose files expired cannot be retried into failing parts.
    let failed = app
        .upload_merge(vec![
            ("deck5.pptx", std::fs::read(sample("deck5.pptx")).unwrap()),
            (
                "broken.pptx",
                std::fs::read(sample("corrupt_truncated.pptx")).unwrap(),
            ),
        ])
        .await;
    assert_eq!(app.wait_final(&id_of(&failed)).await["status"], "failed");
    sweep(&app.queue, &storage, &expire_all).await.unwrap();
    let retry = app.retry(&id_of(&failed)).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(
        retry.json::<Value>().await.unwrap()["code"],
        "input_expired"
    );
}
