//! The converter sandbox, tried as an attacker would: the hostile corpus ([`crate::corpus`])
//! against real `offload` processes whose environment holds secrets, with a real LibreOffice in
//! a real bubblewrap sandbox. Nothing a document says may reach a file, a socket or a variable
//! the conversion does not need — with the sandbox alone (references kept in the document),
//! with the neutraliser alone (no sandbox), and with both (the default).

use std::path::Path;

use offload::app::Role;
use offload::convert::process::descendants;
use serde_json::Value;

use crate::corpus::{self, HostileDoc, Leak, Targets};
use crate::helpers::*;
use crate::processes::{Process, shared_env};

/// The variable a document tries to exfiltrate; the service has it, LibreOffice must not.
const CANARY: &str = "OFFLOAD_TEST_CANARY";

/// A real `offload serve` with secrets in its environment, and what it takes to talk to it.
struct Service {
    process: Process,
    base: String,
    client: reqwest::Client,
    canary: String,
    _db: TestDatabase,
    dir: tempfile::TempDir,
}

impl Service {
    async fn start(extra: &[(&'static str, &str)]) -> Service {
        let db = TestDatabase::create(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let canary = format!("canary{}", uuid::Uuid::new_v4().simple());
        let mut env = shared_env(&db, dir.path());
        env.push((CANARY, canary.clone()));
        env.push(("WEBHOOK_SECRET", format!("whsec-{canary}")));
        env.push(("WORKER_CONCURRENCY", "2".into()));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let process = Process::start(&["serve"], &env);
        let base = process.wait_listening();
        Service {
            process,
            base,
            client: reqwest::Client::new(),
            canary,
            _db: db,
            dir,
        }
    }

    async fn upload(&self, filename: &str, bytes: Vec<u8>) -> Value {
        let resp = upload_at(&self.client, &self.base, filename, bytes).await;
        assert_eq!(resp.status(), 202, "{filename}");
        resp.json().await.unwrap()
    }

    async fn finish(&self, job: &Value) -> Value {
        wait_final_at(&self.client, &self.base, &id_of(job)).await
    }

    async fn pdf(&self, job: &Value) -> Vec<u8> {
        let url = format!("{}/api/v1/jobs/{}/result", self.base, id_of(job));
        let resp = self.client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    fn pid(&self) -> i32 {
        self.process.pid()
    }
}

/// Converts every document of the corpus on `service`; the names of those that leaked, with
/// what leaked. Every job must end (succeeded or failed with a reason); none may leak.
async fn leaks_of(service: &Service, targets: &Targets, docs: &[HostileDoc]) -> Vec<String> {
    let mut jobs = Vec::new();
    for doc in docs {
        jobs.push((doc, service.upload(&doc.filename, doc.bytes.clone()).await));
    }
    let mut leaks = Vec::new();
    for (doc, job) in jobs {
        let done = service.finish(&job).await;
        match done["status"].as_str() {
            Some("succeeded") => {
                for what in corpus::leaks_in(&service.pdf(&job).await, targets) {
                    leaks.push(format!("{}: {what}", doc.name));
                }
            }
            Some("failed") => assert!(
                done["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{}: a failure says why: {done}",
                doc.name
            ),
            other => panic!("{}: ended {other:?}: {done}", doc.name),
        }
    }
    if targets.macro_marker().exists() {
        leaks.push("a document's macro ran".into());
    }
    for hit in targets.hits() {
        let with_secret = if hit.contains(&service.canary) {
            " (with the canary's value)"
        } else {
            ""
        };
        leaks.push(format!("a request reached the counter{with_secret}: {hit}"));
    }
    leaks
}

/// The service still converts an ordinary document, page for page.
async fn still_converts(service: &Service) {
    let job = service
        .upload("deck5.pptx", std::fs::read(sample("deck5.pptx")).unwrap())
        .await;
    let done = service.finish(&job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(pdf_pages(&service.pdf(&job).await), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_leaks_through_a_plain_libreoffice_with_the_hardened_profile() {
    require_libreoffice();
    const VALUE: &str = "canary-of-the-control-run";
    let targets = Targets::plant().await;
    let dir = tempfile::tempdir().unwrap();
    for doc in corpus::corpus(&targets, CANARY)
        .into_iter()
        .filter(|d| d.leaks_through_the_profile)
    {
        let input = dir.path().join(&doc.filename);
        std::fs::write(&input, &doc.bytes).unwrap();
        let before = targets.hits().len();
        let pdf = tokio::task::spawn_blocking(move || {
            corpus::convert_unprotected(&input, &[(CANARY, VALUE)])
        });
        let pdf = pdf
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}: a plain LibreOffice converts it", doc.name));
        let hits = &targets.hits()[before..];
        let leaked = match doc.leak {
            Leak::Image | Leak::Text => !corpus::leaks_in(&pdf, &targets).is_empty(),
            Leak::Http => !hits.is_empty(),
            Leak::Env => hits.iter().any(|h| h.contains(VALUE)),
            Leak::Macro => targets.macro_marker().exists(),
        };
        assert!(
            leaked,
            "{}: expected to leak ({:?}) through a plain LibreOffice; if LibreOffice fixed \
             this loader, mark the document `leaks_through_the_profile: false`",
            doc.name, doc.leak
        );
    }
}

async fn no_leak_with(extra: &[(&'static str, &str)]) {
    require_libreoffice();
    let targets = Targets::plant().await;
    let service = Service::start(extra).await;
    let docs = corpus::corpus(&targets, CANARY);
    let leaks = leaks_of(&service, &targets, &docs).await;
    assert!(leaks.is_empty(), "leaks with {extra:?}: {leaks:#?}");
    still_converts(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_alone_stops_every_leak_warm() {
    no_leak_with(&[("OFFLOAD_TEST_KEEP_EXTERNAL_REFERENCES", "true")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_alone_stops_every_leak_cold() {
    no_leak_with(&[
        ("OFFLOAD_TEST_KEEP_EXTERNAL_REFERENCES", "true"),
        ("CONVERTER", "cold"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_external_references_alone_stops_every_leak() {
    no_leak_with(&[("CONVERT_SANDBOX", "off")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_hostile_documents_convert_without_their_references() {
    require_libreoffice();
    let targets = Targets::plant().await;
    let service = Service::start(&[]).await;
    let docs = corpus::corpus(&targets, CANARY);
    let leaks = leaks_of(&service, &targets, &docs).await;
    assert!(leaks.is_empty(), "{leaks:#?}");
    // The job says what was cut out of the document (converted again, not from the cache).
    let bytes = corpus::corpus(&targets, CANARY).remove(0).bytes;
    let form = reqwest::multipart::Form::new()
        .text("cache", "bypass")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("linked.pptx"),
        );
    let api = Api {
        base: service.base.clone(),
        client: service.client.clone(),
    };
    let resp = api.post_form(form).await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    let events = events_at(&service.client, &service.base, &id_of(&job), |_| false).await;
    assert!(
        events.iter().any(|e| e["progress"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 external reference removed"))),
        "{events:?}"
    );
    still_converts(&service).await;
}

/// Reads a `/proc/<pid>/...` file of another process.
fn proc_file(pid: i32, name: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/{name}")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_libreoffice_sees_no_network_no_secrets_and_no_host_files() {
    require_libreoffice();
    let service = Service::start(&[("DEMO_SECRET_KEY", "k3y")]).await;
    let job = service
        .upload("long.docx", crate::fixtures::long_docx(20_000))
        .await;
    let id = id_of(&job);
    events_at(&service.client, &service.base, &id, |e| {
        e["progress"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("converting"))
    })
    .await;
    let soffice = wait_for_soffice(service.pid()).await;

    let net = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(
        net(soffice),
        net(service.pid()),
        "LibreOffice shares the service's network namespace"
    );
    let environ = String::from_utf8_lossy(&proc_file(soffice, "environ")).replace('\0', "\n");
    for secret in [
        &service.canary,
        "DATABASE_URL",
        "WEBHOOK_SECRET",
        "DEMO_SECRET_KEY",
        CANARY,
    ] {
        assert!(
            !environ.contains(secret),
            "LibreOffice's environment holds {secret}: {environ}"
        );
    }
    assert!(environ.contains("PATH="), "{environ}");
    let root = format!("/proc/{soffice}/root");
    for absent in ["etc/passwd", "etc/shadow", "home", "root", "work"] {
        assert!(
            !Path::new(&root).join(absent).exists(),
            "LibreOffice sees /{absent}"
        );
    }
    assert!(
        Path::new(&root).join("usr/lib").is_dir(),
        "it does see its install"
    );
    // Its /proc is its own: the service's pid is not in it.
    let own_proc: Vec<String> = std::fs::read_dir(Path::new(&root).join("proc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(
        own_proc.len() < 10 && !own_proc.contains(&service.pid().to_string()),
        "LibreOffice sees other processes: {own_proc:?}"
    );
    let cancel = service
        .client
        .post(format!("{}/api/v1/jobs/{id}/cancel", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let _ = &service.dir;
}

/// The `soffice.bin` below process `root` (it starts just after "converting"; process start
/// is not an event we can await from here, so the process table is polled briefly).
async fn wait_for_soffice(root: i32) -> i32 {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        // The one converting (it has a profile), not a `soffice --version` asked at start.
        let found = descendants(root).into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "soffice.bin")
                && String::from_utf8_lossy(&proc_file(*pid, "cmdline")).contains("UserInstallation")
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no soffice.bin started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_exports_fail_closed() {
    require_libreoffice();
    let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
        s.convert.bwrap_path = "/nonexistent/bwrap".into();
    })
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["checks"]["converter"]
            .as_str()
            .is_some_and(|c| c.contains("sandbox")),
        "{body}"
    );
    let job = app.upload("deck5.pptx").await;
    let done = app.wait_final(&id_of(&job)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "converter_unavailable");
    assert_eq!(done["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_spends_its_cpu_budget_fails_at_once_as_too_complex() {
    require_libreoffice();
    for converter in ["warm", "cold"] {
        // Far below the nested tables' tens of CPU seconds, and above what a cold start and
        // the 5-slide deck take together on a slow, busy machine (2.5 s seen; a budget of 2 s
        // failed the deck too).
        let app = spawn_app_with(Backend::Sqlite, Role::Serve, |s| {
            s.convert.converter = converter.parse().unwrap();
            s.convert.convert_cpu_secs = 8;
        })
        .await;
        let resp = app
            .upload_bytes("nested.docx", corpus::nested_tables_docx(80), None)
            .await;
        assert_eq!(resp.status(), 202);
        let job: Value = resp.json().await.unwrap();
        let done = app.wait_final(&id_of(&job)).await;
        assert_eq!(done["status"], "failed", "{converter}: {done}");
        assert_eq!(done["error"]["code"], "document_too_complex", "{converter}");
        assert_eq!(done["attempts"], 1, "{converter}: not retried");
        // The slot it used converts the next document.
        let next = app.upload("deck5.pptx").await;
        assert_eq!(app.wait_final(&id_of(&next)).await["status"], "succeeded");
    }
}
