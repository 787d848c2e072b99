//! Optional API keys (`API_KEYS`): with keys configured, every route but the probes and the
//! docs needs one — the API, the pages, `/metrics`, `/board` and the board's own listener.
//!
//! Programs send `Authorization: Bearer <key>`. Browsers cannot add a header to an
//! `EventSource` or to the board's prebuilt UI, so `Basic` with the key as password is accepted
//! too: the browser asks once and sends it with every request to the same origin.
//! Without keys the service refuses to listen beyond loopback (see `Settings::validate`).
//!
//! A presented key is compared with each configured one in constant time (`subtle`), on their
//! SHA-256 digests, so neither a key's bytes nor its length show in the timing.

use base64::Engine as _;
use poem::http::{StatusCode, header};
use poem::{IntoResponse, Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::{ApiErrorCode, ErrorBody};

/// Routes anyone may call: orchestrator probes and the API description.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/docs", "/openapi.json"];

/// The configured keys (none: auth off), kept as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<[u8; 32]>,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.keys.len())
    }
}

impl ApiKeys {
    /// From `API_KEYS`: comma-separated, blanks ignored.
    pub fn parse(setting: &str) -> Self {
        let keys = setting
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| digest(k.as_bytes()))
            .collect();
        Self { keys }
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `req` may proceed (public route, auth off, or a known key).
    pub fn allows(&self, req: &Request) -> bool {
        if !self.enabled() || PUBLIC.contains(&req.uri().path()) {
            return true;
        }
        let Some(given) = credential(req) else {
            return false;
        };
        // Compare against every key without stopping early.
        let given = digest(&given);
        let found = self
            .keys
            .iter()
            .fold(subtle::Choice::from(0), |ok, key| ok | key.ct_eq(&given));
        found.into()
    }
}

impl ApiKeys {
    /// Who may share result-cache entries with this request: everyone without keys, else the
    /// clients of the same key (named by a digest of it, never the key).
    pub fn scope(&self, req: &Request) -> String {
        match (self.enabled(), credential(req)) {
            (true, Some(given)) => hex::encode(digest(&given)),
            _ => String::new(),
        }
    }
}

impl std::str::FromStr for ApiKeys {
    type Err = std::convert::Infallible;

    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(setting))
    }
}

/// The key in `Authorization`: a bearer token, or the password of Basic credentials.
fn credential(req: &Request) -> Option<Vec<u8>> {
    let value = req.header(header::AUTHORIZATION)?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// The 401, inviting either scheme.
pub fn unauthorized() -> Response {
    let body = ErrorBody {
        code: ApiErrorCode::Unauthorized,
        message: "an API key is required: send `Authorization: Bearer <key>`".into(),
    };
    let mut resp = poem_openapi::payload::Json(body)
        .with_status(StatusCode::UNAUTHORIZED)
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"offload\", Basic realm=\"offload\""),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, auth: Option<&str>) -> Request {
        let mut b = Request::builder().uri_str(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.finish()
    }

    #[test]
    fn keys_are_checked_by_bearer_or_basic_password() {
        let keys = ApiKeys::parse(" k1 , ,k2");
        assert!(keys.enabled());
        assert!(keys.allows(&request("/api/v1/jobs", Some("Bearer k2"))));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:k1");
        assert!(keys.allows(&request("/", Some(&format!("Basic {basic}")))));
        assert!(!keys.allows(&request("/api/v1/jobs", Some("Bearer k3"))));
        assert!(!keys.allows(&request("/api/v1/jobs", None)));
        assert!(keys.allows(&request("/healthz", None)), "probes stay open");
        assert!(
            ApiKeys::parse("").allows(&request("/api/v1/jobs", None)),
            "no keys: auth off"
        );
    }
}
