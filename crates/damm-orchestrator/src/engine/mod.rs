//! The tick: inventory and probes → reconcile with state → score → plan → journaled apply →
//! persist. The thin shell around `damm-fleet`'s pure planner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use damm_fleet::{Action, AddressKind, Fleet, Mode, Plan, Policy, Scores, Status};
use damm_provider::{
    AddressSpec, EgressIp, EgressIpRef, Front, FrontRef, FrontSpec, Frontdoor, FrontdoorRef,
    HealthStatus, IdempotencyKey, Labels, MembershipRef, Node, NodeFilter, NodeRef, NodeSpec,
    NodeState, OverlayMembership, OverlaySpec, Provider, SecretString, Target,
};
use futures::StreamExt as _;
use futures::future::join_all;
use tracing::{debug, error, info, warn};

use crate::publish::{Keys, Sink, build_catalog, write_catalog};
use crate::state::{AddressRecord, NodeRecord, Phase, State, StateStore, TickSummary};

use self::alerts::{AlertChange, ProbeTally, Verdict};

pub mod alerts;
mod apply;
pub mod metrics;
mod reconcile;

/// Where the time comes from (tests and the demo compress it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn wall_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Where in an apply a [`CrashHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The intents are durable; no adapter has been called.
    IntentsDurable,
    /// A phase's adapter calls returned; nothing of their answers is recorded yet.
    CallsReturned,
}

/// Crash injection for tests: return an error to stop the tick right there, with nothing
/// more written, as a `kill -9` would.
pub type CrashHook = Arc<dyn Fn(Stage, &State) -> anyhow::Result<()> + Send + Sync>;

/// Tunables of the shell.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timeout of each health probe.
    pub probe_timeout: Duration,
    /// Probes in flight at once.
    pub probe_concurrency: usize,
    /// Timeout of each inventory listing and mutating call.
    pub call_timeout: Duration,
    /// Mutating calls in flight at once.
    pub apply_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probe_timeout: Duration::from_secs(5),
            probe_concurrency: 256,
            call_timeout: Duration::from_secs(60),
            apply_concurrency: 16,
        }
    }
}

/// One provider's inventory.
#[derive(Debug, Default)]
struct Inventory {
    nodes: Vec<Node>,
    frontdoors: Option<Vec<Frontdoor>>,
    egress_ips: Option<Vec<EgressIp>>,
    fronts: Option<Vec<Front>>,
    memberships: Option<Vec<OverlayMembership>>,
}

/// What one tick did.
#[derive(Debug, Clone)]
pub struct TickReport {
    /// The plan it made.
    pub plan: Plan,
    /// The numbers.
    pub summary: TickSummary,
    /// The scores at the end of the tick.
    pub scores: Scores,
    /// The catalog it published, if it publishes.
    pub catalog: Option<damm_catalog::Catalog>,
    /// Per overlay provider, the catalog for that overlay's clients: the public paths and
    /// the overlay paths (overlay addresses go only to clients of that overlay).
    pub overlay_catalogs: BTreeMap<String, damm_catalog::Catalog>,
}

/// The orchestrator: policy, providers, state.
pub struct Engine {
    policy: Policy,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    store: Box<dyn StateStore>,
    state: State,
    clock: Clock,
    options: Options,
    crash_hook: Option<CrashHook>,
    publisher: Option<(Arc<Keys>, Sink)>,
    /// How new cloud gateways install and start the agent.
    bootstrap: Option<crate::bootstrap::Bootstrap>,
    /// The proven-failover record behind the catalog's `validated_for`.
    validated: Option<std::path::PathBuf>,
    metrics: metrics::Metrics,
    /// Overlay auth keys minted for gateways that have not joined yet, by gateway: held in
    /// memory only (never in state, logs or Debug), for the gateway's config.
    /// By (overlay provider, gateway): a gateway joins every overlay with a key of each.
    overlay_keys: BTreeMap<(String, IdempotencyKey), SecretString>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("fleet", &self.state.fleet)
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `providers` (keyed by policy provider name), with state from `store`.
    pub fn new(
        policy: Policy,
        providers: BTreeMap<String, Arc<dyn Provider>>,
        mut store: Box<dyn StateStore>,
        clock: Clock,
        options: Options,
    ) -> anyhow::Result<Engine> {
        let state = match store.load()? {
            Some(state) if state.fleet != policy.fleet.id => anyhow::bail!(
                "{} holds fleet `{}`, but the policy's [fleet] id is `{}`",
                store.describe(),
                state.fleet,
                policy.fleet.id
            ),
            Some(state) => state,
            None => State::new(policy.fleet.id.clone()),
        };
        Ok(Engine {
            policy,
            providers,
            store,
            state,
            clock,
            options,
            crash_hook: None,
            publisher: None,
            bootstrap: None,
            validated: None,
            metrics: metrics::Metrics::default(),
            overlay_keys: BTreeMap::new(),
        })
    }

    /// Installs the crash-injection hook.
    pub fn set_crash_hook(&mut self, hook: CrashHook) {
        self.crash_hook = Some(hook);
    }

    /// Publishes the signed catalog to `sink` after every persisted tick, and bootstraps new
    /// gateways with their derived WireGuard keys.
    pub fn set_publisher(&mut self, keys: Arc<Keys>, sink: Sink) {
        self.publisher = Some((keys, sink));
    }

    /// Runs the ticks in `mode`, whatever the policy says (`damm serve --mode`).
    pub fn set_mode(&mut self, mode: Mode) {
        self.policy.fleet.mode = mode;
    }

    /// Gives new gateways a full bootstrap (binary, unit, orchestrator URL, credential);
    /// without it their user-data holds only the WireGuard key and an agent must be
    /// installed on the image by other means.
    pub fn set_bootstrap(&mut self, bootstrap: crate::bootstrap::Bootstrap) {
        self.bootstrap = Some(bootstrap);
    }

    /// Reads the proven-failover record from `path` (see [`crate::validated`]) every time
    /// a catalog is published; without it, `validated_for` is empty.
    pub fn set_validated(&mut self, path: std::path::PathBuf) {
        self.validated = Some(path);
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, to change between ticks (enrollment, client reports); persisted by the
    /// next tick or [`Engine::save`].
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Persists the state now.
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.store.save(&mut self.state)
    }

    /// The catalog signing keys, when the engine publishes.
    pub fn keys(&self) -> Option<&Arc<Keys>> {
        self.publisher.as_ref().map(|(keys, _)| keys)
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The providers.
    pub fn providers(&self) -> &BTreeMap<String, Arc<dyn Provider>> {
        &self.providers
    }

    /// The counters and histograms the ticks feed (clones share them).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The overlay auth key minted for `gateway`, until it joins (memory only: a restart
    /// forgets it and the gateway's membership is minted again).
    pub fn overlay_key(&self, overlay: &str, gateway: &IdempotencyKey) -> Option<&SecretString> {
        self.overlay_keys
            .get(&(overlay.to_owned(), gateway.clone()))
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// One tick. `Mode::Plan` never calls a mutating adapter method; `persist` false keeps
    /// the state file untouched (`damm plan`).
    pub async fn tick(&mut self, mode: Mode, persist: bool) -> anyhow::Result<TickReport> {
        let now = self.now();
        let mut summary = TickSummary {
            at: Some(now),
            number: self.state.orchestrator.last_tick.number + 1,
            ..TickSummary::default()
        };
        let started = Instant::now();
        let (inventories, failures) = split_failures(self.inventory().await);
        summary.inventory_ms = started.elapsed().as_millis() as u64;
        let gc = self.reconcile(&inventories, now, &mut summary);
        self.probe(&inventories, &failures, now, &mut summary).await;
        summary.probe_ms = started.elapsed().as_millis() as u64;
        let scores = self.state.scores.snapshot(now, &self.policy.scoring);
        let plan = damm_fleet::plan(&self.fleet(), &self.policy, &scores, now);
        summary.planned = plan.actions.len() as u64;
        for refusal in &plan.refused {
            info!(rule = %refusal.rule, "refused: {} ({})", refusal.wanted, refusal.detail);
        }
        if mode == Mode::Apply {
            let mut actions = plan.actions.clone();
            actions.extend(gc);
            self.state.orchestrator.next_serial = plan.next_serial;
            if !actions.is_empty() {
                let applying = Instant::now();
                self.apply(actions, now, &mut summary).await?;
                self.metrics.apply(applying.elapsed());
            }
        }
        self.state.orchestrator.desired_fleet = plan.desired.clone();
        self.state.orchestrator.last_plan = Some(plan.clone());
        // Score what the tick left behind: the catalog lists what is healthy now.
        let scores = self.state.scores.snapshot(now, &self.policy.scoring);
        let mut overlay_catalogs = BTreeMap::new();
        let catalog = match (&self.publisher, persist) {
            (Some((keys, _)), true) => {
                let fleet = self.fleet();
                let top_k = self.policy.paths.top_k as usize;
                let entries = damm_fleet::entries(&fleet, None);
                let paths = damm_fleet::compose(&fleet, &self.policy, &scores, &entries, top_k);
                // A broken record claims nothing; it does not stop the tick.
                let proven = match self.validated.as_deref().map(crate::validated::load) {
                    Some(Ok(record)) => record,
                    Some(Err(e)) => {
                        warn!("validated_for left empty: {e:#}");
                        crate::validated::Record::new()
                    }
                    None => crate::validated::Record::new(),
                };
                // The version is persisted before the catalog is written: a crash in
                // between skips a number, it never reuses one.
                self.state.orchestrator.catalog_version += 1;
                let version = self.state.orchestrator.catalog_version;
                let validated = crate::validated::validated_for(&proven, &self.state);
                for overlay in self.policy.overlay.providers.keys() {
                    let entries = damm_fleet::entries(&fleet, Some(overlay));
                    let paths = damm_fleet::compose(&fleet, &self.policy, &scores, &entries, top_k);
                    let catalog = build_catalog(
                        &self.state,
                        &self.policy,
                        keys,
                        &paths,
                        validated.clone(),
                        version,
                        now,
                    );
                    overlay_catalogs.insert(overlay.clone(), catalog);
                }
                Some(build_catalog(
                    &self.state,
                    &self.policy,
                    keys,
                    &paths,
                    validated,
                    version,
                    now,
                ))
            }
            _ => None,
        };
        self.state.orchestrator.last_tick = summary.clone();
        crate::enroll::assign_backbone(&mut self.state, &self.policy);
        if persist {
            self.store.save(&mut self.state)?;
        }
        if let (Some(catalog), Some((keys, sink))) = (&catalog, &self.publisher) {
            write_catalog(catalog, keys, sink)?;
            for (overlay, catalog) in &overlay_catalogs {
                write_catalog(catalog, keys, &sink.for_overlay(overlay))?;
            }
        }
        self.metrics.tick(&summary, started.elapsed());
        Ok(TickReport {
            plan,
            summary,
            scores,
            catalog,
            overlay_catalogs,
        })
    }

    /// Lists every provider's fleet resources, concurrently, each under the call timeout.
    async fn inventory(&self) -> BTreeMap<String, Result<Inventory, damm_provider::Error>> {
        let timeout = self.options.call_timeout;
        let calls = self.providers.iter().map(|(name, p)| {
            let p = Arc::clone(p);
            async move {
                let result = tokio::time::timeout(timeout, list_all(p.as_ref()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(damm_provider::Error::new(
                            damm_provider::ErrorKind::Unavailable,
                            p.id(),
                            damm_provider::Operation::ListNodes,
                        )
                        .with_message(format!("inventory timed out after {timeout:?}")))
                    });
                (name.clone(), result)
            }
        });
        join_all(calls).await.into_iter().collect()
    }

    /// Probes every running node at providers whose inventory answered; feeds the scores,
    /// each provider's breaker and its alert.
    async fn probe(
        &mut self,
        inventories: &BTreeMap<String, Result<Inventory, String>>,
        failures: &BTreeMap<String, damm_provider::Error>,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) {
        let timeout = self.options.probe_timeout;
        let mut results: Vec<ProbeResult> = Vec::new();
        let mut targets: Vec<(IdempotencyKey, String, Arc<dyn Provider>, NodeRef)> = Vec::new();
        for (k, n) in &self.state.nodes {
            if n.state != NodeState::Running || !matches!(inventories.get(&n.provider), Some(Ok(_)))
            {
                continue;
            }
            let Some(p) = self.providers.get(&n.provider) else {
                continue;
            };
            if p.health_in_listing() {
                // Its probe would read back the status this tick's listing just gave
                // (reconcile copied it into the record): running, and seen now.
                let seen = n.last_seen == now;
                results.push(ProbeResult {
                    key: k.clone(),
                    provider: n.provider.clone(),
                    verdict: Ok(Some((seen, None))),
                    call: None,
                });
            } else {
                targets.push((
                    k.clone(),
                    n.provider.clone(),
                    Arc::clone(p),
                    NodeRef::new(p.id(), n.id.clone()),
                ));
            }
        }
        let probed: Vec<ProbeResult> = futures::stream::iter(targets)
            .map(|(key, provider, p, node)| async move {
                let started = Instant::now();
                let result =
                    tokio::time::timeout(timeout, p.probe_health(&Target::Node(node))).await;
                let took = started.elapsed();
                let verdict = match result {
                    Ok(Ok(signal)) => Ok(match signal.status {
                        HealthStatus::Healthy | HealthStatus::Degraded => {
                            Some((true, signal.rtt.or(Some(took))))
                        }
                        HealthStatus::Down => Some((false, None)),
                        HealthStatus::Unknown => None,
                    }),
                    // Refused credentials or quota say nothing of the node itself.
                    Ok(Err(e)) if alerts::is_alert(e.kind()) => Err(e),
                    Ok(Err(_)) | Err(_) => Ok(Some((false, None))),
                };
                ProbeResult {
                    key,
                    provider,
                    verdict,
                    call: Some(took),
                }
            })
            .buffer_unordered(self.options.probe_concurrency.max(1))
            .collect()
            .await;
        results.extend(probed);
        let scoring = self.policy.scoring.clone();
        let mut tallies: BTreeMap<String, ProbeTally> = BTreeMap::new();
        for result in results {
            if let Some(took) = result.call {
                self.metrics.probe_call(&result.provider, took);
            }
            let tally = tallies.entry(result.provider.clone()).or_default();
            let (ok, rtt) = match result.verdict {
                Ok(Some(verdict)) => verdict,
                Ok(None) => continue,
                Err(e) => {
                    tally.alert.get_or_insert(e);
                    continue;
                }
            };
            summary.probes += 1;
            tally.probes += 1;
            if !ok {
                summary.probe_failures += 1;
                tally.failed += 1;
            }
            self.metrics.probe(&result.provider, ok);
            let key = result.key;
            self.state
                .scores
                .probe(key.as_str(), now, ok, rtt, &scoring);
            if ok
                && let Some(node) = self.state.nodes.get_mut(&key)
                && node.ready_at.is_none()
            {
                node.ready_at = Some(now);
            }
        }
        // Compute and entry providers alike: a dark CDN's fronts leave the catalog.
        let providers: Vec<String> = self.policy.adapters().map(|(n, _)| n.to_owned()).collect();
        for provider in providers {
            if !inventories.contains_key(&provider) {
                continue;
            }
            let listing = failures.get(&provider).map_or(Ok(()), Err);
            let verdict = Verdict::of(listing, tallies.get(&provider));
            self.judge(&provider, &verdict, now);
        }
    }

    /// Feeds one tick's verdict of `provider` to its breaker and its alert, and tells the
    /// operator when an alert is raised or cleared.
    fn judge(&mut self, provider: &str, verdict: &Verdict, now: DateTime<Utc>) {
        let breaker = &self.policy.scoring.breaker;
        let change = verdict.record(&mut self.state.scores, provider, now, breaker);
        match (verdict, &change) {
            (Verdict::Alert(kind, e), AlertChange::Raised) => {
                let adapter = self
                    .policy
                    .providers
                    .get(provider)
                    .map_or(provider, |p| p.adapter(provider));
                error!(
                    %provider,
                    kind = kind.as_str(),
                    "provider ALERT, not an outage (the provider is not marked dark): {e}. \
                     To fix: {}",
                    alerts::remedy(*kind, provider, adapter)
                );
            }
            (Verdict::Alert(_, e), _) => debug!(%provider, "provider alert persists: {e}"),
            (Verdict::ProbesFailed(e) | Verdict::Outage(e), _) => {
                warn!(%provider, "provider tick failed: {e}");
            }
            (Verdict::Healthy, _) => {}
        }
        if let AlertChange::Cleared(alert) = change {
            info!(%provider, kind = %alert.kind, "provider alert cleared: its API answered");
        }
    }

    /// The fleet as the planner sees it.
    pub fn fleet(&self) -> Fleet {
        self.state.fleet()
    }
}

/// One health verdict: `Ok(None)` when the probe could not tell, `Err` when the provider
/// refused DAMM's credentials or quota; `call` is the probe call's latency.
struct ProbeResult {
    key: IdempotencyKey,
    provider: String,
    verdict: Result<Option<(bool, Option<Duration>)>, damm_provider::Error>,
    call: Option<Duration>,
}

/// Reconciling reads each failed listing as its text; the typed errors are kept aside
/// for the breaker and the alerts.
fn split_failures(
    listings: BTreeMap<String, Result<Inventory, damm_provider::Error>>,
) -> (
    BTreeMap<String, Result<Inventory, String>>,
    BTreeMap<String, damm_provider::Error>,
) {
    let mut failures = BTreeMap::new();
    let inventories = listings
        .into_iter()
        .map(|(name, listing)| {
            let listing = listing.map_err(|e| {
                let text = e.to_string();
                failures.insert(name.clone(), e);
                text
            });
            (name, listing)
        })
        .collect();
    (inventories, failures)
}

async fn list_all(p: &dyn Provider) -> Result<Inventory, damm_provider::Error> {
    let nodes = p.list_nodes(&NodeFilter::all()).await?;
    let frontdoors = match p.ingress() {
        Some(i) if p.compute().is_some() => Some(i.list_frontdoors().await?),
        _ => None,
    };
    let egress_ips = match p.egress() {
        Some(e) if p.compute().is_some() => Some(e.list_egress_ips().await?),
        _ => None,
    };
    let fronts = match p.cdn_front() {
        Some(c) => Some(c.list_fronts().await?),
        None => None,
    };
    let memberships = match p.overlay() {
        Some(o) => Some(o.list_memberships().await?),
        None => None,
    };
    Ok(Inventory {
        nodes,
        frontdoors,
        egress_ips,
        fronts,
        memberships,
    })
}

/// A clock that moves only when told: the demo and scenario runs compress time with it.
#[derive(Debug)]
pub struct ManualClock {
    base: DateTime<Utc>,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// Starts at `base`.
    pub fn new(base: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base,
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.base
            + chrono::TimeDelta::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
            )
    }

    /// As an engine clock.
    pub fn clock(self: &Arc<Self>) -> Clock {
        let me = Arc::clone(self);
        Arc::new(move || me.now())
    }
}

/// Cloud-init for a new gateway: its WireGuard private key (derived, never stored) and,
/// with a [`Bootstrap`](crate::bootstrap::Bootstrap), the agent binary, unit, trusted key
/// and config credential. User-data is redacted in Debug output and never serialised.
fn gateway_user_data(
    keys: &Keys,
    bootstrap: Option<&crate::bootstrap::Bootstrap>,
    key: &IdempotencyKey,
) -> damm_provider::UserData {
    use damm_provider::ExposeSecret as _;
    let pair = keys.gateway(key);
    let private_key = pair.private_key().expose_base64();
    match bootstrap {
        Some(bootstrap) => {
            let token = keys.gateway_token(key.as_str());
            bootstrap.user_data(&crate::bootstrap::GatewaySecrets {
                key,
                wg_private_key: private_key.as_ref(),
                token: token.expose_secret(),
            })
        }
        None => damm_provider::UserData::new(format!(
            "#cloud-config\nwrite_files:\n  - path: /etc/damm/wg.key\n    permissions: '0600'\n    content: {private_key}\nruncmd:\n  - [systemctl, enable, --now, damm-agent]\n",
        )),
    }
}
