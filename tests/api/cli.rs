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
