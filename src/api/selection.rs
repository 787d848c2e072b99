//! Which jobs a request selects beyond its typed parameters: listing cursors and label filters
//! (`metadata.<key>=<value>`), shared by the listing and the bulk actions.

use super::errors::{ApiError, ApiErrorCode};
use uuid::Uuid;

use crate::queue::{JobRecord, ListFilter};

/// The `(created_at, id)` a `next_cursor` names.
pub(super) fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            ApiErrorCode::InvalidCursor,
            "parameter cursor: not a cursor returned by this API",
        )
    };
    let (at, id) = cursor.split_once('_').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}

/// The cursor after `row` in a newest-first listing.
pub(super) fn make_cursor(row: &JobRecord) -> String {
    format!("{}_{}", row.created_at, row.id)
}

/// The `metadata.<key>=<value>` pairs of a listing's query, checked.
pub(super) fn metadata_filters(req: &poem::Request) -> Result<Vec<(String, String)>, ApiError> {
    let query = req.uri().query().unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("metadata.")?;
            Some((key.to_string(), value.into_owned()))
        })
        .collect();
    check_labels(&pairs, "parameter metadata")?;
    Ok(pairs)
}

/// Label filters as a listing takes them: at most [`ListFilter::MAX_METADATA`], each key a
/// label key; `field` names them in the error (`parameter metadata`, `filter.metadata`).
pub(super) fn check_labels(pairs: &[(String, String)], field: &str) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::bad_request(ApiErrorCode::InvalidParameter, why);
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, _)| !crate::model::metadata::is_key(k))
    {
        return Err(bad(format!(
            "{field}.{key}: a key is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    // A key given twice would match nothing in a listing, but only its last value once the
    // pairs became a filter object (the bulk actions'): refused, so both read it alike.
    if let Some((key, _)) = pairs
        .iter()
        .enumerate()
        .find(|(i, (k, _))| pairs[..*i].iter().any(|(seen, _)| seen == k))
        .map(|(_, pair)| pair)
    {
        return Err(bad(format!("{field}.{key}: given more than once")));
    }
    if pairs.len() > ListFilter::MAX_METADATA {
        return Err(bad(format!(
            "{field}: {} label filters; at most {}",
            pairs.len(),
            ListFilter::MAX_METADATA
        )));
    }
    Ok(())
}

/// A newest-first page of at most `limit` jobs from `rows` (read with one extra row to tell
/// whether more exist), and the cursor after it when they do.
pub(super) fn page(mut rows: Vec<JobRecord>, limit: u32) -> (Vec<JobRecord>, Option<String>) {
    let next = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(make_cursor)
    });
    (rows, next.flatten())
}
