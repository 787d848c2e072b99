//! The contract as users meet it: clients generated from the live spec drive a spawned
//! service, and schemathesis fuzzes every operation.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixtures::test_python;
use crate::helpers::*;

/// Runs a command to completion; on failure, panics with everything it printed.
async fn run(cmd: &mut tokio::process::Command, what: &str) -> Output {
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn live_spec(app: &TestApp, dir: &Path) -> PathBuf {
    let spec = app.get("/openapi.json").await.text().await.unwrap();
    let path = dir.join("openapi.json");
    std::fs::write(&path, spec).unwrap();
    path
}

fn venv_tool(name: &str) -> PathBuf {
    test_python().parent().unwrap().join(name)
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_runs_the_whole_flow() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = live_spec(&app, dir.path()).await;
    let package = dir.path().join("offload_client");
    run(
        tokio::process::Command::new(venv_tool("openapi-python-client"))
            .args(["generate", "--meta", "none", "--path"])
            .arg(&spec)
            .arg("--output-path")
            .arg(&package)
            .arg("--config")
            .arg(repo("openapi/python-client.yml")),
        "openapi-python-client generate",
    )
    .await;
    let out = run(
        tokio::process::Command::new(test_python())
            .arg(repo("tests/clients/python/flow.py"))
            .arg(&app.base)
            .arg(sample("deck5.pptx"))
            .env("PYTHONPATH", dir.path()),
        "the Python client flow",
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client flow: ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_typescript_client_runs_the_whole_flow() {
    require_libreoffice();
    let project = repo("tests/clients/ts");
    let bin = |name: &str| project.join("node_modules/.bin").join(name);
    assert!(
        bin("tsx").is_file(),
        "the TypeScript client's packages are missing: run scripts/test (npm ci in tests/clients/ts)"
    );
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = live_spec(&app, dir.path()).await;
    std::fs::create_dir_all(project.join("generated")).unwrap();
    run(
        tokio::process::Command::new(bin("openapi-typescript"))
            .arg(&spec)
            .args([
                "--default-non-nullable=false",
                "-o",
                "generated/schema.d.ts",
            ])
            .current_dir(&project),
        "openapi-typescript",
    )
    .await;
    run(
        tokio::process::Command::new(bin("tsc"))
            .args(["-p", "."])
            .current_dir(&project),
        "tsc (type-check)",
    )
    .await;
    let out = run(
        tokio::process::Command::new(bin("tsx"))
            .arg("flow.ts")
            .arg(&app.base)
            .arg(sample("deck5.pptx"))
            .current_dir(&project),
        "the TypeScript client flow",
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("typescript client flow: ok"));
}

/// Every operation, bounded examples, every check but two: `positive_data_acceptance` (a
/// file can be schema-valid — any bytes — without being a document; those get 415 by design)
/// and `ensure_resource_availability` (a `noop` job has no result file: 404 `no_result`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let app = spawn_app(Backend::Sqlite).await;
    let scratch = tempfile::tempdir().unwrap();
    let out = run(
        tokio::process::Command::new(venv_tool("schemathesis"))
            .current_dir(scratch.path())
            .arg("run")
            .arg(app.url("/openapi.json"))
            .args(["--max-examples", "50", "--seed", "20261122", "--no-color"])
            .args(["--checks", "all"])
            .args([
                "--exclude-checks",
                "positive_data_acceptance,ensure_resource_availability",
            ]),
        "schemathesis",
    )
    .await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!report.contains("FAILURES"), "{report}");
}
