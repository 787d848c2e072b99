//! Password-protected documents: encrypted OOXML (msoffcrypto-tool), and ODF and legacy Word
//! files encrypted by LibreOffice itself, convert with the right password, fail at once with a
//! wrong one or none — and the password shows up nowhere: not in a log line, an API answer, a
//! webhook body, the metrics or the database.

use base64::Engine;
use serde_json::{Value, json};

use crate::fixtures;
use crate::helpers::*;
use crate::processes::{Process, shared_env};
use crate::webhooks;

/// Unusual enough that finding it anywhere means it leaked (and at most 15 characters, as
/// Word 97 files allow).
const PASSWORD: &str = "Pa55-w0rd-8c1f";

/// The upload form of `bytes` as `name`, with `password` when given, calling back `hook`.
fn form(name: &str, bytes: &[u8], password: Option<&str>, hook: &str) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string());
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("callback_url", hook.to_string());
    match password {
        Some(p) => form.text("password", p.to_string()),
        None => form,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_opens_its_document_and_is_kept_nowhere() {
    require_libreoffice();
    let by_libreoffice = fixtures::saved_with_password(
        PASSWORD,
        &[
            ("report3.odt", "odt", "writer8"),
            ("report3.docx", "doc", "MS Word 97"),
            ("sales.xlsx", "xls", "MS Excel 97"),
        ],
    );
    // (upload, its bytes, pages of its PDF)
    let documents = [
        ("report.docx", fixtures::encrypted_docx(PASSWORD), 4),
        ("report.odt", by_libreoffice[0].clone(), 4),
        ("report.doc", by_libreoffice[1].clone(), 4),
        ("sales.xls", by_libreoffice[2].clone(), 2),
    ];
    let mut hooks = webhooks::receiver(Vec::new()).await;
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_env(&db, dir.path());
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    env.extend([
        ("SECRET_KEY", key),
        ("WEBHOOK_SECRET", webhooks::SECRET.to_string()),
        ("OUTBOUND_ALLOW", "127.0.0.1".to_string()),
        // Everything the service can say, so that nothing it says goes unread.
        ("RUST_LOG", "debug".to_string()),
    ]);
    let service = Process::start(&["serve"], &env);
    let api = Api::at(&service.wait_listening());
    let mut answers = String::new();
    let mut jobs = 0;
    for (name, bytes, pages) in &documents {
        let cases = [
            (None, "failed", Some("password_required")),
            (
                Some("not-the-password"),
                "failed",
                Some("password_incorrect"),
            ),
            (Some(PASSWORD), "succeeded", None),
        ];
        for (password, status, code) in cases {
            let resp = api.post_form(form(name, bytes, password, &hooks.url)).await;
            assert_eq!(resp.status(), 202, "{name}");
            let job: Value = resp.json().await.unwrap();
            answers.push_str(&job.to_string());
            let done = api.wait_final(&id_of(&job)).await;
            answers.push_str(&done.to_string());
            assert_eq!(done["status"], status, "{name} with {password:?}: {done}");
            assert_eq!(done["error"]["code"].as_str(), code, "{name}: {done}");
            assert_eq!(done["attempts"], 1, "no retries: {done}");
            if code == Some("password_incorrect") {
                // Its password is gone: a retry is refused rather than failing again.
                let retry = api.retry(&id_of(&job)).await;
                assert_eq!(retry.status(), 409, "{name}");
                let body: Value = retry.json().await.unwrap();
                assert_eq!(body["code"], "password_wiped", "{body}");
            }
            if status == "succeeded" {
                let pdf = api.download(&id_of(&job)).await.bytes().await.unwrap();
                assert_eq!(pdf_pages(&pdf), *pages, "{name}");
                assert!(done["options"].is_null() && !done["cache_hit"].as_bool().unwrap());
            }
            jobs += 1;
        }
    }
    let mut hook_bodies = String::new();
    for _ in 0..jobs {
        hook_bodies.push_str(&String::from_utf8_lossy(&hooks.next().await.body));
    }
    answers.push_str(&api.list_jobs("limit=100").await.to_string());
    let metrics = api.get("/metrics").await.text().await.unwrap();

    let path = db.url.strip_prefix("sqlite://").unwrap();
    let mut stored = Vec::new();
    for file in [path.to_string(), format!("{path}-wal")] {
        stored.extend(std::fs::read(file).unwrap_or_default());
    }
    let logs = service.log().join("\n");
    assert!(logs.len() > 1000, "the service logged its work");
    for (place, text) in [
        ("an API answer", answers),
        ("a webhook body", hook_bodies),
        ("the metrics", metrics),
        ("a log line", logs),
        (
            "the database",
            String::from_utf8_lossy(&stored).into_owned(),
        ),
    ] {
        assert!(!text.contains(PASSWORD), "the password is in {place}");
    }
}

/// The sealed password in the job's row (`secret`), read straight from the database.
async fn secret_column(app: &TestApp, backend: Backend, id: &str) -> Option<String> {
    let url = app.settings.database.url.expose();
    let sql = "SELECT secret FROM offload_jobs WHERE id = $1";
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    }
}

async fn a_password_is_sealed_while_the_job_waits_and_wiped_when_it_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(deck).file_name("deck5.pptx"),
        )
        .text("password", PASSWORD)
        .text("run_at", later);
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 202);
    let id = id_of(&resp.json::<Value>().await.unwrap());
    let sealed = secret_column(&app, backend, &id)
        .await
        .expect("sealed while queued");
    assert!(!sealed.contains(PASSWORD) && sealed.len() > 40, "{sealed}");
    assert_eq!(app.cancel(&id).await.status(), 200);
    assert_eq!(
        secret_column(&app, backend, &id).await,
        None,
        "wiped at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_sealed_while_the_job_waits_and_wiped_when_it_ends_sqlite() {
    a_password_is_sealed_while_the_job_waits_and_wiped_when_it_ends(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_sealed_while_the_job_waits_and_wiped_when_it_ends_postgres() {
    a_password_is_sealed_while_the_job_waits_and_wiped_when_it_ends(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_key_split_processes_refuse_passwords() {
    let app = spawn_app_with(Backend::Sqlite, offload::app::Role::Api, |_| {}).await;
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(deck).file_name("deck5.pptx"),
        )
        .text("password", PASSWORD);
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "passwords_unavailable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("SECRET_KEY"));
    assert!(!body.to_string().contains(PASSWORD));
    assert_eq!(app.list_jobs("").await["jobs"], json!([]));
}
