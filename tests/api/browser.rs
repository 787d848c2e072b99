//! The pages in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/e2e.mjs`) against a spawned service and its board. Screenshots of every
//! page land in `test-artifacts/screenshots/`.

use std::path::Path;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    require_libreoffice();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = root.join("tests/browser");
    assert!(
        project.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/test (npm ci in tests/browser)"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Chromium is missing: run scripts/test, which installs Debian's chromium"
    );
    let app = spawn_app(Backend::Sqlite).await;
    let board = format!("http://{}", app.board_addr.expect("the board listens"));
    let shots = root.join("test-artifacts/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg("e2e.mjs")
        .arg(&app.base)
        .arg(&board)
        .arg(&shots)
        // 50 slides: slow enough to watch the bar move.
        .arg(sample("deck50.pptx"))
        .arg(sample("report3.docx"))
        .current_dir(&project)
        .output()
        .await
        .expect("run node");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser steps failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.matches("ok - ").count(), 11, "{report}");
    assert!(!report.contains("not ok"), "{report}");
}
