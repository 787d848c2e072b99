//! The binary's commands and its start-up errors.

use std::process::Command;

fn offload(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offload"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run offload")
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let cases = [
        (vec![("BIND_ADDR", "nonsense")], "BIND_ADDR: "),
        (
            vec![("DATABASE_URL", "mysql://localhost/x")],
            "DATABASE_URL: ",
        ),
        (vec![("STORAGE_URL", "ftp://x")], "STORAGE_URL: "),
        (vec![("WORKER_CONCURRENCY", "0")], "WORKER_CONCURRENCY: "),
    ];
    for (env, setting) in cases {
        let mut env = env;
        if env[0].0 != "DATABASE_URL" {
            env.push(("DATABASE_URL", &db));
        }
        let out = offload(&["serve"], &env);
        assert!(!out.status.success(), "{env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line: {stderr}");
        assert!(
            errors[0].starts_with(&format!("error: {setting}")),
            "{stderr}"
        );
    }
}

#[test]
fn migrate_creates_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/offload.db");
    let url = format!("sqlite://{}", path.display());
    let out = offload(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tables: Vec<String> = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert!(tables.contains(&"offload_jobs".to_string()), "{tables:?}");
    assert!(
        tables.contains(&"Jobs".to_string()),
        "apalis's tables too: {tables:?}"
    );
}

#[test]
fn openapi_prints_the_spec_and_matches_the_committed_copy() {
    let out = offload(&["openapi"], &[]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(printed["paths"]["/api/v1/exports"]["post"].is_object());
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed_path).unwrap()).unwrap();
    assert_eq!(
        printed, committed,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}

mod client {
    //! `offload submit | status | cancel` against a spawned service.

    use serde_json::json;

    use crate::helpers::*;

    async fn offload(args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_offload"))
            .args(args)
            .output()
            .await
            .expect("run offload")
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_waits_and_downloads_the_pdf() {
        require_libreoffice();
        let app = spawn_app(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("deck.pdf");
        let deck = sample("deck5.pptx");
        let run = offload(&[
            "submit",
            deck.to_str().unwrap(),
            "--server",
            &app.base,
            "--wait",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        let stdout = text(&run.stdout);
        let id = stdout.split_whitespace().next().unwrap().to_string();
        assert!(stdout.contains("succeeded"), "{stdout}");
        assert_eq!(pdf_pages(&std::fs::read(&out).unwrap()), 5);

        let status = offload(&["status", &id, "--server", &app.base]).await;
        assert!(status.status.success());
        assert!(
            text(&status.stdout).contains("status:   succeeded"),
            "{}",
            text(&status.stdout)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_sends_options_a_password_file_and_the_cache_choice() {
        require_libreoffice();
        let app = spawn_app(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let (input, out) = (dir.path().join("secret.docx"), dir.path().join("out.pdf"));
        std::fs::write(&input, crate::fixtures::encrypted_docx("cli-pass")).unwrap();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "cli-pass\n").unwrap();
        let run = offload(&[
            "submit",
            input.to_str().unwrap(),
            "--server",
            &app.base,
            "--thumbnail",
            "64",
            "--option",
            "page_range=2-3",
            "--option",
            "watermark.text=CLIMARK",
            "--password-file",
            password_file.to_str().unwrap(),
            "--wait",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        let pdf = std::fs::read(&out).unwrap();
        assert_eq!(pdf_pages(&pdf), 2);
        assert!(crate::pdf::text(&pdf).contains("CLIMARK"));
        // The thumbnail lands beside the result.
        let thumbnail = std::fs::read(dir.path().join("out-thumbnail.png")).unwrap();
        assert!(thumbnail.starts_with(b"\x89PNG"));

        // The server's refusal names the option; a cache choice outside the three is the
        // command line's own error.
        let deck = sample("deck5.pptx");
        let run = offload(&[
            "submit",
            deck.to_str().unwrap(),
            "--server",
            &app.base,
            "--option",
            "page_range=0",
        ])
        .await;
        assert!(!run.status.success());
        assert!(
            text(&run.stderr).contains("options.page_range"),
            "{}",
            text(&run.stderr)
        );
        let run = offload(&["submit", deck.to_str().unwrap(), "--cache", "sometimes"]).await;
        assert!(!run.status.success());
        assert!(
            text(&run.stderr).contains("--cache"),
            "{}",
            text(&run.stderr)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_writes_page_images_into_a_directory() {
        require_libreoffice();
        let app = spawn_app(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pages");
        let deck = sample("deck5.pptx");
        let run = offload(&[
            "submit",
            deck.to_str().unwrap(),
            "--server",
            &app.base,
            "--format",
            "png",
            "--option",
            "width=200",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let want: Vec<String> = (1..=5).map(|n| format!("deck5-{n}.png")).collect();
        assert_eq!(names, want);
        for name in names {
            let bytes = std::fs::read(out.join(&name)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{name}");
            assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 200);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_of_several_files_creates_the_output_directory() {
        require_libreoffice();
        let app = spawn_app(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("not/there/yet");
        let (deck, report) = (sample("deck5.pptx"), sample("report3.docx"));
        let (deck, report) = (deck.to_str().unwrap(), report.to_str().unwrap());
        let submit_both = |to: String| {
            let base = app.base.clone();
            async move { offload(&["submit", deck, report, "--server", &base, "-o", &to]).await }
        };
        let run = submit_both(format!("{}/", out.display())).await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        assert_eq!(pdf_pages(&std::fs::read(out.join("deck5.pdf")).unwrap()), 5);
        assert_eq!(
            pdf_pages(&std::fs::read(out.join("report3.pdf")).unwrap()),
            4
        );
        // A path that exists and is not a directory is still refused.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let run = submit_both(file.display().to_string()).await;
        assert!(!run.status.success());
        assert!(
            text(&run.stderr).contains("not a directory"),
            "{}",
            text(&run.stderr)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_batch_sends_one_batch_and_status_shows_it() {
        require_libreoffice();
        let app = spawn_app(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let (deck, report) = (sample("deck5.pptx"), sample("report3.docx"));
        let (deck, report) = (deck.to_str().unwrap(), report.to_str().unwrap());
        let out = format!("{}/", dir.path().display());
        let run = offload(&[
            "submit", "--batch", deck, report, "--server", &app.base, "-o", &out,
        ])
        .await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        let stdout = text(&run.stdout);
        let first = stdout.lines().next().unwrap();
        let batch = first.strip_prefix("batch ").expect("the batch's id first");
        let answer = app.json(&format!("/api/v1/batches/{batch}")).await;
        let jobs = job_ids(&answer);
        assert_eq!(
            jobs.len(),
            2,
            "one request made one batch of both: {answer}"
        );
        assert!(stdout.contains(&format!("{} {deck}", jobs[0])), "{stdout}");
        assert!(
            stdout.contains(&format!("{} {report}", jobs[1])),
            "{stdout}"
        );
        assert_eq!(
            pdf_pages(&std::fs::read(dir.path().join("deck5.pdf")).unwrap()),
            5
        );

        let status = offload(&["status", "--batch", batch, "--server", &app.base]).await;
        assert!(status.status.success(), "{}", text(&status.stderr));
        let shown = text(&status.stdout);
        assert!(shown.contains("ended:    yes"), "{shown}");
        assert!(shown.contains("2 succeeded"), "{shown}");
        assert!(shown.contains("report3.docx"), "{shown}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_fails_with_the_jobs_error_message() {
        let app = spawn_app(Backend::Sqlite).await;
        let corrupt = sample("corrupt_truncated.pptx");
        let run = offload(&[
            "submit",
            corrupt.to_str().unwrap(),
            "--server",
            &app.base,
            "--wait",
        ])
        .await;
        assert!(!run.status.success());
        let stderr = text(&run.stderr);
        assert!(
            stderr.contains("failed: the document is damaged or incomplete"),
            "{stderr}"
        );

        let garbage = sample("garbage.pptx");
        let run = offload(&["submit", garbage.to_str().unwrap(), "--server", &app.base]).await;
        assert!(!run.status.success());
        assert!(
            text(&run.stderr).contains("not an office document"),
            "{}",
            text(&run.stderr)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_stops_a_job_and_reports_a_finished_one() {
        let app = spawn_app(Backend::Sqlite).await;
        let id = id_of(&app.create_job("sleep", json!({"seconds": 60})).await);
        let run = offload(&["cancel", &id, "--server", &app.base]).await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        assert_eq!(text(&run.stdout).trim(), format!("{id} cancelled"));
        let again = offload(&["cancel", &id, "--server", &app.base]).await;
        assert!(!again.status.success());
        assert!(
            text(&again.stderr).contains("409"),
            "{}",
            text(&again.stderr)
        );
        let unknown = offload(&[
            "status",
            "3f1c2a9e-0a4b-4c55-9d7e-2f1e6c1b9a10",
            "--server",
            &app.base,
        ])
        .await;
        assert!(!unknown.status.success());
        assert!(
            text(&unknown.stderr).contains("no job with id"),
            "{}",
            text(&unknown.stderr)
        );
    }

    /// `--api-key` / `OFFLOAD_API_KEY` (#18): the client commands work against a keyed server,
    /// as the key's tenant.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_commands_send_the_api_key_of_their_tenant() {
        let app = spawn_app_with(Backend::Sqlite, offload::app::Role::Api, |s| {
            s.http.api_keys = "acme:acme-key,globex:globex-key".parse().unwrap();
            s.worker.demo_kinds = offload::settings::DemoKinds::On;
        })
        .await;
        let acme = Api::with_key(&app.base, "acme-key");
        let id = acme.create_job("sleep", json!({"seconds": 60})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let run = |args: Vec<&str>, key: Option<&str>| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_offload"));
            cmd.args(args).env_remove("OFFLOAD_API_KEY");
            if let Some(key) = key {
                cmd.env("OFFLOAD_API_KEY", key);
            }
            async move { cmd.output().await.expect("run offload") }
        };
        let anonymous = run(vec!["status", &id, "--server", &app.base], None).await;
        assert!(!anonymous.status.success());
        assert!(
            text(&anonymous.stderr).contains("API key"),
            "{}",
            text(&anonymous.stderr)
        );
        let other = run(
            vec!["status", &id, "--server", &app.base],
            Some("globex-key"),
        )
        .await;
        assert!(
            !other.status.success(),
            "another tenant's key finds nothing"
        );
        assert!(
            text(&other.stderr).contains("404"),
            "{}",
            text(&other.stderr)
        );
        let mine = run(vec!["status", &id, "--server", &app.base], Some("acme-key")).await;
        assert!(mine.status.success(), "{}", text(&mine.stderr));
        assert!(
            text(&mine.stdout).contains("status:   queued"),
            "{}",
            text(&mine.stdout)
        );
        let cancel = run(
            vec![
                "cancel",
                &id,
                "--server",
                &app.base,
                "--api-key",
                "acme-key",
            ],
            None,
        )
        .await;
        assert!(cancel.status.success(), "{}", text(&cancel.stderr));
        assert_eq!(acme.get_job(&id).await["status"], "cancelled");
    }

    /// `--priority` and `--metadata` (#18) reach the job.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_sends_the_priority_and_labels() {
        let app = spawn_app_with(Backend::Sqlite, offload::app::Role::Api, |_| {}).await;
        let doc = sample("report3.docx");
        let run = offload(&[
            "submit",
            doc.to_str().unwrap(),
            "--server",
            &app.base,
            "--priority",
            "bulk",
            "--metadata",
            "customer=acme",
            "--metadata",
            "order=42",
        ])
        .await;
        assert!(run.status.success(), "{}", text(&run.stderr));
        let stdout = text(&run.stdout);
        let id = stdout.split_whitespace().next().unwrap().to_string();
        let job = app.get_job(&id).await;
        assert_eq!(job["priority"], "bulk");
        assert_eq!(job["metadata"], json!({"customer": "acme", "order": "42"}));
        let bad = offload(&[
            "submit",
            doc.to_str().unwrap(),
            "--server",
            &app.base,
            "--metadata",
            "no-equals-sign",
        ])
        .await;
        assert!(!bad.status.success());
        assert!(
            text(&bad.stderr).contains("KEY=VALUE"),
            "{}",
            text(&bad.stderr)
        );
    }
}
