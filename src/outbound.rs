//! Where the service may send requests on a caller's behalf (completion webhooks).
//!
//! A `callback_url` is the caller's choice of address for *our* request, so without a rule a
//! caller could aim the server at services only it can reach (cloud metadata endpoints, the
//! database, an admin port on loopback). The rule: only public addresses, unless
//! `OUTBOUND_ALLOW` names the host or a network containing the address. Names are resolved at
//! submit time (a refused address is a 422) and again at delivery, where the request then goes
//! to the checked address only, so a name that later resolves elsewhere (DNS rebinding) gains
//! nothing.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use url::Url;

/// The allow-list from `OUTBOUND_ALLOW`.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl std::str::FromStr for Outbound {
    type Err = String;

    fn from_str(setting: &str) -> Result<Self, String> {
        Self::parse(setting)
    }
}

/// A checked destination: the URL and the addresses it may be sent to.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

impl Outbound {
    /// Parses a comma-separated list of host names, IP addresses and CIDR networks.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for item in setting.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                out.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                out.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                out.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{item:?} is not a host name, IP address or CIDR network"
                ));
            }
        }
        Ok(out)
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        self.hosts.iter().any(|h| h == host)
            || self.nets.iter().any(|n| n.contains(&ip))
            || is_public(ip)
    }

    /// Checks `url` and resolves its host; `Err` says why it may not be used.
    pub async fn check(&self, url: &str) -> Result<Destination, String> {
        let url = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs are allowed".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not allowed".into());
        }
        let host = url
            .host_str()
            .ok_or("the URL has no host")?
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("its host {host} does not resolve ({e})"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("its host {host} does not resolve"));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.allows(&host, a.ip())) {
            return Err(format!(
                "{} is a private, loopback or otherwise internal address; \
                 the service may only call public addresses (see OUTBOUND_ALLOW)",
                bad.ip()
            ));
        }
        Ok(Destination { url, host, addrs })
    }
}

/// Addresses anyone on the internet could reach: not loopback, private, link-local, shared,
/// multicast, documentation or otherwise special.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_allow_list_opens_named_networks_only() {
        let closed = Outbound::default();
        let err = closed.check("http://127.0.0.1:9/hook").await.unwrap_err();
        assert!(err.contains("127.0.0.1"), "{err}");
        assert!(closed.check("ftp://example.com/").await.is_err());
        assert!(closed.check("http://user:pw@127.0.0.1/").await.is_err());
        let open = Outbound::parse("127.0.0.0/8, localhost").unwrap();
        let dest = open.check("http://127.0.0.1:9/hook").await.unwrap();
        assert_eq!(dest.addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(open.check("http://10.0.0.1/").await.is_err());
        assert!(Outbound::parse("not a host!").is_err());
    }
}
