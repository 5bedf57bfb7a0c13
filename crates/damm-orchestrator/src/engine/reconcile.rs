//! Reconciling inventories with state: what is known is updated, what the journal explains
//! is adopted, what vanished is forgotten, and orphans are collected after their grace.

use super::*;

impl Engine {
    /// Merges inventories into state: updates what is known, adopts what the journal
    /// explains, forgets what vanished, and returns the orphans due for collection.
    pub(super) fn reconcile(
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
                        NodeRecord::first_seen(
                            node,
                            provider,
                            &node.region,
                            node.roles
                                .first()
                                .copied()
                                .unwrap_or(damm_provider::NodeRole::Ingress),
                            Status::Active,
                            now,
                        ),
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
                if let Some((seq, created)) = self.journaled_create(provider, &key) {
                    info!(%provider, %key, "adopting a node the journal created");
                    self.state.nodes.insert(
                        key.clone(),
                        NodeRecord::first_seen(
                            node,
                            provider,
                            &created.region,
                            created.role,
                            created.status,
                            now,
                        ),
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

    /// The newest create journaled for `key` at `provider`: its sequence number and the node
    /// it was to add.
    fn journaled_create(
        &self,
        provider: &str,
        key: &IdempotencyKey,
    ) -> Option<(u64, damm_fleet::DesiredNode)> {
        self.state
            .journal
            .iter()
            .rev()
            .filter(|e| e.action.key() == key && e.action.provider() == provider)
            .find_map(|e| Some((e.seq, e.action.created_node()?)))
    }

    /// The node whose public address (its own or its front door's) is `address`.
    fn node_at(&self, address: std::net::IpAddr) -> Option<IdempotencyKey> {
        let own = self
            .state
            .nodes
            .iter()
            .find(|(_, n)| n.addresses.contains(&address))
            .map(|(k, _)| k.clone());
        own.or_else(|| {
            self.state
                .addresses
                .values()
                .find(|a| a.kind == AddressKind::Frontdoor && a.address == Some(address))
                .and_then(|a| a.node.clone())
        })
    }

    /// The record of a listed front or membership `key`: its node (`node`, else what state
    /// or the journal knew) and region (the node's, else what state or the journal knew,
    /// else the policy's first region, where the planner moves or retires it). `None` when
    /// no region is known at all.
    fn entry_record(
        &self,
        provider: &str,
        key: &IdempotencyKey,
        kind: AddressKind,
        node: Option<IdempotencyKey>,
        id: String,
    ) -> Option<AddressRecord> {
        let old = self.state.addresses.get(key);
        let journaled = self
            .state
            .journal
            .iter()
            .rev()
            .filter(|e| e.action.key() == key && e.action.provider() == provider)
            .find_map(|e| match &e.action {
                Action::Allocate { node, region, .. } => Some((node.clone(), region.clone())),
                Action::Repoint { to, region, .. } => Some((to.clone(), region.clone())),
                _ => None,
            });
        let node = node
            .or_else(|| old.and_then(|o| o.node.clone()))
            .or_else(|| journaled.as_ref().map(|(n, _)| n.clone()))
            .filter(|n| self.state.nodes.contains_key(n));
        let region = node
            .as_ref()
            .and_then(|n| self.state.nodes.get(n))
            .map(|n| n.region.clone())
            .or_else(|| old.map(|o| o.region.clone()))
            .or_else(|| journaled.map(|(_, r)| r))
            .or_else(|| self.policy.regions.keys().next().cloned())?;
        Some(AddressRecord {
            provider: provider.to_owned(),
            id,
            region,
            kind,
            node,
            address: None,
            hostname: None,
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
        // Front doors and egress addresses, as (kind, labels, id, region, node, address).
        let mut kinds = Vec::new();
        let mut found = Vec::new();
        if let Some(fds) = &inventory.frontdoors {
            kinds.push(AddressKind::Frontdoor);
            found.extend(fds.iter().map(|f| {
                let at = (&f.reference.id, &f.region, &f.node, f.address);
                (AddressKind::Frontdoor, &f.labels, at)
            }));
        }
        if let Some(ips) = &inventory.egress_ips {
            kinds.push(AddressKind::EgressIp);
            found.extend(ips.iter().map(|e| {
                let at = (&e.reference.id, &e.region, &e.node, e.address);
                (AddressKind::EgressIp, &e.labels, at)
            }));
        }
        let mut listed: Vec<(IdempotencyKey, AddressRecord)> = found
            .into_iter()
            .filter(|(_, labels, _)| labels.is_owned_by(fleet))
            .filter_map(|(kind, labels, (id, region, node, address))| {
                let record = AddressRecord {
                    provider: provider.to_owned(),
                    id: id.clone(),
                    region: region.clone(),
                    kind,
                    node: node_key(node, &self.state.nodes),
                    address: Some(address),
                    hostname: None,
                };
                Some((labels.key()?, record))
            })
            .collect();
        if let Some(fronts) = &inventory.fronts {
            kinds.push(AddressKind::Front);
            for f in fronts.iter().filter(|f| f.labels.is_owned_by(fleet)) {
                let Some(key) = f.labels.key() else { continue };
                // The origin tells which ingress the front leads to, even after a move
                // whose answer a crash lost; else what state or the journal knew.
                let node = self.node_at(f.origin);
                let record = self.entry_record(
                    provider,
                    &key,
                    AddressKind::Front,
                    node,
                    f.reference.id.clone(),
                );
                if let Some(mut record) = record {
                    record.address = Some(f.origin);
                    record.hostname = Some(f.hostname.clone());
                    listed.push((key, record));
                }
            }
        }
        if let Some(members) = &inventory.memberships {
            kinds.push(AddressKind::Overlay);
            for m in members.iter().filter(|m| m.labels.is_owned_by(fleet)) {
                let Some(key) = m.labels.key() else { continue };
                // Gateways join under their node key as host name.
                let node = IdempotencyKey::new(m.hostname.as_str())
                    .ok()
                    .filter(|k| self.state.nodes.contains_key(k));
                // A pending membership whose auth key this process no longer holds (it
                // restarted, or the join was lost in a crash) can never be used. It stays
                // in state, counted against the provider's max, but leads nowhere: the
                // planner leaves it (which revokes the key) and joins the gateway again.
                let unusable = m.address.is_none()
                    && node.as_ref().is_some_and(|n| {
                        !self
                            .overlay_keys
                            .contains_key(&(provider.to_owned(), n.clone()))
                    });
                let record = self.entry_record(
                    provider,
                    &key,
                    AddressKind::Overlay,
                    node,
                    m.reference.id.clone(),
                );
                if let Some(mut record) = record {
                    record.address = m.address;
                    if unusable {
                        record.node = None;
                    }
                    if m.address.is_some()
                        && let Some(node) = &record.node
                    {
                        // Joined: the gateway used its key.
                        self.overlay_keys
                            .remove(&(provider.to_owned(), node.clone()));
                    }
                    listed.push((key, record));
                }
            }
        }
        let listed_keys: BTreeSet<IdempotencyKey> = listed.iter().map(|(k, _)| k.clone()).collect();
        self.state.addresses.retain(|k, a| {
            a.provider != provider || !kinds.contains(&a.kind) || listed_keys.contains(k)
        });
        for (key, mut record) in listed {
            // The inventory may not say which node (or say it by id only): keep what we knew.
            // Entries resolved their node already (a lost overlay key leaves none on purpose).
            if record.node.is_none()
                && !record.kind.is_entry()
                && let Some(old) = self.state.addresses.get(&key)
            {
                record.node = old.node.clone();
            }
            self.state.addresses.insert(key, record);
        }
    }
}
