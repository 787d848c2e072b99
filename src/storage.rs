//! Object storage for inputs and results, through opendal.
//!
//! Keys are made by the service from the job id only (`jobs/{id}/input`, `jobs/{id}/result`):
//! a user-supplied filename never reaches a key, so no upload can name a path. Filenames live
//! in the job row as metadata and are sanitised where they are shown ([`content_disposition`]).

use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::Operator;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Chunk size for streaming copies: large enough for object stores' multipart minimums.
const CHUNK: usize = 8 * 1024 * 1024;
const READ_BUF: usize = 256 * 1024;

/// A parsed `STORAGE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `fs://DIR`
    Fs { root: String },
    /// `s3://BUCKET?endpoint=URL&region=R&root=/PREFIX` (credentials from `AWS_*`).
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        root: Option<String>,
    },
    /// `azblob://CONTAINER?endpoint=URL&root=/PREFIX` (account from `AZURE_STORAGE_ACCOUNT_*`).
    Azblob {
        container: String,
        endpoint: Option<String>,
        root: Option<String>,
    },
}

impl std::str::FromStr for StorageUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        Self::parse(url)
    }
}

impl StorageUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(root) = url.strip_prefix("fs://") {
            if root.is_empty() {
                return Err("fs:// needs a directory, e.g. fs://./data/files".into());
            }
            return Ok(Self::Fs {
                root: root.to_string(),
            });
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e}): {url:?}"))?;
        let name = parsed.host_str().unwrap_or("").to_string();
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        for (key, _) in parsed.query_pairs() {
            if !["endpoint", "region", "root"].contains(&key.as_ref()) {
                return Err(format!(
                    "unknown parameter {key:?} (known: endpoint, region, root)"
                ));
            }
        }
        match parsed.scheme() {
            "s3" if !name.is_empty() => Ok(Self::S3 {
                bucket: name,
                endpoint: query("endpoint"),
                region: query("region"),
                root: query("root"),
            }),
            "azblob" if !name.is_empty() => Ok(Self::Azblob {
                container: name,
                endpoint: query("endpoint"),
                root: query("root"),
            }),
            "s3" | "azblob" => Err(format!("{url:?} names no bucket or container")),
            _ => Err(format!(
                "expected fs://DIR, s3://BUCKET?endpoint=..&region=.. or azblob://CONTAINER?endpoint=.., got {url:?}"
            )),
        }
    }
}

/// A one-line reason for a store that failed its start-up probe.
fn explain(e: &StorageError) -> String {
    let text = e.to_string();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&["NoSuchBucket", "ContainerNotFound"])
        || matches!(e, StorageError::Backend(err) if err.kind() == opendal::ErrorKind::NotFound)
    {
        "the bucket or container does not exist".into()
    } else if has(&[
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthorizationFailure",
        "AuthenticationFailed",
    ]) || matches!(e, StorageError::Backend(err) if err.kind() == opendal::ErrorKind::PermissionDenied)
    {
        "access denied: check the credentials (AWS_* or AZURE_STORAGE_ACCOUNT_*)".into()
    } else {
        let first = text.lines().next().unwrap_or_default();
        format!(
            "the store does not answer: {}",
            first.chars().take(200).collect::<String>()
        )
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Backend(#[from] opendal::Error),
    #[error("storage io: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::Backend(e) if e.kind() == opendal::ErrorKind::NotFound)
    }
}

/// The store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    op: Operator,
}

/// Where a job's uploaded document lives.
pub fn input_key(job: Uuid) -> String {
    format!("jobs/{job}/input")
}

/// Where one attempt writes its result. Keyed by attempt so that an attempt that lost its
/// lease (and may still be uploading) can never overwrite the result of the attempt that won.
pub fn result_key(job: Uuid, task_id: &str, attempt: i64) -> String {
    format!("jobs/{job}/result-{task_id}-{attempt}")
}

/// Where one attempt writes file `name` of a result of several (`page-3.png`, `pages.zip`;
/// names the service makes, never a user's).
pub fn result_part_key(job: Uuid, task_id: &str, attempt: i64, name: &str) -> String {
    format!("jobs/{job}/result-{task_id}-{attempt}-{name}")
}

/// Where a cache-hit job's result lives (a copy of the cached PDF: the job owns it, so deleting
/// or expiring the job never touches the cache).
pub fn cached_result_key(job: Uuid) -> String {
    format!("jobs/{job}/result-cached")
}

/// Where the result cache keeps one PDF of cache key `hash` (hex; never a user's name). Each
/// write gets a new `id`, so a copy being read is never rewritten under its reader (the entry
/// points at a file only once it is whole).
pub fn cache_key(hash: &str, id: Uuid) -> String {
    format!("cache/{hash}/{}.pdf", id.simple())
}

fn job_prefix(job: Uuid) -> String {
    format!("jobs/{job}/")
}

impl Storage {
    /// Opens the store and proves it usable (a missing bucket or bad credentials stop start-up
    /// here, with a message saying which).
    pub async fn open(url: &StorageUrl) -> Result<Self, String> {
        // opendal 0.59 needs its HTTP client chosen once per process (first install wins).
        opendal::install_default();
        let op = match url.clone() {
            StorageUrl::Fs { root } => {
                std::fs::create_dir_all(&root)
                    .map_err(|e| format!("cannot create storage directory {root:?}: {e}"))?;
                let root = std::fs::canonicalize(&root)
                    .map_err(|e| format!("cannot resolve storage directory {root:?}: {e}"))?;
                let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
                Operator::new(builder).map_err(|e| e.to_string())?
            }
            StorageUrl::S3 {
                bucket,
                endpoint,
                region,
                root,
            } => {
                let mut b = opendal::services::S3::default()
                    .bucket(&bucket)
                    .region(region.as_deref().unwrap_or("us-east-1"))
                    .root(root.as_deref().unwrap_or("/"))
                    .disable_ec2_metadata();
                if let Some(endpoint) = &endpoint {
                    b = b.endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) =
                    (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
                {
                    b = b.access_key_id(&id).secret_access_key(&secret);
                }
                if let Some(token) = env("AWS_SESSION_TOKEN") {
                    b = b.session_token(&token);
                }
                Operator::new(b).map_err(|e| e.to_string())?
            }
            StorageUrl::Azblob {
                container,
                endpoint,
                root,
            } => {
                let (Some(account), Some(key)) = (
                    env("AZURE_STORAGE_ACCOUNT_NAME"),
                    env("AZURE_STORAGE_ACCOUNT_KEY"),
                ) else {
                    return Err(
                        "azblob needs AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY"
                            .into(),
                    );
                };
                let endpoint =
                    endpoint.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
                let b = opendal::services::Azblob::default()
                    .container(&container)
                    .endpoint(&endpoint)
                    .account_name(&account)
                    .account_key(&key)
                    .root(root.as_deref().unwrap_or("/"));
                Operator::new(b).map_err(|e| e.to_string())?
            }
        };
        // Transient object-store errors (throttling, a dropped connection) are retried inside
        // one operation before they fail an attempt.
        let op = op.layer(
            opendal::layers::RetryLayer::new()
                .with_max_times(3)
                .with_jitter(),
        );
        let storage = Self { op };
        storage.probe().await.map_err(|e| explain(&e))?;
        Ok(storage)
    }

    /// Writes, reads back and deletes a small object: proves the bucket exists and the
    /// credentials may write (a listing alone passes on some stores for a missing container).
    async fn probe(&self) -> Result<(), StorageError> {
        let key = format!(".offload-probe-{}", Uuid::new_v4());
        self.op.write(&key, "probe").await?;
        let back = self.op.read(&key).await?;
        self.op.delete(&key).await?;
        if back.to_vec() != b"probe" {
            return Err(StorageError::Io(std::io::Error::other(
                "the probe object read back differently",
            )));
        }
        Ok(())
    }

    /// Readiness probe: the store answers a listing of its root.
    pub async fn check(&self) -> Result<(), StorageError> {
        self.op.check().await?;
        Ok(())
    }

    /// Streams `reader` into `key`, failing with [`StorageError::TooLarge`] past `limit` bytes
    /// (the partial object is removed). Returns the byte count.
    pub async fn put_reader(
        &self,
        key: &str,
        mut reader: impl AsyncRead + Unpin,
        limit: u64,
    ) -> Result<u64, StorageError> {
        let mut writer = self.op.writer_with(key).chunk(CHUNK).await?;
        let mut buf = vec![0u8; READ_BUF];
        let mut total: u64 = 0;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                let _ = writer.abort().await;
                let _ = self.op.delete(key).await;
                return Err(StorageError::TooLarge { limit });
            }
            writer.write(Bytes::copy_from_slice(&buf[..n])).await?;
        }
        writer.close().await?;
        Ok(total)
    }

    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        let file = tokio::fs::File::open(path).await?;
        self.put_reader(key, file, u64::MAX).await
    }

    /// Copies `key` into a local file (the worker's scratch copy of an input).
    pub async fn download(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        let mut stream = self.stream(key).await?;
        let mut file = tokio::fs::File::create(path).await?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            total += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(total)
    }

    /// The object as a stream of chunks, for HTTP responses; memory stays at one chunk.
    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, StorageError>
    {
        let reader = self.op.reader_with(key).chunk(READ_BUF).await?;
        let stream = reader.into_bytes_stream(..).await?;
        Ok(stream.map_err(std::io::Error::other))
    }

    /// Removes every object of a job; missing objects are fine.
    pub async fn delete_job(&self, job: Uuid) -> Result<(), StorageError> {
        self.op
            .delete_with(&job_prefix(job))
            .recursive(true)
            .await?;
        Ok(())
    }

    /// The keys stored for a job (its input and results), sorted.
    pub async fn job_objects(&self, job: Uuid) -> Result<Vec<String>, StorageError> {
        let mut keys: Vec<String> = self
            .op
            .list_with(&job_prefix(job))
            .recursive(true)
            .await?
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.path().to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Copies `from` to `to` inside the store (server-side where the service can; else through
    /// this process). Returns the size copied.
    pub async fn copy(&self, from: &str, to: &str) -> Result<u64, StorageError> {
        match self.op.copy(from, to).await {
            Ok(_) => Ok(self.op.stat(to).await?.content_length()),
            Err(e) if e.kind() == opendal::ErrorKind::Unsupported => {
                let reader = self.op.reader_with(from).chunk(READ_BUF).await?;
                let stream = reader.into_bytes_stream(..).await?;
                let reader =
                    tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
                self.put_reader(to, reader, u64::MAX).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes one object; a missing object is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.op.delete(key).await?;
        Ok(())
    }
}

/// The name of an uploaded document without its extension (`document` when it has none): what
/// its results are named after (`deck.pptx` → `deck.pdf`, `deck-3.png`).
pub fn document_stem(filename: &str) -> String {
    std::path::Path::new(filename)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "document".into())
}

/// A `Content-Disposition: attachment` value safe for any user-supplied filename: an ASCII
/// fallback with quotes, backslashes, control characters and path separators replaced, plus
/// the RFC 5987 `filename*` form carrying the original name percent-encoded.
pub fn content_disposition(filename: &str) -> String {
    let base = sanitize_filename(filename);
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .map(|c| if c == '"' || c == '\\' { '_' } else { c })
        .collect();
    let mut encoded = String::new();
    for b in base.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A display filename: the last path component, without control characters, at most 200
/// characters; empty names become `file`.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().trim_start_matches('.');
    if clean.is_empty() {
        return "file".to_string();
    }
    // Long names are cut in the middle of the stem so the extension (a type hint) survives.
    const MAX_CHARS: usize = 200;
    if clean.chars().count() <= MAX_CHARS {
        return clean.to_string();
    }
    let ext = clean
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.chars().count() <= 10)
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let stem: String = clean
        .chars()
        .take(MAX_CHARS - ext.chars().count())
        .collect();
    format!("{stem}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_reduced_to_a_harmless_last_component() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\x\\deck.pptx"), "deck.pptx");
        assert_eq!(
            sanitize_filename("a\r\nSet-Cookie: x.pptx"),
            "aSet-Cookie: x.pptx"
        );
        assert_eq!(sanitize_filename(".."), "file");
        let long = sanitize_filename(&format!("{}.pptx", "n".repeat(1000)));
        assert_eq!(
            (long.chars().count(), long.ends_with("n.pptx")),
            (200, true)
        );
        assert_eq!(sanitize_filename(""), "file");
    }

    #[test]
    fn content_disposition_has_no_injection_and_keeps_unicode() {
        let v = content_disposition("évé \"x\"\r\n.pdf");
        assert!(!v.contains('\r') && !v.contains('\n'));
        assert!(v.starts_with("attachment; filename=\"_v_ _x_.pdf\""), "{v}");
        assert!(
            v.contains("filename*=UTF-8''%C3%A9v%C3%A9%20%22x%22.pdf"),
            "{v}"
        );
    }

    #[test]
    fn storage_urls_parse() {
        assert_eq!(
            StorageUrl::parse("fs://./data/files").unwrap(),
            StorageUrl::Fs {
                root: "./data/files".into()
            }
        );
        assert!(StorageUrl::parse("fs://").is_err());
        assert!(StorageUrl::parse("gopher://x").is_err());
    }
}
