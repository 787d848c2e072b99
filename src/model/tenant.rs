//! [`Tenant`]: whose job a job is (#18). One offload serves several applications; each API key
//! belongs to one tenant (`API_KEYS=acme:KEY`; a plain `KEY` is the default tenant's), and a
//! tenant sees, follows, cancels, retries, deletes and downloads only its own jobs.

/// A tenant's name: 1 to 64 of `a-z`, `0-9`, `-`, `_`. Parsed once, at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

/// What separates a tenant from its idempotency key in the stored key: a control character,
/// which no HTTP header value can hold, so no key of one tenant can equal another's.
const KEY_SEPARATOR: char = '\u{1}';

impl Tenant {
    /// The tenant of plain keys, and of every job when keys are off.
    pub const DEFAULT: &'static str = "default";

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// A stored name (trusted: written by its `FromStr` parse once).
    pub fn stored(name: String) -> Self {
        Self(name)
    }

    /// The idempotency key as stored: the default tenant's as given (as before tenants
    /// existed), another tenant's prefixed with its name, so equal keys of two tenants never
    /// meet.
    pub fn idempotency_key(&self, key: &str) -> String {
        if self.is_default() {
            key.to_string()
        } else {
            format!("{}{KEY_SEPARATOR}{key}", self.0)
        }
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl std::str::FromStr for Tenant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "tenant {name:?}: 1 to 64 characters of a-z, 0-9, '-' and '_'"
            ))
        }
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-tenant exceptions to a cap (`acme=500000,trial=100`), parsed once at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCaps(std::collections::BTreeMap<Tenant, u64>);

impl TenantCaps {
    /// `tenant`'s cap: its exception, else `default`.
    pub fn cap(&self, tenant: &Tenant, default: u64) -> u64 {
        self.0.get(tenant).copied().unwrap_or(default)
    }
}

impl std::str::FromStr for TenantCaps {
    type Err = String;

    fn from_str(setting: &str) -> Result<Self, String> {
        let mut caps = std::collections::BTreeMap::new();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, cap) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: expected tenant=number"))?;
            let tenant: Tenant = name.trim().parse()?;
            let cap = cap
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{entry:?}: {cap:?} is not a number"))?;
            caps.insert(tenant, cap);
        }
        Ok(Self(caps))
    }
}

impl TenantCaps {
    /// The exceptions, as a JSON object `{tenant: cap}` (for a statement to read).
    pub fn to_json(&self) -> String {
        let map: std::collections::BTreeMap<&str, u64> =
            self.0.iter().map(|(t, c)| (t.as_str(), *c)).collect();
        serde_json::to_string(&map).expect("a map of numbers serializes")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each tenant with an exception, and its cap.
    pub fn iter(&self) -> impl Iterator<Item = (&Tenant, u64)> {
        self.0.iter().map(|(t, c)| (t, *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_caps_parse_and_fall_back_to_the_default() {
        let caps: TenantCaps = "acme=5, trial=0".parse().unwrap();
        assert_eq!(caps.cap(&"acme".parse().unwrap(), 100), 5);
        assert_eq!(caps.cap(&"trial".parse().unwrap(), 100), 0);
        assert_eq!(caps.cap(&Tenant::default_tenant(), 100), 100);
        assert!("acme".parse::<TenantCaps>().is_err());
        assert!("Acme=1".parse::<TenantCaps>().is_err());
        assert!("acme=x".parse::<TenantCaps>().is_err());
    }

    #[test]
    fn names_are_checked_and_keys_of_two_tenants_never_meet() {
        assert!("acme-2_x".parse::<Tenant>().is_ok());
        for bad in ["", "Acme", "a b", "a:b", &"x".repeat(65)] {
            assert!(bad.parse::<Tenant>().is_err(), "{bad:?}");
        }
        let acme: Tenant = "acme".parse().unwrap();
        let default = Tenant::default_tenant();
        assert_eq!(default.idempotency_key("k"), "k");
        assert_ne!(acme.idempotency_key("k"), default.idempotency_key("k"));
        assert_ne!(
            acme.idempotency_key("k"),
            default.idempotency_key("acme:k"),
            "no key of the default tenant looks like another tenant's"
        );
    }
}
