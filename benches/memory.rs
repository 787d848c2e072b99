//! Memory benchmark (`scripts/bench-memory`): a 1 GiB upload and a 1 GiB result download
//! through offload's HTTP API, with the process's resident memory sampled throughout.
//!
//! The service runs in this process (with an extra `blob` kind that produces a result file of
//! a given size — an embedder's kind, through the public trait); the client streams from and
//! to disk, so its own share is a few buffers. The growth reported is therefore an upper
//! bound for the server. Prints a Markdown table and JSON lines. Not a test.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use offload::app::{Application, Role};
use offload::jobs::{JobContext, JobError, JobKind, JobOutput, OutputFile};
use offload::settings::Settings;
use serde_json::Value;

const GIB: u64 = 1024 * 1024 * 1024;

/// Writes `bytes` zero bytes and returns them as the job's result.
struct Blob;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct BlobArgs {
    bytes: u64,
}

impl JobKind for Blob {
    const NAME: &'static str = "blob";
    type Args = BlobArgs;

    async fn run(&self, ctx: JobContext, args: BlobArgs) -> Result<JobOutput, JobError> {
        let path = ctx.work_dir()?.join("blob.bin");
        let file = std::fs::File::create(&path).map_err(JobError::internal)?;
        file.set_len(args.bytes).map_err(JobError::internal)?;
        Ok(JobOutput::file(OutputFile {
            path,
            filename: "blob.bin".into(),
            content_type: "application/octet-stream".into(),
        }))
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Samples RSS every 10 ms into `peak` until `stop`.
fn sampler(peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            peak.fetch_max(rss_bytes(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// A docx-shaped zip whose one big part is stored (not compressed): accepted at upload by
/// type, however large.
fn big_docx(path: &std::path::Path, size: u64) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let deflated = zip::write::SimpleFileOptions::default();
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("[Content_Types].xml", deflated).unwrap();
    zip.write_all(b"<Types/>").unwrap();
    zip.start_file("word/document.xml", deflated).unwrap();
    zip.write_all(b"<w:document/>").unwrap();
    zip.start_file("word/media/padding.bin", stored).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() as u64 {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap();
}

async fn wait_final(client: &reqwest::Client, base: &str, id: &str) -> Value {
    loop {
        let job: Value = client
            .get(format!("{base}/api/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let size: u64 = std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(GIB);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.database.url = format!("sqlite://{}/bench.db", dir.path().display())
        .parse()
        .unwrap();
    settings.storage.url = std::env::var("BENCH_STORAGE_URL")
        .unwrap_or_else(|_| format!("fs://{}/files", dir.path().display()))
        .parse()
        .unwrap();
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.board = "off".parse().unwrap();
    settings.http.max_upload_bytes = 2 * size + GIB;
    settings.worker.work_dir = Some(dir.path().to_path_buf());
    let app = Application::build_with(settings, Role::Serve, |kinds| kinds.register(Blob))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();

    let upload = dir.path().join("big.docx");
    eprintln!("writing a {} MiB document", size >> 20);
    big_docx(&upload, size);
    let baseline = rss_bytes();

    // Upload.
    let (peak, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let watcher = sampler(peak.clone(), stop.clone());
    let started = Instant::now();
    let file = tokio::fs::File::open(&upload).await.unwrap();
    let len = file.metadata().await.unwrap().len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream_with_length(body, len).file_name("big.docx"),
    );
    let resp = client
        .post(format!("{base}/api/v1/exports"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let upload_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let upload_peak = peak.load(Ordering::Relaxed);

    // Download: a job whose result is `size` bytes, streamed back.
    let job: Value = client
        .post(format!("{base}/api/v1/jobs"))
        .json(&serde_json::json!({"kind": "blob", "args": {"bytes": size}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&client, &base, &id).await["status"], "succeeded");
    let (peak, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let watcher = sampler(peak.clone(), stop.clone());
    let started = Instant::now();
    let mut body = client
        .get(format!("{base}/api/v1/jobs/{id}/result"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
    }
    let download_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let download_peak = peak.load(Ordering::Relaxed);
    assert_eq!(received, size);

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rows = [
        ("upload", upload_peak, upload_secs),
        ("download", download_peak, download_secs),
    ];
    println!("| transfer | size | baseline RSS | peak RSS | growth | MiB/s |");
    println!("|---|---|---|---|---|---|");
    for (what, peak, secs) in rows {
        println!(
            "| {what} | {:.0} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} |",
            mib(size),
            mib(baseline),
            mib(peak),
            mib(peak.saturating_sub(baseline)),
            mib(size) / secs
        );
    }
    println!();
    for (what, peak, secs) in rows {
        println!(
            "{}",
            serde_json::json!({
                "bench": "memory", "transfer": what, "bytes": size,
                "baseline_rss_mib": (mib(baseline) * 10.0).round() / 10.0,
                "peak_rss_mib": (mib(peak) * 10.0).round() / 10.0,
                "growth_mib": (mib(peak.saturating_sub(baseline)) * 10.0).round() / 10.0,
                "mib_per_sec": (mib(size) / secs).round(),
            })
        );
    }
}
