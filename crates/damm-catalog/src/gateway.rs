//! A gateway's signed desired configuration (`damm-gateway/1`).
//!
//! The orchestrator publishes one [`GatewayConfig`] per gateway, signed with the catalog key in
//! the same minisign format as the catalog ([`sign_gateway_config`]); the gateway agent verifies
//! it with [`verify_gateway_config`] and applies it to its WireGuard interfaces.
//!
//! Data plane, as these configs describe it:
//!
//! - An **ingress** has two WireGuard interfaces. The client-facing one (`listen_port`,
//!   `address`, e.g. `10.77.0.1/16`) lists every enrolled client of the region as a peer with its
//!   tunnel address as a `/32`; the same client key and `/32` are stamped on every ingress of the
//!   region, which is what lets a client fail over by switching peer and endpoint only.
//!   The **backbone** interface ([`Backbone`]: its own port and address, e.g. `10.78.0.11/24`)
//!   has exactly one peer, the egress, with `AllowedIPs = 0.0.0.0/0`. Traffic arriving from
//!   clients is policy-routed into the backbone and masqueraded to the ingress's backbone
//!   address, so an egress only ever sees one `/32` per ingress, whatever clients it carries.
//! - An **egress** has one interface whose peers are the ingresses allowed to use it (each with
//!   its backbone `/32`); it masquerades what leaves towards the internet.
//!
//! Rotating the egress behind an ingress is a new ingress config (higher `version`) with another
//! backbone peer: clients see no change.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::signature::{
    MAX_FUTURE_SKEW, PublicKey, SigningKey, VerifyError, sign, verify_signature,
};
use crate::wg::WgKey;

/// The `schema` value of a version 1 gateway configuration.
pub const GATEWAY_SCHEMA_V1: &str = "damm-gateway/1";

/// Longest identifier (fleet, gateway id, peer name), in bytes.
const MAX_NAME_LEN: usize = 128;

/// The desired WireGuard configuration of one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Always [`GATEWAY_SCHEMA_V1`].
    pub schema: String,
    /// The fleet the gateway belongs to.
    pub fleet: String,
    /// The gateway's id (its component key in the fleet model).
    pub gateway: String,
    /// Grows with every config published for this gateway; older ones are refused.
    pub version: u64,
    /// When the orchestrator issued it.
    pub issued_at: DateTime<Utc>,
    /// From this instant on the agent refuses it (it keeps the last applied one running).
    pub expires_at: DateTime<Utc>,
    /// What the gateway does.
    pub role: GatewayRole,
    /// UDP port of the main interface (client-facing on an ingress, backbone on an egress).
    pub listen_port: u16,
    /// Tunnel address of the main interface, with prefix (`10.77.0.1/16`).
    pub address: String,
    /// Peers of the main interface: clients on an ingress, ingresses on an egress.
    pub peers: Vec<GatewayPeer>,
    /// The backbone interface towards the egress; required on an ingress, absent on an egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<Backbone>,
    /// The listeners an ingress runs beside WireGuard for censored clients (T1, T3).
    #[serde(default, skip_serializing_if = "GatewayTransports::is_empty")]
    pub transports: GatewayTransports,
}

/// The censorship-resistant listeners of an ingress, each handing what it carries to the
/// local WireGuard port (`listen_port` on loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTransports {
    /// T1, obfuscated UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t1: Option<GatewayT1>,
    /// T2, the same WebSocket tunnels served by the gateway itself over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t2: Option<GatewayT2>,
    /// T3, WebSocket tunnels behind a CDN front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t3: Option<GatewayT3>,
}

impl GatewayTransports {
    /// Whether it asks for no listener.
    pub fn is_empty(&self) -> bool {
        self.t1.is_none() && self.t2.is_none() && self.t3.is_none()
    }
}

/// T1's listener: a UDP port and the gateway's T1 key (redacted in Debug).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayT1 {
    /// UDP port, on every address.
    pub port: u16,
    /// The key clients seal with (the catalog's T1 offers carry the same).
    pub key: crate::T1Key,
}

/// T3's listener: plain HTTP/1.1 behind the CDN's TLS (the CDN connects to the origin's
/// HTTP port, Cloudflare's "Flexible" mode), one secret path per front that leads here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayT3 {
    /// TCP port, on every address.
    pub port: u16,
    /// The fronts' secret paths, without their leading `/`.
    pub paths: Vec<String>,
}

/// T2's listener: TLS on a TCP port with the certificate the gateway holds (its files, never
/// in the config), an ordinary website, and the tunnel on its secret paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayT2 {
    /// TCP port, on every address.
    pub port: u16,
    /// The secret paths, without their leading `/`.
    pub paths: Vec<String>,
}

/// What a gateway does on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayRole {
    /// Clients connect to it; it forwards their traffic to its egress.
    Ingress,
    /// Traffic leaves the fleet through it (NAT).
    Egress,
}

/// One WireGuard peer of a gateway interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayPeer {
    /// A name for logs (client id, gateway id).
    pub name: String,
    /// The peer's WireGuard public key.
    pub public_key: WgKey,
    /// Prefixes routed to the peer (`10.77.0.2/32`, `0.0.0.0/0`).
    pub allowed_ips: Vec<String>,
    /// Where to reach the peer (`ip:port`); `None` for peers that connect to us (clients).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Keepalive interval in seconds; `None` for none.
    #[serde(default)]
    pub persistent_keepalive: Option<u16>,
}

/// The ingress's interface towards its egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backbone {
    /// UDP port of the backbone interface.
    pub listen_port: u16,
    /// The ingress's backbone address, with prefix (`10.78.0.11/24`); traffic from clients is
    /// masqueraded to it.
    pub address: String,
    /// The egress: `allowed_ips` normally `0.0.0.0/0`, an `endpoint` is required.
    pub peer: GatewayPeer,
}

/// Why a gateway configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayConfigError {
    /// The signature did not verify (malformed, unknown key, altered bytes or comment).
    #[error("gateway config signature: {0}")]
    Signature(#[source] VerifyError),
    /// Not JSON of the right shape.
    #[error("not a valid damm gateway config: {0}")]
    Json(#[from] serde_json::Error),
    /// A field with a value outside its range.
    #[error("`{field}`: {reason}")]
    InvalidField {
        /// Where.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The trusted comment names another fleet, gateway or version than the config holds.
    #[error("the trusted comment says {field} `{signed}` but the config says `{config}`")]
    CommentMismatch {
        /// `fleet`, `gateway` or `version`.
        field: &'static str,
        /// The value in the trusted comment.
        signed: String,
        /// The value in the config.
        config: String,
    },
    /// Past its `expires_at`.
    #[error("the gateway config expired at {expires_at} (now is {now})")]
    Expired {
        /// The config's `expires_at`.
        expires_at: DateTime<Utc>,
        /// The verifier's clock.
        now: DateTime<Utc>,
    },
    /// `issued_at` too far in the future.
    #[error("the gateway config is issued at {issued_at}, more than 5 minutes after now ({now})")]
    NotYetValid {
        /// The config's `issued_at`.
        issued_at: DateTime<Utc>,
        /// The verifier's clock.
        now: DateTime<Utc>,
    },
    /// Older than the last config the agent accepted.
    #[error(
        "gateway config version {version} is older than version {last_accepted}: rollback refused"
    )]
    Rollback {
        /// The config's version.
        version: u64,
        /// The last accepted version.
        last_accepted: u64,
    },
}

fn invalid(field: &str, reason: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn check_name(field: &str, value: &str) -> Result<(), GatewayConfigError> {
    if value.is_empty()
        || value.len() > MAX_NAME_LEN
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

/// Parses `ip/prefix`, refusing host bits outside the prefix length range.
pub(crate) fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

impl GatewayPeer {
    fn validate(&self, at: &str, needs_endpoint: bool) -> Result<(), GatewayConfigError> {
        check_name(&format!("{at}.name"), &self.name)?;
        if self.public_key.as_bytes() == &[0; 32] {
            return Err(invalid(&format!("{at}.public_key"), "is the all-zero key"));
        }
        if self.allowed_ips.is_empty() {
            return Err(invalid(
                &format!("{at}.allowed_ips"),
                "must list at least one prefix",
            ));
        }
        for (i, cidr) in self.allowed_ips.iter().enumerate() {
            if parse_cidr(cidr).is_none() {
                return Err(invalid(
                    &format!("{at}.allowed_ips[{i}]"),
                    "is not ip/prefix",
                ));
            }
        }
        match &self.endpoint {
            Some(e) => {
                let parsed = Endpoint::parse(e)
                    .map_err(|err| invalid(&format!("{at}.endpoint"), err.to_string()))?;
                if !matches!(parsed.host, crate::EndpointHost::Ip(_)) {
                    return Err(invalid(
                        &format!("{at}.endpoint"),
                        "must be an IP address and port (gateways do not resolve names)",
                    ));
                }
            }
            None if needs_endpoint => {
                return Err(invalid(&format!("{at}.endpoint"), "is required"));
            }
            None => {}
        }
        if self.persistent_keepalive == Some(0) {
            return Err(invalid(
                &format!("{at}.persistent_keepalive"),
                "0 is not an interval (leave it out for none)",
            ));
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Parses and validates a config (no signature or time check: see
    /// [`verify_gateway_config`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, GatewayConfigError> {
        let config: GatewayConfig = serde_json::from_slice(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Pretty JSON with a trailing newline, after validating.
    pub fn to_json(&self) -> Result<String, GatewayConfigError> {
        self.validate()?;
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        Ok(json)
    }

    /// Checks what the types alone do not: schema, names, version, validity window, ports,
    /// addresses, peers (unique keys, no prefix given to two peers), the backbone per role.
    pub fn validate(&self) -> Result<(), GatewayConfigError> {
        if self.schema != GATEWAY_SCHEMA_V1 {
            return Err(invalid(
                "schema",
                format!(
                    "unsupported `{}` (expected `{GATEWAY_SCHEMA_V1}`)",
                    self.schema.escape_default()
                ),
            ));
        }
        check_name("fleet", &self.fleet)?;
        check_name("gateway", &self.gateway)?;
        if self.version == 0 {
            return Err(invalid("version", "must be greater than 0"));
        }
        if self.issued_at >= self.expires_at {
            return Err(invalid("expires_at", "must be after `issued_at`"));
        }
        if self.listen_port == 0 {
            return Err(invalid("listen_port", "must be 1..=65535"));
        }
        if parse_cidr(&self.address).is_none() {
            return Err(invalid("address", "is not ip/prefix"));
        }
        let mut keys = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let at = format!("peers[{i}]");
            peer.validate(&at, false)?;
            if !keys.insert(peer.public_key) {
                return Err(invalid(&format!("{at}.public_key"), "appears twice"));
            }
            for cidr in &peer.allowed_ips {
                // WireGuard gives a prefix to exactly one peer: a second one would steal it.
                if !prefixes.insert(parse_cidr(cidr)) {
                    return Err(invalid(
                        &format!("{at}.allowed_ips"),
                        format!("`{cidr}` is already another peer's"),
                    ));
                }
            }
        }
        match (self.role, &self.backbone) {
            (GatewayRole::Ingress, None) => {
                return Err(invalid("backbone", "an ingress needs its backbone peer"));
            }
            (GatewayRole::Egress, Some(_)) => {
                return Err(invalid("backbone", "an egress has no backbone interface"));
            }
            (GatewayRole::Ingress, Some(b)) => {
                if b.listen_port == 0 || b.listen_port == self.listen_port {
                    return Err(invalid(
                        "backbone.listen_port",
                        "must be 1..=65535 and differ from `listen_port`",
                    ));
                }
                if parse_cidr(&b.address).is_none() {
                    return Err(invalid("backbone.address", "is not ip/prefix"));
                }
                b.peer.validate("backbone.peer", true)?;
            }
            (GatewayRole::Egress, None) => {}
        }
        if let Some(t1) = &self.transports.t1 {
            if t1.port == 0 || t1.port == self.listen_port {
                return Err(invalid(
                    "transports.t1.port",
                    "must be 1..=65535 and differ from `listen_port`",
                ));
            }
            if t1.key.to_bytes().is_none() {
                return Err(invalid("transports.t1.key", "is not 64 hex digits"));
            }
        }
        if let Some(t3) = &self.transports.t3 {
            if t3.port == 0 {
                return Err(invalid("transports.t3.port", "must be 1..=65535"));
            }
            for (i, path) in t3.paths.iter().enumerate() {
                let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
                if path.len() < 16 || !path.chars().all(url_safe) {
                    return Err(invalid(
                        &format!("transports.t3.paths[{i}]"),
                        "must be 16 or more URL-safe characters",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The trusted comment written for a gateway config: schema, fleet, gateway, version, window.
pub fn gateway_trusted_comment(config: &GatewayConfig) -> String {
    format!(
        "{GATEWAY_SCHEMA_V1} fleet:{} gateway:{} version:{} issued_at:{} expires_at:{}",
        config.fleet,
        config.gateway,
        config.version,
        config
            .issued_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        config
            .expires_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// A gateway config as published: its JSON and the minisign signature of exactly those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGatewayConfig {
    /// `gateway.json`.
    pub json: String,
    /// `gateway.json.minisig`.
    pub signature: String,
}

/// Validates, serialises and signs a gateway config with the catalog key.
pub fn sign_gateway_config(
    config: &GatewayConfig,
    key: &SigningKey,
) -> Result<SignedGatewayConfig, GatewayConfigError> {
    let json = config.to_json()?;
    let signature = sign(json.as_bytes(), key, &gateway_trusted_comment(config));
    Ok(SignedGatewayConfig { json, signature })
}

/// Verifies a signed gateway config the way an agent must before applying it: signature by a
/// trusted key, valid config, trusted comment matching fleet/gateway/version, not expired, not
/// issued more than [`MAX_FUTURE_SKEW`] ahead, and not older than `last_accepted_version` (the
/// same version is accepted: a re-fetch). The caller checks that `gateway` is its own id.
///
/// ```
/// use chrono::{Duration, Utc};
/// use damm_catalog::{
///     Backbone, GatewayConfig, GatewayPeer, GatewayRole, KeyPair, SigningKey,
///     sign_gateway_config, verify_gateway_config,
/// };
///
/// let now = Utc::now();
/// let config = GatewayConfig {
///     schema: damm_catalog::GATEWAY_SCHEMA_V1.into(),
///     fleet: "demo".into(),
///     gateway: "hetzner:fsn1:ingress-a".into(),
///     version: 3,
///     issued_at: now,
///     expires_at: now + Duration::hours(6),
///     role: GatewayRole::Ingress,
///     listen_port: 51820,
///     address: "10.77.0.1/16".into(),
///     peers: vec![GatewayPeer {
///         name: "alice".into(),
///         public_key: KeyPair::generate().public_key(),
///         allowed_ips: vec!["10.77.0.2/32".into()],
///         endpoint: None,
///         persistent_keepalive: Some(25),
///     }],
///     backbone: Some(Backbone {
///         listen_port: 51821,
///         address: "10.78.0.11/24".into(),
///         peer: GatewayPeer {
///             name: "egress-1".into(),
///             public_key: KeyPair::generate().public_key(),
///             allowed_ips: vec!["0.0.0.0/0".into()],
///             endpoint: Some("198.51.100.7:51821".into()),
///             persistent_keepalive: Some(25),
///         },
///     }),
///     transports: Default::default(),
/// };
/// let key = SigningKey::generate();
/// let signed = sign_gateway_config(&config, &key)?;
/// let ok = verify_gateway_config(
///     signed.json.as_bytes(), &signed.signature, &[key.public_key()], Some(2), now,
/// )?;
/// assert_eq!(ok, config);
/// assert!(verify_gateway_config(
///     signed.json.as_bytes(), &signed.signature, &[key.public_key()], Some(4), now,
/// ).is_err());
/// # Ok::<(), damm_catalog::GatewayConfigError>(())
/// ```
pub fn verify_gateway_config(
    bytes: &[u8],
    signature_text: &str,
    trusted_keys: &[PublicKey],
    last_accepted_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<GatewayConfig, GatewayConfigError> {
    let verified = verify_signature(bytes, signature_text, trusted_keys)
        .map_err(GatewayConfigError::Signature)?;
    let config = GatewayConfig::from_json(bytes)?;
    for token in verified.trusted_comment.split_whitespace() {
        let Some((field, signed)) = token.split_once(':') else {
            continue;
        };
        let (field, actual): (&'static str, String) = match field {
            "fleet" => ("fleet", config.fleet.clone()),
            "gateway" => ("gateway", config.gateway.clone()),
            "version" => ("version", config.version.to_string()),
            _ => continue,
        };
        if signed != actual {
            return Err(GatewayConfigError::CommentMismatch {
                field,
                signed: signed.to_owned(),
                config: actual,
            });
        }
    }
    // A catalog signature must not double as a gateway config signature, nor the reverse: the
    // comment names the schema it was made for.
    if verified.trusted_comment.split_whitespace().next() != Some(GATEWAY_SCHEMA_V1) {
        return Err(invalid(
            "signature",
            format!("the trusted comment does not start with `{GATEWAY_SCHEMA_V1}`"),
        ));
    }
    if now >= config.expires_at {
        return Err(GatewayConfigError::Expired {
            expires_at: config.expires_at,
            now,
        });
    }
    if config.issued_at > now + MAX_FUTURE_SKEW {
        return Err(GatewayConfigError::NotYetValid {
            issued_at: config.issued_at,
            now,
        });
    }
    if let Some(last) = last_accepted_version
        && config.version < last
    {
        return Err(GatewayConfigError::Rollback {
            version: config.version,
            last_accepted: last,
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::wg::KeyPair;

    fn peer(name: &str, ip: &str) -> GatewayPeer {
        GatewayPeer {
            name: name.into(),
            public_key: KeyPair::generate().public_key(),
            allowed_ips: vec![ip.into()],
            endpoint: None,
            persistent_keepalive: None,
        }
    }

    fn egress(now: DateTime<Utc>) -> GatewayConfig {
        GatewayConfig {
            schema: GATEWAY_SCHEMA_V1.into(),
            fleet: "demo".into(),
            gateway: "eg-1".into(),
            version: 5,
            issued_at: now,
            expires_at: now + Duration::hours(1),
            role: GatewayRole::Egress,
            listen_port: 51821,
            address: "10.78.0.1/24".into(),
            peers: vec![peer("in-1", "10.78.0.11/32"), peer("in-2", "10.78.0.12/32")],
            backbone: None,
            transports: GatewayTransports::default(),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let now = Utc::now();
        let key = SigningKey::generate();
        let trusted = [key.public_key()];
        let config = egress(now);
        let signed = sign_gateway_config(&config, &key).unwrap();
        let bytes = signed.json.as_bytes();
        let ok = verify_gateway_config(bytes, &signed.signature, &trusted, Some(5), now).unwrap();
        assert_eq!(ok, config);
        // Tampered.
        let tampered = signed.json.replace("51821", "51822");
        assert!(matches!(
            verify_gateway_config(tampered.as_bytes(), &signed.signature, &trusted, None, now),
            Err(GatewayConfigError::Signature(_))
        ));
        // Expired, rolled back, unknown key.
        assert!(matches!(
            verify_gateway_config(
                bytes,
                &signed.signature,
                &trusted,
                None,
                now + Duration::hours(2)
            ),
            Err(GatewayConfigError::Expired { .. })
        ));
        assert!(matches!(
            verify_gateway_config(bytes, &signed.signature, &trusted, Some(6), now),
            Err(GatewayConfigError::Rollback { .. })
        ));
        let other = [SigningKey::generate().public_key()];
        assert!(verify_gateway_config(bytes, &signed.signature, &other, None, now).is_err());
        // A catalog-style signature over the same bytes is not a gateway config signature.
        let foreign = sign(bytes, &key, "damm-catalog/1 fleet:demo version:5");
        assert!(verify_gateway_config(bytes, &foreign, &trusted, None, now).is_err());
    }

    #[test]
    fn validation_catches_bad_fields() {
        let now = Utc::now();
        let mut c = egress(now);
        c.peers[1].allowed_ips = vec!["10.78.0.11/32".into()];
        assert!(c.validate().is_err(), "prefix given twice");
        let mut c = egress(now);
        c.peers[1].public_key = c.peers[0].public_key;
        assert!(c.validate().is_err(), "key twice");
        let mut c = egress(now);
        c.address = "10.78.0.1".into();
        assert!(c.validate().is_err());
        let mut c = egress(now);
        c.role = GatewayRole::Ingress;
        assert!(c.validate().is_err(), "ingress without backbone");
        c.backbone = Some(Backbone {
            listen_port: 51822,
            address: "10.78.0.11/24".into(),
            peer: peer("eg", "0.0.0.0/0"),
        });
        assert!(c.validate().is_err(), "backbone peer without endpoint");
        c.backbone.as_mut().unwrap().peer.endpoint = Some("192.0.2.1:51821".into());
        c.validate().unwrap();
        c.backbone.as_mut().unwrap().peer.endpoint = Some("egress.example:51821".into());
        assert!(c.validate().is_err(), "names are not resolved");
        let mut c = egress(now);
        c.peers[0].allowed_ips = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());
        let mut c = egress(now);
        c.peers[0].name = "a b".into();
        assert!(c.validate().is_err());
    }
}
