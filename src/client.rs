//! The command-line client: `offload submit`, `offload status`, `offload cancel`.
//!
//! It talks to a running service over the public HTTP API only — the same calls a generated
//! client makes: multipart upload (with a bytes-sent progress bar), the job's SSE stream
//! (with a progress bar of the job's percent and stage), and the result download.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::model::formats::OutputFormat;

/// A connection to one offload server.
pub struct Remote {
    base: String,
    http: reqwest::Client,
}

fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// The `{code, message}` of an error answer, or the status line.
async fn api_error(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    match resp.json::<Value>().await {
        Ok(body) if body["message"].is_string() => anyhow::anyhow!(
            "{} ({status})",
            body["message"].as_str().unwrap_or_default()
        ),
        _ => anyhow::anyhow!("the server answered {status}"),
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

impl Remote {
    /// A client of `server`, sending `api_key` (when given) with every request.
    pub fn new(server: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the API key is not a valid header value")?;
            // Kept out of any debug output of the request.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads `paths` in one request (several without merge make a batch) as exports with
    /// `export`'s options, and returns the server's answer (a job, or `{batch}`).
    pub async fn upload(&self, paths: &[PathBuf], export: &ExportRequest) -> anyhow::Result<Value> {
        let mut form = reqwest::multipart::Form::new();
        let mut sizes = Vec::with_capacity(paths.len());
        for path in paths {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            sizes.push((file.metadata().await?.len(), file));
        }
        let total = sizes.iter().map(|(size, _)| size).sum();
        let progress = bar(total, "{msg:20} [{bar:30}] {bytes}/{total_bytes}");
        progress.set_message(match paths {
            [one] => format!("uploading {}", file_name(one)),
            many => format!("uploading {} files", many.len()),
        });
        for (path, (size, file)) in paths.iter().zip(sizes) {
            let counter = progress.clone();
            let stream =
                ReaderStream::new(file).inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(stream),
                size,
            )
            .file_name(file_name(path));
            form = form.part("file", part);
        }
        let resp = self
            .http
            .post(self.url("/api/v1/exports"))
            .multipart(export.add_to(form))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        progress.finish_and_clear();
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            return Err(api_error(resp).await);
        }
        Ok(resp.json().await?)
    }

    pub async fn job(&self, id: Uuid) -> anyhow::Result<Value> {
        self.get_json(&format!("/api/v1/jobs/{id}")).await
    }

    pub async fn batch(&self, id: Uuid) -> anyhow::Result<Value> {
        self.get_json(&format!("/api/v1/batches/{id}")).await
    }

    /// `GET path`: its JSON, or the API's error.
    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.http.get(self.url(path)).send().await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        Ok(resp.json().await?)
    }

    pub async fn cancel(&self, id: Uuid) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url(&format!("/api/v1/jobs/{id}/cancel")))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        Ok(resp.json().await?)
    }

    /// Follows the job's event stream, showing its progress, until a final status.
    pub async fn follow(&self, id: Uuid) -> anyhow::Result<Value> {
        let progress = bar(100, "{msg:40} [{bar:30}] {pos:>3}%");
        let mut last = self.job(id).await?;
        // The stream can drop (a proxy, a restart): reconnecting is always safe.
        while !is_final(&last) {
            let resp = self
                .http
                .get(self.url(&format!("/api/v1/jobs/{id}/events")))
                .send()
                .await?;
            if !resp.status().is_success() {
                return Err(api_error(resp).await);
            }
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    for data in frame.lines().filter_map(|l| l.strip_prefix("data:")) {
                        if let Ok(job) = serde_json::from_str::<Value>(data.trim()) {
                            progress.set_position(job["progress"]["percent"].as_u64().unwrap_or(0));
                            progress.set_message(format!(
                                "{}: {}",
                                job["status"].as_str().unwrap_or("?"),
                                job["progress"]["message"].as_str().unwrap_or("")
                            ));
                            last = job;
                        }
                    }
                }
            }
            if !is_final(&last) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                last = self.job(id).await?;
            }
        }
        progress.finish_and_clear();
        Ok(last)
    }

    /// Streams the job's result into `out`.
    pub async fn download(&self, id: Uuid, out: &Path) -> anyhow::Result<u64> {
        self.download_from(&format!("/api/v1/jobs/{id}/result"), out)
            .await
    }

    /// Streams the file at `path` (a URL path the server gave) into `out`.
    pub async fn download_from(&self, path: &str, out: &Path) -> anyhow::Result<u64> {
        let resp = self.http.get(self.url(path)).send().await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        let mut file = tokio::fs::File::create(out)
            .await
            .with_context(|| format!("cannot write {}", out.display()))?;
        let mut body = resp.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(written)
    }
}

/// How `offload submit` asks for its exports (flags of the command).
#[derive(Debug, Clone, clap::Args)]
pub struct ExportChoices {
    /// An export option, `KEY=VALUE` (repeatable): `page_range=1-3`, `pdf_a=2b`,
    /// `landscape=true`, `watermark.text=DRAFT` (dots nest). The server checks them.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// A file holding the documents' password (its first line); never a flag, so it stays out
    /// of the shell history and the process list.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Output format (default pdf): png, jpeg or webp for page images (written into the -o
    /// directory, one file per page), or an office format of the document's family (docx,
    /// odt, rtf, txt, html, xlsx, ods, csv, pptx, odp).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        OutputFormat::ALL.map(OutputFormat::name)
    ))]
    format: Option<String>,
    /// Also make a PNG thumbnail of page 1, fitting inside this many pixels.
    #[arg(long, value_name = "PX")]
    thumbnail: Option<u32>,
    /// Result cache: `use` (default), `bypass` or `refresh`.
    #[arg(long, value_parser = ["use", "bypass", "refresh"])]
    cache: Option<String>,
    /// Which waiting job goes first: `interactive`, `normal` (the server's default) or `bulk`.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        crate::model::Priority::ALL.map(crate::model::Priority::as_str)
    ))]
    priority: Option<String>,
    /// A label for the jobs, `KEY=VALUE` (repeatable): `customer=acme`. Echoed in each job;
    /// `GET /jobs?metadata.customer=acme` lists them.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
}

impl ExportChoices {
    /// Reads the password file and assembles the options.
    pub fn request(&self) -> anyhow::Result<ExportRequest> {
        let password = match &self.password_file {
            None => None,
            Some(path) => {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                        format!("--password-file: cannot read {}", path.display())
                    })?);
                let line = text.lines().next().unwrap_or_default();
                Some(zeroize::Zeroizing::new(line.to_string()))
            }
        };
        Ok(ExportRequest {
            options: options_json(&self.options)?,
            metadata: labels_json(&self.metadata)?,
            priority: self.priority.clone(),
            password,
            cache: self.cache.clone(),
            format: self.format.clone(),
            thumbnail: self.thumbnail,
        })
    }
}

/// What every upload of one `offload submit` carries besides its file.
#[derive(Default)]
pub struct ExportRequest {
    /// The `options` field, JSON.
    options: Option<String>,
    /// The `metadata` field, JSON.
    metadata: Option<String>,
    priority: Option<String>,
    password: Option<zeroize::Zeroizing<String>>,
    cache: Option<String>,
    format: Option<String>,
    thumbnail: Option<u32>,
}

impl ExportRequest {
    /// Page images: a result of one file per page, written into a directory.
    fn makes_pages(&self) -> bool {
        self.format
            .as_deref()
            .and_then(OutputFormat::parse)
            .is_some_and(OutputFormat::is_image)
    }
}

impl ExportRequest {
    fn add_to(&self, mut form: reqwest::multipart::Form) -> reqwest::multipart::Form {
        if let Some(options) = &self.options {
            form = form.text("options", options.clone());
        }
        if let Some(password) = &self.password {
            form = form.text("password", password.to_string());
        }
        if let Some(cache) = &self.cache {
            form = form.text("cache", cache.clone());
        }
        if let Some(format) = &self.format {
            form = form.text("format", format.clone());
        }
        if let Some(px) = self.thumbnail {
            form = form.text("thumbnail", px.to_string());
        }
        if let Some(metadata) = &self.metadata {
            form = form.text("metadata", metadata.clone());
        }
        if let Some(priority) = &self.priority {
            form = form.text("priority", priority.clone());
        }
        form
    }
}

/// `KEY=VALUE` labels as the JSON object of the `metadata` field (values stay strings; the
/// server checks the keys). `None` without labels.
fn labels_json(pairs: &[String]) -> anyhow::Result<Option<String>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut labels = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--metadata {pair:?}: expected KEY=VALUE"))?;
        labels.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(Some(Value::Object(labels).to_string()))
}

/// `KEY=VALUE` pairs as the JSON object of the `options` field: `true`/`false` and whole
/// numbers become JSON booleans and numbers, anything else a string; `a.b=…` nests. `None`
/// for no pairs.
fn options_json(pairs: &[String]) -> anyhow::Result<Option<String>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut options = serde_json::Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--option {pair:?}: expected KEY=VALUE, e.g. page_range=1-3");
        };
        let value = match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            v => v
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_string())),
        };
        let mut path: Vec<&str> = key.trim().split('.').collect();
        let last = path.pop().unwrap_or_default();
        let mut at = &mut options;
        for part in path {
            let slot = at
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
            at = slot
                .as_object_mut()
                .with_context(|| format!("--option {pair:?}: {part} is not an object"))?;
        }
        at.insert(last.to_string(), value);
    }
    Ok(Some(Value::Object(options).to_string()))
}

/// `offload submit`: upload each file (with `batch`, all of them in one request, as one batch);
/// with `wait` (or an output), follow each job and download its result. Fails (non-zero exit)
/// when any job fails, with the job's error message.
pub async fn submit(
    remote: &Remote,
    files: &[PathBuf],
    batch: bool,
    wait: bool,
    output: Option<&Path>,
    export: &ExportRequest,
) -> anyhow::Result<()> {
    if (files.len() > 1 || export.makes_pages())
        && let Some(dir) = output
    {
        // Like `curl --create-dirs`: a directory that is not there yet is made.
        if dir.exists() && !dir.is_dir() {
            bail!(
                "with several files or page images, -o must be a directory; {} is not a directory",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    }
    let accepted = if batch && files.len() > 1 {
        upload_batch(remote, files, export).await?
    } else {
        let mut accepted = Vec::with_capacity(files.len());
        for path in files {
            let job = remote.upload(std::slice::from_ref(path), export).await?;
            let id = job_id(&job["id"])?;
            println!("{id} {}", path.display());
            accepted.push((id, path));
        }
        accepted
    };
    if !wait && output.is_none() {
        return Ok(());
    }
    let mut failures = 0;
    for (id, _) in accepted {
        let done = remote.follow(id).await?;
        match done["status"].as_str() {
            Some("succeeded") if export.makes_pages() => {
                let dir = output.unwrap_or(Path::new("."));
                let pages = done["result"]["files"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for page in &pages {
                    let (Some(url), Some(name)) = (page["url"].as_str(), page["filename"].as_str())
                    else {
                        bail!("the server listed a page without its url or filename");
                    };
                    // The server names files after the upload; keep only a plain file name.
                    let name = Path::new(name)
                        .file_name()
                        .context("a page without a name")?;
                    remote.download_from(url, &dir.join(name)).await?;
                }
                println!("{id} succeeded: {} pages in {}", pages.len(), dir.display());
            }
            Some("succeeded") => {
                let filename = done["result"]["filename"].as_str().unwrap_or("result.pdf");
                let target = match output {
                    Some(o) if o.is_dir() => o.join(filename),
                    Some(o) => o.to_path_buf(),
                    None => PathBuf::from(filename),
                };
                let bytes = remote.download(id, &target).await?;
                println!("{id} succeeded: {} ({bytes} bytes)", target.display());
                if let Some(url) = done["result"]["thumbnail"]["url"].as_str() {
                    let thumbnail = thumbnail_path(&target);
                    remote.download_from(url, &thumbnail).await?;
                    println!("{id} thumbnail: {}", thumbnail.display());
                }
            }
            status => {
                failures += 1;
                let message = done["error"]["message"]
                    .as_str()
                    .unwrap_or("no reason given");
                eprintln!("{id} {}: {message}", status.unwrap_or("unknown"));
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} job(s) did not succeed", files.len());
    }
    Ok(())
}

/// Uploads `files` as one batch; prints the batch's id, then each job's id with its file.
async fn upload_batch<'a>(
    remote: &Remote,
    files: &'a [PathBuf],
    export: &ExportRequest,
) -> anyhow::Result<Vec<(Uuid, &'a PathBuf)>> {
    let answer = remote.upload(files, export).await?;
    let batch = &answer["batch"];
    println!("batch {}", job_id(&batch["id"])?);
    let jobs = batch["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.len() != files.len() {
        bail!(
            "the server made {} jobs of {} files",
            jobs.len(),
            files.len()
        );
    }
    let mut accepted = Vec::with_capacity(files.len());
    for (job, path) in jobs.iter().zip(files) {
        let id = job_id(&job["id"])?;
        println!("{id} {}", path.display());
        accepted.push((id, path));
    }
    Ok(accepted)
}

/// The id in an answer's `id` field.
fn job_id(value: &Value) -> anyhow::Result<Uuid> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("the server sent no id")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the thumbnail of a result saved at `target` goes: beside it, `<stem>-thumbnail.png`.
fn thumbnail_path(target: &Path) -> PathBuf {
    let stem = target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "result".into());
    target.with_file_name(format!("{stem}-thumbnail.png"))
}

/// `offload status --batch`: the batch's counts, then one line per job.
pub async fn batch_status(remote: &Remote, id: Uuid) -> anyhow::Result<()> {
    let batch = remote.batch(id).await?;
    let counts = &batch["counts"];
    println!("batch:    {id}");
    println!(
        "ended:    {}",
        if batch["ended"] == true { "yes" } else { "no" }
    );
    println!(
        "counts:   {} queued, {} running, {} succeeded, {} failed, {} cancelled",
        counts["queued"],
        counts["running"],
        counts["succeeded"],
        counts["failed"],
        counts["cancelled"]
    );
    for job in batch["jobs"].as_array().into_iter().flatten() {
        let name = job["input"]["filename"].as_str().unwrap_or("");
        println!(
            "{} {:9} {name}",
            job["id"].as_str().unwrap_or("?"),
            job["status"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `offload status`: one line per field that matters.
pub async fn status(remote: &Remote, id: Uuid) -> anyhow::Result<()> {
    let job = remote.job(id).await?;
    println!("id:       {id}");
    println!("kind:     {}", job["kind"].as_str().unwrap_or("?"));
    println!("status:   {}", job["status"].as_str().unwrap_or("?"));
    println!(
        "progress: {}% {}",
        job["progress"]["percent"],
        job["progress"]["message"].as_str().unwrap_or("")
    );
    println!("attempts: {}/{}", job["attempts"], job["max_attempts"]);
    if let Some(code) = job["error"]["code"].as_str() {
        println!(
            "error:    {code}: {}",
            job["error"]["message"].as_str().unwrap_or("")
        );
    }
    if let Some(url) = job["result"]["url"].as_str() {
        println!("result:   {}{url}", remote.base);
    }
    Ok(())
}

/// `offload cancel`.
pub async fn cancel(remote: &Remote, id: Uuid) -> anyhow::Result<()> {
    let job = remote.cancel(id).await?;
    println!("{id} {}", job["status"].as_str().unwrap_or("?"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_flags_become_typed_nested_json() {
        let pairs = [
            "page_range=1-3",
            "landscape=true",
            "image_quality=40",
            "watermark.text=DRAFT",
            "watermark.tiled=false",
        ]
        .map(String::from);
        let json: Value = serde_json::from_str(&options_json(&pairs).unwrap().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"page_range": "1-3", "landscape": true, "image_quality": 40,
                               "watermark": {"text": "DRAFT", "tiled": false}})
        );
        assert!(options_json(&["page_range".into()]).is_err());
        assert_eq!(options_json(&[]).unwrap(), None);
    }
}
