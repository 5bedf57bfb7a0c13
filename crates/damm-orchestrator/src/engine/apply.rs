//! The journaled apply: every action is journaled and made durable before the adapters are
//! called, phase by phase, and each answer is recorded. A change the provider refuses for
//! credentials or quota raises its alert (see [`alerts`]) instead of only failing.

use super::*;

impl Engine {
    /// Journals every action, makes the intents durable, then calls the adapters phase by
    /// phase (releases, drains and promotions, retires, creates, allocations), recording
    /// each answer, and persists again.
    pub(super) async fn apply(
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
            let results: Vec<(u64, Result<Outcome, Failure>)> = futures::stream::iter(calls)
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
                    Err(failure) => {
                        warn!("failed: {}: {failure}", action.describe());
                        if let Some(verdict) = failure.refusal() {
                            self.refused(action.provider(), &verdict, now);
                        }
                        let error = failure.to_string();
                        self.state.settle(seq, Phase::Failed { error });
                        summary.failed += 1;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// A change refused at `provider` for credentials or quota: its alert is raised (not an
    /// outage: its breaker does not count it) and held through the breaker's cooldown, so
    /// the planner sends its creates elsewhere meanwhile.
    fn refused(&mut self, provider: &str, verdict: &Verdict, now: DateTime<Utc>) {
        self.judge(provider, verdict, now);
        let breaker = &self.policy.scoring.breaker;
        alerts::hold_after_refusal(&mut self.state.scores, provider, now, breaker);
    }

    /// The adapter call for one action, as a future that owns what it needs.
    fn call(
        &self,
        action: &Action,
    ) -> impl std::future::Future<Output = Result<Outcome, Failure>> + Send + 'static {
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
            // A front or membership is at another provider than its node.
            Action::Allocate { node, kind, .. } if kind.is_entry() => self.own_ref(node),
            Action::Allocate { node, .. } => node_ref(node),
            _ => None,
        };
        let address = match &action {
            Action::Release { key, .. } | Action::Repoint { key, .. } => {
                self.state.addresses.get(key).map(|a| a.id.clone())
            }
            _ => None,
        };
        let origin = match &action {
            Action::Allocate { node, .. } | Action::Repoint { to: node, .. } => self.origin(node),
            _ => None,
        };
        let user_data = match (&action, &self.publisher) {
            (Action::Create { key, .. }, Some((keys, _))) => {
                Some(gateway_user_data(keys, self.bootstrap.as_ref(), key))
            }
            _ => None,
        };
        async move {
            let Some(p) = provider else {
                let reason = format!("no adapter for provider `{}`", action.provider());
                return Err(reason.into());
            };
            let work = execute(p, fleet, action, target, address, user_data, origin);
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}").into()))
        }
    }

    /// A node's reference at its own provider.
    fn own_ref(&self, key: &IdempotencyKey) -> Option<NodeRef> {
        let n = self.state.nodes.get(key)?;
        let p = self.providers.get(&n.provider)?;
        Some(NodeRef::new(p.id(), n.id.clone()))
    }

    /// Where a front before `node` points: its front door, else its first address.
    fn origin(&self, node: &IdempotencyKey) -> Option<std::net::IpAddr> {
        let frontdoor = self
            .state
            .addresses
            .values()
            .find(|a| a.kind == AddressKind::Frontdoor && a.node.as_ref() == Some(node))
            .and_then(|a| a.address);
        frontdoor.or_else(|| self.state.nodes.get(node)?.addresses.first().copied())
    }

    fn record(&mut self, action: &Action, outcome: Outcome, now: DateTime<Utc>) {
        match (action, outcome) {
            (Action::Create { .. }, Outcome::Created(node)) => {
                let created = action.created_node().expect("a create adds a node");
                let record = NodeRecord::first_seen(
                    &node,
                    &created.provider,
                    &created.region,
                    created.role,
                    created.status,
                    now,
                );
                self.state.nodes.insert(created.key, record);
            }
            (Action::Promote { key, .. }, _) => self.set_status(key, Status::Active, now),
            (Action::Drain { key, .. }, _) => self.set_status(key, Status::Draining, now),
            (Action::Retire { key, provider, .. }, _) => {
                self.state.nodes.remove(key);
                self.state.scores.forget(key.as_str());
                self.state.orphans.remove(&format!("{provider}/{key}"));
            }
            (Action::Allocate { .. }, Outcome::Allocated(id, address)) => {
                let allocated = action
                    .allocated_address()
                    .expect("an allocate adds an address");
                let record = AddressRecord {
                    provider: allocated.provider,
                    id,
                    region: allocated.region,
                    kind: allocated.kind,
                    node: allocated.node,
                    address: Some(address),
                    hostname: None,
                };
                self.state.addresses.insert(allocated.key, record);
            }
            (Action::Allocate { .. }, Outcome::Entry(entry)) => {
                let allocated = action
                    .allocated_address()
                    .expect("an allocate adds an address");
                if let (Some(secret), Some(node)) = (entry.auth_key, &allocated.node) {
                    let at = (allocated.provider.clone(), node.clone());
                    self.overlay_keys.insert(at, secret);
                }
                let record = AddressRecord {
                    provider: allocated.provider,
                    id: entry.id,
                    region: allocated.region,
                    kind: allocated.kind,
                    node: allocated.node,
                    address: entry.address,
                    hostname: entry.hostname,
                };
                self.state.addresses.insert(allocated.key, record);
            }
            (Action::Repoint { key, to, .. }, Outcome::Entry(entry)) => {
                if let Some(a) = self.state.addresses.get_mut(key) {
                    a.node = Some(to.clone());
                    a.id = entry.id;
                    a.address = entry.address;
                    a.hostname = entry.hostname;
                }
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
    Entry(EntryOutcome),
    Done,
}

/// A front or overlay membership as the provider answered.
#[derive(Debug)]
struct EntryOutcome {
    id: String,
    /// The front's origin, the member's overlay address once joined.
    address: Option<std::net::IpAddr>,
    /// The front's hostname.
    hostname: Option<String>,
    /// The member's auth key (a join's answer only; redacted in Debug).
    auth_key: Option<SecretString>,
}

impl EntryOutcome {
    fn front(front: Front) -> Self {
        EntryOutcome {
            id: front.reference.id,
            address: Some(front.origin),
            hostname: Some(front.hostname),
            auth_key: None,
        }
    }
}

/// Why an adapter call failed: the adapter's typed error, or the engine's own reason (no
/// adapter, a node missing from state, a timeout).
#[derive(Debug)]
enum Failure {
    Provider(damm_provider::Error),
    Engine(String),
}

impl Failure {
    /// The alert verdict of a refusal for credentials or quota; `None` for anything else.
    fn refusal(&self) -> Option<Verdict> {
        match self {
            Failure::Provider(e) => Verdict::of_refusal(e),
            Failure::Engine(_) => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Provider(e) => std::fmt::Display::fmt(e, f),
            Failure::Engine(reason) => f.write_str(reason),
        }
    }
}

impl From<damm_provider::Error> for Failure {
    fn from(e: damm_provider::Error) -> Self {
        Failure::Provider(e)
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Engine(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        Failure::Engine(reason.to_owned())
    }
}

fn phase_of(action: &Action) -> u8 {
    match action {
        Action::Release { .. } => 0,
        Action::Drain { .. } | Action::Promote { .. } => 1,
        Action::Retire { .. } => 2,
        Action::Create { .. } => 3,
        Action::Allocate { .. } | Action::Repoint { .. } => 4,
    }
}

/// A front's first hostname label: opaque, so that the hostname a censor sees in SNI or DNS
/// names no fleet, region or node, and stable for the key, so a replayed publish finds it.
pub(crate) fn front_label(fleet: &damm_provider::FleetId, key: &IdempotencyKey) -> String {
    use blake2::Digest as _;
    let mut h = blake2::Blake2b512::new();
    h.update(b"damm-front-label/1\0");
    h.update(fleet.as_str().as_bytes());
    h.update(b"\0");
    h.update(key.as_str().as_bytes());
    let digest = h.finalize();
    // A letter first: some CDNs and resolvers dislike all-digit labels.
    let mut label = String::from("w");
    for byte in &digest[..7] {
        label.push_str(&format!("{byte:02x}"));
    }
    label
}

async fn execute(
    p: Arc<dyn Provider>,
    fleet: damm_provider::FleetId,
    action: Action,
    target: Option<NodeRef>,
    address: Option<String>,
    user_data: Option<damm_provider::UserData>,
    origin: Option<std::net::IpAddr>,
) -> Result<Outcome, Failure> {
    let err = Failure::from;
    match action {
        Action::Allocate {
            key,
            kind: AddressKind::Front,
            ..
        } => {
            let origin = origin.ok_or("the ingress has no public address yet")?;
            let cdn = p
                .cdn_front()
                .ok_or("the provider has no cdn_front capability")?;
            let spec = FrontSpec {
                name: front_label(&fleet, &key),
                origin,
                labels: Labels::owned(&fleet, &key),
                key,
            };
            let front = cdn.publish_front(&spec).await.map_err(err)?;
            Ok(Outcome::Entry(EntryOutcome::front(front)))
        }
        Action::Allocate {
            key,
            kind: AddressKind::Overlay,
            node,
            ..
        } => {
            let overlay = p
                .overlay()
                .ok_or("the provider has no overlay capability")?;
            let spec = OverlaySpec {
                hostname: node.to_string(),
                node: target,
                labels: Labels::owned(&fleet, &key),
                key,
                ephemeral: false,
            };
            let member = overlay.join_overlay(&spec).await.map_err(err)?;
            Ok(Outcome::Entry(EntryOutcome {
                id: member.reference.id,
                address: member.address,
                hostname: None,
                auth_key: member.auth_key,
            }))
        }
        Action::Repoint { .. } => {
            let id = address.ok_or("the front is not in state")?;
            let origin = origin.ok_or("the new ingress has no public address yet")?;
            let cdn = p
                .cdn_front()
                .ok_or("the provider has no cdn_front capability")?;
            let front = cdn
                .repoint_front(&FrontRef::new(p.id(), id), origin)
                .await
                .map_err(err)?;
            Ok(Outcome::Entry(EntryOutcome::front(front)))
        }
        Action::Release {
            kind: kind @ (AddressKind::Front | AddressKind::Overlay),
            ..
        } => {
            let id = address.ok_or("the entry is not in state")?;
            let done = if kind == AddressKind::Front {
                let cdn = p
                    .cdn_front()
                    .ok_or("the provider has no cdn_front capability")?;
                cdn.retire_front(&FrontRef::new(p.id(), id)).await
            } else {
                let overlay = p
                    .overlay()
                    .ok_or("the provider has no overlay capability")?;
                overlay.leave_overlay(&MembershipRef::new(p.id(), id)).await
            };
            done.map(|()| Outcome::Done).map_err(err)
        }
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
            let unexpected = || Failure::from("an entry kind reached the address allocation");
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
                AddressKind::Front | AddressKind::Overlay => Err(unexpected()),
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
                AddressKind::Front | AddressKind::Overlay => {
                    Err("an entry kind reached the address release".into())
                }
            }
        }
    }
}

async fn find_by_key(p: &dyn Provider, key: &IdempotencyKey) -> Result<NodeRef, Failure> {
    let nodes = p.list_nodes(&NodeFilter::all()).await?;
    nodes
        .into_iter()
        .find(|n| n.key().as_ref() == Some(key))
        .map(|n| n.reference)
        .ok_or_else(|| format!("no node with key {key}").into())
}
