//! Step 9 of a tick: CDN fronts and overlay memberships, the entries that lead to an ingress
//! from another provider.
//!
//! **Fronts.** Every published, healthy ingress of a region that wants fronts
//! ([`Policy::fronts_in`]) gets one front, at the front provider with the fewest fronts in
//! that region (then in the whole fleet, then by name), so a region's fronted paths spread
//! over the CDNs it may use. A front whose ingress drains or goes, or is due for rotation
//! (aged or blocked), is moved to an unfronted ingress of its region, hostname kept, so
//! clients keep their URL while the origin rotates.
//! With no such ingress it waits while its old ingress still drains or a new one is coming,
//! and is retired otherwise. Fronts at a dark provider are left alone and their ingresses are
//! fronted elsewhere meanwhile; when it comes back, the second front of an ingress goes.
//!
//! **Overlay.** Every published or spare healthy ingress of a region that wants the overlay
//! ([`Policy::overlay_in`]) joins every overlay provider (each is its own private network,
//! for its own clients). A membership whose gateway drains or goes leaves.
//!
//! Each entry provider caps its entries (`max`, whole fleet) and its changes per tick
//! (`per_tick`: its API's rate limit). Nothing is asked of a dark or alerted provider.

use super::*;
use crate::policy::EntryProvider;

/// One entry provider's room this tick.
struct Room<'p> {
    policy: &'p EntryProvider,
    /// Dark or alerted: no calls this tick.
    unavailable: bool,
    /// Entries it holds, counting this plan's allocations.
    held: u32,
    /// Changes planned on it this tick.
    changes: u32,
}

impl Room<'_> {
    fn can_change(&self) -> bool {
        !self.unavailable && self.changes < self.policy.per_tick
    }

    fn can_add(&self) -> bool {
        self.can_change() && self.held < self.policy.max
    }
}

impl<'a> Planner<'a> {
    pub(super) fn entries(&mut self) {
        if self.fleet.addresses.iter().all(|a| !a.kind.is_entry())
            && self.policy.fronts.providers.is_empty()
            && self.policy.overlay.providers.is_empty()
        {
            return;
        }
        let by_key: FastMap<&'a str, usize> = self
            .nodes
            .iter()
            .map(|&i| (self.node(i).key.as_str(), i))
            .collect();
        let mut taken: BTreeSet<String> = self
            .fleet
            .addresses
            .iter()
            .map(|a| a.key.as_str().to_owned())
            .collect();
        self.fronts(&by_key, &mut taken);
        self.overlay(&by_key, &mut taken);
    }

    fn rooms(&self, providers: &'a BTreeMap<String, EntryProvider>) -> BTreeMap<&'a str, Room<'a>> {
        providers
            .iter()
            .map(|(name, policy)| {
                let unavailable =
                    self.scores.dark.contains(name) || self.scores.alerted.contains(name);
                let room = Room {
                    policy,
                    unavailable,
                    held: 0,
                    changes: 0,
                };
                (name.as_str(), room)
            })
            .collect()
    }

    /// A healthy ingress that is published (or, with `spares`, a spare), after this tick's
    /// decisions so far.
    fn entry_worthy(&self, i: usize, spares: bool) -> bool {
        self.node(i).role == NodeRole::Ingress
            && self.health[i] == Health::Healthy
            && match self.status[i] {
                Some(Status::Active) => true,
                Some(Status::Spare) => spares,
                _ => false,
            }
    }

    /// `{node}-{suffix}`, or `{suffix}{serial}` where that is too long or already names an
    /// entry (a front moved away from its first ingress keeps its key).
    fn entry_key(
        &mut self,
        node: &IdempotencyKey,
        suffix: &str,
        taken: &mut BTreeSet<String>,
    ) -> Option<IdempotencyKey> {
        let mut key = format!("{node}-{suffix}");
        if key.len() > 63 || taken.contains(&key) {
            key = format!("{suffix}{}", self.serial);
            self.serial += 1;
        }
        taken.insert(key.clone());
        IdempotencyKey::new(key).ok()
    }

    fn fronts(&mut self, by_key: &FastMap<&'a str, usize>, taken: &mut BTreeSet<String>) {
        let mut rooms = self.rooms(&self.policy.fronts.providers);
        let mut fronts: Vec<&'a FleetAddress> = self
            .fleet
            .addresses
            .iter()
            .filter(|a| a.owned && a.kind == AddressKind::Front)
            .filter(|a| rooms.contains_key(a.provider.as_str()))
            .collect();
        fronts.sort_by(|a, b| a.key.cmp(&b.key));
        // Per node index: fronted by a front at an available provider.
        let mut fronted = vec![false; self.fleet.nodes.len()];
        // Per (region, provider): fronts serving there, for the spread.
        let mut spread: BTreeMap<(&'a Region, &'a str), u32> = BTreeMap::new();
        let mut free: Vec<&'a FleetAddress> = Vec::new();
        // Fronts of ingress due for rotation: moved to a replacement, never retired.
        let mut movable: Vec<&'a FleetAddress> = Vec::new();
        for f in &fronts {
            let room = rooms.get_mut(f.provider.as_str()).expect("filtered above");
            room.held += 1;
            let serving = f
                .node
                .as_ref()
                .and_then(|k| by_key.get(k.as_str()).copied())
                .filter(|&i| self.entry_worthy(i, false))
                .filter(|&i| self.policy.fronts_in(&self.node(i).region));
            match serving {
                _ if room.unavailable => {}
                Some(i) if !fronted[i] => {
                    fronted[i] = true;
                    *spread
                        .entry((&self.node(i).region, f.provider.as_str()))
                        .or_default() += 1;
                    if self.aged[i] || self.blocked(i) {
                        movable.push(f);
                    }
                }
                Some(_) => {
                    if room.can_change() {
                        room.changes += 1;
                        room.held -= 1;
                        self.release(f, "a second front of the same ingress");
                    }
                }
                None => free.push(f),
            }
        }
        // Unfronted ingress per region, best first: a freed front goes to the best.
        let mut unfronted: BTreeMap<&'a Region, Vec<usize>> = BTreeMap::new();
        for &i in &self.nodes {
            let n = self.node(i);
            let due = self.aged[i] || self.blocked(i);
            if !fronted[i]
                && !due
                && self.entry_worthy(i, false)
                && self.policy.fronts_in(&n.region)
            {
                unfronted.entry(&n.region).or_default().push(i);
            }
        }
        for list in unfronted.values_mut() {
            list.sort_by(|&a, &b| {
                self.value(b)
                    .total_cmp(&self.value(a))
                    .then_with(|| self.node(a).key.cmp(&self.node(b).key))
            });
            list.reverse(); // popped from the back: best first
        }
        for f in free {
            let room = rooms.get_mut(f.provider.as_str()).expect("filtered above");
            if !room.can_change() {
                continue;
            }
            if !self.policy.fronts_in(&f.region) {
                room.changes += 1;
                room.held -= 1;
                self.release(f, "its region no longer asks for fronts");
                continue;
            }
            if let Some(i) = unfronted.get_mut(&f.region).and_then(Vec::pop) {
                room.changes += 1;
                fronted[i] = true;
                let n = self.node(i);
                *spread.entry((&n.region, f.provider.as_str())).or_default() += 1;
                self.repoint(f, n, "its ingress drains or is gone; the hostname stays");
                continue;
            }
            let draining = f
                .node
                .as_ref()
                .and_then(|k| by_key.get(k.as_str()).copied())
                .is_some_and(|i| self.status[i] == Some(Status::Draining));
            if draining || self.ingress_coming(&f.region) {
                continue; // kept for the replacement
            }
            room.changes += 1;
            room.held -= 1;
            self.release(f, "its ingress is gone and none is coming");
        }
        for f in movable {
            let room = rooms.get_mut(f.provider.as_str()).expect("filtered above");
            if room.can_change()
                && let Some(i) = unfronted.get_mut(&f.region).and_then(Vec::pop)
            {
                room.changes += 1;
                let n = self.node(i);
                self.repoint(f, n, "its ingress is due for rotation; the hostname stays");
            }
        }
        // New fronts for the rest.
        let regions: Vec<&'a Region> = unfronted.keys().copied().collect();
        for region in regions {
            while let Some(&i) = unfronted.get(region).and_then(|l| l.last()) {
                let best = rooms
                    .iter()
                    .filter(|(_, r)| r.can_add())
                    .min_by_key(|(name, r)| {
                        (
                            spread.get(&(region, **name)).copied().unwrap_or(0),
                            r.held,
                            **name,
                        )
                    })
                    .map(|(name, _)| *name);
                let Some(provider) = best else {
                    if rooms
                        .values()
                        .any(|r| !r.unavailable && r.held >= r.policy.max)
                    {
                        let n = self.node(i);
                        self.refuse(
                            format!("front {} in {region}", n.key),
                            "fronts.providers.*.max",
                            "every available front provider holds its maximum".into(),
                        );
                    }
                    break;
                };
                unfronted.get_mut(region).map(Vec::pop);
                let n = self.node(i);
                let Some(key) = self.entry_key(&n.key, "cdn", taken) else {
                    continue;
                };
                let room = rooms.get_mut(provider).expect("chosen from the rooms");
                room.changes += 1;
                room.held += 1;
                *spread.entry((region, provider)).or_default() += 1;
                self.allocate_entry(key, AddressKind::Front, n, provider);
            }
        }
    }

    fn overlay(&mut self, by_key: &FastMap<&'a str, usize>, taken: &mut BTreeSet<String>) {
        let mut rooms = self.rooms(&self.policy.overlay.providers);
        let mut members: Vec<&'a FleetAddress> = self
            .fleet
            .addresses
            .iter()
            .filter(|a| a.owned && a.kind == AddressKind::Overlay)
            .filter(|a| rooms.contains_key(a.provider.as_str()))
            .collect();
        members.sort_by(|a, b| a.key.cmp(&b.key));
        // Per (provider, node index): a member already.
        let mut joined: BTreeSet<(&'a str, usize)> = BTreeSet::new();
        for m in members {
            let room = rooms.get_mut(m.provider.as_str()).expect("filtered above");
            room.held += 1;
            let serving = m
                .node
                .as_ref()
                .and_then(|k| by_key.get(k.as_str()).copied())
                .filter(|&i| self.entry_worthy(i, true))
                .filter(|&i| self.policy.overlay_in(&self.node(i).region));
            let reason = match serving {
                Some(i) if joined.insert((m.provider.as_str(), i)) => continue,
                Some(_) => "a second membership of the same gateway",
                None => "its gateway drains or is gone",
            };
            if room.can_change() {
                room.changes += 1;
                room.held -= 1;
                self.release(m, reason);
            }
        }
        let providers: Vec<&'a str> = rooms.keys().copied().collect();
        for provider in providers {
            for k in 0..self.nodes.len() {
                let i = self.nodes[k];
                let n = self.node(i);
                if joined.contains(&(provider, i))
                    || !self.entry_worthy(i, true)
                    || !self.policy.overlay_in(&n.region)
                {
                    continue;
                }
                let room = &rooms[provider];
                if !room.can_add() {
                    if !room.unavailable && room.held >= room.policy.max {
                        self.refuse(
                            format!("overlay membership of {} at {provider}", n.key),
                            &format!("overlay.providers.{provider}.max"),
                            format!("{} memberships held", room.held),
                        );
                    }
                    break;
                }
                let Some(key) = self.entry_key(&n.key, "ov", taken) else {
                    continue;
                };
                let room = rooms.get_mut(provider).expect("a room per provider");
                room.changes += 1;
                room.held += 1;
                self.allocate_entry(key, AddressKind::Overlay, n, provider);
            }
        }
    }

    /// Whether `region` has ingress on the way: booting, or created by this plan.
    fn ingress_coming(&self, region: &Region) -> bool {
        !self.view(region, NodeRole::Ingress).pending.is_empty()
            || self.planned(region, NodeRole::Ingress, false) > 0
    }

    fn allocate_entry(
        &mut self,
        key: IdempotencyKey,
        kind: AddressKind,
        n: &FleetNode,
        provider: &str,
    ) {
        self.actions.push(Action::Allocate {
            key,
            kind,
            node: n.key.clone(),
            provider: provider.to_owned(),
            region: n.region.clone(),
        });
    }

    /// Moves front `f` to `n`, keeping its hostname.
    fn repoint(&mut self, f: &FleetAddress, n: &FleetNode, reason: &str) {
        self.actions.push(Action::Repoint {
            key: f.key.clone(),
            kind: AddressKind::Front,
            from: f.node.clone(),
            to: n.key.clone(),
            provider: f.provider.clone(),
            region: f.region.clone(),
            reason: reason.into(),
        });
    }

    fn release(&mut self, a: &FleetAddress, reason: &str) {
        self.actions.push(Action::Release {
            key: a.key.clone(),
            kind: a.kind,
            provider: a.provider.clone(),
            region: a.region.clone(),
            reason: reason.into(),
        });
    }
}
