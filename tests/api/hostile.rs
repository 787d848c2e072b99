//! A corpus of hostile and broken uploads against one running service: each gets its
//! documented answer (a 4xx naming the problem, or a job that fails once with a reason), the
//! service stays up, and nothing is written outside its storage and scratch directories.

use serde_json::Value;

use crate::fixtures;
use crate::helpers::*;

/// What a hostile upload must get.
enum Outcome {
    /// Refused at once with this status and error code.
    Refused(u16, &'static str),
    /// Accepted, then failed on its first attempt with this error code.
    Fails(&'static str),
    /// Accepted and converted; the stored filename is this.
    Converts(&'static str),
}

struct Case {
    name: &'static str,
    content_type: String,
    body: Vec<u8>,
    outcome: Outcome,
}

const BOUNDARY: &str = "hostile-boundary";

/// A multipart body from raw part headers (bytes, so they can be invalid UTF-8) and contents.
fn multipart(parts: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (disposition, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Disposition: form-data; ");
        body.extend_from_slice(disposition);
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn file_part(filename: &[u8], content: &[u8]) -> Vec<u8> {
    multipart(&[(
        &[b"name=\"file\"; filename=\"", filename, b"\""].concat(),
        content,
    )])
}

fn upload_case(name: &'static str, body: Vec<u8>, outcome: Outcome) -> Case {
    Case {
        name,
        content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
        body,
        outcome,
    }
}

fn corpus() -> Vec<Case> {
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    let truncated = std::fs::read(sample("corrupt_truncated.pptx")).unwrap();
    let huge_name = format!("{}.pptx", "n".repeat(100_000));
    vec![
        upload_case(
            "empty file",
            file_part(b"empty.pptx", b""),
            Outcome::Refused(400, "empty_file"),
        ),
        upload_case(
            "wrong magic",
            file_part(b"deck.pptx", b"\x89PNG\r\n\x1a\n not a deck at all"),
            Outcome::Refused(415, "unsupported_type"),
        ),
        upload_case(
            "truncated zip",
            file_part(b"deck.pptx", &truncated),
            Outcome::Fails("document_corrupt"),
        ),
        upload_case(
            "zip bomb",
            file_part(b"bomb.docx", &fixtures::zip_bomb_docx()),
            Outcome::Fails("document_too_large"),
        ),
        upload_case(
            "deep XML",
            file_part(b"deep.docx", &fixtures::deep_docx(100_000)),
            Outcome::Fails("document_too_large"),
        ),
        upload_case(
            "0-byte main part",
            file_part(b"hollow.docx", &fixtures::hollow_docx()),
            Outcome::Fails("document_corrupt"),
        ),
        upload_case(
            "more file parts than a batch takes",
            multipart(
                &[(
                    b"name=\"file\"; filename=\"a.pptx\"".as_slice(),
                    b"x".as_slice(),
                ); 101],
            ),
            Outcome::Refused(400, "invalid_form"),
        ),
        upload_case(
            "no file part",
            multipart(&[(b"name=\"format\"", b"pdf")]),
            Outcome::Refused(400, "invalid_form"),
        ),
        upload_case(
            "0-byte format part",
            multipart(&[
                (b"name=\"file\"; filename=\"a.pptx\"", &deck),
                (b"name=\"format\"", b""),
            ]),
            Outcome::Refused(422, "invalid_arguments"),
        ),
        upload_case(
            "path traversal in the filename",
            file_part(b"../../etc/passwd", &deck),
            Outcome::Converts("passwd"),
        ),
        upload_case(
            "header injection in the filename",
            // The line break ends the quoted name early: it cannot be read, so it is not kept.
            file_part(b"x\r\nSet-Cookie: a=b.pptx", &deck),
            Outcome::Converts("document"),
        ),
        upload_case(
            "a tab in the filename",
            file_part(b"x\tSet-Cookie: a=b.pptx", &deck),
            Outcome::Converts("xSet-Cookie: a=b.pptx"),
        ),
        upload_case(
            "an escape sequence in the filename",
            file_part(b"x\x1b[31m.pptx", &deck),
            Outcome::Refused(400, "invalid_form"),
        ),
        upload_case(
            "invalid UTF-8 in the filename",
            file_part(b"d\xff\xfeck.pptx", &deck),
            // Unreadable as text: the name is dropped, the document is not.
            Outcome::Converts("document"),
        ),
        upload_case(
            "enormous filename",
            file_part(huge_name.as_bytes(), &deck),
            Outcome::Converts(""),
        ),
        upload_case(
            "two parts with the same name",
            file_part(b"twice.docx", &fixtures::docx_with_a_part_twice()),
            Outcome::Fails("document_corrupt"),
        ),
        upload_case(
            "a symbolic link inside the package",
            file_part(
                b"linked.docx",
                &fixtures::docx_with_a_symlink("/etc/passwd"),
            ),
            Outcome::Converts("linked.docx"),
        ),
        Case {
            name: "not multipart at all",
            content_type: "application/octet-stream".into(),
            body: deck.clone(),
            outcome: Outcome::Refused(415, "unsupported_content_type"),
        },
    ]
}

async fn check(app: &TestApp, case: Case) {
    // Each case on its own connection: a pooled one may have been closed by the server after
    // the previous case (a refused body left unread, an event stream that ended), and reusing
    // it races the close (hyper's `IncompleteMessage`, seen once in a full run).
    let resp = reqwest::Client::new()
        .post(app.url("/api/v1/exports"))
        .header("content-type", case.content_type)
        .body(case.body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let name = case.name;
    match case.outcome {
        Outcome::Refused(want, code) => {
            assert_eq!(
                (status, body["code"].as_str()),
                (want, Some(code)),
                "{name}: {body}"
            );
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains("file") || message.contains("form") || want == 415,
                "{name}: the message names the field: {message}"
            );
        }
        Outcome::Fails(code) => {
            assert_eq!(status, 202, "{name}: {body}");
            let done = app.wait_final(&id_of(&body)).await;
            assert_eq!(done["status"], "failed", "{name}: {done}");
            assert_eq!(done["error"]["code"], code, "{name}: {done}");
            assert_eq!(done["attempts"], 1, "{name}: not retried");
        }
        Outcome::Converts(filename) => {
            assert_eq!(status, 202, "{name}: {body}");
            let stored = body["input"]["filename"].as_str().unwrap();
            if filename.is_empty() {
                assert!(
                    stored.len() <= 255 && stored.ends_with(".pptx"),
                    "{name}: {stored}"
                );
            } else {
                assert_eq!(stored, filename, "{name}");
            }
            let id = id_of(&body);
            assert_eq!(app.wait_final(&id).await["status"], "succeeded", "{name}");
            let download = app.download(&id).await;
            assert!(download.headers().get("set-cookie").is_none(), "{name}");
            let disposition = download.headers()["content-disposition"].to_str().unwrap();
            assert!(
                disposition.is_ascii() && !disposition.contains(['\r', '\n']),
                "{name}: {disposition}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_get_their_documented_answers_and_hurt_nothing() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let root = app.storage_dir.parent().unwrap().to_path_buf();
    let before_cwd = files_under(&std::env::current_dir().unwrap().join("tests"));
    for case in corpus() {
        check(&app, case).await;
        // A fresh connection: the server may close one whose request body it refused unread.
        let fresh = reqwest::Client::new();
        let health = fresh.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "the service is still up");
    }
    // Uploads land under `files/jobs/<uuid>/`, cached results under `files/cache/…`,
    // scratch files under `work/`; nothing else.
    for path in files_under(&root) {
        let mut parts = path.components().map(|c| c.as_os_str().to_string_lossy());
        match (parts.next().as_deref(), parts.next().as_deref()) {
            (Some("files"), Some("jobs")) => {
                let id = parts.next().unwrap();
                assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path:?}");
                let object = parts.next().unwrap();
                assert!(
                    object == "input" || object.starts_with("result-"),
                    "{path:?}"
                );
            }
            // The result cache, under keys the service made: `<cache key>/<uuid>.pdf`.
            (Some("files"), Some("cache")) => {
                let hex =
                    |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
                let hash = parts.next().unwrap();
                let name = parts.next().unwrap();
                let id = name.strip_suffix(".pdf").unwrap_or_default();
                assert!(hex(&hash, 64) && hex(id, 32), "{path:?}");
            }
            (Some("work"), _) => {}
            _ => panic!("a file outside storage and scratch: {path:?}"),
        }
    }
    assert_eq!(
        files_under(&std::env::current_dir().unwrap().join("tests")),
        before_cwd,
        "nothing appeared beside the test files"
    );
}

#[tokio::test]
async fn malformed_json_bodies_name_what_is_wrong() {
    let app = spawn_app(Backend::Sqlite).await;
    let cases: [(&[u8], &str); 4] = [
        (b"{\"kind\": \"noop\", \"args\": {\xff}}", "body"),
        (b"{\"kind\": \"noop\"", "body"),
        (b"{\"args\": {}}", "kind"),
        (b"[]", "body"),
    ];
    for (body, names) in cases {
        let resp = app
            .client
            .post(app.url("/api/v1/jobs"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(body));
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "invalid_body", "{err}");
        assert!(err["message"].as_str().unwrap().contains(names), "{err}");
    }
}
