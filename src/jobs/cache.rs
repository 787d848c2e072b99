//! The result cache: a converted PDF kept under a key of everything that made it, so the same
//! document exported again the same way is answered at submit without a conversion.
//!
//! The key hashes the scope (which API key's clients may see the entry: one client cannot
//! learn that another's document exists), the upload's SHA-256, the canonical options, the
//! output format and offload's version; an entry also records the LibreOffice version that
//! made it, and only entries of the version the workers run now are used. Password-protected
//! documents are never cached (the same bytes must not open for a client without the
//! password). Entries live `CACHE_RETENTION_SECS`; a hit copies the PDF to the new job's own
//! key, so deleting or expiring either side never breaks the other.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::options::ExportOptions;
use crate::model::{ResultFile, now_micros};
use crate::queue::{CacheEntry, Queue, QueueError};
use crate::storage::{self, Storage};

/// What a cached PDF was made from, hashed (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(scope: &str, input_sha256: &str, options: &ExportOptions, output: &str) -> Self {
        let mut hash = Sha256::new();
        let canonical = options.canonical();
        let parts = [
            scope,
            input_sha256,
            &canonical,
            output,
            env!("CARGO_PKG_VERSION"),
        ];
        for part in parts {
            // Length-prefixed, so no two different lists hash the same text.
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        CacheKey(hex::encode(hash.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The cache over the queue's records and the object store.
#[derive(Clone)]
pub struct ResultCache {
    queue: Queue,
    storage: Storage,
    retention: Duration,
    /// This process's LibreOffice version, once recorded as the one workers run.
    seen: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    pub fn new(queue: Queue, storage: Storage, retention: Duration) -> Self {
        Self {
            queue,
            storage,
            retention,
            seen: Default::default(),
        }
    }

    /// Records that this worker converts with LibreOffice `converter`: lookups use entries of
    /// the version workers started with last (once per process; a failure is tried again).
    pub async fn converter_seen(&self, converter: &str) -> Result<(), QueueError> {
        self.seen
            .get_or_try_init(|| self.queue.converter_seen(converter))
            .await
            .map(|_| ())
    }

    /// The cached result under `key`, copied to job `job`'s own result key (its `filename`
    /// left for the caller). An entry whose file is gone is dropped and counts as a miss.
    pub async fn find(&self, key: &CacheKey, job: Uuid) -> Result<Option<ResultFile>, QueueError> {
        let since = now_micros() - micros(self.retention);
        let Some(entry) = self.queue.cache_lookup(key.as_str(), since).await? else {
            return Ok(None);
        };
        let own = storage::cached_result_key(job);
        match self.storage.copy(&entry.result_key, &own).await {
            Ok(size) => Ok(Some(ResultFile {
                key: own,
                filename: String::new(),
                content_type: entry.content_type,
                size: i64::try_from(size).unwrap_or(i64::MAX),
                parts: Default::default(),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "a cached result could not be copied; converting instead");
                self.queue
                    .cache_forget(key.as_str(), now_micros() + 1)
                    .await?;
                Ok(None)
            }
        }
    }

    /// Keeps `result` (just stored for a job whose document has hash `input`) under `key`,
    /// made by LibreOffice `converter`.
    pub async fn keep(
        &self,
        key: &CacheKey,
        input: &str,
        converter: &str,
        result: &ResultFile,
    ) -> Result<(), String> {
        self.converter_seen(converter)
            .await
            .map_err(|e| e.to_string())?;
        let cached = storage::cache_key(key.as_str(), Uuid::new_v4());
        let size = self
            .storage
            .copy(&result.key, &cached)
            .await
            .map_err(|e| e.to_string())?;
        let entry = CacheEntry {
            result_key: cached,
            content_type: result.content_type.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
        };
        let replaced = self
            .queue
            .cache_put(key.as_str(), input, converter, &entry)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(old) = replaced {
            self.remove(&old).await;
        }
        Ok(())
    }

    /// Forgets every cached result of the document with hash `input`, files included: its
    /// owner deleted the job, and the document should not live on in the cache.
    pub async fn forget_input(&self, input: &str) -> Result<(), QueueError> {
        for file in self.queue.cache_forget_input(input).await? {
            self.remove(&file).await;
        }
        Ok(())
    }

    /// Deletes a file no entry points at any more; one left behind costs space, not answers.
    async fn remove(&self, file: &str) {
        if let Err(e) = self.storage.delete(file).await {
            tracing::warn!(error = %e, file, "a replaced cache file could not be deleted");
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
