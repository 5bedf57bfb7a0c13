//! Steps 1–7 of a tick: retire what drained, drain what failed, fill and diversify
//! regions (promoting spares before creating), top up spares, and drain what is surplus.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn retire_drained(&mut self) {
        let grace = self.policy.lifecycle.drain_grace.chrono();
        for k in 0..self.nodes.len() {
            let i = self.nodes[k];
            let n = self.node(i);
            if n.status != Status::Draining {
                continue;
            }
            let due = self.now - n.status_since >= grace || self.health[i] != Health::Healthy;
            if !due {
                continue;
            }
            let wanted = format!("retire {} {} {}", n.region, n.role, n.key);
            if self.providers.dark(self.provider_of[i]) {
                self.refuse(wanted, "scoring.breaker", format!("{} is dark", n.provider));
                continue;
            }
            if self.retires_total >= self.policy.limits.retires_per_tick {
                self.refuse(
                    wanted,
                    "limits.retires_per_tick",
                    format!("{} retires already planned", self.retires_total),
                );
                continue;
            }
            self.retires_total += 1;
            self.status[i] = None;
            self.actions.push(Action::Retire {
                key: n.key.clone(),
                provider: n.provider.clone(),
                region: n.region.clone(),
                role: n.role,
                reason: "drained".into(),
            });
        }
    }

    pub(super) fn drain_failed(&mut self) {
        for k in 0..self.nodes.len() {
            let i = self.nodes[k];
            let Health::Failed(why) = self.health[i] else {
                continue;
            };
            if !matches!(self.status[i], Some(Status::Active | Status::Spare)) {
                continue;
            }
            if self.providers.dark(self.provider_of[i]) {
                // Nothing to call; it simply does not count until the provider is back.
                continue;
            }
            self.drain(i, why);
        }
    }

    pub(super) fn drain(&mut self, i: usize, reason: &str) {
        let n = self.node(i);
        self.status[i] = Some(Status::Draining);
        self.actions.push(Action::Drain {
            key: n.key.clone(),
            provider: n.provider.clone(),
            region: n.region.clone(),
            role: n.role,
            reason: reason.to_owned(),
        });
    }

    /// Promotes up to `need` healthy spares of `region`, best first; returns how many.
    pub(super) fn promote(&mut self, region: &Region, need: u32, reason: &str) -> u32 {
        if need == 0 {
            return 0;
        }
        let mut spares = self.view(region, NodeRole::Ingress).spares;
        spares.retain(|&i| !self.providers.suspect(self.provider_of[i]));
        spares.sort_by(|&a, &b| {
            self.value(b)
                .total_cmp(&self.value(a))
                .then_with(|| self.node(a).key.cmp(&self.node(b).key))
        });
        let mut done = 0;
        for i in spares.into_iter().take(need as usize) {
            let n = self.node(i);
            self.status[i] = Some(Status::Active);
            self.actions.push(Action::Promote {
                key: n.key.clone(),
                provider: n.provider.clone(),
                region: n.region.clone(),
                reason: reason.to_owned(),
            });
            done += 1;
        }
        done
    }

    pub(super) fn create_round_robin(
        &mut self,
        want: &mut [(&'a Region, u32)],
        role: NodeRole,
        spare: bool,
        reason: &str,
    ) {
        loop {
            let mut any = false;
            for (region, need) in want.iter_mut() {
                if *need == 0 {
                    continue;
                }
                *need -= 1;
                any = true;
                if !self.create(region, role, spare, reason, false) {
                    // Refused: the same reasons will refuse the rest of this region's need.
                    *need = 0;
                }
            }
            if !any {
                break;
            }
        }
    }

    /// Providers with a live, coming or planned node of `role` in `region`.
    pub(super) fn present(&self, region: &Region, role: NodeRole) -> BTreeSet<&'a str> {
        let view = self.view(region, role);
        let mut present: BTreeSet<&str> = view
            .keep
            .iter()
            .chain(&view.due)
            .chain(&view.pending)
            .map(|&i| self.node(i).provider.as_str())
            .collect();
        for c in &self.creates {
            if &c.region == region
                && c.role == role
                && c.status == Status::Active
                && let Some((name, _)) = self.policy.providers.get_key_value(&c.provider)
            {
                present.insert(name.as_str());
            }
        }
        present
    }

    /// Plans one create; false when the policy refused it.
    pub(super) fn create(
        &mut self,
        region: &Region,
        role: NodeRole,
        spare: bool,
        reason: &str,
        only_new: bool,
    ) -> bool {
        let what = if spare { "spare" } else { role.as_str() };
        let wanted = format!("create {region} {what} ({reason})");
        if self.creates_total >= self.policy.limits.creates_per_tick {
            self.refuse(
                wanted,
                "limits.creates_per_tick",
                format!("{} creates already planned", self.creates_total),
            );
            return false;
        }
        let present = self.present(region, role);
        let cap_cents = (self.policy.limits.monthly_spend_cap * 100.0).round() as u64;
        let mut best: Option<(&'a str, u16, Rank)> = None;
        let mut why: Option<(String, String)> = None;
        let policy: &'a Policy = self.policy;
        for (name, p) in policy
            .providers
            .iter()
            .filter(|(_, p)| p.regions.contains(region))
        {
            let name = name.as_str();
            if only_new && present.contains(name) {
                continue;
            }
            let px = self
                .providers
                .index(name)
                .expect("every policy provider has an index");
            let (created, held) = (
                self.created_at[usize::from(px)],
                self.nodes_at[usize::from(px)],
            );
            let reject = if self.providers.dark(px) {
                Some(("scoring.breaker".to_owned(), format!("{name} is dark")))
            } else if self.providers.suspect(px) {
                Some((
                    "scoring.breaker".to_owned(),
                    format!("{name} failed its last tick"),
                ))
            } else if self.providers.alerted(px) {
                // It would refuse the create again; the operator has been told.
                Some((
                    format!("providers.{name}"),
                    format!("{name} has an alert raised (credentials or quota)"),
                ))
            } else if p.creates_per_tick == 0 || created >= p.creates_per_tick {
                Some((
                    format!("providers.{name}.creates_per_tick"),
                    format!("{} per tick", p.creates_per_tick),
                ))
            } else if held >= p.max_nodes {
                Some((
                    format!("providers.{name}.max_nodes"),
                    format!("{name} holds {held} of {}", p.max_nodes),
                ))
            } else if self.spend_cents + p.node_cents() > cap_cents {
                Some((
                    "limits.monthly_spend_cap".to_owned(),
                    format!(
                        "{:.2} + {:.2} would pass {:.2} {}",
                        self.spend_cents as f64 / 100.0,
                        p.node_cents() as f64 / 100.0,
                        self.policy.limits.monthly_spend_cap,
                        self.policy.limits.currency
                    ),
                ))
            } else {
                None
            };
            if let Some(r) = reject {
                why.get_or_insert(r);
                continue;
            }
            let health = self.provider_health[usize::from(px)].unwrap_or(1.0);
            let rank = (
                present.contains(name),
                -((health * 10.0).floor() as i64),
                created,
                p.node_cents(),
            );
            if best.as_ref().is_none_or(|(_, _, r)| rank < *r) {
                best = Some((name, px, rank));
            }
        }
        let Some((provider, px, _)) = best else {
            let (rule, detail) = why.unwrap_or_else(|| {
                (
                    format!("regions.{region}.min_providers"),
                    "every provider serving the region already has a node there".to_owned(),
                )
            });
            self.refuse(wanted, &rule, detail);
            return false;
        };
        let p = &self.policy.providers[provider];
        let key = self.next_key(region, role, spare);
        self.creates_total += 1;
        self.created_at[usize::from(px)] += 1;
        self.nodes_at[usize::from(px)] += 1;
        self.spend_cents += p.node_cents();
        let create = Action::Create {
            key,
            provider: provider.to_owned(),
            region: region.clone(),
            role,
            profile: p.profile.clone(),
            spare,
            reason: reason.to_owned(),
        };
        self.creates.extend(create.created_node());
        self.actions.push(create);
        true
    }

    pub(super) fn next_key(
        &mut self,
        region: &Region,
        role: NodeRole,
        spare: bool,
    ) -> IdempotencyKey {
        let tag = match (role, spare) {
            (_, true) => 's',
            (NodeRole::Ingress, false) => 'i',
            (NodeRole::Egress, false) => 'e',
        };
        let serial = self.serial;
        self.serial += 1;
        let mut key = format!("{tag}{serial}-{region}");
        key.truncate(63);
        let key = key.trim_end_matches('-').to_owned();
        IdempotencyKey::new(key).expect("a serial and a region make a valid key")
    }

    pub(super) fn diversify(&mut self, region: &'a Region) {
        let r = &self.policy.regions[region];
        let role = NodeRole::Ingress;
        let present = self.present(region, role);
        let serving = self
            .policy
            .providers_for(region)
            .filter(|(name, _)| !self.dark(name))
            .count();
        let target = (r.min_providers as usize).min(serving);
        if present.len() >= target {
            return;
        }
        let view = self.view(region, role);
        let total = (view.keep.len() + view.due.len() + view.pending.len()) as u32
            + self.planned(region, role, false);
        if total >= r.ingress.max {
            self.refuse(
                format!("create {region} ingress on another provider"),
                &format!("regions.{region}.ingress.max"),
                format!(
                    "{total} ingress nodes already; {} provider(s) of {}",
                    present.len(),
                    r.min_providers
                ),
            );
            return;
        }
        for _ in present.len()..target {
            if !self.create(region, role, false, "spread over min_providers", true) {
                break;
            }
        }
    }

    pub(super) fn drain_surplus(&mut self, region: &Region, role: NodeRole) {
        let r = &self.policy.regions[region];
        let bounds = r.bounds(role);
        let view = self.view(region, role);
        let floor = bounds.min.max(1) as usize;
        // Rotated nodes go once the kept ones alone meet the floor.
        if view.keep.len() >= floor {
            for &i in &view.due {
                let why = if self.blocked(i) {
                    "blocked; replacement live"
                } else {
                    "rotated; replacement live"
                };
                self.drain(i, why);
            }
        }
        // Surplus above max: drain from the most crowded provider, lowest score, oldest.
        let view = self.view(region, role);
        let live = view.keep.len() + view.due.len();
        if live > bounds.max as usize {
            let candidates: Vec<usize> = view.due.iter().chain(&view.keep).copied().collect();
            let mut per_provider: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in &candidates {
                *per_provider
                    .entry(self.node(i).provider.as_str())
                    .or_default() += 1;
            }
            let mut ranked: Vec<(usize, usize)> = candidates
                .iter()
                .map(|&i| (i, per_provider[self.node(i).provider.as_str()]))
                .collect();
            ranked.sort_by(|&(a, ca), &(b, cb)| {
                let (na, nb) = (self.node(a), self.node(b));
                cb.cmp(&ca)
                    .then(self.value(a).total_cmp(&self.value(b)))
                    .then(na.created_at.cmp(&nb.created_at))
                    .then(na.key.cmp(&nb.key))
            });
            let candidates: Vec<usize> = ranked.into_iter().map(|(i, _)| i).collect();
            let surplus = live - (bounds.max as usize).max(floor.min(live));
            for &i in candidates.iter().take(surplus) {
                self.drain(i, "surplus above max");
            }
        }
        if role == NodeRole::Ingress {
            let view = self.view(region, role);
            let spares: Vec<usize> = view
                .spares
                .iter()
                .chain(&view.spares_pending)
                .copied()
                .collect();
            let surplus = spares.len().saturating_sub(r.warm_spares as usize);
            for &i in spares.iter().rev().take(surplus) {
                self.drain(i, "surplus spare");
            }
        }
    }
}
