//! The fault matrix: every provider the orchestrator runs on the simulator × every fault
//! the simulator injects. For each cell the loop keeps ticking, only that provider's
//! breaker opens, the provider's nodes are never forgotten while its listing fails (a
//! truncated listing would read as "the nodes vanished"), the other providers keep being
//! listed and planned, no resource is created twice, another fleet's resources are never
//! touched, and the provider recovers — breaker closed, alert cleared, fleet reconverged —
//! once the fault clears. A revoked token (the 401 fault) opens no breaker: it raises that
//! provider's alert, in the state and in `/metrics`, and darkens nobody, since waiting does
//! not fix a credential and the provider's machines still carry traffic. An exhausted
//! quota (the quota fault: every create refused in the provider's own shape, everything
//! else working) raises the provider's alert from the apply path: no breaker, its nodes
//! keep their paths, no create is sent to it while the alert stands, and the fleet
//! converges on the other providers. Prints provider × fault → ticks until the breaker
//! opened (or the alert was raised) and until recovery.
//!
//! Hetzner, DigitalOcean and Vultr, and GCE when built with the `gce` feature (CI's
//! `--all-features`), run under a real [`Engine`] that also fronts every live ingress through
//! Cloudflare and joins every live or spare one to Tailscale; each cell ends with the fronts
//! and memberships converged too.
//!
//! Cloudflare and Tailscale, the entry providers, have their own engine run, a second test
//! (it runs beside the compute one: most of either is waiting out timeouts). Each fault
//! strikes as the fleet loses a fronted ingress behind DAMM's back, so the planner wants a
//! front moved and a membership left and joined at the failing provider. Its breaker opens (a
//! 401 raises its alert and darkens nobody), nothing is planned at it while it is dark or
//! alerted, the fronts and memberships in state outlive its failed listings, fronted paths
//! (T3) leave the catalog while Cloudflare fails (not for a 401: the CDN still carries them)
//! while the bare paths (T0) stay, and once the fault clears the fleet converges back: one
//! front for every live ingress (the lost ingress's moved to another, key and hostname kept)
//! with its fronted path in the catalog, a membership for every live or spare one, no key held
//! by two fronts or two memberships at the simulator, and the simulator and the state agreeing
//! on both. Another fleet's front and membership are never touched.
//!
//! An adapter-level loop also runs Cloudflare and Tailscale through every fault, tunnels
//! included: each tick lists their resources and feeds the engine's [`Verdict`] of it to a
//! [`ScoreBook`] with the same breaker and alerts. AWS is not simulated (its adapter is tested
//! against moto). Tailscale's lists are not paged, and GCE's list answers carry no total (a
//! lost page is indistinguishable from the end, and a bad `pageToken` is an error), so the
//! missing-page fault does not apply to those two.
//!
//! Time: one tick is 60 s on a [`ManualClock`]; the simulator's boot delay is 50 ms of real
//! time; client-side rate limits are compressed so the run is not throttled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use damm_catalog::{Catalog, Role, Transport};
use damm_fleet::{Action, AddressKind, Mode, Policy, ScoreBook, Status};
use damm_orchestrator::engine::ManualClock;
use damm_orchestrator::engine::alerts::Verdict;
use damm_orchestrator::publish::{Keys, Sink};
use damm_orchestrator::state::{AddressRecord, Phase};
use damm_orchestrator::{Engine, FileStore, Options, TickReport};
use damm_provider::{
    FleetId, FrontSpec, IdempotencyKey, Labels, NodeFilter, NodeRole, NodeSpec, NodeState,
    OverlaySpec, Provider, TunnelSpec,
};
use damm_sim::{Dark, Faults, SimConfig, SimHandle};

/// The engine's timeout for every listing and mutating call.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// The simulator's boot delay (real time).
const BOOT: Duration = Duration::from_millis(50);
/// Ticks a fault may take to open the breaker (the policy opens it after 2 failures).
const MAX_TO_OPEN: u32 = 5;
/// Ticks the provider may take to recover after the fault clears (cooldown 2 ticks,
/// then draining and retiring the replacements it no longer needs).
const MAX_TO_RECOVER: u32 = 20;

const POLICY: &str = include_str!("../policies/fault-matrix.toml");

/// [`POLICY`], with GCE as a fourth provider when this build has its adapter (and more
/// ingress, so that every provider holds at least two nodes to paginate).
fn policy_text() -> String {
    if cfg!(feature = "gce") {
        POLICY.replace(
            "ingress = { min = 4, max = 6 }",
            "ingress = { min = 6, max = 8 }",
        ) + "[providers.gce]\nmax_nodes = 5\nregions = [\"eu-central\"]\nprices = { small = 12.23 }\n"
    } else {
        POLICY.to_owned()
    }
}

/// Faults that do not apply to a provider's API (Cloudflare and Tailscale create no
/// machines, so a server quota says nothing of them).
fn not_applicable(provider: &str, fault: Fault) -> bool {
    (fault == Fault::MissingPage && matches!(provider, "tailscale" | "gce"))
        || (fault == Fault::Quota && matches!(provider, "cloudflare" | "tailscale"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Dark,
    Timeout,
    ServerError,
    RateLimited,
    Malformed,
    Unauthorized,
    MissingPage,
    Quota,
}

impl Fault {
    const ALL: [Fault; 8] = [
        Fault::Dark,
        Fault::Timeout,
        Fault::ServerError,
        Fault::RateLimited,
        Fault::Malformed,
        Fault::Unauthorized,
        Fault::MissingPage,
        Fault::Quota,
    ];

    /// The alert the fault raises instead of an outage, by kind.
    fn alert(self) -> Option<&'static str> {
        match self {
            Fault::Unauthorized => Some("unauthenticated"),
            Fault::Quota => Some("quota_exceeded"),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fault::Dark => "dark",
            Fault::Timeout => "timeout",
            Fault::ServerError => "5xx",
            Fault::RateLimited => "429",
            Fault::Malformed => "malformed",
            Fault::Unauthorized => "401",
            Fault::MissingPage => "missing-page",
            Fault::Quota => "quota",
        }
    }

    fn faults(self) -> Faults {
        let none = Faults::default();
        match self {
            Fault::Dark => Faults::dark(Dark::Refuse),
            Fault::Timeout => Faults {
                latency_ms: CALL_TIMEOUT.as_millis() as u64 + 500,
                ..none
            },
            Fault::ServerError => Faults {
                error_rate: 1.0,
                ..none
            },
            // Every call answers 429 with the provider's limit, remaining and reset headers
            // and a Retry-After, until the storm is cleared.
            Fault::RateLimited => Faults {
                rate_limit_storm: u32::MAX,
                ..none
            },
            Fault::Malformed => Faults {
                malformed_rate: 1.0,
                ..none
            },
            Fault::Unauthorized => Faults {
                unauthorized: true,
                ..none
            },
            Fault::MissingPage => Faults {
                missing_page: true,
                ..none
            },
            Fault::Quota => Faults {
                quota_exhausted: true,
                ..none
            },
        }
    }
}

/// One cell of the table.
#[derive(Debug)]
struct Cell {
    to_open: u32,
    to_recover: u32,
    error: String,
    /// Whether replacements were created at other providers while it was dark.
    replaced: bool,
    /// Changes sent to the provider while it failed (refused, or done with the answer lost).
    tried: usize,
}

async fn sim() -> SimHandle {
    let config = SimConfig {
        boot_delay: BOOT,
        // The 429 fault is injected; the documented limits would only slow the run.
        rate_limits: false,
        // One item per page: every listing of two or more resources is paginated.
        max_page_size: Some(1),
        ..SimConfig::default()
    };
    damm_sim::testing::start(config).await
}

fn api(provider: &str) -> damm_sim::Provider {
    damm_orchestrator::sim::api(provider).unwrap()
}

struct Harness {
    sim: SimHandle,
    policy: Policy,
    clock: Arc<ManualClock>,
    engine: Engine,
    /// The same adapters, for looking at what the simulator holds.
    observer: BTreeMap<String, Arc<dyn Provider>>,
    /// Adapters of another fleet, each provider holding one of its nodes, fronts or
    /// memberships.
    other: BTreeMap<String, Arc<dyn Provider>>,
    /// The catalog of the last tick.
    catalog: Option<Catalog>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let sim = sim().await;
        let text = policy_text();
        let policy = Policy::parse(&text, "fault_matrix").unwrap();
        let clock = ManualClock::new(chrono::Utc::now());
        let dir = tempfile::tempdir().unwrap();
        let providers = damm_orchestrator::sim::providers(&sim, &policy)
            .await
            .unwrap();
        let store = FileStore::open(&dir.path().join("state.json")).unwrap();
        let options = Options {
            call_timeout: CALL_TIMEOUT,
            probe_timeout: CALL_TIMEOUT,
            ..Options::default()
        };
        let mut engine = Engine::new(
            policy.clone(),
            providers,
            Box::new(store),
            clock.clock(),
            options,
        )
        .unwrap();
        // The catalog each tick publishes: which paths clients are given.
        engine.set_publisher(
            Arc::new(Keys::generate()),
            Sink {
                path: dir.path().join("catalog.json"),
            },
        );
        let observer = damm_orchestrator::sim::providers(&sim, &policy)
            .await
            .unwrap();
        let other_policy =
            Policy::parse(&text.replace("id = \"faults\"", "id = \"other\""), "o").unwrap();
        let other = damm_orchestrator::sim::providers(&sim, &other_policy)
            .await
            .unwrap();
        let theirs = FleetId::new("other").unwrap();
        for (name, p) in &other {
            let key = IdempotencyKey::new(format!("theirs-{name}")).unwrap();
            if let Some(compute) = p.compute() {
                let spec = NodeSpec::new(
                    &theirs,
                    key.clone(),
                    "eu-central".parse().unwrap(),
                    NodeRole::Ingress,
                    "small",
                );
                compute.create_node(&spec).await.unwrap();
            }
            if let Some(cdn) = p.cdn_front() {
                let spec = FrontSpec {
                    labels: Labels::owned(&theirs, &key),
                    key: key.clone(),
                    name: "theirs".to_owned(),
                    origin: "192.0.2.99".parse().unwrap(),
                };
                cdn.publish_front(&spec).await.unwrap();
            }
            if let Some(overlay) = p.overlay() {
                let spec = OverlaySpec {
                    labels: Labels::owned(&theirs, &key),
                    key: key.clone(),
                    hostname: "theirs".to_owned(),
                    node: None,
                    ephemeral: false,
                };
                overlay.join_overlay(&spec).await.unwrap();
            }
        }
        Harness {
            sim,
            policy,
            clock,
            engine,
            observer,
            other,
            catalog: None,
            _dir: dir,
        }
    }

    async fn tick(&mut self) -> TickReport {
        let report = self
            .engine
            .tick(Mode::Apply, true)
            .await
            .expect("the loop keeps ticking");
        tokio::time::sleep(BOOT + Duration::from_millis(10)).await;
        self.clock.advance(Duration::from_secs(60));
        self.catalog.clone_from(&report.catalog);
        report
    }

    /// The fronts (`cloudflare`) or memberships (`tailscale`) the state holds at `provider`.
    fn entries_at(&self, provider: &str) -> BTreeMap<IdempotencyKey, AddressRecord> {
        self.engine
            .state()
            .addresses
            .iter()
            .filter(|(_, a)| a.provider == provider && a.kind.is_entry())
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect()
    }

    /// Ingress keys with a path of `transport` in the last catalog.
    fn catalog_ingress(&self, transport: Transport) -> BTreeSet<String> {
        let catalog = self
            .catalog
            .as_ref()
            .expect("every tick publishes a catalog");
        catalog
            .regions
            .values()
            .flat_map(|r| &r.paths)
            .filter(|p| p.transports.contains(&transport))
            .flat_map(|p| &p.composition)
            .filter(|c| c.role == Role::Ingress)
            .map(|c| c.component.clone())
            .collect()
    }

    /// The fleet's fronts and memberships at the simulator by key, each key once.
    async fn entries_at_sim(
        &self,
    ) -> (
        BTreeMap<IdempotencyKey, damm_provider::Front>,
        BTreeMap<IdempotencyKey, damm_provider::OverlayMembership>,
    ) {
        let (mut fronts, mut members) = (BTreeMap::new(), BTreeMap::new());
        for (name, p) in &self.observer {
            if let Some(cdn) = p.cdn_front() {
                for f in cdn.list_fronts().await.unwrap() {
                    let key = f.labels.key().expect("every listed front is labelled");
                    assert!(
                        fronts.insert(key.clone(), f).is_none(),
                        "two fronts hold {key} at {name}"
                    );
                }
            }
            if let Some(overlay) = p.overlay() {
                for m in overlay.list_memberships().await.unwrap() {
                    let key = m.labels.key().expect("every listed membership is labelled");
                    assert!(
                        members.insert(key.clone(), m).is_none(),
                        "two memberships hold {key} at {name}"
                    );
                }
            }
        }
        (fronts, members)
    }

    /// Converged entries: every live ingress (active, running, healthy) has one front, and
    /// a fronted path in the catalog; every live or spare one has one membership at every
    /// overlay provider.
    fn check_entries_cover(&self, cell: &str) {
        let state = self.engine.state();
        let scores = state
            .scores
            .snapshot(self.engine.now(), &self.policy.scoring);
        let healthy = |k: &IdempotencyKey| scores.get(k.as_str()).is_some_and(|s| s.healthy);
        let of = |k: &IdempotencyKey, kind: AddressKind| {
            state
                .addresses
                .values()
                .filter(|a| a.kind == kind && a.node.as_ref() == Some(k))
                .count()
        };
        let fronted = self.catalog_ingress(Transport::CdnFronted);
        for (k, n) in &state.nodes {
            if n.role != NodeRole::Ingress || n.state != NodeState::Running || !healthy(k) {
                continue;
            }
            if n.status == Status::Active {
                assert_eq!(of(k, AddressKind::Front), 1, "{cell}: one front for {k}");
                let origin = state
                    .addresses
                    .values()
                    .find(|a| a.kind == AddressKind::Front && a.node.as_ref() == Some(k))
                    .and_then(|a| a.address);
                assert!(
                    origin.is_some_and(|o| n.addresses.contains(&o)),
                    "{cell}: the front of {k} leads to it: {origin:?}, {:?}",
                    n.addresses
                );
                assert!(
                    fronted.contains(k.as_str()),
                    "{cell}: a fronted path to {k}: {fronted:?}"
                );
            }
            if matches!(n.status, Status::Active | Status::Spare) {
                let members = of(k, AddressKind::Overlay);
                let overlays = self.policy.overlay.providers.len();
                assert_eq!(members, overlays, "{cell}: {k} joined every overlay");
            }
        }
    }

    fn nodes_at(&self, provider: &str) -> BTreeSet<IdempotencyKey> {
        self.engine
            .state()
            .nodes
            .iter()
            .filter(|(_, n)| n.provider == provider)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn settled(&self, report: &TickReport) -> bool {
        report.plan.actions.is_empty()
            && report.summary.failed == 0
            && report.summary.provider_errors.is_empty()
            && report.scores.dark.is_empty()
            && self
                .engine
                .state()
                .nodes
                .values()
                .all(|n| n.state == NodeState::Running)
    }

    /// Ticks until the fleet is converged; the number of ticks it took.
    async fn converge(&mut self) -> Option<u32> {
        for t in 1..=MAX_TO_RECOVER {
            let report = self.tick().await;
            if self.settled(&report) {
                return Some(t);
            }
        }
        None
    }

    /// What the simulator holds, checked: no key twice, state and inventory agree, and
    /// the other fleet's nodes are where they were.
    async fn check_inventory(&self) {
        let mut listed = BTreeSet::new();
        for (name, p) in &self.observer {
            let nodes = p.list_nodes(&NodeFilter::all()).await.unwrap();
            for node in nodes {
                let key = node.key().expect("every listed node is labelled");
                assert!(listed.insert(key.clone()), "{key} exists twice (at {name})");
            }
        }
        let in_state: BTreeSet<_> = self.engine.state().nodes.keys().cloned().collect();
        assert_eq!(listed, in_state, "the simulator and the state disagree");
        let (fronts, members) = self.entries_at_sim().await;
        // What the state believes of a front is what the CDN serves.
        for (key, f) in &fronts {
            let record = self.engine.state().addresses.get(key);
            assert!(
                record.is_some_and(|r| r.address == Some(f.origin)
                    && r.hostname.as_deref() == Some(f.hostname.as_str())),
                "front {key}: the state says {record:?}, the simulator {f:?}"
            );
        }
        for (kind, at_sim) in [
            (
                AddressKind::Front,
                fronts.keys().cloned().collect::<BTreeSet<_>>(),
            ),
            (AddressKind::Overlay, members.keys().cloned().collect()),
        ] {
            let in_state: BTreeSet<_> = self
                .engine
                .state()
                .addresses
                .iter()
                .filter(|(_, a)| a.kind == kind)
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(
                at_sim, in_state,
                "the simulator and the state disagree on {kind:?}"
            );
        }
        for (name, p) in &self.other {
            let key = format!("theirs-{name}");
            let mut theirs: Vec<Option<IdempotencyKey>> = Vec::new();
            if p.compute().is_some() {
                let nodes = p.list_nodes(&NodeFilter::all()).await.unwrap();
                theirs.extend(nodes.iter().map(|n| n.key()));
            }
            if let Some(cdn) = p.cdn_front() {
                let fronts = cdn.list_fronts().await.unwrap();
                theirs.extend(fronts.iter().map(|f| f.labels.key()));
            }
            if let Some(overlay) = p.overlay() {
                let members = overlay.list_memberships().await.unwrap();
                theirs.extend(members.iter().map(|m| m.labels.key()));
            }
            let theirs: Vec<String> = theirs
                .into_iter()
                .flatten()
                .map(|k| k.to_string())
                .collect();
            assert_eq!(
                theirs,
                vec![key],
                "the other fleet's resource at {name} is untouched"
            );
        }
    }

    /// `provider`'s alert is `kind` (or none) in the state, its JSON and `/metrics`.
    fn check_alert(&self, provider: &str, fault: Fault, kind: Option<&str>) {
        let state = self.engine.state();
        let cell = format!("{provider}/{}", fault.name());
        let raised = state.scores.alert(provider).map(|a| a.kind.as_str());
        assert_eq!(raised, kind, "{cell}: {:?}", state.scores.breakers);
        let json = serde_json::to_value(state).unwrap();
        let alert = &json["scores"]["breakers"][provider]["alert"];
        assert_eq!(
            alert["kind"].as_str(),
            kind,
            "{cell}: the state JSON says it"
        );
        let snapshot = damm_orchestrator::serve::Snapshot {
            state: Some(state.clone()),
            metrics: self.engine.metrics().clone(),
            ..Default::default()
        };
        let metrics = damm_orchestrator::serve::render_metrics(&snapshot);
        let series: Vec<_> = metrics
            .lines()
            .filter(|l| l.starts_with("damm_provider_alert{"))
            .collect();
        let expected: Vec<String> = kind
            .map(|k| format!("damm_provider_alert{{provider=\"{provider}\",kind=\"{k}\"}} 1"))
            .into_iter()
            .collect();
        assert_eq!(series, expected, "{cell}: /metrics says it");
        let dark = format!("damm_provider_dark{{provider=\"{provider}\"}} 0");
        assert!(
            kind.is_none() || metrics.lines().any(|l| l == dark),
            "{cell}: not dark in /metrics: {metrics}"
        );
    }

    async fn run(&mut self, provider: &str, fault: Fault) -> Cell {
        let before = self.nodes_at(provider);
        let needs = if fault == Fault::MissingPage { 2 } else { 1 };
        assert!(
            before.len() >= needs,
            "{provider}/{} needs {needs} nodes (two to paginate): {before:?}",
            fault.name()
        );
        let first_seq = self.engine.state().orchestrator.next_seq;
        self.sim.set_faults(api(provider), fault.faults());
        let mut to_open = None;
        let mut error = String::new();
        // The breaker opens (or the alert is raised), the provider's nodes stay known,
        // nobody else goes dark.
        for t in 1..=MAX_TO_OPEN + 2 {
            let report = self.tick().await;
            let dark: Vec<_> = report.scores.dark.iter().cloned().collect();
            assert!(
                dark.iter()
                    .all(|p| p == provider && fault.alert().is_none()),
                "{provider}/{}: only its breaker opens, not {dark:?}",
                fault.name()
            );
            let errors: Vec<_> = report.summary.provider_errors.keys().cloned().collect();
            assert_eq!(
                errors,
                vec![provider.to_owned()],
                "{provider}/{}: only its listing fails",
                fault.name()
            );
            if let Some(e) = report.summary.provider_errors.get(provider) {
                error = e.clone();
            }
            assert_eq!(
                self.nodes_at(provider),
                before,
                "{provider}/{}: a failed listing must not forget the provider's nodes",
                fault.name()
            );
            if let Some(kind) = fault.alert() {
                self.check_alert(provider, fault, Some(kind));
                assert!(
                    !report.scores.suspect.contains(provider),
                    "{provider}/{}: an alert is not counted as a failure",
                    fault.name()
                );
                to_open.get_or_insert(t);
                if t == MAX_TO_OPEN {
                    break; // Alerted all along, never dark.
                }
                continue;
            }
            if to_open.is_some() {
                // Dark: the planner leaves it alone and plans the others.
                assert!(
                    report.plan.actions.iter().all(|a| a.provider() != provider),
                    "{provider}/{}: planned at a dark provider: {:?}",
                    fault.name(),
                    report.plan.actions
                );
                assert!(
                    report.plan.desired.iter().any(|d| d.provider != provider),
                    "{provider}/{}: the others keep being planned",
                    fault.name()
                );
                break;
            }
            if report.scores.dark.contains(provider) {
                to_open = Some(t);
            }
        }
        let to_open =
            to_open.unwrap_or_else(|| panic!("{provider}/{}: the breaker opens", fault.name()));
        assert!(to_open <= MAX_TO_OPEN);
        if fault.alert().is_some() {
            assert_eq!(to_open, 1, "{provider}/{}: alerted at once", fault.name());
            assert!(!self.engine.state().scores.is_dark(provider));
        }
        // While it is dark the others carry the region's minimums in the desired fleet
        // (replacements planned there now, or kept from an earlier case).
        let desired = &self.engine.state().orchestrator.desired_fleet;
        let elsewhere = |role: NodeRole| {
            desired
                .iter()
                .filter(|d| d.provider != provider && d.role == role)
                .count()
        };
        let region = &self.policy.regions[&"eu-central".parse().unwrap()];
        assert!(
            fault.alert().is_some()
                || (elsewhere(NodeRole::Ingress) >= region.ingress.min as usize
                    && elsewhere(NodeRole::Egress) >= region.egress.min as usize),
            "{provider}/{}: the others carry the region: {desired:?}",
            fault.name()
        );
        let replaced = self.engine.state().journal.iter().any(|e| {
            e.seq >= first_seq
                && matches!(&e.action, Action::Create { provider: p, .. } if p != provider)
        });

        self.sim.clear_faults(api(provider));
        let to_recover = self.converge().await.unwrap_or_else(|| {
            panic!(
                "{provider}/{}: recovers within {MAX_TO_RECOVER} ticks: {:?}",
                fault.name(),
                self.engine.state().scores.breakers
            )
        });
        assert!(!self.engine.state().scores.is_dark(provider));
        self.check_alert(provider, fault, None);
        self.check_inventory().await;
        self.check_entries_cover(&format!("{provider}/{}", fault.name()));
        Cell {
            to_open,
            to_recover,
            error,
            replaced,
            tried: 0,
        }
    }

    /// A fault at entry provider `provider` (Cloudflare or Tailscale), struck as the fleet
    /// loses a fronted ingress behind DAMM's back: see the module doc.
    async fn run_entry(&mut self, provider: &str, fault: Fault) -> Cell {
        let cell = format!("{provider}/{}", fault.name());
        let held = self.entries_at(provider);
        let needs = if fault == Fault::MissingPage { 2 } else { 1 };
        assert!(
            held.len() >= needs,
            "{cell} needs {needs} entries (two to paginate): {held:?}"
        );
        let state = self.engine.state();
        let (lost, lost_front) = state
            .addresses
            .iter()
            .filter(|(_, a)| a.kind == AddressKind::Front)
            .find_map(|(k, a)| {
                let node = a.node.clone()?;
                (state.nodes.get(&node)?.status == Status::Active).then(|| (node, k.clone()))
            })
            .unwrap_or_else(|| panic!("{cell}: a fronted ingress to lose: {:?}", state.addresses));
        let hostname = state.addresses[&lost_front].hostname.clone();
        let bare_before = self.catalog_ingress(Transport::WireguardUdp);
        let fronted_before = self.catalog_ingress(Transport::CdnFronted);
        let without_lost = |before: &BTreeSet<String>| -> BTreeSet<String> {
            before
                .iter()
                .filter(|k| k.as_str() != lost.as_str())
                .cloned()
                .collect()
        };
        assert!(
            fronted_before.contains(lost.as_str()),
            "{cell}: {lost} is fronted in the catalog before the fault"
        );

        let first_seq = self.engine.state().orchestrator.next_seq;
        self.sim.set_faults(api(provider), fault.faults());
        let record = &self.engine.state().nodes[&lost];
        let at = &self.observer[&record.provider];
        let node = damm_provider::NodeRef::new(at.id(), record.id.clone());
        at.compute().unwrap().retire_node(&node).await.unwrap();

        let mut to_open = None;
        let mut error = String::new();
        for t in 1..=MAX_TO_OPEN + 2 {
            let report = self.tick().await;
            let dark: Vec<_> = report.scores.dark.iter().cloned().collect();
            assert!(
                dark.iter()
                    .all(|p| p == provider && fault.alert().is_none()),
                "{cell}: only its breaker opens, not {dark:?}"
            );
            let errors: Vec<_> = report.summary.provider_errors.keys().cloned().collect();
            assert_eq!(
                errors,
                vec![provider.to_owned()],
                "{cell}: only its listing fails"
            );
            if let Some(e) = report.summary.provider_errors.get(provider) {
                error = e.clone();
            }
            let now: BTreeSet<_> = self.entries_at(provider).into_keys().collect();
            let missing: Vec<_> = held.keys().filter(|k| !now.contains(*k)).collect();
            assert!(
                missing.is_empty(),
                "{cell}: a failed listing must not forget the provider's entries: {missing:?}"
            );
            // Fronted paths ride on the CDN: they leave the catalog while it fails (not for
            // a refused credential: the CDN still carries them). Bare paths stay.
            let fronted = self.catalog_ingress(Transport::CdnFronted);
            let bare = self.catalog_ingress(Transport::WireguardUdp);
            assert!(
                bare.is_superset(&without_lost(&bare_before)),
                "{cell}: the T0 paths stay: {bare:?}, before {bare_before:?}"
            );
            if provider == "cloudflare" && fault.alert().is_none() {
                assert!(
                    fronted.is_empty(),
                    "{cell}: fronted paths leave the catalog: {fronted:?}"
                );
            } else {
                assert!(
                    fronted.is_superset(&without_lost(&fronted_before)),
                    "{cell}: the fronted paths stay: {fronted:?}, before {fronted_before:?}"
                );
            }
            let unavailable = fault.alert().is_some() || report.scores.dark.contains(provider);
            if unavailable {
                // Dark or alerted: no front or membership is planned at it.
                assert!(
                    report.plan.actions.iter().all(|a| a.provider() != provider),
                    "{cell}: planned at an unavailable provider: {:?}",
                    report.plan.actions
                );
            }
            if let Some(kind) = fault.alert() {
                self.check_alert(provider, fault, Some(kind));
                assert!(
                    !report.scores.suspect.contains(provider),
                    "{cell}: an alert is not counted as a failure"
                );
                to_open.get_or_insert(t);
                if t == MAX_TO_OPEN {
                    break; // Alerted all along, never dark.
                }
            } else if to_open.is_some() {
                break; // Dark for a second tick.
            } else if unavailable {
                to_open = Some(t);
            }
        }
        let to_open = to_open.unwrap_or_else(|| panic!("{cell}: the breaker opens"));
        assert!(to_open <= MAX_TO_OPEN);
        if fault.alert().is_some() {
            assert_eq!(to_open, 1, "{cell}: alerted at once");
            assert!(!self.engine.state().scores.is_dark(provider));
        }

        let tried = self
            .engine
            .state()
            .journal
            .iter()
            .filter(|e| e.seq >= first_seq && e.action.provider() == provider)
            .count();

        self.sim.clear_faults(api(provider));
        let mut to_recover = None;
        for t in 1..=MAX_TO_RECOVER {
            let report = self.tick().await;
            // Every key once at every tick of the recovery (`entries_at_sim` asserts it),
            // whatever the failed calls left behind.
            self.entries_at_sim().await;
            if self.settled(&report) {
                to_recover = Some(t);
                break;
            }
        }
        let to_recover = to_recover.unwrap_or_else(|| {
            panic!(
                "{cell}: recovers within {MAX_TO_RECOVER} ticks: {:?}",
                self.engine.state().scores.breakers
            )
        });
        assert!(!self.engine.state().scores.is_dark(provider));
        self.check_alert(provider, fault, None);
        self.check_inventory().await;
        self.check_entries_cover(&cell);
        // The lost ingress's front went to another ingress with its key and hostname.
        let front = self.engine.state().addresses.get(&lost_front);
        let moved_to = front.and_then(|f| f.node.clone());
        assert!(
            moved_to.as_ref().is_some_and(|n| *n != lost)
                && front.is_some_and(|f| f.hostname == hostname),
            "{cell}: the front {lost_front} of {lost} moved, hostname kept: {front:?}"
        );
        Cell {
            to_open,
            to_recover,
            error,
            replaced: false,
            tried,
        }
    }
}

impl Harness {
    /// Node keys at `provider` on any path composed now (every path, not only the
    /// catalog's top K, so that reranking cannot hide one).
    fn on_paths(&self, provider: &str, scores: &damm_fleet::Scores) -> BTreeSet<IdempotencyKey> {
        damm_fleet::compose(&self.engine.fleet(), &self.policy, scores, &[], 64)
            .into_values()
            .flatten()
            .flat_map(|c| {
                [
                    (c.ingress_provider, c.ingress),
                    (c.egress_provider, c.egress),
                ]
            })
            .filter(|(p, _)| p == provider)
            .map(|(_, key)| key)
            .collect()
    }

    /// The quota fault. Every ingress machine of the region is lost behind DAMM's back (a
    /// zone outage), so the planner sends its replacements to every provider, `provider`
    /// among them, whose creates are refused for quota. The alert is raised from the apply
    /// path and held while the listings answer; the provider is neither dark nor suspect,
    /// its other nodes are left alone and the alert takes none of them off the paths, no
    /// create goes to it while alerted, and the fleet converges on the other providers with
    /// the fault still on.
    async fn run_quota(&mut self, provider: &str) -> Cell {
        let fault = Fault::Quota;
        let cell = format!("{provider}/{}", fault.name());
        let lost: Vec<IdempotencyKey> = self
            .engine
            .state()
            .nodes
            .iter()
            .filter(|(_, n)| n.role == NodeRole::Ingress)
            .map(|(k, _)| k.clone())
            .collect();
        let kept: BTreeSet<_> = self
            .nodes_at(provider)
            .into_iter()
            .filter(|k| !lost.contains(k))
            .collect();
        let first_seq = self.engine.state().orchestrator.next_seq;
        self.sim.set_faults(api(provider), fault.faults());
        for key in &lost {
            let record = &self.engine.state().nodes[key];
            let at = &self.observer[&record.provider];
            let node = damm_provider::NodeRef::new(at.id(), record.id.clone());
            at.compute()
                .unwrap()
                .retire_node(&node)
                .await
                .expect("deletes work at the limit");
        }
        let refused = |h: &Harness| {
            h.engine.state().journal.iter().any(|e| {
                let create_here =
                    matches!(&e.action, Action::Create { provider: p, .. } if p == provider);
                let for_quota =
                    matches!(&e.phase, Phase::Failed { error } if error.contains("quota exceeded"));
                e.seq >= first_seq && create_here && for_quota
            })
        };
        let mut to_open = None;
        for t in 1..=MAX_TO_OPEN {
            let report = self.tick().await;
            assert!(
                report.scores.dark.is_empty(),
                "{cell}: nobody dark: {:?}",
                report.scores.dark
            );
            assert!(
                !report.scores.suspect.contains(provider),
                "{cell}: an alert is not counted as a failure"
            );
            assert!(
                report.summary.provider_errors.is_empty(),
                "{cell}: every listing answers: {:?}",
                report.summary.provider_errors
            );
            let kept_now: BTreeSet<_> = self
                .nodes_at(provider)
                .intersection(&kept)
                .cloned()
                .collect();
            assert_eq!(kept_now, kept, "{cell}: its other nodes stay");
            assert!(
                report.plan.actions.iter().all(|a| match a {
                    Action::Drain { key, .. } | Action::Retire { key, .. } => !kept.contains(key),
                    _ => true,
                }),
                "{cell}: its nodes are left alone: {:?}",
                report.plan.actions
            );
            // Unlike a failed tick (suspect), an alert takes none of its nodes off the paths.
            let mut unalerted = report.scores.clone();
            unalerted.alerted.clear();
            assert_eq!(
                self.on_paths(provider, &report.scores),
                self.on_paths(provider, &unalerted),
                "{cell}: its nodes keep their paths"
            );
            if to_open.is_none() && refused(self) {
                // The create was refused this tick: the alert is raised at once.
                self.check_alert(provider, fault, fault.alert());
                to_open = Some(t);
            } else if to_open == Some(t - 1) {
                // The listings answered since, and the alert stands (held through the
                // breaker's cooldown of two ticks): the planner sends its creates elsewhere.
                self.check_alert(provider, fault, fault.alert());
                assert!(
                    report.plan.actions.iter().all(|a| {
                        !(a.provider() == provider && matches!(a, Action::Create { .. }))
                    }),
                    "{cell}: a create planned at the alerted provider: {:?}",
                    report.plan.actions
                );
            }
        }
        let to_open = to_open.unwrap_or_else(|| {
            panic!(
                "{cell}: a create was sent and refused: {:?}",
                self.engine.state().journal
            )
        });
        let error = self
            .engine
            .state()
            .journal
            .iter()
            .rev()
            .find_map(|e| match &e.phase {
                Phase::Failed { error } if e.action.provider() == provider => Some(error.clone()),
                _ => None,
            })
            .unwrap_or_default();
        // The fleet converges on the other providers while the quota is still exhausted.
        self.converge().await.unwrap_or_else(|| {
            panic!(
                "{cell}: converges on the others: {:?}",
                self.engine.state().nodes
            )
        });
        let replaced = self.engine.state().journal.iter().any(|e| {
            e.seq >= first_seq
                && e.phase == Phase::Done
                && matches!(&e.action, Action::Create { provider: p, .. } if p != provider)
        });
        assert!(replaced, "{cell}: the lost nodes are replaced elsewhere");

        self.sim.clear_faults(api(provider));
        let to_recover = self
            .converge()
            .await
            .unwrap_or_else(|| panic!("{cell}: recovers within {MAX_TO_RECOVER} ticks"));
        self.check_alert(provider, fault, None);
        self.check_inventory().await;
        self.check_entries_cover(&cell);
        Cell {
            to_open,
            to_recover,
            error,
            replaced,
            tried: 0,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compute_provider_survives_every_fault_and_recovers() {
    damm_provider::retry::set_time_compression(1000.0);
    let started = Instant::now();
    let mut h = Harness::new().await;
    let ticks = h.converge().await.expect("the fleet converges");
    h.check_inventory().await;
    h.check_entries_cover("start");
    println!(
        "converged in {ticks} ticks: {:?}",
        h.engine.state().nodes.len()
    );
    let providers: Vec<String> = h.policy.providers.keys().cloned().collect();
    let mut table: BTreeMap<(String, &'static str), Cell> = BTreeMap::new();
    for provider in &providers {
        for fault in Fault::ALL {
            if not_applicable(provider, fault) {
                continue;
            }
            let cell = if fault == Fault::Quota {
                h.run_quota(provider).await
            } else {
                h.run(provider, fault).await
            };
            table.insert((provider.clone(), fault.name()), cell);
        }
    }
    print_table("engine", &providers, &table);
    for ((p, f), cell) in &table {
        let replaced = if cell.replaced {
            " (replaced elsewhere)"
        } else {
            ""
        };
        println!("  {p}/{f}{replaced}: {}", cell.error);
    }
    println!(
        "{} cells in {:.1}s, {} simulator requests",
        table.len(),
        started.elapsed().as_secs_f64(),
        h.sim.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fronts_and_overlay_survive_every_fault_at_their_provider_and_recover() {
    damm_provider::retry::set_time_compression(1000.0);
    let started = Instant::now();
    let mut h = Harness::new().await;
    let ticks = h.converge().await.expect("the fleet converges");
    h.check_inventory().await;
    h.check_entries_cover("start");
    let providers: Vec<String> = h
        .policy
        .fronts
        .providers
        .keys()
        .chain(h.policy.overlay.providers.keys())
        .cloned()
        .collect();
    println!(
        "converged in {ticks} ticks: {} nodes, {} fronts and memberships",
        h.engine.state().nodes.len(),
        h.engine.state().addresses.len()
    );
    let mut table: BTreeMap<(String, &'static str), Cell> = BTreeMap::new();
    for provider in &providers {
        for fault in Fault::ALL {
            // The timeout fault ends as the engine's inventory timeout, which most of the
            // dark, 5xx and 429 cells end in too; the adapter loop times both out.
            if not_applicable(provider, fault) || fault == Fault::Timeout {
                continue;
            }
            let cell = h.run_entry(provider, fault).await;
            table.insert((provider.clone(), fault.name()), cell);
        }
    }
    print_table("engine, entry providers", &providers, &table);
    for ((p, f), cell) in &table {
        println!(
            "  {p}/{f} ({} changes sent while failing): {}",
            cell.tried, cell.error
        );
    }
    println!(
        "{} cells in {:.1}s, {} simulator requests",
        table.len(),
        started.elapsed().as_secs_f64(),
        h.sim.requests()
    );
}

fn print_table(title: &str, providers: &[String], table: &BTreeMap<(String, &str), Cell>) {
    println!(
        "\nfault matrix ({title}): ticks until the breaker opened (401, quota: until the alert was \
         raised) / until recovered"
    );
    print!("{:<14}", "provider");
    for fault in Fault::ALL {
        print!("{:>14}", fault.name());
    }
    println!();
    for p in providers {
        print!("{p:<14}");
        for fault in Fault::ALL {
            match table.get(&(p.clone(), fault.name())) {
                Some(c) => print!("{:>14}", format!("{} / {}", c.to_open, c.to_recover)),
                None => print!("{:>14}", "n/a"),
            }
        }
        println!();
    }
}

/// Cloudflare and Tailscale: each tick lists everything the adapter owns, feeding the
/// breaker as the engine would; a listing either is complete or fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_and_overlay_adapters_fail_cleanly_under_every_fault_and_recover() {
    damm_provider::retry::set_time_compression(1000.0);
    let sim = sim().await;
    let policy = Policy::parse(POLICY, "adapters").unwrap();
    let providers = damm_orchestrator::sim::providers(&sim, &policy)
        .await
        .unwrap();
    let fleet = FleetId::new("faults").unwrap();
    let cloudflare = Arc::clone(&providers["cloudflare"]);
    let tailscale = Arc::clone(&providers["tailscale"]);
    // Three fronts and two tunnels: with one item per page, both listings are paged.
    for i in 0..3 {
        let key = IdempotencyKey::new(format!("front-{i}")).unwrap();
        let spec = FrontSpec {
            labels: Labels::owned(&fleet, &key),
            key,
            name: format!("gw{i}"),
            origin: format!("192.0.2.{}", 10 + i).parse().unwrap(),
        };
        cloudflare
            .cdn_front()
            .unwrap()
            .publish_front(&spec)
            .await
            .unwrap();
    }
    for i in 0..2 {
        let key = IdempotencyKey::new(format!("tunnel-{i}")).unwrap();
        let spec = TunnelSpec {
            labels: Labels::owned(&fleet, &key),
            key,
            name: format!("t{i}"),
            origin: "http://127.0.0.1:8080".to_owned(),
        };
        cloudflare
            .tunnel_term()
            .unwrap()
            .register_tunnel(&spec)
            .await
            .unwrap();
    }
    for i in 0..2 {
        let key = IdempotencyKey::new(format!("member-{i}")).unwrap();
        let spec = OverlaySpec {
            labels: Labels::owned(&fleet, &key),
            key,
            hostname: format!("gw{i}"),
            node: None,
            ephemeral: false,
        };
        tailscale
            .overlay()
            .unwrap()
            .join_overlay(&spec)
            .await
            .unwrap();
    }
    let expected = |name: &str| if name == "cloudflare" { 5 } else { 2 };
    let list = |p: Arc<dyn Provider>| async move {
        let call = async {
            let mut n = 0;
            if let Some(cdn) = p.cdn_front() {
                n += cdn.list_fronts().await?.len();
            }
            if let Some(tunnels) = p.tunnel_term() {
                n += tunnels.list_tunnels().await?.len();
            }
            if let Some(overlay) = p.overlay() {
                n += overlay.list_memberships().await?.len();
            }
            Ok::<usize, damm_provider::Error>(n)
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(damm_provider::Error::new(
                    damm_provider::ErrorKind::Unavailable,
                    p.id(),
                    damm_provider::Operation::ListFronts,
                )
                .with_message(format!("timed out after {CALL_TIMEOUT:?}")))
            })
    };
    // The engine's verdict of a listing, fed to the same book.
    let feed =
        |book: &mut ScoreBook, name: &str, at, result: &Result<usize, damm_provider::Error>| {
            let verdict = Verdict::of(result.as_ref().map(drop), None);
            verdict.record(book, name, at, &policy.scoring.breaker);
        };

    let clock = ManualClock::new(chrono::Utc::now());
    let mut book = ScoreBook::default();
    let names = ["cloudflare".to_owned(), "tailscale".to_owned()];
    let mut table = BTreeMap::new();
    for name in &names {
        let p = Arc::clone(&providers[name.as_str()]);
        assert_eq!(list(Arc::clone(&p)).await.ok(), Some(expected(name)));
        for fault in Fault::ALL {
            if not_applicable(name, fault) {
                continue; // Tailscale's device and key lists are not paged.
            }
            sim.set_faults(api(name), fault.faults());
            let mut to_open = None;
            let mut error = String::new();
            for t in 1..=MAX_TO_OPEN {
                for other in &names {
                    let result = list(Arc::clone(&providers[other.as_str()])).await;
                    match &result {
                        Ok(n) if other == name => assert_eq!(
                            *n,
                            expected(name),
                            "{name}/{}: never truncated",
                            fault.name()
                        ),
                        Err(e) if other == name => error = e.to_string(),
                        _ => assert_eq!(
                            result.as_ref().ok(),
                            Some(&expected(other)),
                            "{other} is unaffected: {result:?}"
                        ),
                    }
                    feed(&mut book, other, clock.now(), &result);
                }
                clock.advance(Duration::from_secs(60));
                let alerted = book.alert(name).map(|a| a.kind.as_str());
                if book.is_dark(name) || (fault.alert().is_some() && alerted == fault.alert()) {
                    to_open = Some(t);
                    break;
                }
            }
            let dark: Vec<_> = names.iter().filter(|n| book.is_dark(n)).collect();
            let expected_dark = if fault.alert().is_some() {
                vec![]
            } else {
                vec![name]
            };
            assert_eq!(
                dark,
                expected_dark,
                "{name}/{}: only its breaker (none for an alert)",
                fault.name()
            );
            let alerted: Vec<_> = names.iter().filter(|n| book.alert(n).is_some()).collect();
            let expected_alerted = if fault.alert().is_some() {
                vec![name]
            } else {
                vec![]
            };
            assert_eq!(alerted, expected_alerted, "{name}/{}: alerts", fault.name());
            let to_open = to_open.unwrap();
            sim.clear_faults(api(name));
            let mut to_recover = None;
            for t in 1..=MAX_TO_RECOVER {
                let result = list(Arc::clone(&p)).await;
                feed(&mut book, name, clock.now(), &result);
                clock.advance(Duration::from_secs(60));
                if !book.is_dark(name) && book.alert(name).is_none() {
                    assert_eq!(
                        result.ok(),
                        Some(expected(name)),
                        "{name}: all there, once each"
                    );
                    to_recover = Some(t);
                    break;
                }
            }
            let to_recover =
                to_recover.unwrap_or_else(|| panic!("{name}/{}: the breaker closes", fault.name()));
            table.insert(
                (name.clone(), fault.name()),
                Cell {
                    to_open,
                    to_recover,
                    error,
                    replaced: false,
                    tried: 0,
                },
            );
        }
    }
    print_table("adapter loop", &names, &table);
    for ((p, f), cell) in &table {
        println!("  {p}/{f}: {}", cell.error);
    }
}
