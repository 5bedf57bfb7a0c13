//! Compositions: the paths clients choose from, `[front] → ingress → egress`, built from the
//! healthy components of a region and ranked.
//!
//! A path's score is the product of its components' scores, a cost factor per provider and
//! the transport's weight (how hard it is to block). Because the score factorises, the top K
//! come from the ranked ingress and egress lists directly, without enumerating the
//! front × ingress × egress product: `O(I log I + E log E + K·E)` per region.
//!
//! A path's egress is one at the ingress's own provider where the region has one, so that the
//! path depends on a single provider; otherwise the best egress off the providers the best path
//! uses.
//!
//! A provider whose last tick failed (suspect, its breaker not open yet) is left out of a
//! region's paths as long as the region has other components of the same role.
//!
//! Provider diversity: after the best path, the next alternates sit on providers the best
//! path does not use (ingress and egress), as far as the region has them; then the rest by
//! score.

use std::collections::{BTreeMap, BTreeSet};

use damm_provider::{IdempotencyKey, NodeRole, NodeState, Region};
use serde::{Deserialize, Serialize};

use crate::model::{AddressKind, Fleet, Status};
use crate::policy::Policy;
use crate::score::Scores;

/// How a client reaches the ingress: the catalog's transport, so a composition is published
/// as it is ranked.
pub use damm_catalog::Transport;

/// A way in to an ingress node that is not its own address: a CDN front or an overlay
/// membership, as the shell knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The component's key.
    pub key: IdempotencyKey,
    /// Its provider.
    pub provider: String,
    /// The ingress node it leads to.
    pub ingress: IdempotencyKey,
    /// Front or overlay.
    pub transport: Transport,
}

/// The fleet's fronts (with their hostname) and, with `overlay` (`None`: none; `Some(name)`:
/// that overlay provider's), its joined overlay memberships, as entries to compose.
pub fn entries(fleet: &Fleet, overlay: Option<&str>) -> Vec<Entry> {
    fleet
        .addresses
        .iter()
        .filter(|a| a.owned && a.endpoint.is_some())
        .filter_map(|a| {
            let transport = match a.kind {
                AddressKind::Front => Transport::CdnFronted,
                AddressKind::Overlay if overlay == Some(a.provider.as_str()) => Transport::Overlay,
                _ => return None,
            };
            Some(Entry {
                key: a.key.clone(),
                provider: a.provider.clone(),
                ingress: a.node.clone()?,
                transport,
            })
        })
        .collect()
}

/// One candidate path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    /// Region.
    pub region: Region,
    /// How the client reaches the ingress.
    pub transport: Transport,
    /// The front or overlay entry, for T3 and overlay paths.
    pub entry: Option<IdempotencyKey>,
    /// The entry's provider.
    pub entry_provider: Option<String>,
    /// Ingress node.
    pub ingress: IdempotencyKey,
    /// Ingress provider.
    pub ingress_provider: String,
    /// Egress node (the ingress itself when the region has no separate egress).
    pub egress: IdempotencyKey,
    /// Egress provider.
    pub egress_provider: String,
    /// The path's score, 0..=1.
    pub score: f64,
}

impl Composition {
    /// The providers the path depends on.
    pub fn providers(&self) -> BTreeSet<&str> {
        let mut set: BTreeSet<&str> = [
            self.ingress_provider.as_str(),
            self.egress_provider.as_str(),
        ]
        .into();
        if let Some(p) = &self.entry_provider {
            set.insert(p);
        }
        set
    }

    /// A stable id: `t0:i3-eu-central>e4-eu-central`.
    pub fn path_id(&self) -> String {
        let t = match self.transport {
            Transport::WireguardUdp => "t0",
            Transport::CdnFronted => "t3",
            Transport::Overlay => "ov",
        };
        match &self.entry {
            Some(e) => format!("{t}:{e}>{}>{}", self.ingress, self.egress),
            None => format!("{t}:{}>{}", self.ingress, self.egress),
        }
    }
}

#[derive(Debug, Clone)]
struct Scored<'a> {
    key: &'a IdempotencyKey,
    provider: &'a str,
    score: f64,
}

fn rank(list: &mut [Scored<'_>]) {
    list.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(b.key)));
}

/// Top-`k` paths per region from the healthy, published components.
pub fn compose(
    fleet: &Fleet,
    policy: &Policy,
    scores: &Scores,
    entries: &[Entry],
    k: usize,
) -> BTreeMap<Region, Vec<Composition>> {
    // Cheaper providers score a little higher: a factor in (0.5, 1].
    let max_price = policy
        .providers
        .values()
        .map(|p| p.node_cents())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let cost = |provider: &str| {
        policy
            .providers
            .get(provider)
            .map_or(0.5, |p| 1.0 - 0.5 * p.node_cents() as f64 / max_price)
    };
    let mut ingress: BTreeMap<&Region, Vec<Scored<'_>>> = BTreeMap::new();
    let mut egress: BTreeMap<&Region, Vec<Scored<'_>>> = BTreeMap::new();
    let suspect = |provider: &str| scores.suspect.contains(provider);
    for n in &fleet.nodes {
        let healthy = n.owned
            && n.status == Status::Active
            && n.state == NodeState::Running
            && !scores.dark.contains(&n.provider)
            && policy.regions.contains_key(&n.region);
        let Some(s) = scores.get(n.key.as_str()).filter(|s| healthy && s.healthy) else {
            continue;
        };
        let scored = Scored {
            key: &n.key,
            provider: &n.provider,
            score: s.value * cost(&n.provider),
        };
        match n.role {
            NodeRole::Ingress => ingress.entry(&n.region).or_default().push(scored),
            NodeRole::Egress => egress.entry(&n.region).or_default().push(scored),
        }
    }
    let weight = |t: Transport| match t {
        Transport::WireguardUdp => policy.paths.t0,
        Transport::CdnFronted => policy.paths.t3,
        Transport::Overlay => policy.paths.overlay,
    };
    let mut by_ingress: BTreeMap<&IdempotencyKey, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        if !scores.dark.contains(&e.provider) && !suspect(&e.provider) {
            by_ingress.entry(&e.ingress).or_default().push(e);
        }
    }
    // Components at a provider whose last tick failed leave the catalog at once, unless
    // the region has nothing else of that role: a doubtful path beats none.
    let trusted = |list: &mut Vec<Scored<'_>>| {
        if list.iter().any(|c| !suspect(c.provider)) {
            list.retain(|c| !suspect(c.provider));
        }
    };
    let mut out = BTreeMap::new();
    for (region, mut ins) in ingress {
        trusted(&mut ins);
        rank(&mut ins);
        let mut egs = egress.remove(region).unwrap_or_default();
        trusted(&mut egs);
        rank(&mut egs);
        // Every (transport, ingress) pair, ranked without its egress: the egress factor is
        // chosen per path below.
        let mut heads: Vec<(f64, Transport, Option<&Entry>, &Scored<'_>)> = Vec::new();
        for i in &ins {
            heads.push((
                i.score * weight(Transport::WireguardUdp),
                Transport::WireguardUdp,
                None,
                i,
            ));
            for e in by_ingress.get(i.key).into_iter().flatten() {
                heads.push((i.score * weight(e.transport), e.transport, Some(*e), i));
            }
        }
        heads.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.3.key.cmp(b.3.key))
                .then_with(|| a.1.cmp(&b.1))
        });
        let build = |h: &(f64, Transport, Option<&Entry>, &Scored<'_>), avoid: &BTreeSet<&str>| {
            let (head, transport, entry, i) = *h;
            // An egress at the ingress's own provider first: the path then fails with one
            // provider, not with either of two, and its backbone stays inside one network.
            // Then the best egress off the providers to avoid, then the best.
            let e = egs
                .iter()
                .find(|e| e.provider == i.provider)
                .or_else(|| egs.iter().find(|e| !avoid.contains(e.provider)))
                .or_else(|| egs.first());
            let (egress, egress_provider, egress_score) = match e {
                Some(e) => (e.key.clone(), e.provider.to_owned(), e.score),
                // No separate egress in the region: the ingress is its own egress.
                None => (i.key.clone(), i.provider.to_owned(), 1.0),
            };
            Composition {
                region: region.clone(),
                transport,
                entry: entry.map(|e| e.key.clone()),
                entry_provider: entry.map(|e| e.provider.clone()),
                ingress: i.key.clone(),
                ingress_provider: i.provider.to_owned(),
                egress,
                egress_provider,
                score: (head * egress_score).clamp(0.0, 1.0),
            }
        };
        let mut chosen: Vec<Composition> = Vec::new();
        let mut taken = vec![false; heads.len()];
        if let Some(first) = heads.first() {
            chosen.push(build(first, &BTreeSet::new()));
            taken[0] = true;
        }
        // Alternates on providers the best path does not use.
        let best_providers: BTreeSet<String> = chosen
            .first()
            .map(|c| c.providers().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let avoid: BTreeSet<&str> = best_providers.iter().map(String::as_str).collect();
        for (n, h) in heads.iter().enumerate() {
            if chosen.len() >= k {
                break;
            }
            let entry_ok = h.2.is_none_or(|e| !avoid.contains(e.provider.as_str()));
            if !taken[n] && !avoid.contains(h.3.provider) && entry_ok {
                chosen.push(build(h, &avoid));
                taken[n] = true;
            }
        }
        // Then the rest by score.
        for (n, h) in heads.iter().enumerate() {
            if chosen.len() >= k {
                break;
            }
            if !taken[n] {
                chosen.push(build(h, &BTreeSet::new()));
                taken[n] = true;
            }
        }
        out.insert(region.clone(), chosen);
    }
    out
}
