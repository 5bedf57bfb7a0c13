//! The planner: from the fleet, the policy and the scores, what to do this tick.
//!
//! [`plan`] is a pure function: the same inputs give the same plan. It never exceeds a cap or
//! an allowlist, never touches a resource without the fleet label, and never drains or
//! retires the last healthy ingress of a region unless a ready replacement takes over in the
//! same tick.
//!
//! One tick's work, per region and role, in order of urgency:
//! 1. retire drained nodes whose grace has passed (capped by `limits.retires_per_tick`);
//! 2. drain nodes that failed (boot timeout, probes down, left the allowlist);
//! 3. fill live ingress, then egress, up to `min`: promote warm spares first, then create;
//! 4. replace nodes due for rotation (age past `rotate_*_after`, or blocked);
//! 5. add a node on a new provider while fewer than `min_providers` serve the region;
//! 6. top up warm spares;
//! 7. drain rotated and surplus nodes once their replacements are live;
//! 8. allocate and release front doors and egress addresses;
//! 9. create, move and retire CDN fronts and overlay memberships (see `entries`).
//!
//! Creates are spread across providers: a region's missing providers first, then healthier,
//! then the provider with fewer creates this tick (their rate limits), then cheaper.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use damm_provider::{IdempotencyKey, NodeRole, NodeState, Region};
use serde::{Deserialize, Serialize};

use crate::fasthash::FastMap;
use crate::model::{AddressKind, Fleet, FleetAddress, FleetNode, Status};
use crate::policy::{Policy, ProviderPolicy, RegionPolicy};
use crate::score::{Score, Scores};

mod addresses;
mod capacity;
mod entries;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create a node (published when `spare` is false).
    Create {
        /// Idempotency key of the new node.
        key: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Role.
        role: NodeRole,
        /// Profile to create.
        profile: String,
        /// Kept out of the catalog as a warm spare.
        spare: bool,
        /// Why.
        reason: String,
    },
    /// Publish a warm spare.
    Promote {
        /// The spare.
        key: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Why.
        reason: String,
    },
    /// Stop new sessions on a node.
    Drain {
        /// The node.
        key: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Role.
        role: NodeRole,
        /// Why.
        reason: String,
    },
    /// Delete a drained node.
    Retire {
        /// The node.
        key: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Role.
        role: NodeRole,
        /// Why.
        reason: String,
    },
    /// Allocate a static address for a node, publish a front before it or join it to an
    /// overlay.
    Allocate {
        /// Idempotency key of the address.
        key: IdempotencyKey,
        /// Front door, egress, front or overlay membership.
        kind: AddressKind,
        /// The node it is for.
        node: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
    },
    /// Move a front (or membership) to another node, keeping its hostname: clients keep
    /// their URL while the origin rotates.
    Repoint {
        /// The front.
        key: IdempotencyKey,
        /// Front or overlay.
        kind: AddressKind,
        /// The node it leads to now (draining or gone).
        from: Option<IdempotencyKey>,
        /// The node it is to lead to.
        to: IdempotencyKey,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Why.
        reason: String,
    },
    /// Release a static address, retire a front or leave an overlay.
    Release {
        /// The address.
        key: IdempotencyKey,
        /// Front door, egress, front or overlay membership.
        kind: AddressKind,
        /// Provider.
        provider: String,
        /// Region.
        region: Region,
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The provider the action calls.
    pub fn provider(&self) -> &str {
        self.target().1
    }

    /// The key of the resource it creates or touches.
    pub fn key(&self) -> &IdempotencyKey {
        self.target().0
    }

    /// The resource the action creates or touches, and the provider that holds it.
    fn target(&self) -> (&IdempotencyKey, &str) {
        match self {
            Action::Create { key, provider, .. }
            | Action::Promote { key, provider, .. }
            | Action::Drain { key, provider, .. }
            | Action::Retire { key, provider, .. }
            | Action::Allocate { key, provider, .. }
            | Action::Repoint { key, provider, .. }
            | Action::Release { key, provider, .. } => (key, provider),
        }
    }

    /// For a create, the node it adds as the desired fleet lists it: new, a spare or active.
    pub fn created_node(&self) -> Option<DesiredNode> {
        let Action::Create {
            region,
            role,
            spare,
            ..
        } = self
        else {
            return None;
        };
        Some(DesiredNode {
            key: self.key().clone(),
            provider: self.provider().to_owned(),
            region: region.clone(),
            role: *role,
            status: if *spare {
                Status::Spare
            } else {
                Status::Active
            },
            new: true,
        })
    }

    /// For an allocate, the address it adds as the fleet lists it until the provider names it.
    pub fn allocated_address(&self) -> Option<FleetAddress> {
        let Action::Allocate {
            key,
            kind,
            node,
            provider,
            region,
        } = self
        else {
            return None;
        };
        Some(FleetAddress {
            key: key.clone(),
            provider: provider.clone(),
            id: None,
            region: region.clone(),
            kind: *kind,
            node: Some(node.clone()),
            owned: true,
            endpoint: None,
        })
    }

    /// One line for humans: `+ create eu-central ingress at hetzner (i4-eu-central): fill`.
    pub fn describe(&self) -> String {
        match self {
            Action::Create {
                key,
                provider,
                region,
                role,
                spare,
                reason,
                ..
            } => {
                let what = if *spare { "spare" } else { role.as_str() };
                format!("+ create {region} {what} at {provider} ({key}): {reason}")
            }
            Action::Promote {
                key,
                provider,
                region,
                reason,
            } => format!("^ promote spare {key} at {provider} in {region}: {reason}"),
            Action::Drain {
                key,
                provider,
                region,
                role,
                reason,
            } => format!("~ drain {region} {role} {key} at {provider}: {reason}"),
            Action::Retire {
                key,
                provider,
                region,
                role,
                reason,
            } => format!("- retire {region} {role} {key} at {provider}: {reason}"),
            Action::Allocate {
                key,
                kind,
                node,
                provider,
                ..
            } => format!(
                "+ allocate {} {key} for {node} at {provider}",
                kind_name(*kind)
            ),
            Action::Repoint {
                key,
                kind,
                from,
                to,
                provider,
                reason,
                ..
            } => {
                let from = from
                    .as_ref()
                    .map_or("nothing".to_owned(), |f| f.to_string());
                format!(
                    "> move {} {key} at {provider} from {from} to {to}: {reason}",
                    kind_name(*kind)
                )
            }
            Action::Release {
                key,
                kind,
                provider,
                reason,
                ..
            } => format!(
                "- release {} {key} at {provider}: {reason}",
                kind_name(*kind)
            ),
        }
    }
}

fn kind_name(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Frontdoor => "front door",
        AddressKind::EgressIp => "egress ip",
        AddressKind::Front => "front",
        AddressKind::Overlay => "overlay membership",
    }
}

/// An action the policy refused, with the rule that refused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// What the planner wanted.
    pub wanted: String,
    /// The policy rule (a dotted field path such as `providers.hetzner.max_nodes`).
    pub rule: String,
    /// The numbers behind it.
    pub detail: String,
}

/// A node of the desired fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredNode {
    /// Key.
    pub key: IdempotencyKey,
    /// Provider.
    pub provider: String,
    /// Region.
    pub region: Region,
    /// Role.
    pub role: NodeRole,
    /// Status after the plan.
    pub status: Status,
    /// Not created yet: created by this plan.
    pub new: bool,
}

/// The planner's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// What the policy refused.
    pub refused: Vec<Refusal>,
    /// The fleet once the actions are done (retired nodes left out).
    pub desired: Vec<DesiredNode>,
    /// The serial after the keys this plan used.
    pub next_serial: u64,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// How a node is doing, as far as planning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy,
    Pending,
    Failed(&'static str),
}

/// Plans one tick. Pure: no I/O, no clock (`now` is an argument), no randomness.
pub fn plan(fleet: &Fleet, policy: &Policy, scores: &Scores, now: DateTime<Utc>) -> Plan {
    Planner::new(fleet, policy, scores, now).run()
}

struct Planner<'a> {
    fleet: &'a Fleet,
    policy: &'a Policy,
    scores: &'a Scores,
    now: DateTime<Utc>,
    /// Indices of owned nodes at allowlisted providers, in input order.
    nodes: Vec<usize>,
    health: Vec<Health>,
    /// Final status per node index (None: retired this tick).
    status: Vec<Option<Status>>,
    actions: Vec<Action>,
    refused: Vec<Refusal>,
    creates: Vec<DesiredNode>,
    creates_total: u32,
    retires_total: u32,
    /// The allowlisted providers, in name order: the per-node tables below hold indices
    /// into it, so the hot loops compare small integers, not names.
    providers: Providers<'a>,
    /// Per provider index: creates planned this tick.
    created_at: Vec<u32>,
    /// Per provider index: nodes it holds, counting this plan's creates.
    nodes_at: Vec<u32>,
    spend_cents: u64,
    serial: u64,
    /// Per provider index: mean score of its scored nodes (None: none scored).
    provider_health: Vec<Option<f64>>,
    /// Node indices per region and role, in input order.
    groups: FastMap<(&'a Region, NodeRole), Vec<usize>>,
    /// Per node index: its provider's index (meaningful for the nodes in `nodes` only).
    provider_of: Vec<u16>,
    /// Per node index: its score (0 when unscored).
    value: Vec<f64>,
    /// Per node index: clients report it blocked.
    blocked: Vec<bool>,
    /// Per node index: published longer than its role's rotation age.
    aged: Vec<bool>,
    /// Per node index: its region's policy (None: the region is no longer allowed).
    region_policy: Vec<Option<&'a RegionPolicy>>,
}

impl<'a> Planner<'a> {
    fn new(fleet: &'a Fleet, policy: &'a Policy, scores: &'a Scores, now: DateTime<Utc>) -> Self {
        let count = fleet.nodes.len();
        let providers = Providers::new(policy, scores);
        let mut planner = Planner {
            fleet,
            policy,
            scores,
            now,
            health: vec![Health::Pending; count],
            status: fleet.nodes.iter().map(|n| Some(n.status)).collect(),
            nodes: Vec::with_capacity(count),
            actions: Vec::new(),
            refused: Vec::new(),
            creates: Vec::new(),
            creates_total: 0,
            retires_total: 0,
            created_at: vec![0; providers.len()],
            nodes_at: vec![0; providers.len()],
            spend_cents: 0,
            serial: fleet.next_serial,
            provider_health: vec![None; providers.len()],
            providers,
            groups: FastMap::default(),
            provider_of: vec![u16::MAX; count],
            value: vec![0.0; count],
            blocked: vec![false; count],
            aged: vec![false; count],
            region_policy: vec![None; count],
        };
        // One pass, in input order (the shell passes nodes sorted by key): the fleet is
        // large and this loop is memory-bound.
        let mut health_sum = vec![(0.0, 0u32); planner.providers.len()];
        let mut regions: FastMap<&str, Option<&'a RegionPolicy>> = FastMap::default();
        for (i, n) in fleet.nodes.iter().enumerate() {
            if !n.owned {
                continue;
            }
            let Some(px) = planner.providers.index(&n.provider) else {
                continue;
            };
            planner.provider_of[i] = px;
            let p = planner.providers.policy(px);
            planner.nodes.push(i);
            planner.nodes_at[usize::from(px)] += 1;
            planner.spend_cents += p.node_cents();
            planner
                .groups
                .entry((&n.region, n.role))
                .or_default()
                .push(i);
            let score = scores.get(n.key.as_str());
            let region = *regions
                .entry(n.region.as_str())
                .or_insert_with(|| policy.regions.get(&n.region));
            planner.health[i] = planner.classify(n, px, score, region.is_some());
            if let Some(s) = score {
                planner.value[i] = s.value;
                planner.blocked[i] = s.blocked;
                let e = &mut health_sum[usize::from(px)];
                e.0 += s.value;
                e.1 += 1;
            }
            // Exposure starts when the node is published, not when it was created; a spare
            // promoted by this plan starts fresh.
            planner.aged[i] = n.status == Status::Active
                && region.is_some_and(|r| now - n.status_since >= r.rotate_after(n.role).chrono());
            planner.region_policy[i] = region;
        }
        planner.provider_health = health_sum
            .into_iter()
            .map(|(sum, n)| (n > 0).then(|| sum / f64::from(n)))
            .collect();
        planner
    }

    fn classify(
        &self,
        n: &FleetNode,
        provider: u16,
        score: Option<&Score>,
        region_allowed: bool,
    ) -> Health {
        if self.providers.dark(provider) {
            return Health::Failed("provider dark");
        }
        if !region_allowed {
            return Health::Failed("region no longer allowed");
        }
        let scored = score.is_some_and(|s| s.confidence > 0.0);
        let young = self.now - n.created_at < self.policy.lifecycle.boot_timeout.chrono();
        match n.state {
            NodeState::Running if score.is_some_and(|s| s.healthy) => Health::Healthy,
            NodeState::Running | NodeState::Provisioning if young => Health::Pending,
            NodeState::Provisioning => Health::Failed("not healthy within the boot timeout"),
            NodeState::Running if scored => Health::Failed("probes failing"),
            NodeState::Running => Health::Failed("never probed healthy"),
            NodeState::Stopped => Health::Failed("stopped"),
            NodeState::Deleting => Health::Failed("being deleted"),
            NodeState::Draining => Health::Failed("draining at the provider"),
            NodeState::Unknown => Health::Failed("unknown state"),
        }
    }

    fn node(&self, i: usize) -> &'a FleetNode {
        &self.fleet.nodes[i]
    }

    fn dark(&self, provider: &str) -> bool {
        self.scores.dark.contains(provider)
    }

    fn value(&self, i: usize) -> f64 {
        self.value[i]
    }

    fn blocked(&self, i: usize) -> bool {
        self.blocked[i]
    }

    fn run(mut self) -> Plan {
        self.retire_drained();
        self.drain_failed();
        let regions: Vec<&'a Region> = self.policy.regions.keys().collect();
        let mut promoted: BTreeMap<&Region, u32> = BTreeMap::new();
        // 3. Fill, ingress first: round-robin over regions so the global cap is shared.
        for role in [NodeRole::Ingress, NodeRole::Egress] {
            let mut want = self.wants(&regions, role, |_, view, policy| {
                let have = (view.keep.len() + view.due.len() + view.pending.len()) as u32;
                policy.bounds(role).min.saturating_sub(have)
            });
            if role == NodeRole::Ingress {
                for (r, need) in &mut want {
                    let p = self.promote(r, *need, "fill live ingress to min");
                    // Live ingress at a provider whose last tick failed may already be
                    // gone: spares elsewhere stand in now, in the same tick; replacements
                    // wait for the breaker.
                    let stand_in = self.at_suspect(r);
                    let s = self.promote(r, stand_in, "stand in for a failing provider");
                    *promoted.entry(r).or_default() += p + s;
                    *need -= p;
                }
            }
            self.create_round_robin(&mut want, role, false, "fill to min");
        }
        // 4. Rotation: replace due nodes up to what min still misses counting pending.
        for role in [NodeRole::Ingress, NodeRole::Egress] {
            let mut want = self.wants(&regions, role, |r, view, policy| {
                let coming = view.pending.len() as u32
                    + self.planned(r, role, false)
                    + if role == NodeRole::Ingress {
                        promoted.get(r).copied().unwrap_or(0)
                    } else {
                        0
                    };
                let missing = policy
                    .bounds(role)
                    .min
                    .max(1)
                    .saturating_sub(view.keep.len() as u32 + coming);
                missing.min(view.due.len() as u32)
            });
            if role == NodeRole::Ingress {
                for (r, need) in &mut want {
                    let p = self.promote(r, *need, "replace a node due for rotation");
                    *promoted.entry(r).or_default() += p;
                    *need -= p;
                }
            }
            self.create_round_robin(&mut want, role, false, "replace a node due for rotation");
        }
        // 5. Provider diversity for ingress.
        for r in &regions {
            self.diversify(r);
        }
        // 6. Warm spares.
        let mut want = self.wants(&regions, NodeRole::Ingress, |r, view, policy| {
            let have = (view.spares.len() + view.spares_pending.len()) as u32
                + self.planned(r, NodeRole::Ingress, true);
            policy.warm_spares.saturating_sub(have)
        });
        self.create_round_robin(&mut want, NodeRole::Ingress, true, "keep warm spares");
        // 7. Drain rotated and surplus nodes whose replacements are live.
        for r in &regions {
            for role in [NodeRole::Ingress, NodeRole::Egress] {
                self.drain_surplus(r, role);
            }
        }
        self.addresses();
        self.entries();
        self.finish()
    }

    /// What each of `regions` wants created or promoted for `role`: `need` of the region's
    /// view and policy.
    fn wants(
        &self,
        regions: &[&'a Region],
        role: NodeRole,
        need: impl Fn(&Region, &View, &RegionPolicy) -> u32,
    ) -> Vec<(&'a Region, u32)> {
        regions
            .iter()
            .map(|r| (*r, need(r, &self.view(r, role), &self.policy.regions[*r])))
            .collect()
    }

    /// The live and coming nodes of one region and role, after this tick's decisions so far.
    fn view(&self, region: &Region, role: NodeRole) -> View {
        let mut view = View::default();
        for &i in self
            .groups
            .get(&(region, role))
            .map_or(&[][..], Vec::as_slice)
        {
            match (self.status[i], self.health[i]) {
                (Some(Status::Active), Health::Healthy) => {
                    if self.aged[i] || self.blocked(i) {
                        view.due.push(i);
                    } else {
                        view.keep.push(i);
                    }
                }
                (Some(Status::Active), Health::Pending) => view.pending.push(i),
                (Some(Status::Spare), Health::Healthy) => view.spares.push(i),
                (Some(Status::Spare), Health::Pending) => view.spares_pending.push(i),
                _ => {}
            }
        }
        view
    }

    /// Live ingress of `region` at providers whose last tick failed.
    fn at_suspect(&self, region: &Region) -> u32 {
        let view = self.view(region, NodeRole::Ingress);
        view.keep
            .iter()
            .chain(&view.due)
            .filter(|&&i| self.providers.suspect(self.provider_of[i]))
            .count() as u32
    }

    /// Creates this plan already holds for a region and role.
    fn planned(&self, region: &Region, role: NodeRole, spare: bool) -> u32 {
        self.creates
            .iter()
            .filter(|c| {
                &c.region == region && c.role == role && (c.status == Status::Spare) == spare
            })
            .count() as u32
    }

    fn refuse(&mut self, wanted: String, rule: &str, detail: String) {
        self.refused.push(Refusal {
            wanted,
            rule: rule.to_owned(),
            detail,
        });
    }

    fn finish(self) -> Plan {
        let mut desired: Vec<DesiredNode> =
            Vec::with_capacity(self.nodes.len() + self.creates.len());
        desired.extend(self.nodes.iter().filter_map(|&i| {
            let n = self.node(i);
            self.status[i].map(|status| DesiredNode {
                key: n.key.clone(),
                provider: n.provider.clone(),
                region: n.region.clone(),
                role: n.role,
                status,
                new: false,
            })
        }));
        // Existing nodes in key order, then this plan's creates in the order planned.
        desired.extend(self.creates);
        Plan {
            actions: self.actions,
            refused: self.refused,
            desired,
            next_serial: self.serial,
        }
    }
}

/// The policy's providers by index, with their breaker state.
struct Providers<'a> {
    /// Name and policy, in name order.
    list: Vec<(&'a str, &'a ProviderPolicy)>,
    /// Index per name.
    index: FastMap<&'a str, u16>,
    /// Per index: the breaker is open.
    dark: Vec<bool>,
    /// Per index: the last tick failed, the breaker is still closed.
    suspect: Vec<bool>,
    /// Per index: an alert is raised (credentials or quota); no creates.
    alerted: Vec<bool>,
}

impl<'a> Providers<'a> {
    fn new(policy: &'a Policy, scores: &Scores) -> Self {
        let list: Vec<(&'a str, &'a ProviderPolicy)> = policy
            .providers
            .iter()
            .map(|(name, p)| (name.as_str(), p))
            .collect();
        assert!(
            list.len() < usize::from(u16::MAX),
            "fewer than 65535 providers"
        );
        Providers {
            index: list
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (*name, i as u16))
                .collect(),
            dark: list
                .iter()
                .map(|(name, _)| scores.dark.contains(*name))
                .collect(),
            suspect: list
                .iter()
                .map(|(name, _)| scores.suspect.contains(*name))
                .collect(),
            alerted: list
                .iter()
                .map(|(name, _)| scores.alerted.contains(*name))
                .collect(),
            list,
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn index(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }

    fn policy(&self, index: u16) -> &'a ProviderPolicy {
        self.list[usize::from(index)].1
    }

    fn dark(&self, index: u16) -> bool {
        self.dark[usize::from(index)]
    }

    fn suspect(&self, index: u16) -> bool {
        self.suspect[usize::from(index)]
    }

    fn alerted(&self, index: u16) -> bool {
        self.alerted[usize::from(index)]
    }
}

/// How a provider ranks for a create, smaller first: already in the region, health
/// bucket (negated), creates this tick, price.
type Rank = (bool, i64, u32, u64);

#[derive(Default)]
struct View {
    keep: Vec<usize>,
    due: Vec<usize>,
    pending: Vec<usize>,
    spares: Vec<usize>,
    spares_pending: Vec<usize>,
}
