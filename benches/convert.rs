//! Conversion benchmark (`scripts/bench-convert`): p50/p95 latency and docs/s for the 5-slide
//! deck, the 50-slide deck and the docx — cold vs warm, 1 and 2 slots, in the bubblewrap
//! sandbox and (1 slot) without it — next to a bare warm LibreOffice (the UNO helper driven
//! directly, no offload and no sandbox in between).
//!
//! Prints a Markdown table, then one JSON line per figure. Not a test: nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offload::convert::libreoffice::{LibreOffice, ProcessLimits};
use offload::convert::sandbox::{Sandbox, SandboxConfig, SandboxMode};
use offload::convert::warm::{WarmLibreOffice, WarmOptions};
use offload::convert::{Converter, DocFormat};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

struct Figure {
    doc: &'static str,
    mode: &'static str,
    slots: usize,
    runs: usize,
    p50: Duration,
    p95: Duration,
    docs_per_sec: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(name)
}

/// Converts `runs` times with `slots` concurrent callers; latencies per conversion.
async fn measure(
    conv: Arc<dyn Converter>,
    doc: &Path,
    format: DocFormat,
    slots: usize,
    runs: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..slots {
        let (conv, doc) = (conv.clone(), doc.to_path_buf());
        let share = runs / slots + usize::from(worker < runs % slots);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..share {
                let dir = tempfile::tempdir().unwrap();
                let input = dir.path().join(format!("input.{}", format.extension()));
                std::fs::copy(&doc, &input).unwrap();
                let t = Instant::now();
                conv.convert(&input, format, dir.path(), CancellationToken::new())
                    .await
                    .expect("conversion");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

/// The helper alone against one warm LibreOffice: what LibreOffice itself costs.
async fn bare_warm(
    doc: &Path,
    format: DocFormat,
    runs: usize,
    root: &Path,
) -> (Vec<Duration>, Duration) {
    let profile = root.join("bare-profile");
    offload::convert::libreoffice::write_profile(&profile).unwrap();
    let pipe = format!("offload-bench-{}", std::process::id());
    let helper_path = root.join("bare_helper.py");
    std::fs::write(&helper_path, include_str!("../src/convert/uno_helper.py")).unwrap();
    // The helper starts LibreOffice itself and kills its process group when it exits: give
    // the two a group of their own, not the bench's.
    let mut helper = tokio::process::Command::new("/usr/bin/python3")
        .arg(&helper_path)
        .arg(&pipe)
        .arg("60")
        .arg("--")
        .arg("soffice")
        .arg(format!(
            "-env:UserInstallation={}",
            offload::convert::libreoffice::file_url(&profile)
        ))
        .args([
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
        ])
        .arg(format!("--accept=pipe,name={pipe};urp;"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .unwrap();
    let mut stdin = helper.stdin.take().unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    assert!(lines.next_line().await.unwrap().unwrap().contains("ready"));
    let (filter, sheets) = match format {
        DocFormat::Docx => ("writer_pdf_Export", false),
        DocFormat::Xlsx => ("calc_pdf_Export", true),
        _ => ("impress_pdf_Export", false),
    };
    let options = if sheets {
        serde_json::json!({"SinglePageSheets": true})
    } else {
        serde_json::json!({})
    };
    let request = |out: &Path| {
        serde_json::json!({"input": doc, "output": out, "filter": filter, "options": options})
            .to_string()
            + "\n"
    };
    // One untimed warm-up, as the warm converter gets.
    stdin
        .write_all(request(&root.join("bare-warmup.pdf")).as_bytes())
        .await
        .unwrap();
    lines.next_line().await.unwrap();
    let started = Instant::now();
    let mut lat = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        stdin
            .write_all(request(&root.join(format!("bare-{i}.pdf"))).as_bytes())
            .await
            .unwrap();
        let answer = lines.next_line().await.unwrap().unwrap();
        assert!(answer.contains("\"ok\": true"), "{answer}");
        lat.push(t.elapsed());
    }
    let total = started.elapsed();
    drop(stdin);
    let _ = helper.wait().await;
    (lat, total)
}

fn figure(
    doc: &'static str,
    mode: &'static str,
    slots: usize,
    (mut lat, total): (Vec<Duration>, Duration),
) -> Figure {
    lat.sort();
    Figure {
        doc,
        mode,
        slots,
        runs: lat.len(),
        p50: percentile(&lat, 0.5),
        p95: percentile(&lat, 0.95),
        docs_per_sec: lat.len() as f64 / total.as_secs_f64(),
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let root = tempfile::tempdir().unwrap();
    let docs: [(&str, DocFormat, usize); 3] = [
        ("deck5.pptx", DocFormat::Pptx, if quick { 6 } else { 30 }),
        ("deck50.pptx", DocFormat::Pptx, if quick { 4 } else { 10 }),
        ("report3.docx", DocFormat::Docx, if quick { 6 } else { 30 }),
    ];
    let mut figures = Vec::new();
    for (name, format, runs) in docs {
        let doc = sample(name);
        eprintln!("{name}: bare warm LibreOffice");
        figures.push(figure(
            name,
            "bare-warm",
            1,
            bare_warm(&doc, format, runs, root.path()).await,
        ));
        for (slots, sandboxed) in [(1, true), (1, false), (2, true)] {
            let sandbox = Arc::new(if sandboxed {
                let config = SandboxConfig {
                    mode: SandboxMode::Bubblewrap,
                    bwrap: "bwrap".into(),
                };
                let sandbox = Sandbox::new(&config, &[]);
                sandbox.availability().expect("bubblewrap works here");
                sandbox
            } else {
                Sandbox::off()
            });
            let (cold_mode, warm_mode) = match sandboxed {
                true => ("cold", "warm"),
                false => ("cold-unsandboxed", "warm-unsandboxed"),
            };
            let limits = ProcessLimits::default();
            let cold: Arc<dyn Converter> =
                Arc::new(LibreOffice::new("soffice", limits, sandbox.clone()));
            eprintln!("{name}: {cold_mode}, {slots} slot(s)");
            let cold_runs = (runs / 3).max(2 * slots);
            figures.push(figure(
                name,
                cold_mode,
                slots,
                measure(cold, &doc, format, slots, cold_runs).await,
            ));

            let options = WarmOptions {
                slots,
                restart_after: 10_000,
                python: "/usr/bin/python3".into(),
                root: root.path().join(format!("warm-{name}-{slots}-{sandboxed}")),
                start_timeout: Duration::from_secs(30),
            };
            let warm: Arc<dyn Converter> = Arc::new(
                WarmLibreOffice::new(LibreOffice::new("soffice", limits, sandbox), options)
                    .unwrap(),
            );
            eprintln!("{name}: {warm_mode}, {slots} slot(s)");
            // Start every slot before timing (one conversion each, concurrently).
            measure(warm.clone(), &doc, format, slots, slots).await;
            figures.push(figure(
                name,
                warm_mode,
                slots,
                measure(warm, &doc, format, slots, runs).await,
            ));
        }
    }

    println!("| document | mode | slots | runs | p50 | p95 | docs/s |");
    println!("|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.2} |",
            f.doc,
            f.mode,
            f.slots,
            f.runs,
            f.p50.as_secs_f64() * 1e3,
            f.p95.as_secs_f64() * 1e3,
            f.docs_per_sec
        );
    }
    println!();
    for f in &figures {
        println!(
            "{}",
            serde_json::json!({
                "bench": "convert", "document": f.doc, "mode": f.mode, "slots": f.slots, "runs": f.runs,
                "p50_ms": (f.p50.as_secs_f64() * 1e3).round(), "p95_ms": (f.p95.as_secs_f64() * 1e3).round(),
                "docs_per_sec": (f.docs_per_sec * 100.0).round() / 100.0,
            })
        );
    }
    let get = |doc: &str, mode: &str, slots: usize| {
        figures
            .iter()
            .find(|f| f.doc == doc && f.mode == mode && f.slots == slots)
            .unwrap()
    };
    let (bare, warm, cold) = (
        get("deck5.pptx", "bare-warm", 1),
        get("deck5.pptx", "warm", 1),
        get("deck5.pptx", "cold", 1),
    );
    println!();
    println!(
        "deck5 warm p50 / bare warm p50 = {:.2} (target ≤ 1.5); cold p50 / warm p50 = {:.1} (target ≥ 5)",
        warm.p50.as_secs_f64() / bare.p50.as_secs_f64(),
        cold.p50.as_secs_f64() / warm.p50.as_secs_f64()
    );
    for doc in ["deck5.pptx", "deck50.pptx", "report3.docx"] {
        for (mode, bare) in [("warm", "warm-unsandboxed"), ("cold", "cold-unsandboxed")] {
            println!(
                "{doc}: {mode} p50 sandboxed / unsandboxed = {:.2} (target for warm ≤ 1.1)",
                get(doc, mode, 1).p50.as_secs_f64() / get(doc, bare, 1).p50.as_secs_f64()
            );
        }
        println!(
            "{doc}: warm docs/s 2 slots / 1 slot = {:.2} (target ≥ 1.7)",
            get(doc, "warm", 2).docs_per_sec / get(doc, "warm", 1).docs_per_sec
        );
    }
}
