//! `host:port` endpoints as WireGuard takes them: an IPv4 address, a bracketed IPv6 address or
//! a DNS hostname, and a non-zero port.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The host half of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointHost {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS hostname (letters, digits and hyphens in dot-separated labels), lowercased.
    Name(String),
}

/// A parsed `host:port` endpoint.
///
/// ```
/// use damm_catalog::{Endpoint, EndpointHost};
///
/// let e = Endpoint::parse("[2001:db8::1]:51820")?;
/// assert!(matches!(e.host, EndpointHost::Ip(ip) if ip.is_ipv6()));
/// assert_eq!(e.port, 51820);
/// assert_eq!(e.to_string(), "[2001:db8::1]:51820");
/// assert!(Endpoint::parse("vpn.example.org:443").is_ok());
/// assert!(Endpoint::parse("2001:db8::1:51820").is_err()); // IPv6 needs brackets
/// # Ok::<(), damm_catalog::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Address or hostname.
    pub host: EndpointHost,
    /// UDP (or, for fronted transports, TCP) port, never 0.
    pub port: u16,
}

/// Why a string is not a `host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `:port` at the end.
    #[error("`{0}` has no `:port` (expected host:port, IPv6 as [addr]:port)")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("`{0}` has an invalid port (expected 1..=65535)")]
    BadPort(String),
    /// The host is neither an IP address nor a valid hostname.
    #[error("`{0}` has an invalid host (expected an IPv4 address, [IPv6] or a DNS hostname)")]
    BadHost(String),
}

impl Endpoint {
    /// Parses `host:port`.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| EndpointError::BadHost(text.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| EndpointError::MissingPort(text.to_owned()))?;
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| EndpointError::BadHost(text.to_owned()))?;
            (EndpointHost::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| EndpointError::MissingPort(text.to_owned()))?;
            (
                parse_host(host).ok_or_else(|| EndpointError::BadHost(text.to_owned()))?,
                port,
            )
        };
        let port = parse_port(port).ok_or_else(|| EndpointError::BadPort(text.to_owned()))?;
        Ok(Self { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            EndpointHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            EndpointHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

fn parse_port(text: &str) -> Option<u16> {
    // `u16::from_str` accepts a leading `+`; a port is digits only.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p != 0)
}

/// An IPv4 address or an RFC 1123 hostname (IPv6 must be bracketed, so a `:` is refused).
pub(crate) fn parse_host(host: &str) -> Option<EndpointHost> {
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Some(EndpointHost::Ip(IpAddr::V4(ip)));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // An all-digit last label would make `999.1.1.1` a "hostname": it is a broken address.
    let last_is_numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (labels_ok && !last_is_numeric).then(|| EndpointHost::Name(name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ipv4_ipv6_and_names() {
        for ok in [
            "203.0.113.10:51820",
            "[2001:db8::1]:51820",
            "[::1]:1",
            "vpn.example.org:443",
            "VPN.Example.org.:65535",
            "localhost:51820",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_broken_endpoints() {
        for bad in [
            "",
            ":",
            "203.0.113.10",
            "203.0.113.10:0",
            "203.0.113.10:65536",
            "203.0.113.10:+80",
            "203.0.113.10: 80",
            "2001:db8::1:51820",
            "[2001:db8::1]51820",
            "[2001:db8::1:51820",
            "[203.0.113.10]:80",
            "999.1.1.1:80",
            "-bad.example:80",
            "bad-.example:80",
            "a..b:80",
            "host name:80",
            "host\n:80",
            "ex_ample.org:80",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_in_wireguard_form() {
        let e = Endpoint::parse("VPN.example.ORG:443").unwrap();
        assert_eq!(e.to_string(), "vpn.example.org:443");
        let e = Endpoint::parse("[2001:DB8::1]:5").unwrap();
        assert_eq!(e.to_string(), "[2001:db8::1]:5");
    }
}
