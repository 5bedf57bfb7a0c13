//! Clients and the data plane's desired state: enrollment (`damm enroll`), each gateway's
//! signed configuration (`GET /v1/gateways/{id}/config`) and client path reports
//! (`POST /v1/reports`).
//!
//! - **Enrollment** creates the client's WireGuard key pair and a `/32` from the policy's
//!   `[clients] pool`, and records in state only what gateways and report checks need: the
//!   public key, the address and a BLAKE2b hash of a random report token. The private key and
//!   the raw token are handed out once, in the enrollment bundle, and never stored.
//! - **Gateway configs** are derived from state on demand: every ingress lists every client of
//!   its region (the same key and `/32` on each, which is what lets a client fail over by
//!   switching peer and endpoint only) plus one backbone peer, the egress its best catalog
//!   path uses; every egress lists the backbone addresses of its region's ingresses. Backbone
//!   addresses come from `[clients] backbone_pool`, one per gateway, kept in state so they stay
//!   put while the gateway lives. The version is the state serial, which only grows.
//! - **Reports** are authenticated with the client's token (`Authorization: Bearer ...`), must
//!   name a path of the client's region in the last published catalog, and are turned into a
//!   quality in 0..=1 fed to the score book on the next tick: a path that worked credits every
//!   component on it; a path that failed is charged to its client-facing components (front,
//!   overlay, ingress), since those are what a censor sees and blocks. A report names the
//!   transport the client carried the path on (`T0`..`T3`, see [`REPORT_TRANSPORTS`]); a failure
//!   on T1, T2 or T3 while the same client reports the same path working on another transport
//!   is a sign that transport is blocked, not that the ingress is dead, so the ingress is not
//!   charged for it (see [`apply_reports`]).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use blake2::Digest as _;
use chrono::{DateTime, Utc};
use damm_catalog::{
    Backbone, Catalog, ClientConfig, GatewayConfig, GatewayPeer, GatewayRole, KeyPair, PrivateKey,
    Role, SignedGatewayConfig, WgKey,
};
use damm_fleet::{Policy, ScoreBook, Status};
use damm_provider::{IdempotencyKey, NodeRole, Region};
use serde::{Deserialize, Serialize};

use crate::publish::{DEFAULT_WG_PORT, Keys};
use crate::state::State;

/// UDP port of the backbone: an egress listens on it, an ingress's backbone interface too
/// (or the next one when its client-facing port is this one).
pub const BACKBONE_PORT: u16 = 51821;

/// The `schema` of an enrollment bundle.
pub const ENROLLMENT_SCHEMA_V1: &str = "damm-enrollment/1";

/// Largest `POST /v1/reports` body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// Reports waiting for the next tick at most; more are refused (the client retries later).
pub const MAX_PENDING_REPORTS: usize = 10_000;

/// An enrolled client, as state keeps it: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientRecord {
    /// The client's id (`client-` and 10 hex digits).
    pub id: String,
    /// The region whose ingresses carry it.
    pub region: Region,
    /// Its WireGuard public key.
    pub public_key: WgKey,
    /// Its tunnel address (a `/32` on every ingress of the region).
    pub address: Ipv4Addr,
    /// BLAKE2b-256 of its report token, hex.
    pub token_hash: String,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
}

/// A report token: shown once at enrollment, then only its hash exists.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportToken(String);

impl ReportToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        ReportToken(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token itself, for the enrollment bundle and the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportToken([redacted])")
    }
}

/// The hash state keeps of a report token: BLAKE2b-256 with a domain prefix, hex.
pub fn token_hash(token: &str) -> String {
    let mut h = blake2::Blake2b512::new();
    h.update(b"damm-report-token/1\0");
    h.update(token.as_bytes());
    h.finalize()[..32]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What enrollment hands out: the record state keeps, and the secrets it does not.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// What state now holds.
    pub record: ClientRecord,
    /// The client's WireGuard private key (Debug prints `[redacted]`).
    pub private_key: PrivateKey,
    /// The client's report token (Debug prints `[redacted]`).
    pub token: ReportToken,
}

fn pool_hosts((net, len): (Ipv4Addr, u8)) -> std::ops::Range<u32> {
    let first = u32::from(net);
    let size = 1u32 << (32 - u32::from(len));
    // Network and broadcast addresses are never handed out.
    first + 1..first + size - 1
}

/// Enrolls a client in `region`: a fresh key pair, the lowest free address of the client pool
/// (its first host is the ingresses' own), a token. Only the record is stored in `state`.
pub fn enroll(
    state: &mut State,
    policy: &Policy,
    region: &Region,
    now: DateTime<Utc>,
) -> anyhow::Result<Enrolled> {
    if !policy.regions.contains_key(region) {
        bail!(
            "region `{region}` is not in the policy (allowed: {})",
            policy
                .regions
                .keys()
                .map(Region::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let used: BTreeSet<Ipv4Addr> = state.clients.values().map(|c| c.address).collect();
    let mut hosts = pool_hosts(policy.clients.pool_net());
    hosts.next(); // The gateways' address.
    let address = hosts
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
        .with_context(|| {
            format!(
                "the client pool `{}` is full ({} clients): widen [clients] pool",
                policy.clients.pool,
                used.len()
            )
        })?;
    let id = loop {
        let mut bytes = [0u8; 5];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        let id = format!(
            "client-{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        if !state.clients.contains_key(&id) {
            break id;
        }
    };
    let keys = KeyPair::generate();
    let token = ReportToken::generate();
    let record = ClientRecord {
        id: id.clone(),
        region: region.clone(),
        public_key: keys.public_key(),
        address,
        token_hash: token_hash(token.expose()),
        enrolled_at: now,
    };
    state.clients.insert(id, record.clone());
    Ok(Enrolled {
        record,
        private_key: keys.private_key().clone(),
        token,
    })
}

/// Removes a client; the next gateway configs drop its peer.
pub fn unenroll(state: &mut State, id: &str) -> anyhow::Result<ClientRecord> {
    state
        .clients
        .remove(id)
        .with_context(|| format!("no enrolled client `{id}`"))
}

/// The enrollment bundle (`damm enroll --out FILE`, read by `damm client --enrollment`).
/// Holds the private key and the token: written mode 0600, never logged.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentFile {
    /// Always [`ENROLLMENT_SCHEMA_V1`].
    pub schema: String,
    /// The fleet.
    pub fleet: String,
    /// The client's id.
    pub client: String,
    /// Its region.
    pub region: String,
    /// Its tunnel address, `a.b.c.d/32`.
    pub address: String,
    /// Its WireGuard private key, base64.
    pub private_key: String,
    /// Its report token.
    pub token: String,
    /// The gateways' keepalive, seconds (the client agent uses the same).
    pub keepalive_s: u16,
    /// The best path at enrollment.
    pub path_id: String,
    /// A `wg-quick` configuration through that path.
    pub wg_quick: String,
}

impl fmt::Debug for EnrollmentFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentFile")
            .field("client", &self.client)
            .field("region", &self.region)
            .field("address", &self.address)
            .field("private_key", &"[redacted]")
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl EnrollmentFile {
    /// The bundle for `enrolled`, with a `wg-quick` configuration through the best path of
    /// its region in `catalog`.
    pub fn new(enrolled: &Enrolled, policy: &Policy, catalog: &Catalog) -> anyhow::Result<Self> {
        let region = enrolled.record.region.as_str();
        // A stock wg-quick speaks WireGuard over UDP only: a bare (T0) path.
        let best = damm_catalog::pick(catalog, region, &Default::default())
            .into_iter()
            .find(|p| {
                p.transports
                    .contains(&damm_catalog::Transport::WireguardUdp)
            })
            .with_context(|| {
                format!(
                    "the catalog (version {}) has no WireGuard/UDP path for region `{region}` yet",
                    catalog.version
                )
            })?;
        let address = format!("{}/32", enrolled.record.address);
        let client = ClientConfig {
            private_key: enrolled.private_key.clone(),
            address: address.clone(),
            dns: None,
        };
        let keepalive_s = policy.clients.keepalive_s();
        let mut wg_quick =
            damm_catalog::render_wg_quick(&client, best, &["0.0.0.0/0"], Some(keepalive_s))
                .with_context(|| format!("rendering the wg-quick config for {}", best.path_id))?;
        wg_quick.insert_str(
            0,
            &format!(
                "# DAMM client {} in region {region}; `damm client` fails over without re-enrollment.\n",
                enrolled.record.id
            ),
        );
        Ok(EnrollmentFile {
            schema: ENROLLMENT_SCHEMA_V1.to_owned(),
            fleet: catalog.fleet.clone(),
            client: enrolled.record.id.clone(),
            region: region.to_owned(),
            address,
            private_key: enrolled.private_key.expose_base64(),
            token: enrolled.token.expose().to_owned(),
            keepalive_s,
            path_id: best.path_id.clone(),
            wg_quick,
        })
    }

    /// Parses a bundle; errors name the field.
    pub fn from_json(bytes: &[u8]) -> anyhow::Result<Self> {
        let file: EnrollmentFile =
            serde_json::from_slice(bytes).context("not a DAMM enrollment bundle")?;
        if file.schema != ENROLLMENT_SCHEMA_V1 {
            bail!(
                "schema: `{}` is not `{ENROLLMENT_SCHEMA_V1}`",
                file.schema.escape_default()
            );
        }
        file.private_key()?;
        Ok(file)
    }

    /// The private key.
    pub fn private_key(&self) -> anyhow::Result<PrivateKey> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.private_key.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .context("private_key: not 32 bytes of base64")?;
        Ok(PrivateKey::from_bytes(bytes))
    }

    /// What the client agent needs.
    pub fn enrollment(&self) -> anyhow::Result<damm_agent::client::Enrollment> {
        Ok(damm_agent::client::Enrollment {
            client: self.client.clone(),
            region: self.region.clone(),
            private_key: self.private_key()?,
            address: self.address.clone(),
        })
    }
}

/// Gives every node in state a backbone address (the lowest free one of
/// `[clients] backbone_pool`) and forgets those of nodes that are gone. Called every tick.
pub fn assign_backbone(state: &mut State, policy: &Policy) {
    let nodes = &state.nodes;
    state.backbone.retain(|k, _| nodes.contains_key(k));
    let mut used: BTreeSet<Ipv4Addr> = state.backbone.values().copied().collect();
    let mut free = pool_hosts(policy.clients.backbone_net())
        .map(Ipv4Addr::from)
        .filter(|a| !used.contains(a))
        .collect::<Vec<_>>()
        .into_iter();
    for key in state.nodes.keys() {
        if state.backbone.contains_key(key) {
            continue;
        }
        match free.next() {
            Some(a) => {
                used.insert(a);
                state.backbone.insert(key.clone(), a);
            }
            None => {
                tracing::warn!(
                    pool = %policy.clients.backbone_pool,
                    "the backbone pool is full: widen [clients] backbone_pool"
                );
                break;
            }
        }
    }
}

/// Why no gateway config can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigRefusal {
    /// No ingress or egress node with that id is in state.
    UnknownGateway(String),
    /// The gateway exists but its config cannot be built yet (no egress, no address, no
    /// backbone address, no signing key).
    NotReady(String),
}

impl fmt::Display for ConfigRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigRefusal::UnknownGateway(id) => write!(f, "no gateway `{id}` in state"),
            ConfigRefusal::NotReady(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConfigRefusal {}

fn with_len(ip: Ipv4Addr, (_, len): (Ipv4Addr, u8)) -> String {
    format!("{ip}/{len}")
}

/// The egress behind `ingress`: the one its best path in `catalog` uses, else the region's
/// first live egress in state.
fn egress_for(
    state: &State,
    catalog: Option<&Catalog>,
    ingress: &IdempotencyKey,
    region: &Region,
) -> Option<IdempotencyKey> {
    let from_catalog = catalog
        .and_then(|c| c.region(region.as_str()))
        .into_iter()
        .flatten()
        .filter(|p| {
            p.composition
                .iter()
                .any(|c| c.role == Role::Ingress && c.component == ingress.as_str())
        })
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .and_then(|p| p.composition.iter().find(|c| c.role == Role::Egress))
        .and_then(|c| IdempotencyKey::new(c.component.as_str()).ok())
        .filter(|k| {
            k != ingress
                && state
                    .nodes
                    .get(k)
                    .is_some_and(|n| n.role == NodeRole::Egress)
        });
    from_catalog.or_else(|| {
        state
            .nodes
            .iter()
            .find(|(_, n)| {
                n.role == NodeRole::Egress && &n.region == region && n.status == Status::Active
            })
            .map(|(k, _)| k.clone())
    })
}

/// The desired configuration of gateway `id` (a node key), derived from state (see the
/// module documentation) and signed with the catalog key. `catalog` is the last published
/// one (it picks the egress).
pub fn signed_gateway_config(
    state: &State,
    policy: &Policy,
    keys: &Keys,
    catalog: Option<&Catalog>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<SignedGatewayConfig, ConfigRefusal> {
    let unknown = || ConfigRefusal::UnknownGateway(id.chars().take(64).collect());
    let key = IdempotencyKey::new(id).map_err(|_| unknown())?;
    let node = state.nodes.get(&key).ok_or_else(unknown)?;
    let not_ready = |why: String| ConfigRefusal::NotReady(format!("gateway `{key}`: {why}"));
    let backbone_net = policy.clients.backbone_net();
    let own_backbone = *state.backbone.get(&key).ok_or_else(|| {
        not_ready("no backbone address yet (one is given at the next tick)".into())
    })?;
    let keepalive = policy.clients.keepalive_s();
    let mut config = GatewayConfig {
        schema: damm_catalog::GATEWAY_SCHEMA_V1.to_owned(),
        fleet: state.fleet.to_string(),
        gateway: key.to_string(),
        version: state.serial.max(1),
        issued_at: now,
        expires_at: now + policy.paths.catalog_ttl.chrono(),
        role: GatewayRole::Egress,
        listen_port: BACKBONE_PORT,
        address: with_len(own_backbone, backbone_net),
        peers: Vec::new(),
        backbone: None,
        transports: Default::default(),
    };
    match node.role {
        NodeRole::Egress => {
            // Every ingress of the region may use it: rotating the egress behind an ingress
            // then needs a new ingress config only.
            for (k, n) in &state.nodes {
                if n.role != NodeRole::Ingress || n.region != node.region {
                    continue;
                }
                let Some(bb) = state.backbone.get(k) else {
                    continue;
                };
                config.peers.push(GatewayPeer {
                    name: k.to_string(),
                    public_key: keys.gateway(k).public_key(),
                    allowed_ips: vec![format!("{bb}/32")],
                    endpoint: None,
                    persistent_keepalive: None,
                });
            }
        }
        NodeRole::Ingress => {
            let egress = egress_for(state, catalog, &key, &node.region)
                .ok_or_else(|| not_ready(format!("no live egress in region {}", node.region)))?;
            let egress_node = &state.nodes[&egress];
            let egress_ip = egress_node
                .addresses
                .iter()
                .find(|a| a.is_ipv4())
                .or_else(|| egress_node.addresses.first())
                .ok_or_else(|| not_ready(format!("egress `{egress}` has no address yet")))?;
            // The egress learns this ingress from its own config, which needs its address.
            if !state.backbone.contains_key(&egress) {
                return Err(not_ready(format!(
                    "egress `{egress}` has no backbone address yet"
                )));
            }
            let listen_port = node.wireguard_port.unwrap_or(DEFAULT_WG_PORT);
            let endpoint = match egress_ip {
                std::net::IpAddr::V4(a) => format!("{a}:{BACKBONE_PORT}"),
                std::net::IpAddr::V6(a) => format!("[{a}]:{BACKBONE_PORT}"),
            };
            let pool = policy.clients.pool_net();
            let gateway_address = Ipv4Addr::from(pool_hosts(pool).start);
            config.role = GatewayRole::Ingress;
            config.listen_port = listen_port;
            config.address = with_len(gateway_address, pool);
            config.peers = state
                .clients
                .values()
                .filter(|c| c.region == node.region)
                .map(|c| GatewayPeer {
                    name: c.id.clone(),
                    public_key: c.public_key,
                    allowed_ips: vec![format!("{}/32", c.address)],
                    endpoint: None,
                    persistent_keepalive: Some(keepalive),
                })
                .collect();
            config.transports = gateway_transports(state, policy, keys, &key, listen_port);
            config.backbone = Some(Backbone {
                listen_port: if listen_port == BACKBONE_PORT {
                    BACKBONE_PORT + 1
                } else {
                    BACKBONE_PORT
                },
                address: with_len(own_backbone, backbone_net),
                peer: GatewayPeer {
                    name: egress.to_string(),
                    public_key: keys.gateway(&egress).public_key(),
                    allowed_ips: vec!["0.0.0.0/0".to_owned()],
                    endpoint: Some(endpoint),
                    persistent_keepalive: Some(keepalive),
                },
            });
        }
    }
    config
        .validate()
        .map_err(|e| not_ready(format!("the derived config is invalid: {e}")))?;
    damm_catalog::sign_gateway_config(&config, &keys.signing)
        .map_err(|e| ConfigRefusal::NotReady(format!("signing the gateway config: {e}")))
}

/// The listeners ingress `key` runs beside WireGuard on `wireguard_port`: T1 where its region
/// offers it (the port and key its catalog offers name), T3 for every front that leads to
/// it (each front's secret path, which moves with the front), T2 where its region offers it
/// (its own secret path; the certificate is the gateway's).
fn gateway_transports(
    state: &State,
    policy: &Policy,
    keys: &Keys,
    key: &IdempotencyKey,
    wireguard_port: u16,
) -> damm_catalog::GatewayTransports {
    let region = state.nodes.get(key).map(|n| &n.region);
    let t1_port = policy.transports.t1_port;
    let t1 = (region.is_some_and(|r| policy.t1_in(r)) && t1_port != wireguard_port).then(|| {
        damm_catalog::GatewayT1 {
            port: t1_port,
            key: damm_catalog::T1Key::from_bytes(keys.gateway_t1(key)),
        }
    });
    let paths: Vec<String> = state
        .addresses
        .iter()
        .filter(|(_, a)| a.kind == damm_fleet::AddressKind::Front && a.node.as_ref() == Some(key))
        .map(|(front, _)| keys.front_path(front))
        .collect();
    let t3 = (!paths.is_empty()).then_some(damm_catalog::GatewayT3 {
        port: policy.transports.t3_port,
        paths,
    });
    let t2 = (region.is_some_and(|r| policy.t2_in(r)) && policy.transports.t2_domain.is_some())
        .then(|| damm_catalog::GatewayT2 {
            port: policy.transports.t2_port,
            paths: vec![keys.t2_path(key)],
        });
    damm_catalog::GatewayTransports { t1, t2, t3 }
}

/// The wire format of `POST /v1/reports` (the client agent's report).
pub type Report = damm_agent::client::Report;

/// The transports a report may name in its `transport` field: `T0` bare WireGuard/UDP, `T1`
/// obfuscated UDP, `T2` a direct TLS front, `T3` WebSocket over TLS through a CDN front.
pub const REPORT_TRANSPORTS: [&str; 4] = ["T0", "T1", "T2", "T3"];

/// Every transport an accepted report can carry: [`REPORT_TRANSPORTS`], and `overlay`, which
/// a report never names but an overlay (`ov:`) path without a `transport` is carried on.
pub const ACCEPTED_TRANSPORTS: [&str; 5] = ["T0", "T1", "T2", "T3", "overlay"];

/// The transport of a report: the one it names, which must be one of [`REPORT_TRANSPORTS`],
/// or, in the reports of older clients that name none, the one the path's id implies (`T3`
/// for a fronted `t3:` path, `overlay` for an `ov:` path, `T0` otherwise).
fn report_transport(named: Option<&str>, path_id: &str) -> Result<&'static str, ReportRefusal> {
    match named {
        Some(named) => REPORT_TRANSPORTS
            .into_iter()
            .find(|t| *t == named)
            .ok_or_else(|| {
                let shown: String = named.chars().take(32).collect();
                ReportRefusal::Malformed(format!(
                    "transport: `{}` is not one of {}",
                    shown.escape_default(),
                    REPORT_TRANSPORTS.join(", ")
                ))
            }),
        None if path_id.starts_with("t3:") => Ok("T3"),
        None if path_id.starts_with("ov:") => Ok("overlay"),
        None => Ok("T0"),
    }
}

/// A report that passed every check, waiting for the next tick.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedReport {
    /// The client.
    pub client: String,
    /// The path.
    pub path_id: String,
    /// The transport the client carried the path on: one of [`ACCEPTED_TRANSPORTS`] (the
    /// report's own `transport`, or the one its path implies when it names none).
    pub transport: &'static str,
    /// The path's components, each with whether it faces the client (front, overlay,
    /// ingress).
    pub components: Vec<(String, bool)>,
    /// The path's ingress, one of `components`.
    pub ingress: Option<String>,
    /// The consecutive failures it reports (0: none, though the path may still lack a handshake).
    pub failures: u32,
    /// The quality it reports, 0..=1 (see [`quality`]).
    pub quality: f64,
}

impl AcceptedReport {
    /// `ok` when the report names no failure, else `failed` (the `outcome` label of
    /// `damm_client_reports_total`).
    pub fn outcome(&self) -> &'static str {
        if self.failures == 0 { "ok" } else { "failed" }
    }
}

/// Why a report was refused; [`ReportRefusal::status`] is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRefusal {
    /// No or a malformed `Authorization` header, an unknown client, a wrong token.
    Unauthenticated(&'static str),
    /// The body is not a report.
    Malformed(String),
    /// The path is not in the client's region of the last published catalog.
    UnknownPath(String),
    /// Nothing published yet, or too many reports waiting.
    Unavailable(&'static str),
}

impl ReportRefusal {
    /// 401, 400, 422 or 503.
    pub fn status(&self) -> u16 {
        match self {
            ReportRefusal::Unauthenticated(_) => 401,
            ReportRefusal::Malformed(_) => 400,
            ReportRefusal::UnknownPath(_) => 422,
            ReportRefusal::Unavailable(_) => 503,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReportRefusal::Unauthenticated(_) => "unauthenticated",
            ReportRefusal::Malformed(_) => "malformed",
            ReportRefusal::UnknownPath(_) => "unknown_path",
            ReportRefusal::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for ReportRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportRefusal::Unauthenticated(why) => write!(f, "unauthenticated: {why}"),
            ReportRefusal::Malformed(why) => write!(f, "not a report: {why}"),
            ReportRefusal::UnknownPath(p) => write!(f, "unknown path `{p}` for this client"),
            ReportRefusal::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// What a report says of its path, 0..=1: a failed path 0; a path that never completed a
/// handshake 0.25; a live one 1, less for a slow handshake refresh (older than WireGuard's
/// 2-minute rekey plus slack) or a round trip above `rtt_reference_ms`.
pub fn quality(report: &Report, rtt_reference_ms: f64) -> f64 {
    if report.failures > 0 {
        return 0.0;
    }
    let Some(age) = report.handshake_age_s else {
        return 0.25;
    };
    let mut q: f64 = if age <= 180 { 1.0 } else { 0.5 };
    if let Some(rtt) = report.rtt_ms {
        q *= (2.0 * rtt_reference_ms / (rtt_reference_ms + rtt)).min(1.0);
    }
    q.clamp(0.0, 1.0)
}

/// Checks one `POST /v1/reports`: the bearer token against the hash of the client the body
/// names, the body's shape, and the path against the client's region in `catalog`.
pub fn check_report(
    state: &State,
    catalog: Option<&Catalog>,
    rtt_reference_ms: f64,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<AcceptedReport, ReportRefusal> {
    let token = authorization
        .ok_or(ReportRefusal::Unauthenticated("no Authorization header"))?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ReportRefusal::Unauthenticated(
            "the Authorization header is not `Bearer TOKEN`",
        ))?;
    if body.len() > MAX_REPORT_BYTES {
        return Err(ReportRefusal::Malformed(format!(
            "body over {MAX_REPORT_BYTES} bytes"
        )));
    }
    let report: Report =
        serde_json::from_slice(body).map_err(|e| ReportRefusal::Malformed(e.to_string()))?;
    if report.rtt_ms.is_some_and(|r| !(r.is_finite() && r >= 0.0)) {
        return Err(ReportRefusal::Malformed(
            "rtt_ms: must be a non-negative number".into(),
        ));
    }
    let transport = report_transport(report.transport.as_deref(), &report.path_id)?;
    // An unknown client and a wrong token look the same from outside.
    let client = state
        .clients
        .get(&report.client)
        .filter(|c| same(&c.token_hash, &token_hash(token)))
        .ok_or(ReportRefusal::Unauthenticated(
            "unknown client or wrong token",
        ))?;
    let catalog = catalog.ok_or(ReportRefusal::Unavailable("no catalog published yet"))?;
    let listed = catalog
        .region(client.region.as_str())
        .unwrap_or_default()
        .iter()
        .find(|p| p.path_id == report.path_id);
    let (components, ingress) = match listed {
        Some(path) => (
            path.composition
                .iter()
                .map(|c| (c.component.clone(), c.role != Role::Egress))
                .collect(),
            path.composition
                .iter()
                .find(|c| c.role == Role::Ingress)
                .map(|c| c.component.clone()),
        ),
        // A client reports on the path it used, which an older catalog may have listed (the
        // catalog changes every tick its paths change): scored on the nodes state still holds.
        None => {
            let components =
                unlisted_path(state, &client.region, &report.path_id).ok_or_else(|| {
                    ReportRefusal::UnknownPath(report.path_id.chars().take(128).collect())
                })?;
            // The ingress comes first there.
            let ingress = components.first().map(|(c, _)| c.clone());
            (components, ingress)
        }
    };
    Ok(AcceptedReport {
        client: client.id.clone(),
        path_id: report.path_id.clone(),
        transport,
        components,
        ingress,
        failures: report.failures,
        quality: quality(&report, rtt_reference_ms),
    })
}

/// The components of a path the current catalog does not list (`t0:INGRESS>EGRESS`, or
/// `t3:`/`ov:` with an entry first), when its ingress and egress are still nodes of `region`
/// in state: `(component, client-facing)`. The entry of a fronted or overlay path is left out,
/// since state does not hold entries; unknown nodes make the whole path unknown, so a report
/// can never add a score for a component that does not exist.
fn unlisted_path(state: &State, region: &Region, path_id: &str) -> Option<Vec<(String, bool)>> {
    let (transport, rest) = path_id.split_once(':')?;
    let parts: Vec<&str> = rest.split('>').collect();
    let (ingress, egress) = match (transport, parts.as_slice()) {
        ("t0", [ingress, egress]) | ("t3" | "ov", [_, ingress, egress]) => (*ingress, *egress),
        _ => return None,
    };
    let node_of = |key: &str, role: NodeRole| {
        let key = IdempotencyKey::new(key).ok()?;
        let node = state.nodes.get(&key)?;
        (&node.region == region && node.role == role).then(|| key.as_str().to_owned())
    };
    let ingress = node_of(ingress, NodeRole::Ingress)?;
    // A region without a separate egress uses the ingress as its own egress.
    let egress = if egress == ingress {
        ingress.clone()
    } else {
        node_of(egress, NodeRole::Egress)?
    };
    Some(if egress == ingress {
        vec![(ingress, true)]
    } else {
        vec![(ingress, true), (egress, false)]
    })
}

/// Feeds accepted reports to the score book at `now`.
///
/// A report that works (quality 0.5 or more) credits every component of its path with its
/// quality. A report that fails (a failure, or no handshake ever) is charged to the path's
/// client-facing components only (front, overlay, ingress): the egress is not at fault.
///
/// One exception: a failure on `T1`, `T2` or `T3` is not charged to the path's ingress when
/// `reports` (the reports of one tick) also holds a working report of the same client on the
/// same `path_id` over another transport. The ingress answered that client on the other
/// transport, so the failure points at that transport being blocked on the client's network,
/// not at a dead ingress. The path's other client-facing components (a front) are still
/// charged. A `T0` (or overlay) failure is always charged, and a working report on another
/// client or another path proves nothing here.
pub fn apply_reports(
    scores: &mut ScoreBook,
    policy: &Policy,
    reports: &[AcceptedReport],
    now: DateTime<Utc>,
) {
    let works = |r: &AcceptedReport| r.quality >= 0.5;
    let working: std::collections::HashSet<(&str, &str, &str)> = reports
        .iter()
        .filter(|r| works(r))
        .map(|r| (r.client.as_str(), r.path_id.as_str(), r.transport))
        .collect();
    for report in reports {
        let failed = !works(report);
        let spare_ingress = failed
            && matches!(report.transport, "T1" | "T2" | "T3")
            && ACCEPTED_TRANSPORTS.into_iter().any(|t| {
                t != report.transport
                    && working.contains(&(report.client.as_str(), report.path_id.as_str(), t))
            });
        for (component, client_facing) in &report.components {
            if failed && !client_facing {
                continue;
            }
            if spare_ingress && report.ingress.as_deref() == Some(component.as_str()) {
                continue;
            }
            scores.client_report(component, now, report.quality, &policy.scoring);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_skip_network_and_broadcast() {
        let hosts = pool_hosts(("10.77.0.0".parse().unwrap(), 30));
        let all: Vec<Ipv4Addr> = hosts.map(Ipv4Addr::from).collect();
        assert_eq!(
            all,
            vec![
                "10.77.0.1".parse::<Ipv4Addr>().unwrap(),
                "10.77.0.2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn token_hashes_differ_and_compare() {
        let a = ReportToken::generate();
        let b = ReportToken::generate();
        assert_ne!(a, b);
        assert_eq!(token_hash(a.expose()).len(), 64);
        assert!(same(&token_hash(a.expose()), &token_hash(a.expose())));
        assert!(!same(&token_hash(a.expose()), &token_hash(b.expose())));
        assert_eq!(format!("{a:?}"), "ReportToken([redacted])");
    }

    #[test]
    fn a_path_an_older_catalog_listed_is_scored_on_the_nodes_state_holds() {
        let mut state = State::new(damm_provider::FleetId::new("f").unwrap());
        let now = Utc::now();
        for (key, region, role) in [
            ("in1", "eu", NodeRole::Ingress),
            ("eg1", "eu", NodeRole::Egress),
            ("in9", "us", NodeRole::Ingress),
        ] {
            state.nodes.insert(
                IdempotencyKey::new(key).unwrap(),
                crate::state::NodeRecord {
                    provider: "p".into(),
                    id: key.into(),
                    region: Region::new(region).unwrap(),
                    role,
                    status: Status::Active,
                    status_since: now,
                    state: damm_provider::NodeState::Running,
                    created_at: now,
                    addresses: vec![],
                    wireguard_port: None,
                    last_seen: now,
                    ready_at: None,
                },
            );
        }
        let eu = Region::new("eu").unwrap();
        let both = Some(vec![("in1".to_owned(), true), ("eg1".to_owned(), false)]);
        assert_eq!(unlisted_path(&state, &eu, "t0:in1>eg1"), both);
        assert_eq!(unlisted_path(&state, &eu, "t3:front-1>in1>eg1"), both);
        assert_eq!(
            unlisted_path(&state, &eu, "t0:in1>in1"),
            Some(vec![("in1".to_owned(), true)])
        );
        // Unknown nodes, another region's node, roles swapped, malformed ids: unknown.
        for bad in [
            "t0:nowhere>nothing",
            "t0:in9>eg1",
            "t0:eg1>in1",
            "t0:in1",
            "t3:in1>eg1",
            "x9:in1>eg1",
            "in1>eg1",
            "",
        ] {
            assert_eq!(unlisted_path(&state, &eu, bad), None, "{bad}");
        }
    }

    #[test]
    fn quality_of_reports() {
        let mut r = Report {
            client: "c".into(),
            path_id: "p".into(),
            transport: None,
            handshake_age_s: Some(5),
            rtt_ms: None,
            failures: 0,
            at: Utc::now(),
        };
        assert_eq!(quality(&r, 80.0), 1.0);
        r.rtt_ms = Some(240.0);
        assert!((quality(&r, 80.0) - 0.5).abs() < 1e-9);
        r.handshake_age_s = None;
        assert_eq!(quality(&r, 80.0), 0.25);
        r.failures = 2;
        assert_eq!(quality(&r, 80.0), 0.0);
    }

    #[test]
    fn a_report_names_a_known_transport_or_gets_its_paths() {
        for (named, path, expected) in [
            (Some("T1"), "t0:in1>eg1", "T1"),
            (Some("T2"), "t0:in1>eg1", "T2"),
            (Some("T3"), "t0:in1>eg1", "T3"),
            (Some("T0"), "t3:front-1>in1>eg1", "T0"),
            (None, "t0:in1>eg1", "T0"),
            (None, "t3:front-1>in1>eg1", "T3"),
            (None, "ov:tail-1>in1>eg1", "overlay"),
            (None, "other", "T0"),
        ] {
            assert_eq!(
                report_transport(named, path),
                Ok(expected),
                "{named:?} {path}"
            );
        }
        for bad in ["T9", "t1", "", "overlay", " T1"] {
            let Err(ReportRefusal::Malformed(why)) = report_transport(Some(bad), "t0:in1>eg1")
            else {
                panic!("{bad:?} accepted");
            };
            assert!(why.starts_with("transport: `"), "{why}");
        }
        let long = format!("T{}\n\"", "9".repeat(100));
        let Err(ReportRefusal::Malformed(why)) = report_transport(Some(&long), "t0:in1>eg1") else {
            panic!("accepted");
        };
        assert_eq!(
            why,
            format!(
                "transport: `T{}` is not one of T0, T1, T2, T3",
                "9".repeat(31)
            )
        );
        let Err(ReportRefusal::Malformed(why)) = report_transport(Some("T\n\"x"), "t0:a>b") else {
            panic!("accepted");
        };
        assert!(why.starts_with("transport: `T\\n\\\"x`"), "{why}");
    }

    fn scoring_policy() -> Policy {
        Policy::parse(
            "[fleet]\nid = \"t\"\ntick = \"60s\"\n[limits]\ncreates_per_tick = 1\n\
             retires_per_tick = 1\nmonthly_spend_cap = 10.0\n[providers.a]\nmax_nodes = 4\n\
             creates_per_tick = 1\nregions = [\"eu\"]\nprices = { small = 5.0 }\n\
             [regions.eu]\ningress = { min = 1, max = 2 }\negress = { min = 0, max = 1 }\n\
             min_providers = 1\nrotate_ingress_after = \"6h\"\nrotate_egress_after = \"7d\"\n",
            "test",
        )
        .unwrap()
    }

    /// A report of `client` on a fronted path `front-1 > in1 > eg1`, carried on `transport`.
    fn accepted(client: &str, transport: &'static str, failures: u32) -> AcceptedReport {
        AcceptedReport {
            client: client.into(),
            path_id: "t0:in1>eg1".into(),
            transport,
            components: vec![
                ("front-1".into(), true),
                ("in1".into(), true),
                ("eg1".into(), false),
            ],
            ingress: Some("in1".into()),
            failures,
            quality: if failures > 0 { 0.0 } else { 1.0 },
        }
    }

    /// The client quality of each of `front-1`, `in1`, `eg1` after scoring `reports`.
    fn charged(reports: &[AcceptedReport]) -> [Option<f64>; 3] {
        let mut scores = ScoreBook::default();
        apply_reports(&mut scores, &scoring_policy(), reports, Utc::now());
        ["front-1", "in1", "eg1"].map(|c| scores.components.get(c).and_then(|r| r.client.mean()))
    }

    #[test]
    fn a_blocked_transport_is_not_charged_to_an_ingress_the_client_reaches_otherwise() {
        // T1 failed, T0 works for the same client on the same path: the ingress is only
        // credited; the front (client-facing) is still charged; the egress is not.
        for blocked in ["T1", "T2", "T3"] {
            assert_eq!(
                charged(&[accepted("c", blocked, 3), accepted("c", "T0", 0)]),
                [Some(0.5), Some(1.0), Some(1.0)],
                "{blocked}"
            );
        }
        // Any other working transport will do, in either order.
        assert_eq!(
            charged(&[accepted("c", "T3", 0), accepted("c", "T1", 1)]),
            [Some(0.5), Some(1.0), Some(1.0)]
        );
        // Alone, the failure is charged as before.
        assert_eq!(
            charged(&[accepted("c", "T1", 1)]),
            [Some(0.0), Some(0.0), None]
        );
        // A T0 failure is always charged, even when T1 works.
        assert_eq!(
            charged(&[accepted("c", "T0", 1), accepted("c", "T1", 0)]),
            [Some(0.5), Some(0.5), Some(1.0)]
        );
        // The same transport working (a flap), another client's success, or a success on
        // another path prove nothing.
        let mut elsewhere = accepted("c", "T0", 0);
        elsewhere.path_id = "t0:in1>eg2".into();
        for other in [
            accepted("c", "T1", 0),
            accepted("someone-else", "T0", 0),
            elsewhere,
        ] {
            assert_eq!(
                charged(&[accepted("c", "T1", 1), other.clone()]),
                [Some(0.5), Some(0.5), Some(1.0)],
                "{other:?}"
            );
        }
        // A path that never completed a handshake on T0 does not count as working.
        let mut silent = accepted("c", "T0", 0);
        silent.quality = 0.25;
        assert_eq!(
            charged(&[accepted("c", "T1", 1), silent]),
            [Some(0.125), Some(0.125), None]
        );
    }
}
