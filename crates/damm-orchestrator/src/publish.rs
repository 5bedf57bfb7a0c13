//! Publishing: the signed catalog of scored paths, written to the catalog sink every tick,
//! and the keys behind it (`damm keygen`).
//!
//! Keys live in one directory, each secret file mode 0600:
//! - `catalog.key`: the Ed25519 catalog signing key (damm-catalog's key file format);
//! - `catalog.pub`: its public half in minisign's format, for clients and `minisign -V`;
//! - `gateway.seed`: 32 random bytes from which each gateway's WireGuard key is derived
//!   (BLAKE2b over the seed and the node's idempotency key), so the orchestrator knows
//!   every gateway's public key without ever storing a private one in state. The gateway
//!   receives its private key in its bootstrap user-data, which is never logged or stored.
//!   Each gateway's T1 key and config token, and each CDN front's secret WebSocket path,
//!   come from the same seed under their own labels: nothing more to store, and rotating
//!   the seed renews them all.
//!
//! The catalog lists every path's transport offers (`docs/catalog.md`): T0 and T1 on the T0
//! paths of regions with `t1 = true`, T3 on fronted paths.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use blake2::Digest as _;
use chrono::{DateTime, Utc};
use damm_catalog::{
    Catalog, Component, KeyPair, Offer, PrivateKey, RegionPaths, Role, SigningKey, T0Offer, T1Key,
    T1Offer, T2Offer, T3Offer, Transport,
};
use damm_fleet::{Composition, Policy};
use damm_provider::IdempotencyKey;

use crate::state::State;

/// The WireGuard port gateways listen on when the provider does not say.
pub const DEFAULT_WG_PORT: u16 = 51820;

/// The orchestrator's keys.
pub struct Keys {
    /// Signs the catalog.
    pub signing: SigningKey,
    gateway_seed: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("signing", &self.signing.key_id())
            .field("gateway_seed", &"[redacted]")
            .finish()
    }
}

/// Creates `path` (it must not exist) with mode 0600 and writes `text` to disk: for keys and
/// other secrets, which are never overwritten.
pub fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

impl Keys {
    /// Fresh keys.
    pub fn generate() -> Keys {
        let mut gateway_seed = [0u8; 32];
        getrandom::fill(&mut gateway_seed).expect("the OS random number generator failed");
        Keys {
            signing: SigningKey::generate(),
            gateway_seed,
        }
    }

    /// Writes `catalog.key`, `catalog.pub` and `gateway.seed` into `dir`; refuses to
    /// overwrite existing keys.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_secret(&dir.join("catalog.key"), &self.signing.to_file())?;
        let seed = base64::engine::general_purpose::STANDARD.encode(self.gateway_seed);
        write_secret(
            &dir.join("gateway.seed"),
            &format!("# DAMM gateway key seed. SECRET: mode 0600.\n{seed}\n"),
        )?;
        std::fs::write(
            dir.join("catalog.pub"),
            self.signing.public_key().to_minisign(),
        )?;
        Ok(())
    }

    /// Reads the keys from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Keys> {
        let key_path = dir.join("catalog.key");
        let text = std::fs::read_to_string(&key_path).with_context(|| {
            format!(
                "reading {} (create keys with `damm keygen`)",
                key_path.display()
            )
        })?;
        let signing =
            SigningKey::from_file(&text).with_context(|| key_path.display().to_string())?;
        let seed_path = dir.join("gateway.seed");
        let seed_text = std::fs::read_to_string(&seed_path)
            .with_context(|| format!("reading {}", seed_path.display()))?;
        let line = seed_text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .with_context(|| format!("{}: no seed line", seed_path.display()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| {
                format!(
                    "{}: the seed is not 32 bytes of base64",
                    seed_path.display()
                )
            })?;
        Ok(Keys {
            signing,
            gateway_seed: bytes,
        })
    }

    /// The credential with which the gateway `id` fetches its own config: BLAKE2b of the
    /// gateway seed and the id under its own domain, 32 bytes as hex. Derived, so nothing
    /// new is stored; the bootstrap installs it, `damm gateway-token` shows it for static
    /// hosts, and rotating `gateway.seed` revokes every one.
    pub fn gateway_token(&self, id: &str) -> damm_provider::SecretString {
        let mut h = blake2::Blake2b512::new();
        h.update(b"damm-gateway-token/1\0");
        h.update(self.gateway_seed);
        h.update(id.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..32].iter().map(|b| format!("{b:02x}")).collect();
        hex.into()
    }

    /// Whether `presented` is gateway `id`'s credential. The comparison takes the same
    /// time wherever the two differ.
    pub fn is_gateway_token(&self, id: &str, presented: &str) -> bool {
        use damm_provider::ExposeSecret as _;
        let expected = self.gateway_token(id);
        let expected = expected.expose_secret().as_bytes();
        let presented = presented.trim().as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    /// The T1 (obfuscated UDP) key of the gateway created with `key`: BLAKE2b of the gateway
    /// seed and the key under its own label, so it shares nothing with the gateway's
    /// WireGuard key or token. A secret: it goes to the gateway's config and, as an offer,
    /// into the catalog, and never into a log.
    pub fn gateway_t1(&self, key: &IdempotencyKey) -> [u8; 32] {
        let digest = self.derive(b"damm-gateway-t1/1\0", key.as_str());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&digest[..32]);
        bytes
    }

    /// The secret path of the CDN front `front`'s WebSocket, without the leading `/`: 128
    /// bits of a keyed hash as 22 URL-safe base64 characters. Per front rather than per
    /// ingress, so the clients' URL stays when the front moves to another ingress; the rest
    /// of the front's paths serve an ordinary site, so a scanner without it finds no tunnel.
    pub fn front_path(&self, front: &IdempotencyKey) -> String {
        let digest = self.derive(b"damm-front-path/1\0", front.as_str());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    /// The T2 hostname label of gateway `key` (`<label>.<t2_domain>`): a keyed hash, so the
    /// name says nothing of the node, region or fleet and cannot be guessed from the address.
    pub fn t2_label(&self, key: &IdempotencyKey) -> String {
        let digest = self.derive(b"damm-t2-label/1\0", key.as_str());
        // A letter first: some resolvers and CAs dislike all-digit labels.
        let mut label = String::from("s");
        for byte in &digest[..7] {
            label.push_str(&format!("{byte:02x}"));
        }
        label
    }

    /// The secret path of gateway `key`'s T2 tunnel, without the leading `/` (as
    /// [`Keys::front_path`], under its own label).
    pub fn t2_path(&self, key: &IdempotencyKey) -> String {
        let digest = self.derive(b"damm-t2-path/1\0", key.as_str());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    /// BLAKE2b-512 of `label` (which ends in a NUL, so no label is a prefix of another),
    /// the gateway seed and `id`: every per-gateway and per-front secret, each under its own
    /// label.
    fn derive(&self, label: &[u8], id: &str) -> [u8; 64] {
        let mut h = blake2::Blake2b512::new();
        h.update(label);
        h.update(self.gateway_seed);
        h.update(id.as_bytes());
        h.finalize().into()
    }

    /// The WireGuard key pair of the gateway created with `key`.
    pub fn gateway(&self, key: &IdempotencyKey) -> KeyPair {
        let mut h = blake2::Blake2b512::new();
        h.update(b"damm-gateway-key/1\0");
        h.update(self.gateway_seed);
        h.update(key.as_str().as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&digest[..32]);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        KeyPair::from_private(PrivateKey::from_bytes(bytes))
    }
}

/// Where the catalog goes: a file (and its `.minisig` beside it).
#[derive(Debug, Clone)]
pub struct Sink {
    /// The catalog file.
    pub path: PathBuf,
}

impl Sink {
    /// The sink of the catalog for clients of `overlay`, beside this one:
    /// `catalog.json` → `catalog.overlay-NAME.json`.
    pub fn for_overlay(&self, overlay: &str) -> Sink {
        let stem = self.path.file_stem().unwrap_or_default().to_string_lossy();
        let name = match self.path.extension() {
            Some(ext) => format!("{stem}.overlay-{overlay}.{}", ext.to_string_lossy()),
            None => format!("{stem}.overlay-{overlay}"),
        };
        Sink {
            path: self.path.with_file_name(name),
        }
    }

    /// The signature file beside the catalog.
    pub fn signature_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".minisig");
        self.path.with_file_name(name)
    }
}

/// Builds the catalog of `version` from the compositions and the state's addresses.
/// `validated_for` lists the providers whose failover a scenario run proved (see
/// [`crate::validated`]); nothing else may claim it.
///
/// Each path keeps one primary transport in `transports` and `endpoint` (what clients that
/// read no offers use) and lists its offers: T0, T1 and T2 on the T0 paths of a region with
/// `t1 = true` or `t2 = true`, T3 (`wss://<front>/<secret path>`) on fronted paths.
pub fn build_catalog(
    state: &State,
    policy: &Policy,
    keys: &Keys,
    paths: &BTreeMap<damm_provider::Region, Vec<Composition>>,
    validated_for: Vec<damm_catalog::Validation>,
    version: u64,
    now: DateTime<Utc>,
) -> Catalog {
    let t1_port = policy.transports.t1_port;
    let mut regions = BTreeMap::new();
    for (region, list) in paths {
        let t1 = policy.t1_in(region);
        // T2 needs the domain of the gateways' certificate; the policy refuses a T2 region
        // without one.
        let t2 = policy
            .transports
            .t2_domain
            .as_deref()
            .filter(|_| policy.t2_in(region));
        let mut out = Vec::new();
        for c in list {
            let Some(node) = state.nodes.get(&c.ingress) else {
                continue;
            };
            // A front door is the stable public face; else the node's own address.
            let address = state
                .addresses
                .values()
                .find(|a| {
                    a.node.as_ref() == Some(&c.ingress)
                        && a.kind == damm_fleet::AddressKind::Frontdoor
                })
                .and_then(|a| a.address)
                .or_else(|| node.addresses.first().copied());
            let Some(address) = address else { continue };
            let port = node.wireguard_port.unwrap_or(DEFAULT_WG_PORT);
            let entry = c.entry.as_ref().and_then(|e| state.addresses.get(e));
            let (endpoint, offers) = match (c.transport, entry, &c.entry) {
                // A fronted path is reached through the CDN's HTTPS port, by hostname; its
                // WebSocket at the front's secret path.
                (Transport::CdnFronted, Some(front), Some(front_key)) => match &front.hostname {
                    Some(hostname) => (
                        format!("{hostname}:{FRONT_PORT}"),
                        vec![Offer::T3(T3Offer {
                            url: format!("wss://{hostname}/{}", keys.front_path(front_key)),
                            host: hostname.clone(),
                            sni: hostname.clone(),
                        })],
                    ),
                    None => continue,
                },
                // An overlay path: the gateway's WireGuard port at its overlay address.
                (Transport::Overlay, Some(member), _) => match member.address {
                    Some(address) => (socket(address, port), Vec::new()),
                    None => continue,
                },
                // T1 listens beside WireGuard on the same address; a gateway whose provider
                // put WireGuard on the T1 port has no room for it.
                (Transport::WireguardUdp, _, _) if (t1 && port != t1_port) || t2.is_some() => {
                    let endpoint = socket(address, port);
                    let mut offers = vec![Offer::T0(T0Offer {
                        endpoint: endpoint.clone(),
                    })];
                    if t1 && port != t1_port {
                        offers.push(Offer::T1(T1Offer {
                            endpoint: socket(address, t1_port),
                            key: T1Key::from_bytes(keys.gateway_t1(&c.ingress)),
                        }));
                    }
                    if let Some(domain) = t2 {
                        let host = format!("{}.{domain}", keys.t2_label(&c.ingress));
                        offers.push(Offer::T2(T2Offer {
                            endpoint: socket(address, policy.transports.t2_port),
                            url: format!("wss://{host}/{}", keys.t2_path(&c.ingress)),
                            sni: host.clone(),
                            host,
                        }));
                    }
                    (endpoint, offers)
                }
                (Transport::WireguardUdp, _, _) => (socket(address, port), Vec::new()),
                _ => continue,
            };
            let mut composition = Vec::new();
            if let (Some(entry), Some(provider)) = (&c.entry, &c.entry_provider) {
                composition.push(Component {
                    role: match c.transport {
                        Transport::Overlay => Role::Overlay,
                        _ => Role::Front,
                    },
                    provider: provider.clone(),
                    component: entry.to_string(),
                });
            }
            composition.push(Component {
                role: Role::Ingress,
                provider: c.ingress_provider.clone(),
                component: c.ingress.to_string(),
            });
            composition.push(Component {
                role: Role::Egress,
                provider: c.egress_provider.clone(),
                component: c.egress.to_string(),
            });
            out.push(damm_catalog::Path {
                path_id: c.path_id(),
                composition,
                score: c.score,
                transports: vec![c.transport],
                endpoint,
                gateway_public_key: keys.gateway(&c.ingress).public_key(),
                offers,
            });
        }
        regions.insert(region.to_string(), RegionPaths { paths: out });
    }
    Catalog {
        schema: damm_catalog::SCHEMA_V1.to_owned(),
        fleet: policy.fleet.id.to_string(),
        version,
        issued_at: now,
        expires_at: now + policy.paths.catalog_ttl.chrono(),
        validated_for,
        regions,
    }
}

/// The port a CDN front takes clients on: HTTPS, which every CDN proxies (WebSockets too).
pub const FRONT_PORT: u16 = 443;

fn socket(address: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

/// Signs `catalog` and writes it and its signature to the sink, atomically each.
pub fn write_catalog(catalog: &Catalog, keys: &Keys, sink: &Sink) -> anyhow::Result<()> {
    let signed =
        damm_catalog::sign_catalog(catalog, &keys.signing).context("signing the catalog")?;
    if let Some(dir) = sink.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // The signature first: a reader that sees the new catalog finds its signature.
    damm_provider::fs::write_atomic(&sink.signature_path(), signed.signature.as_bytes())
        .with_context(|| format!("writing {}", sink.signature_path().display()))?;
    damm_provider::fs::write_atomic(&sink.path, signed.json.as_bytes())
        .with_context(|| format!("writing {}", sink.path.display()))?;
    Ok(())
}

/// Reads a catalog and its signature and verifies them.
pub fn verify_file(
    path: &Path,
    signature: Option<&Path>,
    trusted: &Path,
    last_version: Option<u64>,
    now: DateTime<Utc>,
) -> anyhow::Result<Catalog> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let sig_path = signature.map_or_else(
        || {
            Sink {
                path: path.to_owned(),
            }
            .signature_path()
        },
        Path::to_owned,
    );
    let sig = std::fs::read_to_string(&sig_path)
        .with_context(|| format!("reading {}", sig_path.display()))?;
    let pub_text = std::fs::read_to_string(trusted)
        .with_context(|| format!("reading {}", trusted.display()))?;
    let key = damm_catalog::PublicKey::from_minisign(&pub_text)
        .with_context(|| trusted.display().to_string())?;
    match damm_catalog::verify(&bytes, &sig, &[key], last_version, now) {
        Ok(catalog) => Ok(catalog),
        Err(e) => bail!("{}: rejected: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use damm_fleet::{AddressKind, Status};
    use damm_provider::{NodeRole, NodeState, Region};

    use super::*;
    use crate::state::{AddressRecord, NodeRecord};

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::new(text).unwrap()
    }

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    fn keys_with_seed(seed: u8) -> Keys {
        Keys {
            signing: SigningKey::generate(),
            gateway_seed: [seed; 32],
        }
    }

    fn node(provider: &str, region_name: &str, role: NodeRole, address: &str) -> NodeRecord {
        let now = Utc::now();
        NodeRecord {
            provider: provider.into(),
            id: format!("{provider}-id"),
            region: region(region_name),
            role,
            status: Status::Active,
            status_since: now,
            state: NodeState::Running,
            created_at: now,
            addresses: vec![address.parse::<IpAddr>().unwrap()],
            wireguard_port: Some(DEFAULT_WG_PORT),
            last_seen: now,
            ready_at: None,
        }
    }

    fn composition(
        region_name: &str,
        transport: Transport,
        entry: Option<(&str, &str)>,
        ingress: (&str, &str),
        egress: (&str, &str),
    ) -> Composition {
        Composition {
            region: region(region_name),
            transport,
            entry: entry.map(|(k, _)| key(k)),
            entry_provider: entry.map(|(_, p)| p.to_owned()),
            ingress: key(ingress.0),
            ingress_provider: ingress.1.into(),
            egress: key(egress.0),
            egress_provider: egress.1.into(),
            score: 0.8,
        }
    }

    const FRONT_HOST: &str = "k3x9q.damm.example.org";

    /// eu-central offers T1 and has a fronted ingress; us-east offers neither.
    fn world() -> (State, Policy, BTreeMap<Region, Vec<Composition>>) {
        let mut policy = Policy::default_policy();
        policy.regions.get_mut(&region("eu-central")).unwrap().t1 = true;
        let mut state = State::new(policy.fleet.id.clone());
        for (k, provider, region_name, role, address) in [
            (
                "i1",
                "hetzner",
                "eu-central",
                NodeRole::Ingress,
                "203.0.113.10",
            ),
            (
                "i2",
                "vultr",
                "eu-central",
                NodeRole::Ingress,
                "2001:db8::2",
            ),
            (
                "e1",
                "hetzner",
                "eu-central",
                NodeRole::Egress,
                "203.0.113.20",
            ),
            (
                "i3",
                "digitalocean",
                "us-east",
                NodeRole::Ingress,
                "198.51.100.3",
            ),
        ] {
            state
                .nodes
                .insert(key(k), node(provider, region_name, role, address));
        }
        state.addresses.insert(
            key("f1"),
            AddressRecord {
                provider: "cloudflare".into(),
                id: "dns-record-1".into(),
                region: region("eu-central"),
                kind: AddressKind::Front,
                node: Some(key("i1")),
                address: Some("203.0.113.10".parse().unwrap()),
                hostname: Some(FRONT_HOST.into()),
            },
        );
        let paths = BTreeMap::from([
            (
                region("eu-central"),
                vec![
                    composition(
                        "eu-central",
                        Transport::WireguardUdp,
                        None,
                        ("i1", "hetzner"),
                        ("e1", "hetzner"),
                    ),
                    composition(
                        "eu-central",
                        Transport::WireguardUdp,
                        None,
                        ("i2", "vultr"),
                        ("e1", "hetzner"),
                    ),
                    composition(
                        "eu-central",
                        Transport::CdnFronted,
                        Some(("f1", "cloudflare")),
                        ("i1", "hetzner"),
                        ("e1", "hetzner"),
                    ),
                ],
            ),
            (
                region("us-east"),
                vec![composition(
                    "us-east",
                    Transport::WireguardUdp,
                    None,
                    ("i3", "digitalocean"),
                    ("i3", "digitalocean"),
                )],
            ),
        ]);
        (state, policy, paths)
    }

    fn catalog(keys: &Keys) -> Catalog {
        let (state, policy, paths) = world();
        build_catalog(&state, &policy, keys, &paths, Vec::new(), 1, Utc::now())
    }

    fn t1_of(path: &damm_catalog::Path) -> &T1Offer {
        path.offers
            .iter()
            .find_map(|o| match o {
                Offer::T1(t1) => Some(t1),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} has no T1 offer", path.path_id))
    }

    #[test]
    fn a_t1_region_offers_t0_and_t1_on_each_t0_path() {
        let keys = keys_with_seed(7);
        let catalog = catalog(&keys);
        // Valid, signable, and what a client reads back.
        let signed = damm_catalog::sign_catalog(&catalog, &keys.signing).unwrap();
        let read = damm_catalog::verify(
            signed.json.as_bytes(),
            &signed.signature,
            &[keys.signing.public_key()],
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(read, catalog);

        let eu = catalog.region("eu-central").unwrap();
        let t0: Vec<_> = eu
            .iter()
            .filter(|p| p.transports == [Transport::WireguardUdp])
            .collect();
        assert_eq!(t0.len(), 2);
        for path in &t0 {
            // The primary transport is what it was; the offers add T1 beside it.
            assert_eq!(
                path.offers.iter().map(Offer::kind).collect::<Vec<_>>(),
                ["T0", "T1"]
            );
            assert!(matches!(&path.offers[0], Offer::T0(o) if o.endpoint == path.endpoint));
        }
        let (i1, i2) = (t0[0], t0[1]);
        assert_eq!(i1.endpoint, "203.0.113.10:51820");
        assert_eq!(t1_of(i1).endpoint, "203.0.113.10:4443");
        assert_eq!(t1_of(i2).endpoint, "[2001:db8::2]:4443");
        assert_eq!(
            t1_of(i1).key.to_bytes(),
            Some(keys.gateway_t1(&key("i1"))),
            "the gateway's own key"
        );

        // No T1 where the region does not ask for it: the path is written as before offers.
        let us = &catalog.region("us-east").unwrap()[0];
        assert!(us.offers.is_empty());
        let json: serde_json::Value = serde_json::from_str(&signed.json).unwrap();
        assert!(
            json["regions"]["us-east"]["paths"][0]
                .get("offers")
                .is_none()
        );
    }

    #[test]
    fn a_t2_region_offers_the_gateways_own_tls_front_under_the_t2_domain() {
        let keys = keys_with_seed(7);
        let (state, mut policy, paths) = world();
        policy.transports.t2_domain = Some("cdn-assets.example".into());
        policy.regions.get_mut(&region("eu-central")).unwrap().t2 = true;
        let catalog = build_catalog(&state, &policy, &keys, &paths, Vec::new(), 1, Utc::now());
        damm_catalog::sign_catalog(&catalog, &keys.signing).unwrap();
        let eu = catalog.region("eu-central").unwrap();
        let mut hosts = Vec::new();
        for path in eu
            .iter()
            .filter(|p| p.transports == [Transport::WireguardUdp])
        {
            let kinds: Vec<_> = path.offers.iter().map(Offer::kind).collect();
            assert_eq!(kinds, ["T0", "T1", "T2"], "{}", path.path_id);
            let Some(Offer::T2(t2)) = path.offers.last() else {
                unreachable!()
            };
            let address = path.endpoint.rsplit_once(':').unwrap().0;
            assert_eq!(t2.endpoint, format!("{address}:443"));
            assert!(t2.host.ends_with(".cdn-assets.example"), "{}", t2.host);
            assert_eq!(t2.sni, t2.host);
            assert!(t2.url.starts_with(&format!("wss://{}/", t2.host)));
            // The name says nothing of the node or the fleet.
            assert!(
                !t2.host.contains("i1") && !t2.host.contains("i2"),
                "{}",
                t2.host
            );
            hosts.push(t2.host.clone());
        }
        assert_eq!(hosts.len(), 2);
        assert_ne!(hosts[0], hosts[1], "one name per gateway");
        // The fronted path keeps its T3 alone; us-east offers nothing.
        assert!(catalog.region("us-east").unwrap()[0].offers.is_empty());
        // The gateway's config names the listener and the same secret path.
        assert_eq!(
            keys.t2_path(&key("i1")),
            eu.iter()
                .find_map(|p| match p.offers.last() {
                    Some(Offer::T2(t2)) if p.path_id.contains("i1") => {
                        Some(t2.url.rsplit_once('/').unwrap().1.to_owned())
                    }
                    _ => None,
                })
                .unwrap()
        );
    }

    #[test]
    fn t1_keys_are_stable_per_gateway_and_differ_between_gateways() {
        let keys = keys_with_seed(7);
        let first = catalog(&keys);
        let again = catalog(&keys);
        let eu = |c: &Catalog| c.region("eu-central").unwrap().to_vec();
        for (a, b) in eu(&first).iter().zip(&eu(&again)) {
            assert_eq!(
                a.offers, b.offers,
                "{}: the same offers every tick",
                a.path_id
            );
        }
        // Derived from the seed alone: a restarted orchestrator (same seed, any signing key)
        // publishes the same key; another seed, another key.
        let i1 = key("i1");
        assert_eq!(keys.gateway_t1(&i1), keys_with_seed(7).gateway_t1(&i1));
        assert_ne!(keys.gateway_t1(&i1), keys_with_seed(8).gateway_t1(&i1));
        let paths = eu(&first);
        assert_ne!(t1_of(&paths[0]).key, t1_of(&paths[1]).key);
        // Its own label: not the WireGuard private key, not the token, not a front path.
        let t1 = keys.gateway_t1(&i1);
        let wg = keys.gateway(&i1).private_key().expose_base64();
        assert_ne!(base64::engine::general_purpose::STANDARD.encode(t1), wg);
        use damm_provider::ExposeSecret as _;
        let token = keys.gateway_token(i1.as_str());
        let hex: String = t1.iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(token.expose_secret(), &hex);
    }

    #[test]
    fn a_t1_key_never_shows_in_debug() {
        let keys = keys_with_seed(7);
        let catalog = catalog(&keys);
        for path in catalog.region("eu-central").unwrap() {
            for ingress in ["i1", "i2"] {
                let hex: String = keys
                    .gateway_t1(&key(ingress))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                for shown in [
                    format!("{path:?}"),
                    format!("{path:#?}"),
                    format!("{catalog:?}"),
                ] {
                    assert!(!shown.contains(&hex), "{shown}");
                }
            }
        }
        let path = &catalog.region("eu-central").unwrap()[0];
        assert!(format!("{path:?}").contains("[redacted]"));
    }

    #[test]
    fn a_fronted_path_offers_t3_at_the_fronts_secret_path() {
        let keys = keys_with_seed(7);
        let catalog = catalog(&keys);
        let fronted = catalog
            .region("eu-central")
            .unwrap()
            .iter()
            .find(|p| p.transports == [Transport::CdnFronted])
            .unwrap();
        assert_eq!(fronted.endpoint, format!("{FRONT_HOST}:443"));
        let [Offer::T3(t3)] = fronted.offers.as_slice() else {
            panic!("one T3 offer: {:?}", fronted.offers);
        };
        assert_eq!(t3.host, FRONT_HOST);
        assert_eq!(t3.sni, FRONT_HOST);
        let secret = t3
            .url
            .strip_prefix(&format!("wss://{FRONT_HOST}/"))
            .unwrap_or_else(|| panic!("{}", t3.url));
        assert_eq!(secret, keys.front_path(&key("f1")));
        assert!(secret.len() >= 22, "{secret}");
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{secret}"
        );
        // Nothing in it names the front, the ingress or the region.
        for name in ["f1", "i1", "eu-central", "cloudflare"] {
            assert!(!secret.contains(name), "{secret}");
        }
        // Per front and per seed; stable.
        assert_eq!(secret, keys_with_seed(7).front_path(&key("f1")));
        assert_ne!(secret, keys.front_path(&key("f2")));
        assert_ne!(secret, keys_with_seed(8).front_path(&key("f1")));
    }

    #[test]
    fn a_gateway_with_wireguard_on_the_t1_port_offers_no_t1() {
        let keys = keys_with_seed(7);
        let (mut state, policy, paths) = world();
        state.nodes.get_mut(&key("i2")).unwrap().wireguard_port = Some(4443);
        let catalog = build_catalog(&state, &policy, &keys, &paths, Vec::new(), 1, Utc::now());
        let eu = catalog.region("eu-central").unwrap();
        let i2 = eu.iter().find(|p| p.endpoint.ends_with(":4443")).unwrap();
        assert!(i2.offers.is_empty(), "{:?}", i2.offers);
        catalog.to_json().unwrap();
    }
}
