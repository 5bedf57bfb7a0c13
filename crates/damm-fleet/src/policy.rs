//! The operator's policy: what the fleet should look like and what the planner may never do.
//!
//! Loaded from TOML once and validated whole; an error names the file, the line and column,
//! and the field (`policy/default.toml:14:7: regions.eu-central.ingress.min: ...`). The
//! reference is `docs/policy.md`; `policy/default.toml` is the embedded default.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use damm_provider::{FleetId, NodeRole, Region};
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::duration::Span;

/// Whether the orchestrator mutates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Compute and show plans; never call a mutating adapter method.
    Plan,
    /// Apply plans through the adapters.
    Apply,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Fleet identity, tick and mode.
    pub fleet: FleetSection,
    /// Global per-tick and spend limits.
    pub limits: Limits,
    /// Scoring half-life, weights and the circuit breaker.
    #[serde(default)]
    pub scoring: Scoring,
    /// Timers of a node's life.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// The catalog's paths: how many per region and how each transport weighs.
    #[serde(default)]
    pub paths: Paths,
    /// Enrolled clients: their tunnel address pool and the gateways' keepalive.
    #[serde(default)]
    pub clients: Clients,
    /// The provider allowlist: only providers named here are ever used.
    pub providers: BTreeMap<String, ProviderPolicy>,
    /// The region allowlist and each region's targets.
    pub regions: BTreeMap<Region, RegionPolicy>,
    /// CDN fronts: the `cdn_front` providers ingresses may be fronted through.
    #[serde(default)]
    pub fronts: FrontsPolicy,
    /// Overlay networks: the `overlay` providers gateways may join.
    #[serde(default)]
    pub overlay: OverlayPolicy,
    /// Fleet-wide settings of the transports beyond bare WireGuard (T1). Regions opt in.
    #[serde(default)]
    pub transports: TransportsPolicy,
}

/// A DNS domain as T2 hostnames are built under: dot-separated labels of ASCII letters,
/// digits and `-` (not at a label's ends), at most 200 bytes (a label goes in front).
fn valid_domain(domain: &str) -> bool {
    domain.len() <= 200
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// WireGuard's own port, which a T1 listener on the same address must not take.
pub const WIREGUARD_PORT: u16 = 51820;

/// `[transports]`: where the gateways listen for the transports a region may offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportsPolicy {
    /// The UDP port of every gateway's T1 (obfuscated UDP) listener, beside WireGuard's.
    pub t1_port: u16,
    /// The TCP port of every fronted gateway's T3 listener: plain HTTP behind the CDN's TLS.
    /// 80 is where Cloudflare's "Flexible" mode connects to an origin.
    pub t3_port: u16,
    /// The TCP port of every T2 gateway's TLS listener: 443, where a website answers.
    pub t2_port: u16,
    /// The domain T2 hostnames are under (`<label>.<t2_domain>`): the gateways' certificate
    /// (a wildcard for it, installed on each gateway) must cover them. Needed where a region
    /// has `t2 = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t2_domain: Option<String>,
}

impl Default for TransportsPolicy {
    fn default() -> Self {
        // Not 443: UDP/443 is QUIC, which censors classify (and some throttle) on its own.
        TransportsPolicy {
            t1_port: 4443,
            t3_port: 80,
            t2_port: 443,
            t2_domain: None,
        }
    }
}

/// `[fronts]`: CDN-fronted hostnames in front of ingresses (T3 paths). Regions opt in with
/// `fronts = true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontsPolicy {
    /// The `cdn_front` providers, by policy name (unique among all providers).
    #[serde(default)]
    pub providers: BTreeMap<String, EntryProvider>,
    /// Front only regions marked `censored = true` (a CDN bills per byte: pay where it helps).
    #[serde(default)]
    pub only_censored: bool,
}

/// `[overlay]`: overlay memberships of gateways (overlay paths, for clients in that overlay).
/// Regions opt in with `overlay = true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayPolicy {
    /// The `overlay` providers, by policy name (unique among all providers).
    #[serde(default)]
    pub providers: BTreeMap<String, EntryProvider>,
}

/// A provider of entries (fronts or overlay memberships) and its caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryProvider {
    /// The adapter, when it differs from the policy name.
    #[serde(default)]
    pub adapter: Option<String>,
    /// At most this many entries on the provider, whole fleet.
    pub max: u32,
    /// At most this many entry changes (create, move, remove) on it per tick: its API's
    /// rate limit.
    #[serde(default = "default_provider_creates")]
    pub per_tick: u32,
}

impl EntryProvider {
    /// The adapter name (`adapter`, or the policy name).
    pub fn adapter<'a>(&'a self, name: &'a str) -> &'a str {
        self.adapter.as_deref().unwrap_or(name)
    }
}

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// Ownership label value on every resource DAMM creates.
    pub id: FleetId,
    /// How often the loop runs.
    #[serde(default = "default_tick")]
    pub tick: Span,
    /// `plan` or `apply`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
}

fn default_tick() -> Span {
    Span::secs(60)
}

fn default_mode() -> Mode {
    Mode::Plan
}

/// `[limits]`: hard caps no plan ever exceeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Node creates per tick, all providers together.
    pub creates_per_tick: u32,
    /// Node retires per tick, all providers together.
    pub retires_per_tick: u32,
    /// Monthly spend cap over the whole fleet, in `currency` (list prices from the
    /// providers' price tables).
    pub monthly_spend_cap: f64,
    /// Currency of the cap and of every price table.
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// `[scoring]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scoring {
    /// Half-life of every decayed signal.
    pub half_life: Span,
    /// A component with a decayed success at or above this is healthy.
    pub healthy_threshold: f64,
    /// A component whose client-reported quality falls below this is treated as blocked
    /// and rotated.
    pub blocked_below: f64,
    /// RTT that scores 0.5 on the RTT component (lower is better).
    pub rtt_reference_ms: f64,
    /// Weights of the signals in a component's score.
    pub weights: Weights,
    /// The per-provider circuit breaker.
    pub breaker: Breaker,
}

impl Default for Scoring {
    fn default() -> Self {
        Scoring {
            half_life: Span::secs(600),
            healthy_threshold: 0.5,
            blocked_below: 0.2,
            rtt_reference_ms: 80.0,
            weights: Weights::default(),
            breaker: Breaker::default(),
        }
    }
}

/// Weights of the score's signals; they need not sum to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Probe and handshake success.
    pub probe: f64,
    /// Round-trip time.
    pub rtt: f64,
    /// Throughput.
    pub throughput: f64,
    /// Quality reported by clients.
    pub client: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            probe: 0.5,
            rtt: 0.2,
            throughput: 0.1,
            client: 0.2,
        }
    }
}

/// `[scoring.breaker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Breaker {
    /// Consecutive failed ticks (API errors, or every probe of the provider failing)
    /// that open the breaker.
    pub failures: u32,
    /// How long an open breaker stays open before one trial tick.
    pub cooldown: Span,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: 2,
            cooldown: Span::secs(300),
        }
    }
}

/// `[lifecycle]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// A node not healthy this long after creation is replaced.
    pub boot_timeout: Span,
    /// How long a drained node keeps its sessions before it is retired.
    pub drain_grace: Span,
    /// Labelled resources that no journal entry explains are retired after this long.
    pub orphan_grace: Span,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            boot_timeout: Span::secs(600),
            drain_grace: Span::secs(120),
            orphan_grace: Span::secs(900),
        }
    }
}

/// `[paths]`: what the catalog publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Paths per region in the catalog.
    pub top_k: u32,
    /// Weight of bare WireGuard to an ingress address (T0): easy to block by address.
    pub t0: f64,
    /// Weight of a CDN-fronted hostname (T3): blocking it means blocking the CDN.
    pub t3: f64,
    /// Weight of an overlay address.
    pub overlay: f64,
    /// How long a published catalog stays valid.
    pub catalog_ttl: Span,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            top_k: 4,
            t0: 0.7,
            t3: 1.0,
            overlay: 0.85,
            catalog_ttl: Span::secs(3600),
        }
    }
}

/// `[clients]`: the data plane's addresses and liveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clients {
    /// IPv4 prefix clients' tunnel addresses come from (`10.77.0.0/16`). Its first host is
    /// every ingress's client-facing address; each enrolled client gets one `/32` of the rest.
    pub pool: String,
    /// IPv4 prefix of the gateways' backbone addresses (ingress → egress tunnels); one per
    /// gateway. Must not overlap `pool`.
    pub backbone_pool: String,
    /// Keepalive gateways send to their client peers, and clients to their gateway. Clients
    /// call a path dead after three intervals without a packet, so this bounds the outage.
    pub keepalive: Span,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            pool: "10.77.0.0/16".to_owned(),
            backbone_pool: "10.78.0.0/16".to_owned(),
            keepalive: Span::secs(1),
        }
    }
}

/// Parses an IPv4 `a.b.c.d/len` prefix with no host bits set, `len` 8..=30.
pub fn parse_ipv4_pool(text: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (ip, len) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not an IPv4 prefix (a.b.c.d/len)"))?;
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("`{len}` is not a prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(format!("prefix length {len} is outside 8..=30"));
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(ip) & !mask != 0 {
        return Err(format!(
            "`{text}` has host bits set (the network is {}/{len})",
            std::net::Ipv4Addr::from(u32::from(ip) & mask)
        ));
    }
    Ok((ip, len))
}

impl Clients {
    /// The client pool's network and prefix length (validated at load).
    pub fn pool_net(&self) -> (std::net::Ipv4Addr, u8) {
        parse_ipv4_pool(&self.pool).expect("validated at load")
    }

    /// The backbone pool's network and prefix length (validated at load).
    pub fn backbone_net(&self) -> (std::net::Ipv4Addr, u8) {
        parse_ipv4_pool(&self.backbone_pool).expect("validated at load")
    }

    /// The keepalive in whole seconds, as WireGuard takes it.
    pub fn keepalive_s(&self) -> u16 {
        u16::try_from(self.keepalive.0.as_secs()).unwrap_or(u16::MAX)
    }
}

/// `[providers.NAME]`: one allowlisted provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPolicy {
    /// The adapter that serves it (defaults to the provider's name).
    #[serde(default)]
    pub adapter: Option<String>,
    /// At most this many fleet nodes at this provider.
    pub max_nodes: u32,
    /// At most this many creates at this provider per tick (its API rate limits).
    #[serde(default = "default_provider_creates")]
    pub creates_per_tick: u32,
    /// Regions this provider may serve.
    pub regions: Vec<Region>,
    /// Profile to create (`small`, `medium`, ...).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Monthly price per profile, in the policy's currency.
    pub prices: BTreeMap<String, f64>,
    /// Whether the provider can give ingress front doors (static addresses).
    #[serde(default)]
    pub frontdoors: bool,
    /// Whether the provider can give egress addresses.
    #[serde(default)]
    pub egress_ips: bool,
}

fn default_provider_creates() -> u32 {
    4
}

fn default_profile() -> String {
    "small".to_owned()
}

impl ProviderPolicy {
    /// The adapter name.
    pub fn adapter<'a>(&'a self, name: &'a str) -> &'a str {
        self.adapter.as_deref().unwrap_or(name)
    }

    /// Monthly price of one node of the configured profile, in hundredths.
    pub fn node_cents(&self) -> u64 {
        let price = self.prices.get(&self.profile).copied().unwrap_or(0.0);
        (price * 100.0).round() as u64
    }
}

/// A min/max pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// At least this many live.
    pub min: u32,
    /// At most this many.
    pub max: u32,
}

/// `[regions.NAME]`: targets for one allowlisted region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPolicy {
    /// Live ingress nodes.
    pub ingress: Bounds,
    /// Live egress nodes.
    pub egress: Bounds,
    /// Provisioned ingress nodes kept out of the catalog, promoted in one tick.
    #[serde(default)]
    pub warm_spares: u32,
    /// Distinct providers the live ingress nodes should sit on, where the allowlist allows.
    #[serde(default = "default_min_providers")]
    pub min_providers: u32,
    /// Replace an ingress node after this long (or at once when it is blocked).
    pub rotate_ingress_after: Span,
    /// Replace an egress node after this long; longer than the ingress rotation.
    pub rotate_egress_after: Span,
    /// Give each ingress node a front door where its provider can.
    #[serde(default)]
    pub frontdoors: bool,
    /// Give each egress node an egress address where its provider can.
    #[serde(default)]
    pub egress_ips: bool,
    /// Front each live ingress through a `[fronts]` provider (T3 paths).
    #[serde(default)]
    pub fronts: bool,
    /// Join each live gateway to an `[overlay]` provider (overlay paths).
    #[serde(default)]
    pub overlay: bool,
    /// Clients here are behind a censor (see `[fronts] only_censored`).
    #[serde(default)]
    pub censored: bool,
    /// Offer T1 (obfuscated UDP, `[transports] t1_port`) on every ingress of the region,
    /// beside its T0 path.
    #[serde(default)]
    pub t1: bool,
    /// Offer T2 (the tunnel over TLS straight to the gateway, `[transports] t2_port`, a
    /// hostname under `t2_domain`) on every ingress of the region: for networks where CDNs
    /// are blocked or a CDN account is lost.
    #[serde(default)]
    pub t2: bool,
}

fn default_min_providers() -> u32 {
    2
}

impl RegionPolicy {
    /// The bounds for a role.
    pub fn bounds(&self, role: NodeRole) -> Bounds {
        match role {
            NodeRole::Ingress => self.ingress,
            NodeRole::Egress => self.egress,
        }
    }

    /// The rotation age for a role.
    pub fn rotate_after(&self, role: NodeRole) -> Span {
        match role {
            NodeRole::Ingress => self.rotate_ingress_after,
            NodeRole::Egress => self.rotate_egress_after,
        }
    }
}

/// A policy that did not load: where, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {field}: {message}")]
pub struct PolicyError {
    /// The file (or `<policy>` for text without one).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field (`regions.eu-central.ingress.min`), or `(document)`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The embedded default policy (`policy/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../../policy/default.toml");

impl Policy {
    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            PolicyError {
                origin: origin.to_owned(),
                line,
                column,
                field: path_at(text, span.start),
                message: e.message().trim().to_owned(),
            }
        })?;
        policy.validate().map_err(|(path, message)| {
            let span = locate(text, &path).unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            PolicyError {
                origin: origin.to_owned(),
                line,
                column,
                field: path.join("."),
                message,
            }
        })?;
        Ok(policy)
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            field: "(document)".to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        Policy::parse(&text, &origin)
    }

    /// The embedded default policy.
    pub fn default_policy() -> Policy {
        Policy::parse(DEFAULT_POLICY, "policy/default.toml").expect("the default policy is valid")
    }

    /// Providers that may serve `region`, in name order.
    pub fn providers_for<'a>(
        &'a self,
        region: &'a Region,
    ) -> impl Iterator<Item = (&'a str, &'a ProviderPolicy)> + 'a {
        self.providers
            .iter()
            .filter(move |(_, p)| p.regions.contains(region))
            .map(|(n, p)| (n.as_str(), p))
    }

    /// Every provider the policy names, compute or entry, as (policy name, adapter), in
    /// `[providers]`, `[fronts]`, `[overlay]` order: what the orchestrator builds.
    pub fn adapters(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let compute = self
            .providers
            .iter()
            .map(|(n, p)| (n.as_str(), p.adapter(n)));
        let entries = self
            .fronts
            .providers
            .iter()
            .chain(&self.overlay.providers)
            .map(|(n, p)| (n.as_str(), p.adapter(n)));
        compute.chain(entries)
    }

    /// Whether the ingress of `region` get CDN fronts: the region asks for them, and is
    /// censored where `[fronts] only_censored` is set.
    pub fn fronts_in(&self, region: &Region) -> bool {
        self.regions
            .get(region)
            .is_some_and(|r| r.fronts && (r.censored || !self.fronts.only_censored))
            && !self.fronts.providers.is_empty()
    }

    /// Whether the ingress of `region` offer T1 beside their T0 paths.
    pub fn t1_in(&self, region: &Region) -> bool {
        self.regions.get(region).is_some_and(|r| r.t1)
    }

    /// Whether the ingress of `region` offer T2 (a direct TLS front) beside their T0 paths.
    pub fn t2_in(&self, region: &Region) -> bool {
        self.regions.get(region).is_some_and(|r| r.t2)
    }

    /// Whether the gateways of `region` join the overlay providers.
    pub fn overlay_in(&self, region: &Region) -> bool {
        self.regions.get(region).is_some_and(|r| r.overlay) && !self.overlay.providers.is_empty()
    }

    /// The `[fronts]` and `[overlay]` sections, and the regions that ask for them.
    fn validate_entries(&self) -> Result<(), (Vec<String>, String)> {
        let at = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        for (section, providers) in [
            ("fronts", &self.fronts.providers),
            ("overlay", &self.overlay.providers),
        ] {
            for (name, p) in providers {
                let clash = self.providers.contains_key(name)
                    || (section == "overlay" && self.fronts.providers.contains_key(name));
                if clash {
                    return Err((
                        at(&[section, "providers", name]),
                        format!(
                            "`{name}` is already a provider name; give this one another name \
                             (and `adapter = \"...\"`)"
                        ),
                    ));
                }
                if p.per_tick == 0 {
                    return Err((
                        at(&[section, "providers", name, "per_tick"]),
                        "must be at least 1".into(),
                    ));
                }
            }
        }
        for (region, r) in &self.regions {
            for (field, wanted, section, empty) in [
                (
                    "fronts",
                    r.fronts,
                    "fronts",
                    self.fronts.providers.is_empty(),
                ),
                (
                    "overlay",
                    r.overlay,
                    "overlay",
                    self.overlay.providers.is_empty(),
                ),
            ] {
                if wanted && empty {
                    return Err((
                        at(&["regions", region.as_str(), field]),
                        format!("no `[{section}.providers.NAME]` is allowed"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), (Vec<String>, String)> {
        let at = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        if self.fleet.tick.0.is_zero() {
            return Err((at(&["fleet", "tick"]), "must be longer than zero".into()));
        }
        if !(self.limits.monthly_spend_cap >= 0.0 && self.limits.monthly_spend_cap.is_finite()) {
            return Err((
                at(&["limits", "monthly_spend_cap"]),
                "must be a non-negative amount".into(),
            ));
        }
        let s = &self.scoring;
        if s.half_life.0.is_zero() {
            return Err((
                at(&["scoring", "half_life"]),
                "must be longer than zero".into(),
            ));
        }
        for (name, value) in [
            ("healthy_threshold", s.healthy_threshold),
            ("blocked_below", s.blocked_below),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err((at(&["scoring", name]), "must be between 0 and 1".into()));
            }
        }
        if !(s.rtt_reference_ms > 0.0 && s.rtt_reference_ms.is_finite()) {
            return Err((
                at(&["scoring", "rtt_reference_ms"]),
                "must be positive".into(),
            ));
        }
        let w = &s.weights;
        for (name, value) in [
            ("probe", w.probe),
            ("rtt", w.rtt),
            ("throughput", w.throughput),
            ("client", w.client),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err((
                    at(&["scoring", "weights", name]),
                    "must be a non-negative number".into(),
                ));
            }
        }
        if w.probe + w.rtt + w.throughput + w.client <= 0.0 {
            return Err((
                at(&["scoring", "weights"]),
                "at least one weight must be positive".into(),
            ));
        }
        for (name, value) in [
            ("t0", self.paths.t0),
            ("t3", self.paths.t3),
            ("overlay", self.paths.overlay),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err((at(&["paths", name]), "must be between 0 and 1".into()));
            }
        }
        match self.transports.t1_port {
            0 => {
                return Err((
                    at(&["transports", "t1_port"]),
                    "must be a port, 1 to 65535".into(),
                ));
            }
            WIREGUARD_PORT => {
                return Err((
                    at(&["transports", "t1_port"]),
                    format!("{WIREGUARD_PORT} is WireGuard's own port; T1 listens beside it"),
                ));
            }
            _ => {}
        }
        if self.transports.t2_port == 0 {
            return Err((
                at(&["transports", "t2_port"]),
                "must be a port, 1 to 65535".into(),
            ));
        }
        if let Some(domain) = &self.transports.t2_domain
            && !valid_domain(domain)
        {
            return Err((
                at(&["transports", "t2_domain"]),
                format!(
                    "`{}` is not a DNS domain (labels of letters, digits and `-`, dot-separated)",
                    domain.escape_default().take(80).collect::<String>()
                ),
            ));
        }
        if self.transports.t2_domain.is_none()
            && let Some((name, _)) = self.regions.iter().find(|(_, r)| r.t2)
        {
            return Err((
                at(&["regions", name.as_str(), "t2"]),
                "T2 needs `[transports] t2_domain`, the domain of the gateways' certificate".into(),
            ));
        }
        if self.paths.top_k == 0 {
            return Err((at(&["paths", "top_k"]), "must be at least 1".into()));
        }
        if self.paths.catalog_ttl.0.is_zero() {
            return Err((
                at(&["paths", "catalog_ttl"]),
                "must be longer than zero".into(),
            ));
        }
        let mut nets = Vec::new();
        for (name, text) in [
            ("pool", &self.clients.pool),
            ("backbone_pool", &self.clients.backbone_pool),
        ] {
            nets.push(parse_ipv4_pool(text).map_err(|e| (at(&["clients", name]), e))?);
        }
        let contains = |(net, len): (std::net::Ipv4Addr, u8), ip: std::net::Ipv4Addr| {
            let mask = u32::MAX << (32 - u32::from(len));
            u32::from(ip) & mask == u32::from(net)
        };
        if contains(nets[0], nets[1].0) || contains(nets[1], nets[0].0) {
            return Err((
                at(&["clients", "backbone_pool"]),
                format!("overlaps the client pool `{}`", self.clients.pool),
            ));
        }
        let keepalive = self.clients.keepalive.0;
        if keepalive.subsec_nanos() != 0 || !(1..=3600).contains(&keepalive.as_secs()) {
            return Err((
                at(&["clients", "keepalive"]),
                "must be whole seconds, 1s to 1h".into(),
            ));
        }
        if s.breaker.failures == 0 {
            return Err((
                at(&["scoring", "breaker", "failures"]),
                "must be at least 1".into(),
            ));
        }
        if self.providers.is_empty() {
            return Err((at(&["providers"]), "allow at least one provider".into()));
        }
        if self.regions.is_empty() {
            return Err((at(&["regions"]), "allow at least one region".into()));
        }
        for (name, p) in &self.providers {
            let field = |f: &str| at(&["providers", name, f]);
            if p.regions.is_empty() {
                return Err((field("regions"), "list at least one region".into()));
            }
            for region in &p.regions {
                if !self.regions.contains_key(region) {
                    return Err((
                        field("regions"),
                        format!("`{region}` is not an allowed region (add [regions.{region}])"),
                    ));
                }
            }
            match p.prices.get(&p.profile) {
                None => {
                    return Err((
                        field("prices"),
                        format!("no price for the profile `{}`", p.profile),
                    ));
                }
                Some(price) if !(*price >= 0.0 && price.is_finite()) => {
                    return Err((
                        at(&["providers", name, "prices", &p.profile]),
                        "must be a non-negative amount".into(),
                    ));
                }
                Some(_) => {}
            }
        }
        self.validate_entries()?;
        for (region, r) in &self.regions {
            let name = region.as_str();
            for (role, bounds) in [("ingress", r.ingress), ("egress", r.egress)] {
                if bounds.min > bounds.max {
                    return Err((
                        at(&["regions", name, role, "min"]),
                        format!("must not exceed max ({})", bounds.max),
                    ));
                }
            }
            if r.rotate_ingress_after.0.is_zero() {
                return Err((
                    at(&["regions", name, "rotate_ingress_after"]),
                    "must be longer than zero".into(),
                ));
            }
            if r.rotate_egress_after <= r.rotate_ingress_after {
                return Err((
                    at(&["regions", name, "rotate_egress_after"]),
                    format!(
                        "egress rotates slower than ingress: must be longer than rotate_ingress_after ({})",
                        r.rotate_ingress_after
                    ),
                ));
            }
            let serving = self.providers_for(region).count();
            if serving == 0 {
                return Err((
                    at(&["regions", name]),
                    "no allowed provider serves this region".into(),
                ));
            }
            if r.min_providers as usize > serving {
                return Err((
                    at(&["regions", name, "min_providers"]),
                    format!("only {serving} allowed provider(s) serve {name}"),
                ));
            }
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The span of the value at `path`, or of the deepest ancestor that exists.
fn locate(text: &str, path: &[String]) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table = root.get_ref();
    for (i, part) in path.iter().enumerate() {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            break;
        };
        span = Some(if i + 1 == path.len() {
            value.span()
        } else {
            key.span()
        });
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    span
}

/// The dotted path of the innermost key whose value holds `offset`.
fn path_at(text: &str, offset: usize) -> String {
    /// Depth-first: the key or leaf value whose span holds `offset`. Tables are searched
    /// whatever their span, because a `[header]` table's span covers only its header.
    fn walk(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            if key.span().contains(&offset) {
                return true;
            }
            match value.get_ref() {
                DeValue::Table(t) if walk(t, offset, path) => return true,
                DeValue::Table(_) => {}
                _ if value.span().contains(&offset) => return true,
                _ => {}
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    if let Ok(root) = DeTable::parse(text) {
        walk(root.get_ref(), offset, &mut path);
    }
    if path.is_empty() {
        "(document)".to_owned()
    } else {
        path.join(".")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Plan => "plan",
            Mode::Apply => "apply",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_and_examples_load() {
        let policy = Policy::default_policy();
        assert!(policy.providers.len() >= 3);
        for (name, text) in [
            (
                "policy/examples/single-region.toml",
                include_str!("../../../policy/examples/single-region.toml"),
            ),
            (
                "policy/examples/censored-region.toml",
                include_str!("../../../policy/examples/censored-region.toml"),
            ),
            (
                "policy/examples/resilient.toml",
                include_str!("../../../policy/examples/resilient.toml"),
            ),
            (
                "policy/examples/fronted.toml",
                include_str!("../../../policy/examples/fronted.toml"),
            ),
        ] {
            Policy::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn broken(edit: impl Fn(&str) -> String) -> PolicyError {
        let text = edit(DEFAULT_POLICY);
        assert_ne!(text, DEFAULT_POLICY, "the edit changed nothing");
        Policy::parse(&text, "p.toml").unwrap_err()
    }

    fn line_of(needle: &str, text: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn a_bad_value_names_line_and_field() {
        let e = broken(|t| t.replacen("creates_per_tick = 6", "creates_per_tick = \"six\"", 1));
        assert_eq!(e.field, "limits.creates_per_tick");
        assert_eq!(e.line, line_of("creates_per_tick = 6", DEFAULT_POLICY));
        assert!(
            e.to_string().starts_with(&format!("p.toml:{}:", e.line)),
            "{e}"
        );
    }

    #[test]
    fn the_client_pools_are_checked() {
        let policy = Policy::default_policy();
        assert_eq!(
            policy.clients.pool_net(),
            ("10.77.0.0".parse().unwrap(), 16)
        );
        assert_eq!(policy.clients.keepalive_s(), 1);
        let with = |section: &str| {
            let text =
                DEFAULT_POLICY.replacen("[lifecycle]", &format!("{section}\n[lifecycle]"), 1);
            Policy::parse(&text, "p.toml")
        };
        let ok = with("[clients]\npool = \"10.99.0.0/24\"\nkeepalive = \"5s\"").unwrap();
        assert_eq!(ok.clients.pool_net(), ("10.99.0.0".parse().unwrap(), 24));
        assert_eq!(ok.clients.keepalive_s(), 5);
        let e = with("[clients]\npool = \"10.99.0.1/24\"").unwrap_err();
        assert_eq!(e.field, "clients.pool", "{e}");
        assert!(e.message.contains("host bits"), "{e}");
        let bad = DEFAULT_POLICY.replacen(
            "[lifecycle]",
            "[clients]\npool = \"10.99.0.1/24\"\n[lifecycle]",
            1,
        );
        assert_eq!(e.line, line_of("pool = \"10.99", &bad));
        let e = with("[clients]\nbackbone_pool = \"10.77.128.0/20\"").unwrap_err();
        assert_eq!(e.field, "clients.backbone_pool", "{e}");
        assert!(e.message.contains("overlaps"), "{e}");
        let e = with("[clients]\npool = \"10.0.0.0/31\"").unwrap_err();
        assert!(e.message.contains("8..=30"), "{e}");
        let e = with("[clients]\nkeepalive = \"0s\"").unwrap_err();
        assert_eq!(e.field, "clients.keepalive", "{e}");
        let e = with("[clients]\npools = \"10.0.0.0/16\"").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let e = broken(|t| t.replacen("[limits]\n", "[limits]\ncreate_per_tick = 3\n", 1));
        assert!(e.message.contains("unknown field"), "{e}");
        assert_eq!(e.field, "limits.create_per_tick", "{e}");
    }

    #[test]
    fn cross_field_rules_name_the_field() {
        let e = broken(|t| {
            t.replacen(
                "ingress = { min = 2, max = 4 }",
                "ingress = { min = 5, max = 4 }",
                1,
            )
        });
        assert!(e.field.ends_with(".ingress.min"), "{e}");
        assert!(e.message.contains("max (4)"), "{e}");
        assert_eq!(e.line, line_of("ingress = { min = 2", DEFAULT_POLICY));

        let e = broken(|t| {
            t.replacen(
                "rotate_egress_after = \"7d\"",
                "rotate_egress_after = \"1h\"",
                1,
            )
        });
        assert!(e.field.ends_with("rotate_egress_after"), "{e}");

        let e = broken(|t| t.replacen("half_life = \"10m\"", "half_life = \"10 minutes\"", 1));
        assert_eq!(e.field, "scoring.half_life", "{e}");
        assert!(e.message.contains("not a duration"), "{e}");
    }

    #[test]
    fn a_provider_region_must_be_allowed() {
        let e = broken(|t| t.replacen("regions = [\"eu-central\"", "regions = [\"mars-north\"", 1));
        assert!(
            e.field.starts_with("providers.") && e.field.ends_with(".regions"),
            "{e}"
        );
        assert!(e.message.contains("mars-north"), "{e}");
    }

    #[test]
    fn fronts_and_overlay_sections_are_checked() {
        let with = |extra: &str| Policy::parse(&format!("{DEFAULT_POLICY}\n{extra}"), "p.toml");
        // A region that asks for fronts needs a fronts provider.
        let e = broken(|t| t.replacen("[regions.us-east]", "[regions.us-east]\nfronts = true", 1));
        assert_eq!(e.field, "regions.us-east.fronts", "{e}");
        assert!(e.message.contains("[fronts.providers.NAME]"), "{e}");
        // Names are unique across compute and entry providers.
        let e = with("[fronts.providers.hetzner]\nmax = 4").unwrap_err();
        assert_eq!(e.field, "fronts.providers.hetzner", "{e}");
        let e =
            with("[fronts.providers.cf]\nmax = 4\n[overlay.providers.cf]\nmax = 4").unwrap_err();
        assert_eq!(e.field, "overlay.providers.cf", "{e}");
        let e = with("[fronts.providers.cloudflare]\nmax = 4\nper_tick = 0").unwrap_err();
        assert_eq!(e.field, "fronts.providers.cloudflare.per_tick", "{e}");
        let e = with("[fronts.providers.cloudflare]\nmaximum = 4").unwrap_err();
        assert!(e.message.contains("maximum"), "{e}");

        let ok = with(
            "[fronts]\nonly_censored = true\n[fronts.providers.cloudflare]\nmax = 4\n\
             [overlay.providers.tailscale]\nmax = 8\nper_tick = 2",
        )
        .unwrap();
        let adapters: Vec<_> = ok.adapters().collect();
        assert_eq!(adapters.len(), 5, "{adapters:?}");
        assert!(adapters.contains(&("cloudflare", "cloudflare")));
        let eu = Region::new("eu-central").unwrap();
        // No region opted in; opting in without being censored is not enough here.
        assert!(!ok.fronts_in(&eu) && !ok.overlay_in(&eu));
        let mut opted = ok.clone();
        let r = opted.regions.get_mut(&eu).unwrap();
        r.fronts = true;
        r.overlay = true;
        assert!(!opted.fronts_in(&eu) && opted.overlay_in(&eu));
        opted.regions.get_mut(&eu).unwrap().censored = true;
        assert!(opted.fronts_in(&eu));
    }

    #[test]
    fn t2_needs_a_domain_and_a_port() {
        let eu = Region::new("eu-central").unwrap();
        let with = |extra: &str| {
            DEFAULT_POLICY.replacen("[regions.eu-central]", "[regions.eu-central]\nt2 = true", 1)
                + extra
        };
        let e = Policy::parse(&with(""), "p.toml").unwrap_err();
        assert_eq!(e.field, "regions.eu-central.t2", "{e}");
        assert!(e.to_string().contains("t2_domain"), "{e}");
        let policy = Policy::parse(
            &with("\n[transports]\nt2_domain = \"assets.example\"\n"),
            "p.toml",
        )
        .unwrap();
        assert!(policy.t2_in(&eu));
        assert_eq!(policy.transports.t2_port, 443);
        for bad in ["nodots", "a..b", "-x.example", "x_y.example"] {
            let text = with(&format!("\n[transports]\nt2_domain = \"{bad}\"\n"));
            let e = Policy::parse(&text, "p.toml").unwrap_err();
            assert_eq!(e.field, "transports.t2_domain", "{bad}: {e}");
        }
        let e = Policy::parse(
            &with("\n[transports]\nt2_domain = \"assets.example\"\nt2_port = 0\n"),
            "p.toml",
        )
        .unwrap_err();
        assert_eq!(e.field, "transports.t2_port", "{e}");
    }

    #[test]
    fn t1_is_per_region_on_one_fleet_wide_port() {
        let policy = Policy::default_policy();
        let eu = Region::new("eu-central").unwrap();
        assert_eq!(policy.transports.t1_port, 4443);
        assert!(!policy.t1_in(&eu), "T1 is off unless a region asks");

        let text =
            DEFAULT_POLICY.replacen("[regions.eu-central]", "[regions.eu-central]\nt1 = true", 1)
                + "\n[transports]\nt1_port = 5555\n";
        let policy = Policy::parse(&text, "p.toml").unwrap();
        assert!(policy.t1_in(&eu));
        assert!(!policy.t1_in(&Region::new("us-east").unwrap()));
        assert_eq!(policy.transports.t1_port, 5555);

        let with = |section: &str| Policy::parse(&format!("{DEFAULT_POLICY}\n{section}"), "p.toml");
        for (port, says) in [
            ("51820", "WireGuard"),
            ("0", "1 to 65535"),
            ("65536", ""),
            ("-1", ""),
        ] {
            let text = format!("[transports]\nt1_port = {port}");
            let e = with(&text).unwrap_err();
            assert_eq!(e.field, "transports.t1_port", "{port}: {e}");
            assert!(e.message.contains(says), "{port}: {e}");
            let full = format!("{DEFAULT_POLICY}\n{text}");
            assert_eq!(e.line, line_of("t1_port", &full), "{port}: {e}");
        }
        let e = with("[transports]\nt9_port = 1").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");

        // The censored example offers all four transports in its censored region.
        let example = Policy::parse(
            include_str!("../../../policy/examples/censored-region.toml"),
            "censored-region.toml",
        )
        .unwrap();
        let censored = Region::new("ap-southeast").unwrap();
        assert!(
            example.t1_in(&censored) && example.t2_in(&censored) && example.fronts_in(&censored)
        );
        let calm = Region::new("eu-central").unwrap();
        assert!(!example.t1_in(&calm) && !example.t2_in(&calm) && !example.fronts_in(&calm));
    }
}
