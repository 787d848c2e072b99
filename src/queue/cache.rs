//! The result cache's records: which stored PDF answers which conversion (by a key the jobs
//! layer makes), and the LibreOffice versions the workers run. The PDFs themselves are in
//! object storage under service-made keys (`cache/…`).

use super::{Db, Queue, QueueError, now_micros};

/// A cached result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Where the PDF is stored.
    pub result_key: String,
    pub content_type: String,
    pub size: i64,
}

const LOOKUP: &str = "\
SELECT result_key, content_type, size FROM offload_cache
WHERE key = $1 AND created_at >= $2
  AND converter = (SELECT version FROM offload_converters ORDER BY seen_at DESC LIMIT 1)";

const PREVIOUS: &str = "SELECT result_key FROM offload_cache WHERE key = $1";

const PUT: &str = "\
INSERT INTO offload_cache (key, input_sha256, converter, result_key, content_type, size, created_at)
VALUES ($1, $7, $2, $3, $4, $5, $6)
ON CONFLICT (key) DO UPDATE SET converter = excluded.converter, result_key = excluded.result_key,
    content_type = excluded.content_type, size = excluded.size, created_at = excluded.created_at";

const SEEN: &str = "\
INSERT INTO offload_converters (version, seen_at) VALUES ($1, $2)
ON CONFLICT (version) DO UPDATE SET seen_at = excluded.seen_at";

const EXPIRED: &str = "\
SELECT key, result_key FROM offload_cache WHERE created_at < $1 ORDER BY created_at LIMIT $2";

const FORGET: &str = "DELETE FROM offload_cache WHERE key = $1 AND created_at < $2";

const FORGET_INPUT: &str = "DELETE FROM offload_cache WHERE input_sha256 = $1 RETURNING result_key";

impl Queue {
    /// The entry under `key` made since `since` (unix microseconds) by the LibreOffice version
    /// the workers run now, if any.
    pub async fn cache_lookup(
        &self,
        key: &str,
        since: i64,
    ) -> Result<Option<CacheEntry>, QueueError> {
        let q = self.sql(LOOKUP);
        let row: Option<(String, String, i64)> = on_db!(&self.db, pool => sqlx::query_as(q)
            .bind(key)
            .bind(since)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(result_key, content_type, size)| CacheEntry {
            result_key,
            content_type,
            size,
        }))
    }

    /// Records (or replaces) the entry under `key` for the document with hash `input`,
    /// converted by LibreOffice `converter`; returns the file the entry pointed at before, if
    /// another (for the caller to delete). Two replacements at the same instant may leave one
    /// file unreferenced until nothing: a rare leak accepted over locking every miss.
    pub async fn cache_put(
        &self,
        key: &str,
        input: &str,
        converter: &str,
        entry: &CacheEntry,
    ) -> Result<Option<String>, QueueError> {
        let (previous, put) = (self.sql(PREVIOUS), self.sql(PUT));
        let old: Option<String> = on_db!(&self.db, pool => sqlx::query_scalar(previous)
            .bind(key)
            .fetch_optional(pool)
            .await)?;
        on_db!(&self.db, pool => sqlx::query(put)
            .bind(key)
            .bind(converter)
            .bind(&entry.result_key)
            .bind(&entry.content_type)
            .bind(entry.size)
            .bind(now_micros())
            .bind(input)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(old.filter(|old| *old != entry.result_key))
    }

    /// Drops every entry made from the document with hash `input` (its job was deleted);
    /// returns their files.
    pub async fn cache_forget_input(&self, input: &str) -> Result<Vec<String>, QueueError> {
        let q = self.sql(FORGET_INPUT);
        let keys = on_db!(&self.db, pool => sqlx::query_scalar(q)
            .bind(input)
            .fetch_all(pool)
            .await)?;
        Ok(keys)
    }

    /// Records that a worker runs LibreOffice `version` (the newest started one is current).
    pub async fn converter_seen(&self, version: &str) -> Result<(), QueueError> {
        let q = self.sql(SEEN);
        on_db!(&self.db, pool => sqlx::query(q)
            .bind(version)
            .bind(now_micros())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Up to `limit` entries made before `before` (unix microseconds): `(key, result_key)`,
    /// oldest first.
    pub async fn cache_expired(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, QueueError> {
        let q = self.sql(EXPIRED);
        let rows = on_db!(&self.db, pool => sqlx::query_as(q)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }

    /// Drops the entry under `key` if it was made before `before` (a refresh since then made
    /// a new one, which stays); returns whether it did.
    pub async fn cache_forget(&self, key: &str, before: i64) -> Result<bool, QueueError> {
        let q = self.sql(FORGET);
        let n = on_db!(&self.db, pool => sqlx::query(q)
            .bind(key)
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
