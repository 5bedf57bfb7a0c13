//! A sample catalog and fixed keys shared by the tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use damm_catalog::{
    Catalog, Component, KeyId, Offer, Path, PrivateKey, RegionPaths, Role, SCHEMA_V1, SigningKey,
    T0Offer, T1Key, T1Offer, T2Offer, T3Offer, Transport, Validation, WgKey,
};

/// The tests' clock.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The catalog signing key (fixed, so failures reproduce).
pub(crate) fn key() -> SigningKey {
    SigningKey::from_seed([0x11; 32], KeyId::from_bytes(*b"damm-key"))
}

/// Another signing key the clients do not trust.
pub(crate) fn other_key() -> SigningKey {
    SigningKey::from_seed([0x22; 32], KeyId::from_bytes(*b"intruder"))
}

/// The WireGuard public key of gateway `n`.
pub(crate) fn gateway(n: u8) -> WgKey {
    PrivateKey::from_bytes([n; 32]).public_key()
}

/// A path through `components` (role, provider), with component keys derived from them.
pub(crate) fn path(id: &str, score: f64, components: &[(Role, &str)], endpoint: &str) -> Path {
    Path {
        path_id: id.to_owned(),
        composition: components
            .iter()
            .map(|(role, provider)| Component {
                role: *role,
                provider: (*provider).to_owned(),
                component: format!("{provider}:{role}:{id}"),
            })
            .collect(),
        score,
        transports: vec![Transport::WireguardUdp],
        endpoint: endpoint.to_owned(),
        gateway_public_key: gateway(id.len() as u8),
        offers: Vec::new(),
    }
}

/// The T1 key of the sample's first path.
pub(crate) const SAMPLE_T1_KEY: [u8; 32] = [0x5a; 32];

/// A catalog using every field, role, transport and offer kind.
pub(crate) fn sample() -> Catalog {
    let mut udp = path(
        "eu-central/hetzner-fsn1-a",
        0.93,
        &[(Role::Ingress, "hetzner")],
        "203.0.113.10:51820",
    );
    udp.offers = vec![
        Offer::T0(T0Offer {
            endpoint: "203.0.113.10:51820".to_owned(),
        }),
        Offer::T1(T1Offer {
            endpoint: "203.0.113.10:4443".to_owned(),
            key: T1Key::from_bytes(SAMPLE_T1_KEY),
        }),
        Offer::T2(T2Offer {
            endpoint: "203.0.113.10:443".to_owned(),
            url: "wss://s3f09a1c2d4e5b6.assets.example.net/Zk2pQ7rT9vX1bN4mC6hJ8w".to_owned(),
            host: "s3f09a1c2d4e5b6.assets.example.net".to_owned(),
            sni: "s3f09a1c2d4e5b6.assets.example.net".to_owned(),
        }),
    ];
    let mut fronted = path(
        "eu-central/cf-hetzner-aws",
        0.82,
        &[
            (Role::Front, "cloudflare"),
            (Role::Ingress, "hetzner"),
            (Role::Egress, "aws"),
        ],
        "vpn-front.example.org:443",
    );
    fronted.transports = vec![Transport::CdnFronted, Transport::WireguardUdp];
    fronted.offers = vec![Offer::T3(T3Offer {
        url: "wss://vpn-front.example.org/q3Vt7hWc0Zb9xKpL2mNaRg".to_owned(),
        host: "vpn-front.example.org".to_owned(),
        sni: "vpn-front.example.org".to_owned(),
    })];
    let mut overlay = path(
        "eu-central/tailnet-vultr",
        0.4,
        &[(Role::Overlay, "tailscale"), (Role::Ingress, "vultr")],
        "100.101.102.103:51820",
    );
    overlay.transports = vec![Transport::Overlay];
    Catalog {
        schema: SCHEMA_V1.to_owned(),
        fleet: "demo".to_owned(),
        version: 42,
        issued_at: now() - Duration::minutes(1),
        expires_at: now() + Duration::hours(6),
        validated_for: vec![Validation {
            provider: "hetzner".to_owned(),
            proven_at: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            scenario: "provider-down hetzner".to_owned(),
        }],
        regions: BTreeMap::from([
            (
                "eu-central".to_owned(),
                RegionPaths {
                    paths: vec![udp, fronted, overlay],
                },
            ),
            (
                "us-east".to_owned(),
                RegionPaths {
                    paths: vec![path(
                        "us-east/do-nyc3-a",
                        0.7,
                        &[
                            (Role::Ingress, "digitalocean"),
                            (Role::Egress, "digitalocean"),
                        ],
                        "[2001:db8::10]:51820",
                    )],
                },
            ),
        ]),
    }
}
