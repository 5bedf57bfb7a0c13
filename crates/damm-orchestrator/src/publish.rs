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

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use blake2::Digest as _;
use chrono::{DateTime, Utc};
use damm_catalog::{
    Catalog, Component, KeyPair, PrivateKey, RegionPaths, Role, SigningKey, Transport,
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
pub fn build_catalog(
    state: &State,
    policy: &Policy,
    keys: &Keys,
    paths: &BTreeMap<damm_provider::Region, Vec<Composition>>,
    validated_for: Vec<damm_catalog::Validation>,
    version: u64,
    now: DateTime<Utc>,
) -> Catalog {
    let mut regions = BTreeMap::new();
    for (region, list) in paths {
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
            let endpoint = match (c.transport, entry) {
                // A fronted path is reached through the CDN's HTTPS port, by hostname.
                (Transport::CdnFronted, Some(front)) => match &front.hostname {
                    Some(hostname) => format!("{hostname}:{FRONT_PORT}"),
                    None => continue,
                },
                // An overlay path: the gateway's WireGuard port at its overlay address.
                (Transport::Overlay, Some(member)) => match member.address {
                    Some(address) => socket(address, port),
                    None => continue,
                },
                (Transport::WireguardUdp, _) => socket(address, port),
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
