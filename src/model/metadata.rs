//! [`Metadata`]: a job's own labels (#18) — the caller's order number, customer, batch name —
//! echoed in the Job JSON and webhooks, and a filter of `GET /jobs`
//! (`?metadata.customer=acme`).

use std::collections::BTreeMap;

/// At most this many keys.
pub const MAX_KEYS: usize = 16;
/// At most this many characters per value.
pub const MAX_VALUE_CHARS: usize = 256;

/// Checked labels: up to [`MAX_KEYS`] keys of 1–64 characters from `A-Za-z0-9_-` (so that
/// `metadata.<key>` is a plain query parameter), values of up to [`MAX_VALUE_CHARS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The labels, or why not, naming the offending entry under `field`.
    pub fn check(map: BTreeMap<String, String>, field: &str) -> Result<Self, String> {
        if map.len() > MAX_KEYS {
            return Err(format!("{field}: {} keys; at most {MAX_KEYS}", map.len()));
        }
        for (key, value) in &map {
            if !is_key(key) {
                return Err(format!(
                    "{field}.{key}: a key is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
                ));
            }
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(format!(
                    "{field}.{key}: at most {MAX_VALUE_CHARS} characters"
                ));
            }
        }
        Ok(Self(map))
    }

    /// As stored (trusted: checked when it was written).
    pub fn stored(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The stored column: compact JSON, keys in order (`None` when empty).
    pub fn to_column(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(&self.0).expect("strings serialize"))
    }

    /// A `LIKE` pattern (escape character `!`) that matches exactly the stored columns holding
    /// `key` = `value`. Sound because the column is compact JSON written by [`Self::to_column`]:
    /// the quoted key and value appear next to each other only as that entry (quotes inside
    /// strings are escaped).
    pub fn like_pattern(key: &str, value: &str) -> String {
        let entry = format!(
            "{}:{}",
            serde_json::to_string(key).expect("strings serialize"),
            serde_json::to_string(value).expect("strings serialize")
        );
        let escaped: String = entry
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '!' => vec!['!', c],
                c => vec![c],
            })
            .collect();
        format!("%{escaped}%")
    }
}

/// Whether `key` can be a metadata key.
pub fn is_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_are_checked_by_name() {
        assert!(Metadata::check(map(&[("customer", "acme")]), "metadata").is_ok());
        let many: BTreeMap<String, String> = (0..17)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(
            Metadata::check(many, "metadata")
                .unwrap_err()
                .contains("17 keys")
        );
        let err = Metadata::check(map(&[("a b", "x")]), "metadata").unwrap_err();
        assert!(err.starts_with("metadata.a b:"), "{err}");
        let long = "x".repeat(257);
        let err = Metadata::check(map(&[("note", &long)]), "metadata").unwrap_err();
        assert!(err.starts_with("metadata.note:"), "{err}");
    }

    #[test]
    fn the_pattern_matches_only_that_entry() {
        let column = Metadata::check(map(&[("customer", "acme"), ("xcustomer", "b")]), "m")
            .unwrap()
            .to_column()
            .unwrap();
        let matches = |k: &str, v: &str| {
            // A tiny LIKE: `%` around a literal with `!` escapes, as the pattern is built.
            let p = Metadata::like_pattern(k, v);
            let literal = p.trim_matches('%').replace("!%", "%").replace("!_", "_");
            let literal = literal.replace("!!", "!");
            column.contains(&literal)
        };
        assert!(matches("customer", "acme"));
        assert!(!matches("customer", "acm"));
        assert!(!matches("customer", "b"));
        assert!(!matches("ustomer", "acme"));
        assert_eq!(Metadata::like_pattern("k", "50%_!"), r#"%"k":"50!%!_!!"%"#);
    }
}
