//! Transport offers: the ways into one path beyond its primary `transports`/`endpoint`, each
//! with the parameters its transport needs (T0 and T1 endpoints, the T1 key, the T3 URL and
//! its Host and SNI).
//!
//! Offers are the schema's extension point. Every other object of `damm-catalog/1` is closed,
//! so a catalog naming a transport a client does not know would be refused whole; an offer of
//! an unknown `kind` is skipped instead, and the client keeps the path's other offers and its
//! primary transport. An offer of a known kind is still closed and checked like the rest of
//! the catalog: a publisher that needs new parameters for a transport names a new kind and
//! lists it beside the old one.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::endpoint::{Endpoint, EndpointHost, parse_host};

/// Longest T3 URL, in bytes: a hostname, a port and a secret path fit well inside.
const MAX_URL_LEN: usize = 512;

/// One transport a path can be reached by, with its parameters.
///
/// In JSON an object whose `kind` names the variant (`{"kind": "T1", "endpoint": ...,
/// "key": ...}`). A kind this crate does not know is skipped when a catalog is parsed: see
/// the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum Offer {
    /// `T0`: bare WireGuard over UDP.
    T0(T0Offer),
    /// `T1`: WireGuard over UDP, every datagram sealed under the gateway's T1 key so no
    /// WireGuard byte, type or length shows on the wire.
    T1(T1Offer),
    /// `T2`: WireGuard in a WebSocket over TLS straight to the gateway, which serves an
    /// ordinary website on the same port (for networks where CDNs are blocked).
    T2(T2Offer),
    /// `T3`: WireGuard in a WebSocket through a TLS-terminating CDN front.
    T3(T3Offer),
}

impl Offer {
    /// The kinds this crate understands, as written in `kind`.
    pub const KINDS: [&'static str; 4] = ["T0", "T1", "T2", "T3"];

    /// The `kind` written in the JSON.
    pub const fn kind(&self) -> &'static str {
        match self {
            Offer::T0(_) => "T0",
            Offer::T1(_) => "T1",
            Offer::T2(_) => "T2",
            Offer::T3(_) => "T3",
        }
    }
}

/// The parameters of a `T0` offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T0Offer {
    /// Where WireGuard's UDP packets go: `host:port`, IPv6 as `[addr]:port`.
    pub endpoint: String,
}

/// The parameters of a `T1` offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T1Offer {
    /// The gateway's T1 listener: `host:port`, IPv6 as `[addr]:port`.
    pub endpoint: String,
    /// The gateway's T1 key.
    pub key: T1Key,
}

/// The parameters of a `T2` offer: the T3 tunnel served by the gateway itself over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T2Offer {
    /// Where the client dials: the gateway's address and TLS port, `host:port`.
    pub endpoint: String,
    /// `wss://<host>/<secret path>`: the WebSocket the gateway ends. Every other path serves
    /// an ordinary website.
    pub url: String,
    /// The HTTP `Host` header of the upgrade request.
    pub host: String,
    /// The TLS server name, which the gateway's certificate is checked against.
    pub sni: String,
}

/// The parameters of a `T3` offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T3Offer {
    /// `wss://<front>/<secret path>`: the WebSocket the front forwards to the gateway. Every
    /// other path of the front serves an ordinary website, so a probe without this one sees
    /// nothing of the tunnel.
    pub url: String,
    /// The HTTP `Host` header of the upgrade request.
    pub host: String,
    /// The TLS server name. It may differ from `host` where a front allows it.
    pub sni: String,
}

/// A gateway's T1 key as the catalog carries it: 32 bytes written as 64 lowercase hex digits.
///
/// Its `Debug` never shows the key: catalogs and paths end up in logs. The text is kept as
/// read so that [`crate::Catalog::validate`] can name the offending field when it is not a
/// key; a validated catalog only holds keys for which [`T1Key::to_bytes`] succeeds.
///
/// ```
/// use damm_catalog::T1Key;
///
/// let key = T1Key::from_bytes([0xab; 32]);
/// assert_eq!(key.expose_hex(), "ab".repeat(32));
/// assert_eq!(key.to_bytes(), Some([0xab; 32]));
/// assert_eq!(format!("{key:?}"), "T1Key([redacted])");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct T1Key(String);

impl T1Key {
    /// The key of `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> T1Key {
        T1Key(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The 32 key bytes, or `None` when the text is not 64 lowercase hex digits.
    pub fn to_bytes(&self) -> Option<[u8; 32]> {
        let text = self.0.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(bytes)
    }

    /// The key as written in the catalog (what a T1 key file holds). This is the secret:
    /// handle the string with care.
    pub fn expose_hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for T1Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("T1Key([redacted])")
    }
}

/// `offers` of a path, leniently: an offer whose `kind` this crate does not know is dropped,
/// whatever its fields (a newer publisher's transport); a known kind must have exactly its
/// fields. Values are checked afterwards by `Path::validate`, which names the field.
pub(crate) fn deserialize_offers<'de, D>(deserializer: D) -> Result<Vec<Offer>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Vec::<Map<String, Value>>::deserialize(deserializer)?;
    let mut offers = Vec::with_capacity(raw.len());
    for (i, mut object) in raw.into_iter().enumerate() {
        let kind = match object.remove("kind") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format_args!(
                    "offers[{i}].kind must be a string, not {other}"
                )));
            }
            None => {
                return Err(D::Error::custom(format_args!("offers[{i}] has no `kind`")));
            }
        };
        let body = Value::Object(object);
        let offer = match kind.as_str() {
            "T0" => serde_json::from_value(body).map(Offer::T0),
            "T1" => serde_json::from_value(body).map(Offer::T1),
            "T2" => serde_json::from_value(body).map(Offer::T2),
            "T3" => serde_json::from_value(body).map(Offer::T3),
            // Not ours to understand: skip it, keep the path.
            _ => continue,
        };
        let offer =
            offer.map_err(|e| D::Error::custom(format_args!("offers[{i}] ({kind}): {e}")))?;
        offers.push(offer);
    }
    Ok(offers)
}

/// Why an offer's value is refused: the field (relative to the offer) and the reason.
pub(crate) enum OfferProblem {
    /// An endpoint that does not parse.
    Endpoint(&'static str, crate::endpoint::EndpointError),
    /// Anything else.
    Field(&'static str, String),
}

impl Offer {
    /// Checks the values the types alone do not.
    pub(crate) fn check(&self) -> Result<(), OfferProblem> {
        let endpoint = |text: &str| {
            Endpoint::parse(text)
                .map(drop)
                .map_err(|e| OfferProblem::Endpoint("endpoint", e))
        };
        match self {
            Offer::T0(o) => endpoint(&o.endpoint),
            Offer::T1(o) => {
                endpoint(&o.endpoint)?;
                match o.key.to_bytes() {
                    None => Err(OfferProblem::Field(
                        "key",
                        "must be 64 lowercase hex digits (32 bytes)".into(),
                    )),
                    Some(bytes) if bytes == [0; 32] => {
                        Err(OfferProblem::Field("key", "is the all-zero key".into()))
                    }
                    Some(_) => Ok(()),
                }
            }
            Offer::T2(o) => {
                endpoint(&o.endpoint)?;
                check_tunnel(&o.url, &o.host, &o.sni)
            }
            Offer::T3(o) => check_tunnel(&o.url, &o.host, &o.sni),
        }
    }
}

/// A WebSocket tunnel's URL, Host and SNI (T2, T3).
fn check_tunnel(url: &str, host: &str, sni: &str) -> Result<(), OfferProblem> {
    check_wss_url(url).map_err(|reason| OfferProblem::Field("url", reason))?;
    for (field, value) in [("host", host), ("sni", sni)] {
        if !matches!(parse_host(value), Some(EndpointHost::Name(_))) {
            return Err(OfferProblem::Field(
                field,
                format!(
                    "`{}` is not a DNS hostname",
                    value.escape_default().take(80).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// `wss://host[:port]/path`: TLS only (a front always terminates TLS), a host an endpoint
/// would accept, and a non-empty path of URL path characters (no query or fragment: the
/// path is the secret, and nothing may be added around it).
fn check_wss_url(url: &str) -> Result<(), String> {
    let shown = || url.escape_default().take(80).collect::<String>();
    if url.len() > MAX_URL_LEN {
        return Err(format!("is longer than {MAX_URL_LEN} bytes"));
    }
    let rest = url
        .strip_prefix("wss://")
        .ok_or_else(|| format!("`{}` does not start with `wss://`", shown()))?;
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("`{}` has no path after the host", shown()))?;
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    if authority.contains('@') || Endpoint::parse(&with_port).is_err() {
        return Err(format!("`{}` has an invalid host or port", shown()));
    }
    if path.is_empty() || !url_path_ok(path) {
        return Err(format!(
            "`{}` needs a path of URL path characters (letters, digits, `-._~!$&'()*+,;=:@/`, \
             `%` and two hex digits)",
            shown()
        ));
    }
    Ok(())
}

/// RFC 3986 path characters: unreserved, sub-delims, `:`, `@`, `/` and percent escapes.
fn url_path_ok(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wss_urls() {
        for ok in [
            "wss://front.example.org/abc",
            "wss://front.example.org:8443/a/b-c_d~e",
            "wss://[2001:db8::1]/x",
            "wss://203.0.113.7/x%2Fy",
        ] {
            assert!(check_wss_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ws://front.example.org/abc",
            "https://front.example.org/abc",
            "wss://front.example.org",
            "wss://front.example.org/",
            "wss://front.example.org/a?b=c",
            "wss://front.example.org/a#b",
            "wss://front.example.org/a b",
            "wss://front.example.org/a%2",
            "wss://user@front.example.org/a",
            "wss://front_example.org/a",
            "wss://front.example.org:0/a",
            "wss:///a",
        ] {
            assert!(check_wss_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn t1_keys() {
        assert_eq!(
            T1Key::from_bytes([1; 32]).to_bytes(),
            Some([1; 32]),
            "round trip"
        );
        for bad in [
            "",
            "ab",
            &"AB".repeat(32),
            &"g0".repeat(32),
            &"a".repeat(65),
        ] {
            assert_eq!(T1Key(bad.to_owned()).to_bytes(), None, "{bad}");
        }
    }
}
