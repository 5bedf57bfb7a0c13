//! The client agent: connect through the best catalog path, fail over without re-enrollment.
//!
//! The client's enrollment (private key, tunnel address) is stamped on every ingress of its
//! region, so failing over only changes the one peer of its interface: public key and endpoint
//! of the next path ([`damm_catalog::next_after`]). Key, address and routes stay.
//!
//! **When is a path dead?** WireGuard only handshakes when a session starts and every two
//! minutes after, so on a healthy tunnel the latest handshake is up to 120 s old: its age alone
//! cannot detect an outage in seconds. The signal used is *received bytes*: gateways set a
//! persistent keepalive on their client peers, so a live path delivers at least one packet per
//! keepalive interval, and a path on which nothing arrived for `stale_after` (default 3 ×
//! keepalive) is stale. Until the first packet arrives, the clock runs from the switch, so a
//! path that never answers is left too. The handshake age is still reported.
//!
//! [`PathMonitor`] holds that decision logic without any I/O, so it is unit-tested; the
//! [`ClientAgent`] feeds it samples from the interface and carries out its decisions.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use damm_catalog::{Catalog, Measurement, Path, PrivateKey, next_after, pick};
use serde::{Deserialize, Serialize};

use damm_transport::race::{Lane, Won, race};

use crate::carriers::{Carrier, Forwarder, base_id, expand, kind, loopback, start};
use crate::networks::{Hint, NetworkMemory};
use crate::wg::{PeerSpec, WireGuard, normalise, plan};
use crate::{AgentError, Host};

/// How much later each transport of a race starts than the one before it (RFC 8305's
/// connection attempt delay).
const STAGGER: Duration = Duration::from_millis(250);
/// WireGuard's REKEY_AFTER_TIME: a session's keys are renewed from this age on.
const REKEY_AFTER: Duration = Duration::from_secs(120);
/// A transport that had this much of a head start on the race's winner and never answered
/// is taken as blocked on this network (reported as failed, remembered as such).
const HEAD_START: Duration = Duration::from_millis(500);

/// Path quality as the client saw it, for `POST /v1/reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The enrolled client's id.
    pub client: String,
    /// The path measured: its catalog `path_id`.
    pub path_id: String,
    /// The transport the client carried the path on (`T0`, `T1`, `T3`); absent in reports
    /// of older clients, which only ever carried T0 (or a fronted path's T3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Seconds since the latest handshake on the path (`None`: never).
    pub handshake_age_s: Option<u64>,
    /// Round-trip time, when measured (this agent does not measure it yet).
    pub rtt_ms: Option<f64>,
    /// Consecutive failures of the path (a stale detection counts as one).
    pub failures: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a client got at enrollment. The same for every path of the region.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The client's id.
    pub client: String,
    /// The region whose paths it uses.
    pub region: String,
    /// Its WireGuard private key.
    pub private_key: PrivateKey,
    /// Its tunnel address with prefix (`10.77.0.2/32`).
    pub address: String,
}

/// How the client agent behaves.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The client's WireGuard interface (created beforehand).
    pub interface: String,
    /// Keepalive towards the gateway, seconds.
    pub keepalive_s: u16,
    /// A path from which nothing arrived for this long is stale.
    pub stale_after: Duration,
    /// The peer's AllowedIPs (what the tunnel may carry back).
    pub allowed_ips: Vec<String>,
    /// Prefixes routed into the tunnel (`ip route replace PREFIX dev IFACE`).
    pub routes: Vec<String>,
    /// How often a report on the current path is emitted.
    pub report_every: Duration,
}

impl ClientSettings {
    /// Defaults for `interface` with a `keepalive_s` keepalive: stale after 3 keepalives,
    /// everything through the tunnel's peer, no routes added, a report a minute.
    pub fn new(interface: impl Into<String>, keepalive_s: u16) -> Self {
        Self {
            interface: interface.into(),
            keepalive_s,
            stale_after: Duration::from_secs(3 * u64::from(keepalive_s.max(1))),
            allowed_ips: vec!["0.0.0.0/0".into()],
            routes: Vec::new(),
            report_every: Duration::from_secs(60),
        }
    }
}

/// One reading of the current peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Bytes received from the peer so far.
    pub rx_bytes: u64,
    /// Age of the latest handshake, if any.
    pub handshake_age: Option<Duration>,
}

/// The monitor's verdict on the current path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Packets arrive (or the path is younger than `stale_after`).
    Healthy,
    /// Nothing arrived for `quiet_for` (at least `stale_after`).
    Stale {
        /// Time since the last received byte (or since the switch).
        quiet_for: Duration,
    },
}

/// The pure failover logic: which path, and when it is stale. No clock and no I/O inside: the
/// caller passes `now` and the samples.
#[derive(Debug, Clone)]
pub struct PathMonitor {
    stale_after: Duration,
    /// A shorter limit for the current path until its first received byte (see
    /// [`PathMonitor::on_probation`]).
    probation: Option<Duration>,
    /// Whether the current path has received anything since the switch.
    proven: bool,
    current: Option<String>,
    last_rx: Option<u64>,
    last_progress: Option<Instant>,
    measurements: BTreeMap<String, Measurement>,
}

impl PathMonitor {
    /// A monitor calling a path stale after `stale_after` without received bytes.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            probation: None,
            proven: false,
            current: None,
            last_rx: None,
            last_progress: None,
            measurements: BTreeMap::new(),
        }
    }

    /// The path in use.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// What the client measured, per path id (what [`pick`] and [`next_after`] rank by).
    pub fn measurements(&self) -> &BTreeMap<String, Measurement> {
        &self.measurements
    }

    /// The best path of `region` for this client.
    pub fn best<'a>(&self, catalog: &'a Catalog, region: &str) -> Option<&'a Path> {
        pick(catalog, region, &self.measurements).into_iter().next()
    }

    /// Records that the client now uses `path_id`, from `now`.
    pub fn switched_to(&mut self, path_id: &str, now: Instant) {
        self.current = Some(path_id.to_owned());
        self.last_rx = None;
        self.last_progress = Some(now);
        self.probation = None;
        self.proven = false;
    }

    /// Calls the current path stale after `limit` (shorter than `stale_after`) if nothing
    /// at all arrives on it: a candidate tried after a failure is cheap to test, and a
    /// censored network should not cost the full limit on every candidate. Once something
    /// arrives, the usual limit applies.
    pub fn on_probation(&mut self, limit: Duration) {
        self.probation = Some(limit.min(self.stale_after));
    }

    /// Feeds a sample of the current path; says whether it is stale.
    pub fn observe(&mut self, now: Instant, sample: Sample) -> Verdict {
        let Some(current) = self.current.clone() else {
            return Verdict::Healthy;
        };
        let m = self.measurements.entry(current).or_default();
        m.last_handshake_age_s = sample.handshake_age.map(|a| a.as_secs());
        let progressed = match self.last_rx {
            Some(before) => sample.rx_bytes > before,
            None => sample.rx_bytes > 0,
        };
        // The peer's counter is cumulative and survives a switch of endpoint (same gateway,
        // another transport): only a rise seen after the switch proves the new candidate.
        let rose = self.last_rx.is_some_and(|before| sample.rx_bytes > before);
        self.last_rx = Some(sample.rx_bytes);
        if progressed {
            self.last_progress = Some(now);
            m.failures = 0;
        }
        if rose {
            self.proven = true;
        }
        let since = self.last_progress.get_or_insert(now);
        let quiet_for = now.saturating_duration_since(*since);
        let limit = match self.probation {
            Some(probation) if !self.proven => probation,
            _ => self.stale_after,
        };
        if quiet_for >= limit {
            Verdict::Stale { quiet_for }
        } else {
            Verdict::Healthy
        }
    }

    /// Counts a failure of `path_id` (a transport raced with the current one that did not
    /// answer either), so that ranking moves it down too.
    pub fn count_failure(&mut self, path_id: &str) {
        self.measurements
            .entry(path_id.to_owned())
            .or_default()
            .failures += 1;
    }

    /// Counts a failure of the current path and picks where to go: [`next_after`] it. `None`
    /// when the region has nothing else (the client stays and retries).
    pub fn fail_over<'a>(&mut self, catalog: &'a Catalog, region: &str) -> Option<&'a Path> {
        let current = self.current.clone()?;
        self.measurements
            .entry(current.clone())
            .or_default()
            .failures += 1;
        next_after(catalog, region, &self.measurements, &current)
    }

    /// The report on `path_id` as measured so far.
    pub fn report(&self, client: &str, path_id: &str, at: DateTime<Utc>) -> Report {
        let m = self.measurements.get(path_id).copied().unwrap_or_default();
        Report {
            client: client.to_owned(),
            path_id: path_id.to_owned(),
            transport: None,
            handshake_age_s: m.last_handshake_age_s,
            rtt_ms: m.rtt_ms,
            failures: m.failures,
            at,
        }
    }
}

fn resolve_endpoint(path: &Path) -> Result<SocketAddr, AgentError> {
    path.endpoint
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            AgentError::Invalid(format!(
                "path `{}`: cannot resolve `{}`",
                path.path_id, path.endpoint
            ))
        })
}

/// The client agent: an enrollment, a verified catalog and a WireGuard interface.
pub struct ClientAgent {
    host: Host,
    wireguard: Box<dyn WireGuard>,
    enrollment: Enrollment,
    settings: ClientSettings,
    catalog: Catalog,
    monitor: PathMonitor,
    current: Option<Path>,
    last_report: Option<Instant>,
    /// How each T1/T3 candidate is carried, by candidate path id.
    carriers: BTreeMap<String, Carrier>,
    /// The forwarder of the current candidate, when it is not bare WireGuard.
    forwarder: Option<Forwarder>,
    /// The roots T3 trusts instead of the public web's (a lab's or a private CA).
    transport_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Front hostnames pinned to an edge address (curl's `--resolve`).
    fronts: BTreeMap<String, SocketAddr>,
    /// The race between the transports of the current path, until one answers.
    race: Option<Race>,
    /// Which transports worked on which network.
    memory: NetworkMemory,
    /// The network the current path was chosen on (see [`crate::networks`]).
    network: Option<String>,
}

/// A race between the ways into one gateway (T0, T1, its fronts' T3): WireGuard sends to the racer, which
/// carries over every entrant until one answers.
struct Race {
    task: tokio::task::AbortHandle,
    won: tokio::sync::watch::Receiver<Option<Won>>,
    entrants: Vec<Entrant>,
}

impl Drop for Race {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One transport in a race.
struct Entrant {
    /// The candidate (catalog path, or `<path>~t1` / `<path>~t3`).
    path: Path,
    /// `T0`, `T1`, `T3`.
    kind: &'static str,
    /// Where it sends: the gateway's endpoint (T0) or its forwarder's loopback port.
    target: SocketAddr,
    /// T1's or T3's forwarder.
    forwarder: Option<Forwarder>,
    /// When it joined the race, after the start.
    after: Duration,
}

impl std::fmt::Debug for ClientAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAgent")
            .field("client", &self.enrollment.client)
            .field("interface", &self.settings.interface)
            .field("current", &self.monitor.current())
            .finish_non_exhaustive()
    }
}

impl ClientAgent {
    /// An agent for `enrollment` with a catalog that [`damm_catalog::verify`] accepted.
    pub fn new(
        host: Host,
        wireguard: Box<dyn WireGuard>,
        enrollment: Enrollment,
        settings: ClientSettings,
        catalog: Catalog,
    ) -> Self {
        let monitor = PathMonitor::new(settings.stale_after);
        let (catalog, carriers) = expand(catalog);
        Self {
            host,
            wireguard,
            enrollment,
            settings,
            catalog,
            carriers,
            forwarder: None,
            transport_tls: None,
            fronts: BTreeMap::new(),
            race: None,
            memory: NetworkMemory::in_memory(),
            network: None,
            monitor,
            current: None,
            last_report: None,
        }
    }

    /// Keeps what worked on which network in `memory` (by default, only for this run).
    pub fn set_network_memory(&mut self, memory: NetworkMemory) {
        self.memory = memory;
    }

    /// The transports of the race under way, in the order they join it (empty when none
    /// is running).
    pub fn race_order(&self) -> Vec<&'static str> {
        self.race
            .as_ref()
            .map(|r| r.entrants.iter().map(|e| e.kind).collect())
            .unwrap_or_default()
    }

    /// The transport the current path is carried on (`T0`, `T1`, `T3`), or `race` while its
    /// transports are still racing.
    pub fn current_transport(&self) -> Option<&'static str> {
        if self.race.is_some() {
            return Some("race");
        }
        let current = self.current.as_ref()?;
        Some(kind(self.carriers.get(&current.path_id)))
    }

    /// The path in use.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref()
    }

    /// The failover logic's state.
    pub fn monitor(&self) -> &PathMonitor {
        &self.monitor
    }

    /// Replaces the catalog with a newer verified one. If the current path is gone, the next
    /// [`ClientAgent::tick`] moves to the best one.
    pub fn update_catalog(&mut self, catalog: Catalog) {
        let (catalog, carriers) = expand(catalog);
        self.catalog = catalog;
        self.carriers = carriers;
    }

    /// Makes T3 trust `tls`'s roots (a lab's or a private CA) instead of the public web's.
    pub fn set_transport_tls(&mut self, tls: std::sync::Arc<rustls::ClientConfig>) {
        self.transport_tls = Some(tls);
    }

    /// Dials `edge` for the front `host` instead of asking DNS (as curl's `--resolve`):
    /// for a network whose resolver lies about the front, or a lab without DNS.
    pub fn pin_front(&mut self, host: impl Into<String>, edge: SocketAddr) {
        self.fronts.insert(host.into(), edge);
    }

    /// Configures the interface (key, address, routes) and connects through the best path.
    pub fn connect(&mut self, now: Instant) -> Result<Path, AgentError> {
        let (ip, prefix) = normalise(&self.enrollment.address)?;
        let iface = self.settings.interface.clone();
        let best = self
            .monitor
            .best(&self.catalog, &self.enrollment.region)
            .cloned()
            .ok_or_else(|| {
                AgentError::Invalid(format!(
                    "the catalog has no path for region `{}`",
                    self.enrollment.region
                ))
            })?;
        self.switch_to(&best, now)?;
        self.host.run(
            "ip",
            &[
                "address",
                "replace",
                &format!("{ip}/{prefix}"),
                "dev",
                &iface,
            ],
        )?;
        self.host.run("ip", &["link", "set", "dev", &iface, "up"])?;
        for route in &self.settings.routes {
            let (rip, rprefix) = normalise(route)?;
            self.host.run(
                "ip",
                &[
                    "route",
                    "replace",
                    &format!("{rip}/{rprefix}"),
                    "dev",
                    &iface,
                ],
            )?;
        }
        Ok(best)
    }

    fn switch_to(&mut self, path: &Path, now: Instant) -> Result<(), AgentError> {
        // A race still running stops, with its forwarders.
        self.race = None;
        // Every candidate that leads to the same gateway WireGuard is a way into it: its T0
        // and T1 (one catalog path), and its fronts' T3 (fronted paths of their own).
        let siblings: Vec<Path> = self
            .catalog
            .region(&self.enrollment.region)
            .unwrap_or_default()
            .iter()
            .filter(|p| p.gateway_public_key == path.gateway_public_key)
            .cloned()
            .collect();
        self.network = siblings.iter().find_map(|p| self.network_of(p));
        let endpoint: SocketAddr = if siblings.len() > 1 {
            self.forwarder = None;
            self.start_race(path, siblings)?
        } else {
            match self.carriers.get(&path.path_id) {
                // T1 or T3: WireGuard sends to a forwarder on loopback, started for this path
                // (the previous one stops when it is replaced).
                Some(carrier) => {
                    let forwarder = start(carrier, self.transport_tls.clone(), &self.fronts)
                        .map_err(|e| {
                            AgentError::Invalid(format!(
                                "path `{}` over {carrier:?}: {e}",
                                path.path_id
                            ))
                        })?;
                    let local = forwarder.local;
                    self.forwarder = Some(forwarder);
                    local
                }
                None => {
                    self.forwarder = None;
                    resolve_endpoint(path)?
                }
            }
        };
        self.point_peer(path, endpoint)?;
        tracing::info!(path = %path.path_id, %endpoint, racing = self.race.is_some(), "client connected through path");
        self.monitor.switched_to(&path.path_id, now);
        self.current = Some(path.clone());
        Ok(())
    }

    fn point_peer(&mut self, path: &Path, endpoint: SocketAddr) -> Result<(), AgentError> {
        let mut current = self.wireguard.get(&self.settings.interface)?;
        // A session past WireGuard's rekey time (2 min) is renewing its keys, and WireGuard
        // sends a new initiation only every 5 s: the one it sent last went to the old
        // endpoint. Dropping the peer first makes it initiate on the new endpoint at once
        // (the old keys are no use to keep: they expire or are expiring).
        let renewing = current.peers.iter().any(|p| {
            p.public_key == path.gateway_public_key
                && p.last_handshake.is_some_and(|t| {
                    SystemTime::now()
                        .duration_since(t)
                        .is_ok_and(|age| age >= REKEY_AFTER)
                })
        });
        if renewing {
            let update = plan(&current, &self.enrollment.private_key, None, &[]);
            self.wireguard.apply(&self.settings.interface, &update)?;
            current = self.wireguard.get(&self.settings.interface)?;
            tracing::info!(path = %path.path_id, "session past its rekey time: handshaking anew");
        }
        let peer = PeerSpec {
            public_key: path.gateway_public_key,
            allowed_ips: self.settings.allowed_ips.clone(),
            endpoint: Some(endpoint),
            persistent_keepalive: Some(self.settings.keepalive_s),
        };
        let update = plan(&current, &self.enrollment.private_key, None, &[peer]);
        self.wireguard.apply(&self.settings.interface, &update)
    }

    /// The network the client is on, seen towards `path`'s gateway or front (no DNS asked).
    fn network_of(&self, path: &Path) -> Option<String> {
        let address = match self.carriers.get(&path.path_id) {
            None => path.endpoint.parse().ok()?,
            Some(Carrier::T1 { endpoint, .. } | Carrier::T2 { endpoint, .. }) => {
                endpoint.parse().ok()?
            }
            Some(Carrier::T3 { host, .. }) => *self.fronts.get(host)?,
        };
        self.memory.network_towards(address)
    }

    /// Starts the race between `entrants` (the ways into one gateway, `chosen` among them): those that worked on this network first, then the chosen one, then by
    /// score; those that failed here last. Each starts [`STAGGER`] after the one before.
    /// Returns the racer's loopback port, where WireGuard sends.
    fn start_race(
        &mut self,
        chosen: &Path,
        mut entrants: Vec<Path>,
    ) -> Result<SocketAddr, AgentError> {
        let today = Utc::now();
        let hint = |p: &Path| match &self.network {
            Some(network) => self
                .memory
                .hint(network, &self.remembered_as(&p.path_id), today),
            None => Hint::Unknown,
        };
        entrants.sort_by(|a, b| {
            hint(a)
                .cmp(&hint(b))
                .then_with(|| (a.path_id != chosen.path_id).cmp(&(b.path_id != chosen.path_id)))
                .then_with(|| b.score.total_cmp(&a.score))
        });
        let mut started = Vec::new();
        for path in entrants {
            let carrier = self.carriers.get(&path.path_id);
            let (target, forwarder) = match carrier {
                None => match resolve_endpoint(&path) {
                    Ok(target) => (target, None),
                    Err(e) => {
                        tracing::warn!("race: {e}");
                        continue;
                    }
                },
                Some(carrier) => match start(carrier, self.transport_tls.clone(), &self.fronts) {
                    Ok(forwarder) => (forwarder.local, Some(forwarder)),
                    Err(e) => {
                        tracing::warn!(path = %path.path_id, "race: {carrier:?} not started: {e}");
                        continue;
                    }
                },
            };
            let after = STAGGER * started.len() as u32;
            started.push(Entrant {
                kind: kind(carrier),
                path,
                target,
                forwarder,
                after,
            });
        }
        if started.is_empty() {
            return Err(AgentError::Invalid(format!(
                "path `{}`: none of its transports could be started",
                base_id(&chosen.path_id)
            )));
        }
        let (runtime, socket, local) = loopback("the transport racer")?;
        let lanes = started
            .iter()
            .map(|e| Lane {
                target: e.target,
                after: e.after,
            })
            .collect();
        let (tx, won) = tokio::sync::watch::channel(None);
        let task = runtime.spawn(async move {
            if let Err(e) = race(socket, lanes, tx).await {
                tracing::warn!("transport race stopped: {e}");
            }
        });
        let order: Vec<&str> = started.iter().map(|e| e.kind).collect();
        tracing::info!(path = %base_id(&chosen.path_id), ?order, "racing transports");
        self.race = Some(Race {
            task: task.abort_handle(),
            won,
            entrants: started,
        });
        Ok(local)
    }

    /// Once a race has a winner: points WireGuard straight at it (its forwarder, or the
    /// gateway for T0), stops the losers, remembers what worked and what had a head start and
    /// never answered, and reports those as failed.
    fn settle_race(&mut self, now: Instant, reports: &mut Vec<Report>) -> Result<(), AgentError> {
        let Some(won) = self.race.as_ref().and_then(|r| *r.won.borrow()) else {
            return Ok(());
        };
        let mut race = self.race.take().expect("a race");
        let mut winner = race.entrants.swap_remove(won.lane);
        let today = Utc::now();
        self.forwarder = winner.forwarder.take();
        self.point_peer(&winner.path, winner.target)?;
        if let Some(network) = &self.network {
            let key = self.remembered_as(&winner.path.path_id);
            self.memory.worked(network, &key, today);
        }
        for loser in &race.entrants {
            if loser.after + HEAD_START <= won.after {
                if let Some(network) = &self.network {
                    let key = self.remembered_as(&loser.path.path_id);
                    self.memory.failed(network, &key, today);
                }
                self.monitor.count_failure(&loser.path.path_id);
                reports.push(self.report_on(&loser.path.path_id));
            }
        }
        drop(race);
        tracing::info!(
            path = %base_id(&winner.path.path_id),
            transport = winner.kind,
            after_ms = won.after.as_millis() as u64,
            "transport race won"
        );
        self.monitor.switched_to(&winner.path.path_id, now);
        self.current = Some(winner.path);
        Ok(())
    }

    /// What the network memory calls candidate `id`: its transport, and for T3 its front too
    /// (one CDN may be blocked on a network where another is not).
    fn remembered_as(&self, id: &str) -> String {
        match self.carriers.get(id) {
            Some(Carrier::T3 { host, .. }) => format!("T3 {host}"),
            carrier => kind(carrier).to_owned(),
        }
    }

    /// The report on candidate `id`: its catalog path and the transport it is carried on.
    fn report_on(&self, id: &str) -> Report {
        let mut report = self.monitor.report(&self.enrollment.client, id, Utc::now());
        report.path_id = base_id(id).to_owned();
        report.transport = Some(kind(self.carriers.get(id)).to_owned());
        report
    }

    /// One round: sample the current peer, fail over if it is stale, emit due reports.
    pub fn tick(&mut self, now: Instant) -> Result<Vec<Report>, AgentError> {
        let mut reports = Vec::new();
        if self.current.is_none() {
            self.connect(now)?;
            return Ok(reports);
        }
        self.settle_race(now, &mut reports)?;
        let Some(path) = self.current.clone() else {
            return Ok(reports);
        };
        let in_catalog = self
            .catalog
            .region(&self.enrollment.region)
            .unwrap_or_default()
            .iter()
            .any(|p| p.path_id == path.path_id);
        let state = self.wireguard.get(&self.settings.interface)?;
        let peer = state
            .peers
            .iter()
            .find(|p| p.public_key == path.gateway_public_key);
        let sample = Sample {
            rx_bytes: peer.map_or(0, |p| p.rx_bytes),
            handshake_age: peer
                .and_then(|p| p.last_handshake)
                .and_then(|t| SystemTime::now().duration_since(t).ok()),
        };
        let verdict = self.monitor.observe(now, sample);
        let stale = matches!(verdict, Verdict::Stale { .. });
        if stale || !in_catalog {
            let today = Utc::now();
            if stale && let Some(race) = self.race.take() {
                // Nothing answered on any transport raced: each of them failed here.
                for e in &race.entrants {
                    if let Some(network) = &self.network {
                        let key = self.remembered_as(&e.path.path_id);
                        self.memory.failed(network, &key, today);
                    }
                    if e.path.path_id != path.path_id {
                        self.monitor.count_failure(&e.path.path_id);
                        reports.push(self.report_on(&e.path.path_id));
                    }
                }
            } else if stale && let Some(network) = &self.network {
                self.memory
                    .failed(network, &self.remembered_as(&path.path_id), today);
            }
            let next = if in_catalog {
                self.monitor
                    .fail_over(&self.catalog, &self.enrollment.region)
                    .cloned()
            } else {
                self.monitor
                    .best(&self.catalog, &self.enrollment.region)
                    .cloned()
            };
            reports.push(self.report_on(&path.path_id));
            if let Some(next) = next {
                tracing::warn!(from = %path.path_id, to = %next.path_id, ?verdict, "failing over");
                self.switch_to(&next, now)?;
                // A UDP candidate answers within a keepalive or two if it works at all; T3
                // (TCP, TLS and the upgrade through a CDN), alone or in a race, gets the full
                // limit.
                let t3 = match &self.race {
                    Some(race) => race.entrants.iter().any(|e| matches!(e.kind, "T2" | "T3")),
                    None => matches!(
                        self.carriers.get(&next.path_id),
                        Some(Carrier::T2 { .. } | Carrier::T3 { .. })
                    ),
                };
                if !t3 {
                    let keepalive =
                        Duration::from_secs(u64::from(self.settings.keepalive_s.max(1)));
                    self.monitor
                        .on_probation((keepalive * 3 / 2).max(Duration::from_millis(1500)));
                }
            } else {
                // Nowhere else to go: restart the clock on this one and keep trying.
                self.monitor.switched_to(&path.path_id, now);
            }
            self.last_report = Some(now);
            return Ok(reports);
        }
        if self
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= self.settings.report_every)
        {
            self.last_report = Some(now);
            reports.push(self.report_on(&path.path_id));
        }
        Ok(reports)
    }

    /// Connects, then ticks every `poll` until `stop` turns true, handing each report to
    /// `on_report` (the caller sends them to `POST /v1/reports`). Errors of a tick are logged
    /// and retried on the next one.
    pub async fn run(
        mut self,
        poll: Duration,
        mut on_report: impl FnMut(Report) + Send,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), AgentError> {
        self.connect(Instant::now())?;
        let mut interval = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                }
            }
            match self.tick(Instant::now()) {
                Ok(reports) => reports.into_iter().for_each(&mut on_report),
                Err(error) => tracing::warn!(%error, "client tick failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Duration as Chrono;
    use damm_catalog::{Component, KeyPair, RegionPaths, Role, Transport};

    use super::*;

    fn path(id: &str, provider: &str, score: f64) -> Path {
        Path {
            path_id: id.into(),
            composition: vec![Component {
                role: Role::Ingress,
                provider: provider.into(),
                component: format!("{provider}:x"),
            }],
            score,
            transports: vec![Transport::WireguardUdp],
            endpoint: "192.0.2.1:51820".into(),
            gateway_public_key: KeyPair::generate().public_key(),
            offers: Vec::new(),
        }
    }

    fn catalog() -> Catalog {
        let now = Utc::now();
        Catalog {
            schema: damm_catalog::SCHEMA_V1.into(),
            fleet: "t".into(),
            version: 1,
            issued_at: now,
            expires_at: now + Chrono::hours(1),
            validated_for: vec![],
            regions: BTreeMap::from([(
                "eu".into(),
                RegionPaths {
                    paths: vec![
                        path("a", "hetzner", 0.9),
                        path("b", "vultr", 0.8),
                        path("c", "aws", 0.7),
                    ],
                },
            )]),
        }
    }

    /// A WireGuard that records updates and reports a fixed rx counter for every peer.
    #[derive(Default)]
    struct FakeWg {
        state: std::sync::Mutex<crate::wg::DeviceState>,
        updates: std::sync::Mutex<Vec<crate::wg::DeviceUpdate>>,
    }

    impl WireGuard for std::sync::Arc<FakeWg> {
        fn get(&self, _: &str) -> Result<crate::wg::DeviceState, AgentError> {
            Ok(self.state.lock().unwrap().clone())
        }
        fn apply(&self, _: &str, update: &crate::wg::DeviceUpdate) -> Result<(), AgentError> {
            let mut state = self.state.lock().unwrap();
            if let Some(key) = &update.private_key {
                state.public_key = Some(key.public_key());
            }
            state
                .peers
                .retain(|p| !update.remove.contains(&p.public_key));
            for peer in &update.upsert {
                state.peers.push(crate::wg::PeerState {
                    public_key: peer.public_key,
                    endpoint: peer.endpoint,
                    allowed_ips: peer.allowed_ips.clone(),
                    persistent_keepalive: peer.persistent_keepalive,
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                });
            }
            self.updates.lock().unwrap().push(update.clone());
            Ok(())
        }
    }

    #[test]
    fn a_candidate_on_probation_is_dropped_sooner_until_it_answers() {
        let mut m = PathMonitor::new(Duration::from_secs(3));
        let t0 = Instant::now();
        let quiet = Sample {
            rx_bytes: 0,
            handshake_age: None,
        };
        m.switched_to("a~t1", t0);
        m.on_probation(Duration::from_millis(1500));
        assert_eq!(
            m.observe(t0 + Duration::from_millis(1000), quiet),
            Verdict::Healthy
        );
        assert!(matches!(
            m.observe(t0 + Duration::from_millis(1600), quiet),
            Verdict::Stale { .. }
        ));
        // Once it answered, the usual limit holds.
        m.switched_to("b~t1", t0);
        m.on_probation(Duration::from_millis(1500));
        let answered = Sample {
            rx_bytes: 100,
            ..quiet
        };
        assert_eq!(
            m.observe(t0 + Duration::from_millis(200), quiet),
            Verdict::Healthy
        );
        assert_eq!(
            m.observe(t0 + Duration::from_millis(500), answered),
            Verdict::Healthy
        );
        assert_eq!(
            m.observe(t0 + Duration::from_millis(2500), answered),
            Verdict::Healthy
        );
        assert!(matches!(
            m.observe(t0 + Duration::from_millis(3600), answered),
            Verdict::Stale { .. }
        ));
        // A plain switch has no probation.
        m.switched_to("c", t0);
        assert_eq!(
            m.observe(t0 + Duration::from_millis(2000), quiet),
            Verdict::Healthy
        );
    }

    #[test]
    fn the_agent_never_aims_udp_at_a_fronted_or_overlay_path() {
        let mut catalog = catalog();
        let paths = &mut catalog.regions.get_mut("eu").unwrap().paths;
        for (id, transport) in [("t3", Transport::CdnFronted), ("ov", Transport::Overlay)] {
            let mut p = path(id, "hetzner", 1.0);
            p.transports = vec![transport];
            p.endpoint = "front.example:443".into();
            paths.insert(0, p);
        }
        let enrollment = Enrollment {
            client: "alice".into(),
            region: "eu".into(),
            private_key: KeyPair::generate().private_key().clone(),
            address: "10.77.0.2/32".into(),
        };
        let mut agent = ClientAgent::new(
            Host::local(),
            Box::new(std::sync::Arc::new(FakeWg::default())),
            enrollment,
            ClientSettings::new("wg-test", 1),
            catalog.clone(),
        );
        let best = agent.monitor().best(&agent.catalog, "eu").unwrap();
        assert_eq!(
            best.path_id, "a",
            "the best T0 path, not the higher-scored T3"
        );
        agent.update_catalog(catalog);
        let ids: Vec<&str> = agent.catalog.regions["eu"]
            .paths
            .iter()
            .map(|p| p.path_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn agent_swaps_only_the_peer_when_the_path_goes_quiet() {
        let catalog = catalog();
        let wg = std::sync::Arc::new(FakeWg::default());
        let me = KeyPair::generate();
        let enrollment = Enrollment {
            client: "alice".into(),
            region: "eu".into(),
            private_key: me.private_key().clone(),
            address: "10.77.0.2/32".into(),
        };
        let mut agent = ClientAgent::new(
            Host::local(),
            Box::new(wg.clone()),
            enrollment,
            ClientSettings::new("wg-test", 1),
            catalog.clone(),
        );
        let t0 = Instant::now();
        let a = catalog.region("eu").unwrap()[0].clone();
        agent.switch_to(&a, t0).unwrap();
        assert!(
            agent.tick(t0 + Duration::from_secs(1)).unwrap().len() == 1,
            "first report"
        );
        let reports = agent.tick(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].path_id.as_str(), reports[0].failures), ("a", 1));
        assert_eq!(agent.current_path().unwrap().path_id, "b");
        let updates = wg.updates.lock().unwrap();
        let swap = updates.last().unwrap();
        // Same key (no private key sent again), old peer out, new peer in.
        assert!(swap.private_key.is_none());
        assert_eq!(swap.remove, vec![a.gateway_public_key]);
        assert_eq!(swap.upsert.len(), 1);
        assert_eq!(
            swap.upsert[0].endpoint,
            Some("192.0.2.1:51820".parse().unwrap())
        );
        let state = wg.state.lock().unwrap();
        assert_eq!(state.public_key, Some(me.public_key()));
        assert_eq!(state.peers.len(), 1);
    }

    fn sample(rx: u64) -> Sample {
        Sample {
            rx_bytes: rx,
            handshake_age: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn quiet_path_goes_stale_and_fails_over_to_another_provider() {
        let catalog = catalog();
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut m = PathMonitor::new(Duration::from_secs(3));
        let best = m.best(&catalog, "eu").unwrap();
        assert_eq!(best.path_id, "a");
        m.switched_to("a", t0);
        // Bytes keep arriving: healthy, however old the handshake.
        assert_eq!(m.observe(s(1000), sample(100)), Verdict::Healthy);
        assert_eq!(m.observe(s(2500), sample(200)), Verdict::Healthy);
        assert_eq!(m.observe(s(5000), sample(300)), Verdict::Healthy);
        // Then nothing: stale 3 s after the last progress, not before.
        assert_eq!(m.observe(s(7000), sample(300)), Verdict::Healthy);
        assert!(matches!(
            m.observe(s(8000), sample(300)),
            Verdict::Stale { .. }
        ));
        let next = m.fail_over(&catalog, "eu").unwrap();
        assert_eq!(next.path_id, "b");
        assert_eq!(m.report("alice", "a", Utc::now()).failures, 1);
        m.switched_to("b", s(8000));
        assert_eq!(m.current(), Some("b"));
        // A fresh path gets `stale_after` to deliver its first byte.
        assert_eq!(m.observe(s(9000), sample(0)), Verdict::Healthy);
        assert!(matches!(
            m.observe(s(11_000), sample(0)),
            Verdict::Stale { .. }
        ));
        // `a` failed once, `b` never delivered: ranking now prefers `c`, then b.
        let again = m.fail_over(&catalog, "eu").unwrap();
        assert_eq!(again.path_id, "c");
    }

    #[test]
    fn progress_resets_failures_and_reports_serialise() {
        let t0 = Instant::now();
        let mut m = PathMonitor::new(Duration::from_secs(3));
        m.switched_to("a", t0);
        assert!(matches!(
            m.observe(t0 + Duration::from_secs(4), sample(0)),
            Verdict::Stale { .. }
        ));
        let catalog = catalog();
        m.fail_over(&catalog, "eu");
        m.switched_to("a", t0 + Duration::from_secs(4));
        assert_eq!(m.measurements()["a"].failures, 1);
        m.observe(t0 + Duration::from_secs(5), sample(10));
        assert_eq!(m.measurements()["a"].failures, 0);
        let r = m.report("alice", "a", Utc::now());
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"handshake_age_s\":1"), "{json}");
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), r);
    }
}
