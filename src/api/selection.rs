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
    let mut pairs = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some(key) = name.strip_prefix("metadata.") else {
            continue;
        };
        if !crate::model::metadata::is_key(key) {
            return Err(ApiError::bad_request(
                ApiErrorCode::InvalidParameter,
                format!(
                    "parameter metadata.{key}: a key is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
                ),
            ));
        }
        pairs.push((key.to_string(), value.into_owned()));
    }
    if pairs.len() > ListFilter::MAX_METADATA {
        return Err(ApiError::bad_request(
            ApiErrorCode::InvalidParameter,
            format!(
                "parameter metadata: {} label filters; at most {}",
                pairs.len(),
                ListFilter::MAX_METADATA
            ),
        ));
    }
    Ok(pairs)
}
