//! WireGuard keys and `wg-quick` configuration files.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::endpoint::{Endpoint, EndpointError, EndpointHost};
use crate::schema::Path;

/// A WireGuard public key: 32 bytes, written as 44 characters of standard base64.
///
/// ```
/// use damm_catalog::WgKey;
///
/// let key: WgKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=".parse()?;
/// assert_eq!(key.to_string(), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
/// assert!("not a key".parse::<WgKey>().is_err());
/// # Ok::<(), damm_catalog::WgKeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WgKey([u8; 32]);

/// Why a string is not a WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WgKeyError {
    /// Not standard, padded base64.
    #[error("a WireGuard key is standard base64 (44 characters ending in `=`)")]
    Base64,
    /// Decodes, but not to 32 bytes.
    #[error("a WireGuard key is 32 bytes, this one decodes to {0}")]
    Length(usize),
}

fn decode_key(text: &str) -> Result<[u8; 32], WgKeyError> {
    let bytes = STANDARD.decode(text).map_err(|_| WgKeyError::Base64)?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| WgKeyError::Length(b.len()))
}

impl WgKey {
    /// The key from its raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for WgKey {
    type Err = WgKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_key(text).map(Self)
    }
}

impl fmt::Display for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgKey({self})")
    }
}

impl Serialize for WgKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WgKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A WireGuard private key. Its `Debug` never shows the key; the memory is wiped on drop.
#[derive(Clone)]
pub struct PrivateKey(x25519_dalek::StaticSecret);

impl PrivateKey {
    /// The key from its raw bytes (WireGuard clamps them when it uses them).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(bytes))
    }

    /// The matching public key.
    pub fn public_key(&self) -> WgKey {
        WgKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The key as `wg` writes it (base64). This is the secret: handle the string with care.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }
}

impl FromStr for PrivateKey {
    type Err = WgKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_key(text).map(Self::from_bytes)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// A WireGuard key pair.
#[derive(Clone, Debug)]
pub struct KeyPair {
    private_key: PrivateKey,
    public_key: WgKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's random number generator, clamped as
    /// `wg genkey` does.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide randomness, which leaves nothing safe to do.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        let pair = Self::from_private(PrivateKey::from_bytes(bytes));
        bytes.fill(0);
        pair
    }

    /// The pair of an existing private key.
    pub fn from_private(private_key: PrivateKey) -> Self {
        let public_key = private_key.public_key();
        Self {
            private_key,
            public_key,
        }
    }

    /// The private half.
    pub fn private_key(&self) -> &PrivateKey {
        &self.private_key
    }

    /// The public half.
    pub fn public_key(&self) -> WgKey {
        self.public_key
    }
}

/// The client's own side of a WireGuard tunnel: its key, tunnel address and resolver.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The client's private key (stamped on every ingress of its region group at enrollment).
    pub private_key: PrivateKey,
    /// Tunnel address(es) in CIDR form, comma separated, e.g. `10.77.0.2/32` or
    /// `10.77.0.2/32, fd77::2/128`.
    pub address: String,
    /// Resolver(s) inside the tunnel, comma separated IP addresses (or search domains).
    pub dns: Option<String>,
}

/// Why a `wg-quick` configuration cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WgConfigError {
    /// `address` or an AllowedIPs entry is not `ip/prefix`.
    #[error("`{field}`: `{value}` is not an address in CIDR form (ip/prefix)")]
    Cidr {
        /// `Address` or `AllowedIPs`.
        field: &'static str,
        /// The offending entry.
        value: String,
    },
    /// A DNS entry is neither an IP address nor a domain name.
    #[error("`DNS`: `{0}` is neither an IP address nor a domain name")]
    Dns(String),
    /// No AllowedIPs at all: the tunnel would carry nothing.
    #[error("`AllowedIPs`: at least one prefix is needed")]
    NoAllowedIps,
    /// The path's endpoint is not `host:port`.
    #[error("path `{path_id}`: {source}")]
    Endpoint {
        /// The path.
        path_id: String,
        /// What is wrong.
        source: EndpointError,
    },
}

/// Renders a `wg-quick` `.conf` connecting `client` through `path`.
///
/// Every value is checked first, so nothing read from a catalog or typed by a user can add a
/// line to the file.
///
/// ```
/// use damm_catalog::{ClientConfig, Component, KeyPair, Path, Role, Transport, render_wg_quick};
///
/// let gateway = KeyPair::generate();
/// let path = Path {
///     path_id: "eu/hetzner-a".into(),
///     composition: vec![Component {
///         role: Role::Ingress,
///         provider: "hetzner".into(),
///         component: "hetzner:fsn1:a".into(),
///     }],
///     score: 0.9,
///     transports: vec![Transport::WireguardUdp],
///     endpoint: "203.0.113.10:51820".into(),
///     gateway_public_key: gateway.public_key(),
///     offers: vec![],
/// };
/// let client = ClientConfig {
///     private_key: KeyPair::generate().private_key().clone(),
///     address: "10.77.0.2/32".into(),
///     dns: Some("10.77.0.1".into()),
/// };
/// let conf = render_wg_quick(&client, &path, &["0.0.0.0/0", "::/0"], Some(25))?;
/// assert!(conf.contains("Endpoint = 203.0.113.10:51820\n"));
/// # Ok::<(), damm_catalog::WgConfigError>(())
/// ```
pub fn render_wg_quick(
    client: &ClientConfig,
    path: &Path,
    allowed_ips: &[&str],
    persistent_keepalive: Option<u16>,
) -> Result<String, WgConfigError> {
    let address = cidr_list("Address", client.address.split(','))?;
    let dns = client.dns.as_deref().map(dns_list).transpose()?;
    if allowed_ips.is_empty() {
        return Err(WgConfigError::NoAllowedIps);
    }
    let allowed = cidr_list("AllowedIPs", allowed_ips.iter().copied())?;
    let endpoint = Endpoint::parse(&path.endpoint).map_err(|source| WgConfigError::Endpoint {
        path_id: path.path_id.clone(),
        source,
    })?;
    // The path id goes into a comment: keep only characters that cannot end the line.
    let path_id: String = path
        .path_id
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();

    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {}", client.private_key.expose_base64());
    let _ = writeln!(out, "Address = {address}");
    if let Some(dns) = dns {
        let _ = writeln!(out, "DNS = {dns}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "[Peer]");
    let _ = writeln!(out, "# DAMM path {path_id} (catalog score {})", path.score);
    let _ = writeln!(out, "PublicKey = {}", path.gateway_public_key);
    let _ = writeln!(out, "Endpoint = {endpoint}");
    let _ = writeln!(out, "AllowedIPs = {allowed}");
    if let Some(keepalive) = persistent_keepalive {
        let _ = writeln!(out, "PersistentKeepalive = {keepalive}");
    }
    Ok(out)
}

/// `ip/prefix` entries, normalised and joined with `, `.
fn cidr_list<'a>(
    field: &'static str,
    entries: impl Iterator<Item = &'a str>,
) -> Result<String, WgConfigError> {
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        let bad = || WgConfigError::Cidr {
            field,
            value: entry.to_owned(),
        };
        let (ip, prefix) = entry.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > max {
            return Err(bad());
        }
        out.push(format!("{ip}/{prefix}"));
    }
    Ok(out.join(", "))
}

/// DNS servers (IP addresses) or search domains, joined with `, `.
fn dns_list(text: &str) -> Result<String, WgConfigError> {
    let mut out = Vec::new();
    for entry in text.split(',') {
        let entry = entry.trim();
        if let Ok(ip) = entry.parse::<IpAddr>() {
            out.push(ip.to_string());
            continue;
        }
        // A search domain: the hostname rules, checked through the endpoint parser.
        match Endpoint::parse(&format!("{entry}:53")) {
            Ok(Endpoint {
                host: EndpointHost::Name(name),
                ..
            }) => out.push(name),
            _ => return Err(WgConfigError::Dns(entry.to_owned())),
        }
    }
    Ok(out.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_debug_is_redacted() {
        let pair = KeyPair::generate();
        let secret = pair.private_key().expose_base64();
        for shown in [
            format!("{:?}", pair.private_key()),
            format!("{pair:?}"),
            format!("{pair:#?}"),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    #[test]
    fn public_key_matches_rfc7748_vector() {
        // RFC 7748 section 6.1, Alice's key pair.
        let private = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(
            PrivateKey::from_bytes(private).public_key(),
            WgKey::from_bytes(public)
        );
    }

    #[test]
    fn generated_keys_are_clamped_and_round_trip() {
        let pair = KeyPair::generate();
        let text = pair.private_key().expose_base64();
        let bytes = STANDARD.decode(&text).unwrap();
        assert_eq!(bytes[0] & 7, 0);
        assert_eq!(bytes[31] & 0xc0, 0x40);
        let again: PrivateKey = text.parse().unwrap();
        assert_eq!(again.public_key(), pair.public_key());
        let public: WgKey = pair.public_key().to_string().parse().unwrap();
        assert_eq!(public, pair.public_key());
    }

    #[test]
    fn key_parsing_refuses_bad_input() {
        for bad in [
            "",
            "AAAA",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw==",
            " HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk*=",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\n",
        ] {
            assert!(bad.parse::<WgKey>().is_err(), "{bad:?}");
        }
        assert_eq!("AAAA".parse::<WgKey>(), Err(WgKeyError::Length(3)));
    }

    #[test]
    fn cidr_and_dns_checks() {
        assert_eq!(
            cidr_list("Address", "10.77.0.2/32, fd77::2/128".split(',')).unwrap(),
            "10.77.0.2/32, fd77::2/128"
        );
        for bad in [
            "10.77.0.2",
            "10.77.0.2/33",
            "::/129",
            "10.0.0.1/+1",
            "x/1",
            "1.2.3.4/32\nPostUp = x",
        ] {
            assert!(cidr_list("Address", [bad].into_iter()).is_err(), "{bad:?}");
        }
        // Surrounding whitespace is dropped: the output is rebuilt from the parsed values.
        assert_eq!(
            cidr_list("Address", [" 1.2.3.4/32\n"].into_iter()).unwrap(),
            "1.2.3.4/32"
        );
        assert_eq!(
            dns_list("1.1.1.1, corp.example").unwrap(),
            "1.1.1.1, corp.example"
        );
        assert!(dns_list("1.1.1.1\nPostUp = rm -rf /").is_err());
    }

    fn hex32(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
