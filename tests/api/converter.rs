//! The converter under hostile, broken and slow input, with a real LibreOffice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use offload::app::Role;
use offload::convert::process::processes;
use serde_json::Value;

use crate::fixtures;
use crate::helpers::*;

/// LibreOffice processes (live, not zombies) that belong to this app: their profile or input
/// lives under the app's work directory.
fn libreoffice_of(app: &TestApp) -> Vec<(i32, String)> {
    let work = app.settings.work_dir().display().to_string();
    processes()
        .into_iter()
        .filter(|(_, _, cmd)| cmd.contains("soffice") && cmd.contains(&work))
        .map(|(pid, _, cmd)| (pid, cmd))
        .collect()
}

/// Per-attempt scratch directories left in the app's work directory (the warm pool's own
/// directory, `offload-warm`, is not one).
fn scratch_dirs(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.settings.work_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("offload-") && n != "offload-warm")
        .collect()
}

/// Process exit is not an event we can await from here; poll the process table briefly.
async fn assert_no_libreoffice_left(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = libreoffice_of(app);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stray LibreOffice processes: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// LibreOffice starts just after the job reports "converting"; wait until it is there.
async fn wait_for_libreoffice(app: &TestApp) {
    let deadline = Instant::now() + PATIENCE;
    while libreoffice_of(app).is_empty() {
        assert!(Instant::now() < deadline, "LibreOffice never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn upload_and_finish(app: &TestApp, name: &str, bytes: Vec<u8>) -> Value {
    let resp = app.upload_bytes(name, bytes, None).await;
    assert_eq!(resp.status(), 202, "{name}");
    let job: Value = resp.json().await.unwrap();
    app.wait_final(&id_of(&job)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_has_its_expected_outcome() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let expected_pages = [
        ("deck5.pptx", 5),
        ("deck50.pptx", 50),
        ("deck5.odp", 5),
        ("i18n.pptx", 1),
        ("report3.docx", 4),
        ("report3.odt", 4),
        ("sales.xlsx", 2),
    ];
    let mut jobs = Vec::new();
    for (name, pages) in expected_pages {
        jobs.push((name, pages, id_of(&app.upload(name).await)));
    }
    for (name, pages, id) in jobs {
        let done = app.wait_final(&id).await;
        assert_eq!(done["status"], "succeeded", "{name}: {done}");
        let pdf = app.download(&id).await.bytes().await.unwrap();
        assert_eq!(pdf_pages(&pdf), pages, "{name}");
    }
    let garbage = app
        .upload_bytes(
            "garbage.pptx",
            std::fs::read(sample("garbage.pptx")).unwrap(),
            None,
        )
        .await;
    assert_eq!(garbage.status(), 415);
    let done = upload_and_finish(
        &app,
        "corrupt.pptx",
        std::fs::read(sample("corrupt_truncated.pptx")).unwrap(),
    )
    .await;
    assert_eq!(done["error"]["code"], "document_corrupt");
    assert!(
        scratch_dirs(&app).is_empty(),
        "scratch left: {:?}",
        scratch_dirs(&app)
    );
}

#[test]
fn ordinary_documents_have_no_external_references_to_remove() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "deck5.pptx",
        "deck50.pptx",
        "deck5.odp",
        "i18n.pptx",
        "report3.docx",
        "report3.odt",
        "sales.xlsx",
    ] {
        let ext = name.rsplit('.').next().unwrap();
        let format = offload::convert::DocFormat::from_extension(ext).unwrap();
        let out = dir.path().join(format!("out.{ext}"));
        let report = offload::convert::references::neutralize(&sample(name), format, &out);
        assert_eq!(report, Ok(None), "{name} is converted as uploaded");
        assert!(!out.exists());
    }
}

/// A tiny HTTP server on loopback that counts requests.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pixel.png", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_external_image_is_never_fetched() {
    require_libreoffice();
    let (url, hits) = counting_server().await;
    let deck = fixtures::deck_linking_image(&url);

    // Control: LibreOffice with a default profile does fetch it, so a zero below means something.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("linked.pptx"), &deck).unwrap();
    let status = tokio::process::Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}/profile",
            dir.path().display()
        ))
        .args(["--headless", "--convert-to", "pdf", "--outdir"])
        .arg(dir.path())
        .arg(dir.path().join("linked.pptx"))
        .output()
        .await
        .unwrap();
    assert!(status.status.success());
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "an unhardened LibreOffice fetches linked images"
    );

    for converter in ["warm", "cold"] {
        hits.store(0, Ordering::SeqCst);
        let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
            s.convert.converter = converter.parse().unwrap()
        })
        .await;
        let done = upload_and_finish(&app, "linked.pptx", deck.clone()).await;
        assert_eq!(done["status"], "succeeded", "{converter}: {done}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{converter}: the conversion made a network request"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_bomb_fails_fast_with_document_too_large() {
    let app = spawn_app(Backend::Sqlite).await;
    let bomb = fixtures::zip_bomb_docx();
    assert!(
        bomb.len() < 1024 * 1024,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let done = upload_and_finish(&app, "bomb.docx", bomb).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "document_too_large");
    assert_eq!(done["attempts"], 1);
    assert!(libreoffice_of(&app).is_empty(), "LibreOffice never saw it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_document_without_its_password_fails_asking_for_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let secret = fixtures::encrypted_docx("Secret123");
    let done = upload_and_finish(&app, "secret.docx", secret).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "password_required");
    assert_eq!(done["attempts"], 1);
    assert!(libreoffice_of(&app).is_empty(), "LibreOffice never saw it");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_that_times_out_twice_fails_as_too_complex_and_leaves_no_libreoffice() {
    require_libreoffice();
    for converter in ["warm", "cold"] {
        let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
            s.convert.converter = converter.parse().unwrap();
            s.worker.export_timeout_secs = 1;
            s.worker.max_attempts = 5;
        })
        .await;
        let done = upload_and_finish(&app, "long.docx", fixtures::long_docx(20_000)).await;
        assert_eq!(done["status"], "failed", "{converter}: {done}");
        assert_eq!(done["error"]["code"], "document_too_complex", "{converter}");
        assert_eq!(
            done["attempts"], 2,
            "{converter}: the first timeout is retried, the second is final"
        );
        assert_eq!(done["attempt_errors"][0]["code"], "timeout", "{converter}");
        assert_no_libreoffice_left(&app).await;
        assert!(
            scratch_dirs(&app).is_empty(),
            "{converter}: scratch left behind: {:?}",
            scratch_dirs(&app)
        );
    }
}

/// Waits (on the event stream) until the job's conversion has started.
async fn wait_converting(app: &TestApp, id: &str) {
    let events = app
        .events_until(id, |e| {
            e["progress"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("converting"))
        })
        .await;
    assert_eq!(events.last().unwrap()["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_libreoffice_mid_conversion_fails_only_that_attempt() {
    require_libreoffice();
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| s.worker.concurrency = 1).await;
    // Warm the slot first so the kill lands in a running conversion, not a start-up.
    let warmup = upload_and_finish(
        &app,
        "deck5.pptx",
        std::fs::read(sample("deck5.pptx")).unwrap(),
    )
    .await;
    assert_eq!(warmup["status"], "succeeded");

    let job: Value = app
        .upload_bytes("long.docx", fixtures::long_docx(20_000), None)
        .await
        .json()
        .await
        .unwrap();
    let id = id_of(&job);
    wait_converting(&app, &id).await;
    let victims: Vec<i32> = libreoffice_of(&app)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("soffice.bin"))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(
        victims.len(),
        1,
        "one warm LibreOffice: {:?}",
        libreoffice_of(&app)
    );
    // SAFETY: plain kill(2) of a process this test found by its command line.
    unsafe { libc::kill(victims[0], libc::SIGKILL) };

    let events = app.events(&id).await;
    let done = events.last().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    assert!(
        events
            .iter()
            .any(|e| e["error"]["code"] == "converter_crashed"),
        "the first attempt failed as a crash: {events:?}"
    );
    // The worker itself lives on and converts the next document.
    let next = upload_and_finish(
        &app,
        "deck5.pptx",
        std::fs::read(sample("deck5.pptx")).unwrap(),
    )
    .await;
    assert_eq!(next["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_conversion_kills_libreoffice() {
    require_libreoffice();
    for converter in ["warm", "cold"] {
        let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
            s.convert.converter = converter.parse().unwrap()
        })
        .await;
        let job: Value = app
            .upload_bytes("long.docx", fixtures::long_docx(20_000), None)
            .await
            .json()
            .await
            .unwrap();
        let id = id_of(&job);
        wait_converting(&app, &id).await;
        wait_for_libreoffice(&app).await;
        assert_eq!(app.cancel(&id).await.status(), 200);
        assert_eq!(app.wait_final(&id).await["status"], "cancelled");
        assert_no_libreoffice_left(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_uno_helper_warm_mode_falls_back_to_cold() {
    require_libreoffice();
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.convert.uno_python = "/nonexistent/python3".into()
    })
    .await;
    let done = upload_and_finish(
        &app,
        "deck5.pptx",
        std::fs::read(sample("deck5.pptx")).unwrap(),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
    let pdf = app.download(&id_of(&done)).await.bytes().await.unwrap();
    assert_eq!(pdf_pages(&pdf), 5);
}
