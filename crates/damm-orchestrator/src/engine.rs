//! The tick: inventory and probes → reconcile with state → score → plan → journaled apply →
//! persist. The thin shell around `damm-fleet`'s pure planner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use damm_fleet::{Action, AddressKind, Fleet, Mode, Plan, Policy, Scores, Status};
use damm_provider::{
    AddressSpec, EgressIp, EgressIpRef, Frontdoor, FrontdoorRef, HealthStatus, IdempotencyKey,
    Labels, Node, NodeFilter, NodeRef, NodeSpec, NodeState, Provider, Target,
};
use futures::StreamExt as _;
use futures::future::join_all;
use tracing::{info, warn};

use crate::publish::{Keys, Sink, build_catalog, write_catalog};
use crate::state::{AddressRecord, NodeRecord, Phase, State, StateStore, TickSummary};

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
    /// The proven-failover record behind the catalog's `validated_for`.
    validated: Option<std::path::PathBuf>,
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
            validated: None,
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
        let inventories = self.inventory().await;
        summary.inventory_ms = started.elapsed().as_millis() as u64;
        let gc = self.reconcile(&inventories, now, &mut summary);
        self.probe(&inventories, now, &mut summary).await;
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
            self.apply(actions, now, &mut summary).await?;
        }
        self.state.orchestrator.desired_fleet = plan.desired.clone();
        self.state.orchestrator.last_plan = Some(plan.clone());
        // Score what the tick left behind: the catalog lists what is healthy now.
        let scores = self.state.scores.snapshot(now, &self.policy.scoring);
        let catalog = match (&self.publisher, persist) {
            (Some((keys, _)), true) => {
                let paths = damm_fleet::compose(
                    &self.fleet(),
                    &self.policy,
                    &scores,
                    &[],
                    self.policy.paths.top_k as usize,
                );
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
                Some(build_catalog(
                    &self.state,
                    &self.policy,
                    keys,
                    &paths,
                    crate::validated::validated_for(&proven, &self.state),
                    self.state.orchestrator.catalog_version,
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
        }
        Ok(TickReport {
            plan,
            summary,
            scores,
            catalog,
        })
    }

    /// Lists every provider's fleet resources, concurrently, each under the call timeout.
    async fn inventory(&self) -> BTreeMap<String, Result<Inventory, String>> {
        let timeout = self.options.call_timeout;
        let calls = self.providers.iter().map(|(name, p)| {
            let p = Arc::clone(p);
            async move {
                let result = tokio::time::timeout(timeout, list_all(p.as_ref()))
                    .await
                    .unwrap_or_else(|_| Err(format!("inventory timed out after {timeout:?}")));
                (name.clone(), result)
            }
        });
        join_all(calls).await.into_iter().collect()
    }

    /// Merges inventories into state: updates what is known, adopts what the journal
    /// explains, forgets what vanished, and returns the orphans due for collection.
    fn reconcile(
        &mut self,
        inventories: &BTreeMap<String, Result<Inventory, String>>,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) -> Vec<Action> {
        let fleet = self.state.fleet.clone();
        let grace = self.policy.lifecycle.orphan_grace.chrono();
        let mut gc = Vec::new();
        let mut seen_orphans = BTreeSet::new();
        // Intents still open at the start of a tick are leftovers of a crash.
        let open: Vec<u64> = self
            .state
            .journal
            .iter()
            .filter(|e| e.phase == Phase::Intent)
            .map(|e| e.seq)
            .collect();
        for (provider, result) in inventories {
            let inventory = match result {
                Ok(inventory) => inventory,
                Err(error) => {
                    summary
                        .provider_errors
                        .insert(provider.clone(), error.clone());
                    continue;
                }
            };
            let mut seen = BTreeSet::new();
            for node in &inventory.nodes {
                if !node.labels.is_owned_by(&fleet) {
                    continue; // Unlabelled: never ours to touch.
                }
                // Hand-provisioned hosts (a provider without compute, such as static-host)
                // carry the fleet label but no key: DAMM never created them. They are
                // adopted live under a key made of the provider and the host id.
                let hand_provisioned = node.key().is_none()
                    && self
                        .providers
                        .get(provider)
                        .is_some_and(|p| p.compute().is_none());
                let key = match node.key() {
                    Some(key) => key,
                    None if hand_provisioned => {
                        match IdempotencyKey::new(format!("{provider}-{}", node.reference.id)) {
                            Ok(key) => key,
                            Err(e) => {
                                warn!(%provider, "cannot adopt a hand-provisioned host: {e}");
                                continue;
                            }
                        }
                    }
                    None => continue,
                };
                seen.insert(key.clone());
                if hand_provisioned && !self.state.nodes.contains_key(&key) {
                    info!(%provider, %key, "adopting a hand-provisioned host");
                    self.state.nodes.insert(
                        key.clone(),
                        NodeRecord {
                            provider: provider.clone(),
                            id: node.reference.id.clone(),
                            region: node.region.clone(),
                            role: node
                                .roles
                                .first()
                                .copied()
                                .unwrap_or(damm_provider::NodeRole::Ingress),
                            status: Status::Active,
                            status_since: now,
                            state: node.state,
                            created_at: now,
                            addresses: node.addresses.clone(),
                            wireguard_port: node.wireguard_port,
                            last_seen: now,
                            ready_at: None,
                        },
                    );
                    continue;
                }
                if let Some(record) = self.state.nodes.get_mut(&key) {
                    if &record.provider == provider {
                        record.id = node.reference.id.clone();
                        record.state = node.state;
                        record.addresses = node.addresses.clone();
                        record.wireguard_port = node.wireguard_port;
                        record.last_seen = now;
                    }
                    continue;
                }
                if let Some((seq, region, role, spare)) = self.journaled_create(provider, &key) {
                    info!(%provider, %key, "adopting a node the journal created");
                    self.state.nodes.insert(
                        key.clone(),
                        NodeRecord {
                            provider: provider.clone(),
                            id: node.reference.id.clone(),
                            region,
                            role,
                            status: if spare { Status::Spare } else { Status::Active },
                            status_since: now,
                            state: node.state,
                            created_at: now,
                            addresses: node.addresses.clone(),
                            wireguard_port: node.wireguard_port,
                            last_seen: now,
                            ready_at: None,
                        },
                    );
                    self.state.settle(seq, Phase::Done);
                    summary.adopted += 1;
                    continue;
                }
                let orphan = format!("{provider}/{key}");
                let first = *self.state.orphans.entry(orphan.clone()).or_insert(now);
                seen_orphans.insert(orphan);
                if now - first >= grace {
                    let role = node
                        .roles
                        .first()
                        .copied()
                        .unwrap_or(damm_provider::NodeRole::Ingress);
                    gc.push(Action::Retire {
                        key,
                        provider: provider.clone(),
                        region: node.region.clone(),
                        role,
                        reason: format!(
                            "orphan: labelled for this fleet, no journal entry, seen since {first}"
                        ),
                    });
                }
            }
            let vanished: Vec<IdempotencyKey> = self
                .state
                .nodes
                .iter()
                .filter(|(k, r)| &r.provider == provider && !seen.contains(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in vanished {
                warn!(%provider, %key, "node vanished from the inventory; forgetting it");
                self.state.nodes.remove(&key);
                self.state.scores.forget(key.as_str());
            }
            self.reconcile_addresses(provider, inventory, &fleet);
        }
        // Orphans that disappeared on their own, at providers that answered.
        self.state.orphans.retain(|k, _| {
            seen_orphans.contains(k)
                || k.split('/')
                    .next()
                    .is_some_and(|p| !matches!(inventories.get(p), Some(Ok(_))))
        });
        // Crash leftovers that inventory did not explain: abandoned; adopted if they appear.
        for seq in open {
            if let Some(e) = self.state.journal.iter_mut().find(|e| e.seq == seq)
                && e.phase == Phase::Intent
            {
                let explained = match &e.action {
                    Action::Retire { key, .. } => !self.state.nodes.contains_key(key),
                    Action::Release { key, .. } => !self.state.addresses.contains_key(key),
                    _ => false,
                };
                e.phase = if explained {
                    Phase::Done
                } else {
                    Phase::Abandoned
                };
            }
        }
        gc
    }

    /// The newest create journaled for `key` at `provider`: its sequence number, region,
    /// role and whether it was a spare.
    fn journaled_create(
        &self,
        provider: &str,
        key: &IdempotencyKey,
    ) -> Option<(u64, damm_provider::Region, damm_provider::NodeRole, bool)> {
        self.state
            .journal
            .iter()
            .rev()
            .find_map(|e| match &e.action {
                Action::Create {
                    key: k,
                    provider: p,
                    region,
                    role,
                    spare,
                    ..
                } if k == key && p == provider => Some((e.seq, region.clone(), *role, *spare)),
                _ => None,
            })
    }

    fn reconcile_addresses(
        &mut self,
        provider: &str,
        inventory: &Inventory,
        fleet: &damm_provider::FleetId,
    ) {
        let node_key = |r: &Option<NodeRef>, nodes: &BTreeMap<IdempotencyKey, NodeRecord>| {
            r.as_ref().and_then(|r| {
                nodes
                    .iter()
                    .find(|(_, n)| n.provider == provider && n.id == r.id)
                    .map(|(k, _)| k.clone())
            })
        };
        let mut listed: Vec<(IdempotencyKey, AddressRecord)> = Vec::new();
        let mut kinds = Vec::new();
        if let Some(fds) = &inventory.frontdoors {
            kinds.push(AddressKind::Frontdoor);
            for fd in fds.iter().filter(|f| f.labels.is_owned_by(fleet)) {
                if let Some(key) = fd.labels.key() {
                    listed.push((
                        key,
                        AddressRecord {
                            provider: provider.to_owned(),
                            id: fd.reference.id.clone(),
                            region: fd.region.clone(),
                            kind: AddressKind::Frontdoor,
                            node: node_key(&fd.node, &self.state.nodes),
                            address: Some(fd.address),
                        },
                    ));
                }
            }
        }
        if let Some(ips) = &inventory.egress_ips {
            kinds.push(AddressKind::EgressIp);
            for ip in ips.iter().filter(|f| f.labels.is_owned_by(fleet)) {
                if let Some(key) = ip.labels.key() {
                    listed.push((
                        key,
                        AddressRecord {
                            provider: provider.to_owned(),
                            id: ip.reference.id.clone(),
                            region: ip.region.clone(),
                            kind: AddressKind::EgressIp,
                            node: node_key(&ip.node, &self.state.nodes),
                            address: Some(ip.address),
                        },
                    ));
                }
            }
        }
        let listed_keys: BTreeSet<IdempotencyKey> = listed.iter().map(|(k, _)| k.clone()).collect();
        self.state.addresses.retain(|k, a| {
            a.provider != provider || !kinds.contains(&a.kind) || listed_keys.contains(k)
        });
        for (key, mut record) in listed {
            // The inventory may not say which node (or say it by id only): keep what we knew.
            if record.node.is_none()
                && let Some(old) = self.state.addresses.get(&key)
            {
                record.node = old.node.clone();
            }
            self.state.addresses.insert(key, record);
        }
    }

    /// Probes every running node at providers whose inventory answered; feeds the scores
    /// and each provider's breaker.
    async fn probe(
        &mut self,
        inventories: &BTreeMap<String, Result<Inventory, String>>,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) {
        let timeout = self.options.probe_timeout;
        let mut listed = Vec::new();
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
                listed.push((k.clone(), n.provider.clone(), Some((seen, None))));
            } else {
                targets.push((
                    k.clone(),
                    n.provider.clone(),
                    Arc::clone(p),
                    NodeRef::new(p.id(), n.id.clone()),
                ));
            }
        }
        let mut results: Vec<_> = futures::stream::iter(targets)
            .map(|(key, provider, p, node)| async move {
                let started = Instant::now();
                let result =
                    tokio::time::timeout(timeout, p.probe_health(&Target::Node(node))).await;
                let verdict = match result {
                    Ok(Ok(signal)) => match signal.status {
                        HealthStatus::Healthy | HealthStatus::Degraded => {
                            Some((true, signal.rtt.or(Some(started.elapsed()))))
                        }
                        HealthStatus::Down => Some((false, None)),
                        HealthStatus::Unknown => None,
                    },
                    Ok(Err(_)) | Err(_) => Some((false, None)),
                };
                (key, provider, verdict)
            })
            .buffer_unordered(self.options.probe_concurrency.max(1))
            .collect()
            .await;
        results.extend(listed);
        let scoring = self.policy.scoring.clone();
        let mut per_provider: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (key, provider, verdict) in results {
            let Some((ok, rtt)) = verdict else { continue };
            summary.probes += 1;
            let e = per_provider.entry(provider).or_default();
            e.0 += 1;
            if !ok {
                summary.probe_failures += 1;
                e.1 += 1;
            }
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
        for provider in self.policy.providers.keys() {
            let outcome = match inventories.get(provider) {
                None => continue,
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(_)) => match per_provider.get(provider) {
                    Some(&(n, failed)) if n >= 2 && failed == n => {
                        Err(format!("every probe failed ({n} nodes)"))
                    }
                    _ => Ok(()),
                },
            };
            if let Err(e) = &outcome {
                warn!(%provider, "provider tick failed: {e}");
            }
            self.state
                .scores
                .provider_tick(provider, now, outcome, &scoring.breaker);
        }
    }

    /// The fleet as the planner sees it.
    pub fn fleet(&self) -> Fleet {
        self.state.fleet()
    }

    /// Journals every action, makes the intents durable, then calls the adapters phase by
    /// phase (releases, drains and promotions, retires, creates, allocations), recording
    /// each answer, and persists again.
    async fn apply(
        &mut self,
        actions: Vec<Action>,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) -> anyhow::Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let mut entries: Vec<(u64, Action)> = actions
            .into_iter()
            .map(|a| (self.state.intend(a.clone(), now), a))
            .collect();
        self.store
            .save(&mut self.state)
            .context("persisting the apply intents")?;
        if let Some(hook) = &self.crash_hook {
            hook(Stage::IntentsDurable, &self.state)?;
        }
        entries.sort_by_key(|(seq, a)| (phase_of(a), *seq));
        let mut start = 0;
        while start < entries.len() {
            let phase = phase_of(&entries[start].1);
            let end = entries[start..]
                .iter()
                .position(|(_, a)| phase_of(a) != phase)
                .map_or(entries.len(), |p| start + p);
            let calls: Vec<_> = entries[start..end]
                .iter()
                .map(|(seq, action)| {
                    let call = self.call(action);
                    let seq = *seq;
                    async move { (seq, call.await) }
                })
                .collect();
            let results: Vec<(u64, Result<Outcome, String>)> = futures::stream::iter(calls)
                .buffer_unordered(self.options.apply_concurrency.max(1))
                .collect()
                .await;
            if let Some(hook) = &self.crash_hook {
                hook(Stage::CallsReturned, &self.state)?;
            }
            for (seq, result) in results {
                let action = entries
                    .iter()
                    .find(|(s, _)| *s == seq)
                    .map(|(_, a)| a.clone())
                    .expect("every result has its entry");
                match result {
                    Ok(outcome) => {
                        info!("applied: {}", action.describe());
                        self.record(&action, outcome, now);
                        self.state.settle(seq, Phase::Done);
                        summary.applied += 1;
                        if matches!(&action, Action::Retire { reason, .. } if reason.starts_with("orphan"))
                        {
                            summary.collected += 1;
                        }
                    }
                    Err(error) => {
                        warn!("failed: {}: {error}", action.describe());
                        self.state.settle(seq, Phase::Failed { error });
                        summary.failed += 1;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// The adapter call for one action, as a future that owns what it needs.
    fn call(
        &self,
        action: &Action,
    ) -> impl std::future::Future<Output = Result<Outcome, String>> + Send + 'static {
        let provider = self.providers.get(action.provider()).cloned();
        let timeout = self.options.call_timeout;
        let fleet = self.state.fleet.clone();
        let action = action.clone();
        let node_ref = |key: &IdempotencyKey| {
            let p = self.providers.get(action.provider())?;
            self.state
                .nodes
                .get(key)
                .map(|n| NodeRef::new(p.id(), n.id.clone()))
        };
        let target = match &action {
            // An orphan is not in state: `execute` finds it by its key.
            Action::Drain { key, .. } | Action::Retire { key, .. } => node_ref(key),
            Action::Allocate { node, .. } => node_ref(node),
            _ => None,
        };
        let address = match &action {
            Action::Release { key, .. } => self.state.addresses.get(key).map(|a| a.id.clone()),
            _ => None,
        };
        let user_data = match (&action, &self.publisher) {
            (Action::Create { key, .. }, Some((keys, _))) => Some(gateway_user_data(keys, key)),
            _ => None,
        };
        async move {
            let Some(p) = provider else {
                return Err(format!("no adapter for provider `{}`", action.provider()));
            };
            let work = execute(p, fleet, action, target, address, user_data);
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
        }
    }

    fn record(&mut self, action: &Action, outcome: Outcome, now: DateTime<Utc>) {
        match (action, outcome) {
            (
                Action::Create {
                    key,
                    provider,
                    region,
                    role,
                    spare,
                    ..
                },
                Outcome::Created(node),
            ) => {
                self.state.nodes.insert(
                    key.clone(),
                    NodeRecord {
                        provider: provider.clone(),
                        id: node.reference.id.clone(),
                        region: region.clone(),
                        role: *role,
                        status: if *spare {
                            Status::Spare
                        } else {
                            Status::Active
                        },
                        status_since: now,
                        state: node.state,
                        created_at: now,
                        addresses: node.addresses.clone(),
                        wireguard_port: node.wireguard_port,
                        last_seen: now,
                        ready_at: None,
                    },
                );
            }
            (Action::Promote { key, .. }, _) => self.set_status(key, Status::Active, now),
            (Action::Drain { key, .. }, _) => self.set_status(key, Status::Draining, now),
            (Action::Retire { key, provider, .. }, _) => {
                self.state.nodes.remove(key);
                self.state.scores.forget(key.as_str());
                self.state.orphans.remove(&format!("{provider}/{key}"));
            }
            (
                Action::Allocate {
                    key,
                    kind,
                    node,
                    provider,
                    region,
                },
                Outcome::Allocated(id, address),
            ) => {
                self.state.addresses.insert(
                    key.clone(),
                    AddressRecord {
                        provider: provider.clone(),
                        id,
                        region: region.clone(),
                        kind: *kind,
                        node: Some(node.clone()),
                        address: Some(address),
                    },
                );
            }
            (Action::Release { key, .. }, _) => {
                self.state.addresses.remove(key);
            }
            _ => {}
        }
    }

    fn set_status(&mut self, key: &IdempotencyKey, status: Status, now: DateTime<Utc>) {
        if let Some(n) = self.state.nodes.get_mut(key) {
            n.status = status;
            n.status_since = now;
        }
    }
}

/// What an adapter call gave back.
#[derive(Debug)]
enum Outcome {
    Created(Node),
    Allocated(String, std::net::IpAddr),
    Done,
}

fn phase_of(action: &Action) -> u8 {
    match action {
        Action::Release { .. } => 0,
        Action::Drain { .. } | Action::Promote { .. } => 1,
        Action::Retire { .. } => 2,
        Action::Create { .. } => 3,
        Action::Allocate { .. } => 4,
    }
}

async fn execute(
    p: Arc<dyn Provider>,
    fleet: damm_provider::FleetId,
    action: Action,
    target: Option<NodeRef>,
    address: Option<String>,
    user_data: Option<damm_provider::UserData>,
) -> Result<Outcome, String> {
    let err = |e: damm_provider::Error| e.to_string();
    match action {
        Action::Create {
            key,
            region,
            role,
            profile,
            ..
        } => {
            let compute = p
                .compute()
                .ok_or("the provider has no compute capability")?;
            let mut spec = NodeSpec::new(&fleet, key, region, role, profile);
            spec.user_data = user_data;
            compute
                .create_node(&spec)
                .await
                .map(Outcome::Created)
                .map_err(err)
        }
        Action::Promote { .. } => Ok(Outcome::Done),
        Action::Drain { key, .. } => {
            let node = match target {
                Some(node) => node,
                None => find_by_key(p.as_ref(), &key).await?,
            };
            match p.compute() {
                Some(compute) => compute
                    .drain_node(&node)
                    .await
                    .map(|()| Outcome::Done)
                    .map_err(err),
                None => Ok(Outcome::Done),
            }
        }
        Action::Retire { key, .. } => {
            let node = match target {
                Some(node) => node,
                None => find_by_key(p.as_ref(), &key).await?,
            };
            let compute = p
                .compute()
                .ok_or("the provider has no compute capability")?;
            compute
                .retire_node(&node)
                .await
                .map(|()| Outcome::Done)
                .map_err(err)
        }
        Action::Allocate {
            key, kind, region, ..
        } => {
            let node = target.ok_or("the node is not in state")?;
            let spec = AddressSpec {
                labels: Labels::owned(&fleet, &key),
                key,
                region,
                node: Some(node),
            };
            match kind {
                AddressKind::Frontdoor => {
                    let ingress = p
                        .ingress()
                        .ok_or("the provider has no ingress capability")?;
                    let fd = ingress
                        .allocate_ingress_frontdoor(&spec)
                        .await
                        .map_err(err)?;
                    Ok(Outcome::Allocated(fd.reference.id, fd.address))
                }
                AddressKind::EgressIp => {
                    let egress = p.egress().ok_or("the provider has no egress capability")?;
                    let ip = egress.allocate_egress_ip(&spec).await.map_err(err)?;
                    Ok(Outcome::Allocated(ip.reference.id, ip.address))
                }
            }
        }
        Action::Release { kind, .. } => {
            let id = address.ok_or("the address is not in state")?;
            match kind {
                AddressKind::Frontdoor => {
                    let ingress = p
                        .ingress()
                        .ok_or("the provider has no ingress capability")?;
                    ingress
                        .release_ingress_frontdoor(&FrontdoorRef::new(p.id(), id))
                        .await
                        .map(|()| Outcome::Done)
                        .map_err(err)
                }
                AddressKind::EgressIp => {
                    let egress = p.egress().ok_or("the provider has no egress capability")?;
                    egress
                        .release_egress_ip(&EgressIpRef::new(p.id(), id))
                        .await
                        .map(|()| Outcome::Done)
                        .map_err(err)
                }
            }
        }
    }
}

async fn find_by_key(p: &dyn Provider, key: &IdempotencyKey) -> Result<NodeRef, String> {
    let nodes = p
        .list_nodes(&NodeFilter::all())
        .await
        .map_err(|e| e.to_string())?;
    nodes
        .into_iter()
        .find(|n| n.key().as_ref() == Some(key))
        .map(|n| n.reference)
        .ok_or_else(|| format!("no node with key {key}"))
}

async fn list_all(p: &dyn Provider) -> Result<Inventory, String> {
    let nodes = p
        .list_nodes(&NodeFilter::all())
        .await
        .map_err(|e| e.to_string())?;
    let frontdoors = match p.ingress() {
        Some(i) if p.compute().is_some() => {
            Some(i.list_frontdoors().await.map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let egress_ips = match p.egress() {
        Some(e) if p.compute().is_some() => {
            Some(e.list_egress_ips().await.map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    Ok(Inventory {
        nodes,
        frontdoors,
        egress_ips,
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

/// Cloud-init for a new gateway: its WireGuard private key (derived, never stored) and the
/// agent that pulls its signed configuration. User-data is redacted in Debug output and
/// never serialised.
fn gateway_user_data(keys: &Keys, key: &IdempotencyKey) -> damm_provider::UserData {
    let pair = keys.gateway(key);
    damm_provider::UserData::new(format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/damm/wg.key\n    permissions: '0600'\n    content: {}\n  - path: /etc/damm/gateway\n    content: {key}\nruncmd:\n  - [systemctl, enable, --now, damm-agent]\n",
        pair.private_key().expose_base64()
    ))
}
