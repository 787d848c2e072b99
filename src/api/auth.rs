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
//!
//! Tenants (#18): `API_KEYS=acme:KEY1,globex:KEY2,KEY3` — a key prefixed with a tenant name
//! (see [`Tenant`]) is that tenant's; a plain key is the default tenant's. A request's
//! [`Caller`] names its tenant; only the default tenant's keys are operators (`/metrics`, the
//! board). Without keys every caller is the default tenant's operator.

use base64::Engine as _;
use poem::http::{StatusCode, header};
use poem::{IntoResponse, Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::{ApiErrorCode, ErrorBody};
use crate::model::Tenant;

/// Routes anyone may call: orchestrator probes and the API description.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/docs", "/openapi.json"];

/// The configured keys (none: auth off), kept as digests with their tenants.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Tenant)>,
}

/// Who sent a request: its key's tenant, and whether it may see operator pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Tenant,
    pub operator: bool,
}

impl Caller {
    /// The caller when keys are off (and in tests): the default tenant, an operator.
    pub fn default_operator() -> Self {
        Self {
            tenant: Tenant::default_tenant(),
            operator: true,
        }
    }
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
    /// From `API_KEYS`: comma-separated, blanks ignored; `tenant:key` is a tenant's key (a
    /// prefix that is no tenant name leaves the whole entry a plain key).
    pub fn parse(setting: &str) -> Self {
        let keys = setting
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|entry| match entry.split_once(':') {
                Some((name, key)) if !key.is_empty() => match name.parse::<Tenant>() {
                    Ok(tenant) => (digest(key.as_bytes()), tenant),
                    Err(_) => (digest(entry.as_bytes()), Tenant::default_tenant()),
                },
                _ => (digest(entry.as_bytes()), Tenant::default_tenant()),
            })
            .collect();
        Self { keys }
    }

    /// The tenants that have keys.
    pub fn tenants(&self) -> std::collections::BTreeSet<Tenant> {
        self.keys.iter().map(|(_, t)| t.clone()).collect()
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `path` is open to anyone (probes, the API description).
    pub fn is_public(path: &str) -> bool {
        PUBLIC.contains(&path)
    }

    /// Whether only operators may call `path`: `/metrics` and the board.
    pub fn is_operator_only(path: &str) -> bool {
        path == "/metrics" || path == "/board" || path.starts_with("/board/")
    }

    /// Who sent `req`: `None` without a known key (while keys are on).
    pub fn identify(&self, req: &Request) -> Option<Caller> {
        if !self.enabled() {
            return Some(Caller::default_operator());
        }
        let given = digest(&credential(req)?);
        // Compare against every key without stopping early.
        let mut found = None;
        for (key, tenant) in &self.keys {
            if bool::from(key.ct_eq(&given)) {
                found = Some(tenant);
            }
        }
        found.map(|tenant| Caller {
            tenant: tenant.clone(),
            operator: tenant.is_default(),
        })
    }

    /// Whether `req` may proceed at all (public route, auth off, or a known key); the routes
    /// ask [`Self::identify`], which also says who it is.
    #[cfg(test)]
    pub fn allows(&self, req: &Request) -> bool {
        Self::is_public(req.uri().path()) || self.identify(req).is_some()
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

/// The 403 for a tenant's key on an operator's route.
pub fn operators_only() -> Response {
    let body = ErrorBody {
        code: ApiErrorCode::Forbidden,
        message: "this route is for operators: use a key without a tenant prefix".into(),
    };
    poem_openapi::payload::Json(body)
        .with_status(StatusCode::FORBIDDEN)
        .into_response()
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

    #[test]
    fn a_key_names_its_tenant_and_only_plain_keys_are_operators() {
        let keys = ApiKeys::parse("acme:k1, k2, Not-A-Tenant:k3");
        let acme = keys.identify(&request("/", Some("Bearer k1"))).unwrap();
        assert_eq!(acme.tenant.as_str(), "acme");
        assert!(!acme.operator);
        let plain = keys.identify(&request("/", Some("Bearer k2"))).unwrap();
        assert!(plain.tenant.is_default() && plain.operator);
        assert!(
            keys.identify(&request("/", Some("Bearer acme:k1")))
                .is_none()
        );
        let whole = keys.identify(&request("/", Some("Bearer Not-A-Tenant:k3")));
        assert!(whole.is_some_and(|c| c.tenant.is_default()));
        assert_eq!(keys.tenants().len(), 2);
    }
}
