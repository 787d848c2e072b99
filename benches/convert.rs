//! Conversion benchmark (`scripts/bench-convert`): p50/p95 latency and docs/s for the 5-slide
//! deck, the 50-slide deck and the docx — cold vs warm, 1 and 2 slots, in the bubblewrap
//! sandbox and (1 slot) without it — next to a bare warm LibreOffice (the UNO helper driven
//! directly, no offload and no sandbox in between). Then what each export option costs
//! against a plain export (warm, sandboxed), and a repeat of deck5 answered from the result
//! cache, end to end through HTTP, against the same upload converted.
//!
//! Prints a Markdown table, then one JSON line per figure. Not a test: nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offload::app::{Application, Role};
use offload::convert::filter::PdfSettings;
use offload::convert::libreoffice::{LibreOffice, ProcessLimits};
use offload::convert::sandbox::{Sandbox, SandboxConfig, SandboxMode};
use offload::convert::warm::{WarmLibreOffice, WarmOptions};
use offload::convert::{Conversion, Converter, DocFormat};
use offload::model::options::ExportOptions;
use offload::settings::Settings;
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
    settings: &PdfSettings,
    slots: usize,
    runs: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..slots {
        let (conv, doc, settings) = (conv.clone(), doc.to_path_buf(), settings.clone());
        let share = runs / slots + usize::from(worker < runs % slots);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..share {
                let dir = tempfile::tempdir().unwrap();
                let input = dir.path().join(format!("input.{}", format.extension()));
                std::fs::copy(&doc, &input).unwrap();
                let t = Instant::now();
                let job = Conversion {
                    input: &input,
                    format,
                    out_dir: dir.path(),
                    settings: &settings,
                    office: None,
                    password: None,
                };
                conv.convert(&job, CancellationToken::new())
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

/// Options whose cost is measured, per document: `(document, label, options JSON)`.
const OPTION_CASES: &[(&str, &str, &str)] = &[
    ("deck5.pptx", "option: none", "{}"),
    (
        "deck5.pptx",
        "option: page_range=1",
        r#"{"page_range":"1"}"#,
    ),
    ("deck5.pptx", "option: pdf_a=2b", r#"{"pdf_a":"2b"}"#),
    ("deck5.pptx", "option: pdf_ua", r#"{"pdf_ua":true}"#),
    (
        "deck5.pptx",
        "option: watermark",
        r#"{"watermark":{"text":"DRAFT"}}"#,
    ),
    (
        "deck5.pptx",
        "option: image_quality=50",
        r#"{"image_quality":50}"#,
    ),
    (
        "deck5.pptx",
        "option: export_notes_pages",
        r#"{"export_notes_pages":true}"#,
    ),
    ("report3.docx", "option: none", "{}"),
    (
        "report3.docx",
        "option: page_range=2-3",
        r#"{"page_range":"2-3"}"#,
    ),
    ("report3.docx", "option: pdf_a=2b", r#"{"pdf_a":"2b"}"#),
    ("report3.docx", "option: pdf_ua", r#"{"pdf_ua":true}"#),
    ("report3.docx", "option: landscape", r#"{"landscape":true}"#),
    (
        "report3.docx",
        "option: watermark",
        r#"{"watermark":{"text":"DRAFT"}}"#,
    ),
    (
        "report3.docx",
        "option: lossless_images",
        r#"{"lossless_images":true}"#,
    ),
];

/// The bubblewrap sandbox (or none).
fn sandbox(sandboxed: bool) -> Arc<Sandbox> {
    Arc::new(if sandboxed {
        let config = SandboxConfig {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".into(),
        };
        let sandbox = Sandbox::new(&config, &[]);
        sandbox.availability().expect("bubblewrap works here");
        sandbox
    } else {
        Sandbox::off()
    })
}

/// A warm converter of `slots` slots under `root`.
fn warm_converter(root: PathBuf, slots: usize, sandbox: Arc<Sandbox>) -> Arc<dyn Converter> {
    let options = WarmOptions {
        slots,
        restart_after: 10_000,
        python: "/usr/bin/python3".into(),
        root,
        start_timeout: Duration::from_secs(30),
        cold_first: false,
    };
    let cold = LibreOffice::new("soffice", ProcessLimits::default(), sandbox);
    Arc::new(WarmLibreOffice::new(cold, options).unwrap())
}

/// Each of [`OPTION_CASES`], warm, one slot, sandboxed.
async fn option_costs(root: &Path, runs: usize) -> Vec<Figure> {
    let warm = warm_converter(root.join("warm-options"), 1, sandbox(true));
    let mut figures = Vec::new();
    for (name, label, options) in OPTION_CASES {
        let format = if name.ends_with(".docx") {
            DocFormat::Docx
        } else {
            DocFormat::Pptx
        };
        let options: ExportOptions = serde_json::from_str(options).unwrap();
        let settings = PdfSettings::new(&options, format.family());
        eprintln!("{name}: {label}");
        measure(warm.clone(), &sample(name), format, &settings, 1, 1).await;
        let measured = measure(warm.clone(), &sample(name), format, &settings, 1, runs).await;
        figures.push(figure(name, label, 1, measured));
    }
    figures
}

/// deck5 through the HTTP API of a service on SQLite and local files: converted (submit to
/// `succeeded`, `cache=bypass`), then answered from the result cache (submit to the 202 that
/// already says `succeeded`).
async fn cached_over_http(root: &Path, runs: usize) -> [Figure; 2] {
    let mut settings = Settings::defaults();
    settings.database.url = format!("sqlite://{}/bench.db", root.display())
        .parse()
        .unwrap();
    settings.storage.url = format!("fs://{}/files", root.display()).parse().unwrap();
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.board = "off".parse().unwrap();
    settings.http.uploads_per_minute = 0;
    settings.worker.concurrency = 1;
    settings.worker.work_dir = Some(root.join("work"));
    std::fs::create_dir_all(root.join("work")).unwrap();
    let app = Application::build(settings, Role::Serve).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    let deck = std::fs::read(sample("deck5.pptx")).unwrap();
    let submit = |cache: &'static str| {
        let part = reqwest::multipart::Part::bytes(deck.clone()).file_name("deck5.pptx");
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("cache", cache);
        client
            .post(format!("{base}/api/v1/exports"))
            .multipart(form)
            .send()
    };
    let finish = |job: serde_json::Value| {
        let url = format!("{base}/api/v1/jobs/{}", job["id"].as_str().unwrap());
        let client = client.clone();
        async move {
            loop {
                let now: serde_json::Value =
                    client.get(&url).send().await.unwrap().json().await.unwrap();
                match now["status"].as_str().unwrap() {
                    "succeeded" => return,
                    "queued" | "running" => tokio::time::sleep(Duration::from_millis(2)).await,
                    other => panic!("the export {other}: {now}"),
                }
            }
        }
    };
    let timed = |cache: &'static str, runs: usize| {
        let (submit, finish) = (&submit, &finish);
        async move {
            let started = Instant::now();
            let mut lat = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let job: serde_json::Value = submit(cache).await.unwrap().json().await.unwrap();
                finish(job).await;
                lat.push(t.elapsed());
            }
            (lat, started.elapsed())
        }
    };
    // Warm the converter, and fill the cache.
    finish(submit("use").await.unwrap().json().await.unwrap()).await;
    let converted = timed("bypass", runs.min(15)).await;
    let cached = timed("use", runs).await;
    [
        figure("deck5.pptx", "http: converted", 1, converted),
        figure("deck5.pptx", "http: cached", 1, cached),
    ]
}

/// A plain export's settings for `format`.
fn plain(format: DocFormat) -> PdfSettings {
    PdfSettings::new(&ExportOptions::default(), format.family())
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

/// One renderer's figures on deck50 at 1280 px.
struct RenderFigure {
    renderer: &'static str,
    runs: usize,
    /// Whole-document renders.
    doc_p50: Duration,
    /// One page alone (its own process), over a spread of pages.
    page_p50: Duration,
    pages_per_sec: f64,
    /// Largest resident set of one renderer process, KiB (`/usr/bin/time -f %M`).
    peak_rss_kib: Option<u64>,
}

/// The renderers compared: offload's (mutool in the sandbox, as exports run it), bare
/// pdftoppm, and bare `mutool draw`.
#[derive(Clone, Copy, PartialEq)]
enum RenderWith {
    Offload,
    Pdftoppm,
    Mutool,
}

impl RenderWith {
    fn name(self) -> &'static str {
        match self {
            RenderWith::Offload => "offload (mutool, sandboxed)",
            RenderWith::Pdftoppm => "pdftoppm (bare)",
            RenderWith::Mutool => "mutool draw (bare)",
        }
    }

    /// The bare command rendering `pages` (first, last) of `pdf` into `out` at `width` px.
    fn command(self, pdf: &Path, (first, last): (u32, u32), width: u32, out: &Path) -> Vec<String> {
        let (pdf, out) = (pdf.display().to_string(), out.display().to_string());
        match self {
            RenderWith::Mutool => vec![
                "mutool".into(),
                "draw".into(),
                "-q".into(),
                "-o".into(),
                format!("{out}/page-%d.png"),
                "-w".into(),
                width.to_string(),
                pdf,
                format!("{first}-{last}"),
            ],
            _ => vec![
                "pdftoppm".into(),
                "-png".into(),
                "-f".into(),
                first.to_string(),
                "-l".into(),
                last.to_string(),
                "-scale-to-x".into(),
                width.to_string(),
                "-scale-to-y".into(),
                "-1".into(),
                pdf,
                format!("{out}/page"),
            ],
        }
    }
}

async fn render_once(
    with: RenderWith,
    renderer: &offload::convert::render::Renderer,
    pdf: &Path,
    pages: (u32, u32),
    out: &Path,
) -> Duration {
    use offload::convert::render::{ImageFormat, ImageSize};
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let started = Instant::now();
    if with == RenderWith::Offload {
        let list: Vec<u32> = (pages.0..=pages.1).collect();
        let size = ImageSize {
            width: Some(1280),
            height: None,
            dpi: None,
        };
        renderer
            .render(
                pdf,
                &list,
                size,
                ImageFormat::Png,
                out,
                &CancellationToken::new(),
            )
            .await
            .expect("offload renders");
    } else {
        let cmd = with.command(pdf, pages, 1280, out);
        let status = tokio::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{cmd:?}");
    }
    started.elapsed()
}

/// Peak RSS of one bare whole-document render, from GNU time.
fn peak_rss(with: RenderWith, pdf: &Path, out: &Path, pages: u32) -> Option<u64> {
    let bare = if with == RenderWith::Offload {
        RenderWith::Pdftoppm
    } else {
        with
    };
    let cmd = bare.command(pdf, (1, pages), 1280, out);
    let output = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .args(&cmd)
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// deck50 → PNG at 1280 px with each renderer: whole documents and single pages.
async fn render_costs(root: &Path, runs: usize) -> Vec<RenderFigure> {
    let warm = warm_converter(root.join("warm-render"), 1, sandbox(true));
    let dir = tempfile::tempdir_in(root).unwrap();
    let input = dir.path().join("deck50.pptx");
    std::fs::copy(sample("deck50.pptx"), &input).unwrap();
    let settings = plain(DocFormat::Pptx);
    let job = Conversion {
        input: &input,
        format: DocFormat::Pptx,
        out_dir: dir.path(),
        settings: &settings,
        office: None,
        password: None,
    };
    let pdf = warm.convert(&job, CancellationToken::new()).await.unwrap();
    let pages = pdf.pages as u32;
    let config = SandboxConfig {
        mode: SandboxMode::Bubblewrap,
        bwrap: "bwrap".into(),
    };
    let renderer = offload::convert::render::Renderer::new(&config, ProcessLimits::default());
    let withs = [
        RenderWith::Offload,
        RenderWith::Mutool,
        RenderWith::Pdftoppm,
    ];
    let mut figures = Vec::new();
    for with in withs {
        eprintln!("deck50 → png 1280 px: {}", with.name());
        let out = dir.path().join("pages");
        render_once(with, &renderer, &pdf.path, (1, pages), &out).await; // warm the page cache
        let mut docs = Vec::new();
        for _ in 0..runs {
            docs.push(render_once(with, &renderer, &pdf.path, (1, pages), &out).await);
        }
        let mut singles = Vec::new();
        for page in (1..=pages).step_by(5) {
            singles.push(render_once(with, &renderer, &pdf.path, (page, page), &out).await);
        }
        docs.sort();
        singles.sort();
        let doc_p50 = percentile(&docs, 0.5);
        figures.push(RenderFigure {
            renderer: with.name(),
            runs,
            doc_p50,
            page_p50: percentile(&singles, 0.5),
            pages_per_sec: f64::from(pages) / doc_p50.as_secs_f64(),
            peak_rss_kib: peak_rss(with, &pdf.path, &out, pages),
        });
    }
    figures
}

fn print_render_costs(figures: &[RenderFigure]) {
    println!();
    println!(
        "| deck50 → png 1280 px | runs | document p50 | pages/s | one page p50 | peak RSS (the bare tool) |"
    );
    println!("|---|---|---|---|---|---|");
    for f in figures {
        let rss = f
            .peak_rss_kib
            .map_or("—".into(), |k| format!("{} MiB", k / 1024));
        println!(
            "| {} | {} | {} ms | {:.1} | {} ms | {rss} |",
            f.renderer,
            f.runs,
            f.doc_p50.as_millis(),
            f.pages_per_sec,
            f.page_p50.as_millis()
        );
    }
    let ours = &figures[0];
    println!(
        "deck50 → png: offload renders {:.1} pages/s on one slot (target ≥ 20)",
        ours.pages_per_sec
    );
    for other in &figures[1..] {
        println!(
            "deck50 → png: offload pages/s / {} pages/s = {:.2}",
            other.renderer,
            ours.pages_per_sec / other.pages_per_sec
        );
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let root = tempfile::tempdir().unwrap();
    if std::env::var("BENCH_ONLY").as_deref() == Ok("render") {
        print_render_costs(&render_costs(root.path(), if quick { 2 } else { 5 }).await);
        return;
    }
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
            let sandbox = sandbox(sandboxed);
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
                measure(cold, &doc, format, &plain(format), slots, cold_runs).await,
            ));

            let warm = warm_converter(
                root.path().join(format!("warm-{name}-{slots}-{sandboxed}")),
                slots,
                sandbox,
            );
            eprintln!("{name}: {warm_mode}, {slots} slot(s)");
            // Start every slot before timing (one conversion each, concurrently).
            measure(warm.clone(), &doc, format, &plain(format), slots, slots).await;
            figures.push(figure(
                name,
                warm_mode,
                slots,
                measure(warm, &doc, format, &plain(format), slots, runs).await,
            ));
        }
    }

    figures.extend(option_costs(root.path(), if quick { 4 } else { 15 }).await);
    eprintln!("deck5.pptx: through HTTP, converted and cached");
    figures.extend(cached_over_http(root.path(), if quick { 20 } else { 100 }).await);
    let renders = render_costs(root.path(), if quick { 2 } else { 5 }).await;

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
    for (name, label, _) in OPTION_CASES.iter().filter(|(_, l, _)| *l != "option: none") {
        println!(
            "{name}: {label} p50 / plain p50 = {:.2}",
            get(name, label, 1).p50.as_secs_f64() / get(name, "option: none", 1).p50.as_secs_f64()
        );
    }
    let (converted, cached) = (
        get("deck5.pptx", "http: converted", 1),
        get("deck5.pptx", "http: cached", 1),
    );
    println!(
        "deck5 through HTTP: cached p50 {:.1} ms (target ≤ 10 ms), converted p50 {:.0} ms: cached / converted = {:.3}",
        cached.p50.as_secs_f64() * 1e3,
        converted.p50.as_secs_f64() * 1e3,
        cached.p50.as_secs_f64() / converted.p50.as_secs_f64()
    );
    print_render_costs(&renders);
}
