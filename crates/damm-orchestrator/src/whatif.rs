//! `damm whatif --provider-down NAME`: if NAME went dark now, what happens to a connected
//! user? Answered from the state, the policy, the published catalog and the scores, without
//! I/O or a clock (`now` is an argument), so the same inputs give the same answer.
//!
//! The answer:
//! - **alternate paths**: catalog paths that cross no component of NAME, per region and in all.
//!   NAME may be a compute provider or an entry provider (a `[fronts]` CDN, an `[overlay]`):
//!   with a CDN down its fronted (T3) paths are lost and the bare WireGuard ones remain;
//! - **users failing over without re-enrollment**: a client fails over when its region keeps at
//!   least one such path (its enrollment is stamped on every ingress of its region). Without
//!   a list of enrolled clients, regions are weighted equally, and the answer says so;
//! - **minutes until capacity is refilled**, by replaying the planner's recovery: the breaker
//!   opens after `scoring.breaker.failures` failed ticks (the worst phase: NAME goes dark just
//!   after a tick); in that tick warm spares are promoted and replacements created, limited by
//!   the global and per-provider creates per tick, the providers' node caps and their
//!   documented API rate limits; a new node counts once it has booted and the next tick has
//!   probed it. Boot times are the ones measured in state (`ready_at - created_at`), else the
//!   policy's `lifecycle.boot_timeout` as an upper bound;
//! - **capacity**: live healthy ingress over the regions' `ingress.min`, each region capped at
//!   its minimum, now, right after the loss, and at 5 minutes. A region that needs an egress
//!   and loses its last one counts nothing until a replacement egress has booted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use damm_catalog::{Catalog, Transport};
use damm_fleet::{Policy, Scores, Status};
use damm_provider::{NodeRole, NodeState, Region};
use serde::Serialize;

use crate::state::State;

/// The integrity claim's targets.
pub mod targets {
    /// Alternate paths at least.
    pub const ALTERNATE_PATHS: usize = 3;
    /// Users failing over without re-enrollment, percent at least.
    pub const USERS_PERCENT: f64 = 95.0;
    /// Capacity at 5 minutes, percent at least.
    pub const CAPACITY_AT_5_MIN_PERCENT: f64 = 70.0;
}

/// Documented sustained API rates, requests per second, by adapter: Hetzner 3600/hour,
/// DigitalOcean 5000/hour (tighter than its 250/minute), Vultr 30/second, GCE 1500/minute,
/// Tailscale 20/second, Cloudflare 1200 per 5 minutes. The adapters enforce the same limits
/// with their token buckets; a create costs one request.
pub const DOCUMENTED_RATES: &[(&str, f64)] = &[
    ("cloudflare", 1200.0 / 300.0),
    ("digitalocean", 5000.0 / 3600.0),
    ("gce", 1500.0 / 60.0),
    ("hetzner", 1.0), // 3600 an hour
    ("tailscale", 20.0),
    ("vultr", 30.0),
];

/// The documented sustained rate of `adapter`, requests per second, if known.
pub fn documented_rate(adapter: &str) -> Option<f64> {
    DOCUMENTED_RATES
        .iter()
        .find(|(name, _)| *name == adapter)
        .map(|(_, r)| *r)
}

/// Who is enrolled, for the user share.
#[derive(Debug, Clone, PartialEq)]
pub enum Users {
    /// Enrolled clients per region.
    PerRegion(BTreeMap<Region, u64>),
    /// No client list: every allowlisted region weighs the same.
    RegionsEqual,
}

impl Users {
    /// The enrolled clients in `state` per region; with none enrolled, regions weigh the same.
    pub fn from_state(state: &State) -> Users {
        if state.clients.is_empty() {
            return Users::RegionsEqual;
        }
        let mut per_region: BTreeMap<Region, u64> = BTreeMap::new();
        for client in state.clients.values() {
            *per_region.entry(client.region.clone()).or_default() += 1;
        }
        Users::PerRegion(per_region)
    }
}

/// The paths of a catalog as the what-if needs them: per region, each path's providers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogPaths {
    /// Region → one entry per path: the providers it crosses.
    pub regions: BTreeMap<String, Vec<BTreeSet<String>>>,
    /// Region → the indices (in `regions`) of its paths through a CDN front (T3).
    pub fronted: BTreeMap<String, BTreeSet<usize>>,
    /// Where the paths came from, for the answer.
    pub source: String,
}

impl CatalogPaths {
    /// The paths of a published catalog.
    pub fn from_catalog(catalog: &Catalog, source: &str) -> CatalogPaths {
        CatalogPaths {
            regions: catalog
                .regions
                .iter()
                .map(|(r, paths)| {
                    let list = paths
                        .paths
                        .iter()
                        .map(|p| p.providers().into_iter().map(str::to_owned).collect())
                        .collect();
                    (r.clone(), list)
                })
                .collect(),
            fronted: catalog
                .regions
                .iter()
                .map(|(r, paths)| {
                    let fronted = paths
                        .paths
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.transports.first() == Some(&Transport::CdnFronted))
                        .map(|(i, _)| i)
                        .collect();
                    (r.clone(), fronted)
                })
                .collect(),
            source: format!("{source} (version {})", catalog.version),
        }
    }

    /// The paths the orchestrator would publish from `state` now (when no catalog is at
    /// hand: `damm serve` without keys, or no catalog file yet).
    pub fn compose(state: &State, policy: &Policy, scores: &Scores) -> CatalogPaths {
        let fleet = state.fleet();
        let entries = damm_fleet::entries(&fleet, None);
        let paths = damm_fleet::compose(
            &fleet,
            policy,
            scores,
            &entries,
            policy.paths.top_k as usize,
        );
        CatalogPaths {
            fronted: paths
                .iter()
                .map(|(r, list)| {
                    let fronted = list
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.transport == Transport::CdnFronted)
                        .map(|(i, _)| i)
                        .collect();
                    (r.to_string(), fronted)
                })
                .collect(),
            regions: paths
                .into_iter()
                .map(|(r, list)| {
                    let list = list
                        .iter()
                        .map(|c| c.providers().into_iter().map(str::to_owned).collect())
                        .collect();
                    (r.to_string(), list)
                })
                .collect(),
            source: "composed from state (no published catalog)".to_owned(),
        }
    }
}

/// Every provider a what-if can be about: the policy's (compute, fronts and overlay), and any
/// the state or the paths still name (a provider taken out of the policy keeps its nodes
/// until they are retired).
pub fn known_providers(state: &State, policy: &Policy, paths: &CatalogPaths) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = policy.adapters().map(|(name, _)| name.to_owned()).collect();
    known.extend(state.nodes.values().map(|n| n.provider.clone()));
    known.extend(state.addresses.values().map(|a| a.provider.clone()));
    known.extend(paths.regions.values().flatten().flatten().cloned());
    known
}

/// Refuses a provider nothing knows: a misspelt name would otherwise be answered with
/// "nothing is lost".
pub fn check_provider(
    state: &State,
    policy: &Policy,
    paths: &CatalogPaths,
    provider: &str,
) -> anyhow::Result<()> {
    let known = known_providers(state, policy, paths);
    if known.contains(provider) {
        return Ok(());
    }
    anyhow::bail!(
        "unknown provider `{provider}`: not in the policy, the state or the catalog's paths \
         (known: {})",
        known.into_iter().collect::<Vec<_>>().join(", ")
    )
}

/// One region's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionAnswer {
    /// Paths in the catalog now.
    pub paths: usize,
    /// Paths that cross no component of the provider.
    pub alternate_paths: usize,
    /// Paths through a CDN front (T3) in the catalog now.
    pub fronted_paths: usize,
    /// Of those, the ones that cross no component of the provider: T3 left for clients
    /// whose network blocks UDP.
    pub alternate_fronted_paths: usize,
    /// The region's `ingress.min`.
    pub min_ingress: u32,
    /// Live healthy ingress now.
    pub live_ingress: usize,
    /// Of those, on the provider.
    pub lost_ingress: usize,
    /// Healthy warm spares elsewhere, promotable in one tick.
    pub spares: usize,
    /// Whether its clients fail over without re-enrollment.
    pub fails_over: bool,
}

/// The share of users who fail over without re-enrollment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserShare {
    /// Percent.
    pub percent: f64,
    /// Enrolled clients counted, when a client list was given.
    pub clients: Option<u64>,
    /// How it was counted.
    pub basis: String,
}

impl UserShare {
    /// `ok` of `total` fail over (all of none), counted as `basis` says.
    fn of(ok: u64, total: u64, clients: Option<u64>, basis: &str) -> UserShare {
        UserShare {
            percent: if total == 0 {
                100.0
            } else {
                100.0 * ok as f64 / total as f64
            },
            clients,
            basis: basis.to_owned(),
        }
    }
}

/// How long until capacity is back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refill {
    /// Minutes from the outage until every region is back at its `ingress.min`; `None` when
    /// the caps or the remaining providers cannot get there.
    pub minutes: Option<f64>,
    /// Minutes until the first tick sees the provider fail (worst phase): its paths leave the
    /// catalog and spares elsewhere stand in for its live ingress.
    pub notice_minutes: f64,
    /// Minutes until the breaker opens and replacements are created (worst phase).
    pub detect_minutes: f64,
    /// Spares promoted.
    pub spares_promoted: u32,
    /// Ingress nodes created.
    pub creates: u32,
    /// Ingress still missing when the replay gave up.
    pub missing: u32,
    /// Boot time assumed per provider that creates, seconds.
    pub boot_seconds: BTreeMap<String, f64>,
    /// Where the boot times come from.
    pub boot_basis: String,
    /// Creates per tick per provider, after the policy's caps and the documented rates.
    pub creates_per_tick: BTreeMap<String, u32>,
}

/// Capacity at one instant after the outage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityPoint {
    /// Minutes after the outage.
    pub minute: f64,
    /// Percent of the regions' ingress minimums.
    pub percent: f64,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIf {
    /// The provider that goes dark.
    pub provider: String,
    /// When the question was asked.
    pub at: DateTime<Utc>,
    /// Whether the provider is in the policy (`[providers]`, `[fronts]` or `[overlay]`).
    pub in_policy: bool,
    /// Where the paths came from.
    pub paths_source: String,
    /// Per region.
    pub regions: BTreeMap<String, RegionAnswer>,
    /// Alternate paths in all.
    pub alternate_paths: usize,
    /// Alternate paths of the poorest region.
    pub alternate_paths_min_region: usize,
    /// Users failing over without re-enrollment.
    pub users: UserShare,
    /// Re-provisioning.
    pub refill: Refill,
    /// Capacity now, percent.
    pub capacity_now_percent: f64,
    /// Capacity right after the loss, before any reaction, percent.
    pub capacity_after_loss_percent: f64,
    /// Capacity 5 minutes after the outage, percent.
    pub capacity_at_5_min_percent: f64,
    /// Capacity at each tick after the outage.
    pub timeline: Vec<CapacityPoint>,
}

impl WhatIf {
    /// Whether the answer meets the integrity claim's three numbers (paths per region, users,
    /// capacity at 5 minutes).
    pub fn meets_claim(&self) -> bool {
        self.alternate_paths_min_region >= targets::ALTERNATE_PATHS
            && self.users.percent >= targets::USERS_PERCENT
            && self.capacity_at_5_min_percent >= targets::CAPACITY_AT_5_MIN_PERCENT
    }
}

fn live(n: &crate::state::NodeRecord, key: &str, scores: &Scores) -> bool {
    n.state == NodeState::Running
        && !scores.dark.contains(&n.provider)
        && scores.get(key).is_some_and(|s| s.healthy)
}

/// Capacity, percent; a region in `unrouted` (no live egress) counts nothing.
fn percent(
    have: &BTreeMap<&Region, u32>,
    mins: &BTreeMap<&Region, u32>,
    unrouted: &BTreeSet<&Region>,
) -> f64 {
    let want: u32 = mins.values().sum();
    if want == 0 {
        return 100.0;
    }
    let got: u32 = mins
        .iter()
        .filter(|(r, _)| !unrouted.contains(*r))
        .map(|(r, min)| have.get(r).copied().unwrap_or(0).min(*min))
        .sum();
    100.0 * f64::from(got) / f64::from(want)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Answers "what if `provider` went dark at `now`?".
pub fn whatif(
    state: &State,
    policy: &Policy,
    paths: &CatalogPaths,
    scores: &Scores,
    users: &Users,
    provider: &str,
    now: DateTime<Utc>,
) -> WhatIf {
    let tick = policy.fleet.tick.0.as_secs_f64().max(1.0);
    let mins: BTreeMap<&Region, u32> = policy
        .regions
        .iter()
        .map(|(r, p)| (r, p.ingress.min))
        .collect();

    // Per region: paths, live ingress, what is lost, the spares left.
    let mut regions = BTreeMap::new();
    let mut live_now: BTreeMap<&Region, u32> = BTreeMap::new();
    let mut after_loss: BTreeMap<&Region, u32> = BTreeMap::new();
    let mut spares: BTreeMap<&Region, u32> = BTreeMap::new();
    let mut nodes_at: BTreeMap<&str, u32> = BTreeMap::new();
    let mut egress_now: BTreeSet<&Region> = BTreeSet::new();
    let mut egress_after: BTreeSet<&Region> = BTreeSet::new();
    for (key, n) in &state.nodes {
        *nodes_at.entry(n.provider.as_str()).or_default() += 1;
        if !live(n, key.as_str(), scores) {
            continue;
        }
        if n.role == NodeRole::Egress {
            if n.status == Status::Active {
                egress_now.insert(&n.region);
                if n.provider != provider {
                    egress_after.insert(&n.region);
                }
            }
            continue;
        }
        match n.status {
            Status::Active => {
                *live_now.entry(&n.region).or_default() += 1;
                if n.provider != provider {
                    *after_loss.entry(&n.region).or_default() += 1;
                }
            }
            Status::Spare if n.provider != provider => {
                *spares.entry(&n.region).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut names: BTreeSet<String> = policy.regions.keys().map(ToString::to_string).collect();
    names.extend(paths.regions.keys().cloned());
    for name in &names {
        let list = paths.regions.get(name).map_or(&[][..], Vec::as_slice);
        let alternate = list.iter().filter(|p| !p.contains(provider)).count();
        let fronted = paths.fronted.get(name);
        let is_fronted = |i: &usize| fronted.is_some_and(|f| f.contains(i));
        let fronted_paths = (0..list.len()).filter(is_fronted).count();
        let alternate_fronted = list
            .iter()
            .enumerate()
            .filter(|(i, p)| is_fronted(i) && !p.contains(provider))
            .count();
        let region = policy.regions.keys().find(|r| r.as_str() == name);
        let count = |m: &BTreeMap<&Region, u32>| {
            region.and_then(|r| m.get(r)).copied().unwrap_or(0) as usize
        };
        let live = count(&live_now);
        regions.insert(
            name.clone(),
            RegionAnswer {
                paths: list.len(),
                alternate_paths: alternate,
                fronted_paths,
                alternate_fronted_paths: alternate_fronted,
                min_ingress: region.map_or(0, |r| policy.regions[r].ingress.min),
                live_ingress: live,
                lost_ingress: live - count(&after_loss),
                spares: count(&spares),
                fails_over: alternate > 0,
            },
        );
    }
    let alternate_paths = regions.values().map(|r| r.alternate_paths).sum();
    let alternate_paths_min_region = policy
        .regions
        .keys()
        .map(|r| regions.get(r.as_str()).map_or(0, |a| a.alternate_paths))
        .min()
        .unwrap_or(0);

    let users = match users {
        Users::PerRegion(counts) => {
            let total: u64 = counts.values().sum();
            let ok: u64 = counts
                .iter()
                .filter(|(r, _)| regions.get(r.as_str()).is_some_and(|a| a.fails_over))
                .map(|(_, n)| n)
                .sum();
            UserShare::of(ok, total, Some(total), "enrolled clients, by region")
        }
        Users::RegionsEqual => {
            let total = policy.regions.len() as u64;
            let ok = policy
                .regions
                .keys()
                .filter(|r| regions.get(r.as_str()).is_some_and(|a| a.fails_over))
                .count() as u64;
            UserShare::of(
                ok,
                total,
                None,
                "no enrolled-client list in state: regions weighted equally",
            )
        }
    };

    // Boot times: measured in state where nodes have been probed ready, else the bound.
    let mut measured: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for n in state.nodes.values() {
        if let Some(ready) = n.ready_at {
            let secs = (ready - n.created_at).num_milliseconds() as f64 / 1000.0;
            measured
                .entry(n.provider.as_str())
                .or_default()
                .push(secs.max(0.0));
        }
    }
    let all = median(measured.values().flatten().copied().collect());
    let bound = policy.lifecycle.boot_timeout.0.as_secs_f64();
    let boot_basis = if all.is_some() {
        "measured in state (first healthy probe after create; tick resolution)".to_owned()
    } else {
        format!(
            "not measured yet: lifecycle.boot_timeout ({}) as an upper bound",
            policy.lifecycle.boot_timeout
        )
    };

    // The providers that can create, with their per-tick budgets.
    let mut budget: BTreeMap<&str, u32> = BTreeMap::new();
    let mut headroom: BTreeMap<&str, u32> = BTreeMap::new();
    let mut boot: BTreeMap<String, f64> = BTreeMap::new();
    for (name, p) in &policy.providers {
        if name == provider || scores.dark.contains(name) {
            continue;
        }
        let by_rate =
            documented_rate(p.adapter(name)).map_or(u32::MAX, |rate| (rate * tick).floor() as u32);
        budget.insert(name, p.creates_per_tick.min(by_rate));
        headroom.insert(
            name,
            p.max_nodes
                .saturating_sub(nodes_at.get(name.as_str()).copied().unwrap_or(0)),
        );
        let b = measured
            .get(name.as_str())
            .and_then(|v| median(v.clone()))
            .or(all)
            .unwrap_or(bound);
        boot.insert(name.clone(), b);
    }

    // Replay the recovery tick by tick.
    let breaker = state.scores.breakers.get(provider);
    let detect_ticks = if scores.dark.contains(provider) {
        0
    } else {
        policy
            .scoring
            .breaker
            .failures
            .saturating_sub(breaker.map_or(0, |b| b.failures))
            .max(1)
    };
    // Regions that need an egress and have none: nothing there routes out.
    let needs_egress = |r: &&Region| policy.regions[*r].egress.min > 0;
    let unrouted_now: BTreeSet<&Region> = policy
        .regions
        .keys()
        .filter(|r| needs_egress(r) && !egress_now.contains(r))
        .collect();
    let mut unrouted: BTreeSet<&Region> = policy
        .regions
        .keys()
        .filter(|r| needs_egress(r) && !egress_after.contains(r))
        .collect();
    // A replacement egress is created in the reaction tick and counts once booted.
    let fastest_boot = boot.values().copied().fold(f64::INFINITY, f64::min);
    let egress_back_at = (fastest_boot.is_finite())
        .then(|| f64::from(detect_ticks) * tick + (fastest_boot / tick).ceil().max(1.0) * tick);
    let mut have: BTreeMap<&Region, u32> = after_loss.clone();
    let loss_percent = percent(&have, &mins, &unrouted);
    let mut timeline = vec![CapacityPoint {
        minute: 0.0,
        percent: loss_percent,
    }];
    let mut arriving: Vec<(f64, &Region)> = Vec::new();
    let mut promoted = 0;
    let mut created = 0;
    let mut full_at = (loss_percent >= 100.0).then_some(0.0);
    const MAX_TICKS: u32 = 240;
    // The first tick that sees the provider fail marks it suspect: spares stand in then.
    let notice_ticks =
        u32::from(!(scores.dark.contains(provider) || scores.suspect.contains(provider)));
    for k in notice_ticks.min(detect_ticks)..=MAX_TICKS {
        if full_at.is_some() {
            break;
        }
        let t = f64::from(k) * tick;
        if egress_back_at.is_some_and(|at| at <= t) {
            unrouted.clear();
        }
        // Nodes booted by now and probed by this tick.
        arriving.retain(|(ready, r)| {
            if *ready <= t {
                *have.entry(r).or_default() += 1;
                false
            } else {
                true
            }
        });
        let coming = |r: &Region, arriving: &[(f64, &Region)]| {
            arriving.iter().filter(|(_, a)| *a == r).count() as u32
        };
        let mut need: Vec<(&Region, u32)> = mins
            .iter()
            .map(|(r, min)| {
                let got = have.get(r).copied().unwrap_or(0) + coming(r, &arriving);
                (*r, min.saturating_sub(got))
            })
            .collect();
        if k == notice_ticks {
            for (r, n) in &mut need {
                let p = spares.get(r).copied().unwrap_or(0).min(*n);
                *have.entry(r).or_default() += p;
                promoted += p;
                *n -= p;
            }
        }
        // Creates, round-robin over the regions, as the planner shares the global cap.
        let mut left_global = if k >= detect_ticks {
            policy.limits.creates_per_tick
        } else {
            0
        };
        let mut left: BTreeMap<&str, u32> = budget.clone();
        let created_before = created;
        loop {
            let mut progressed = false;
            for (r, n) in &mut need {
                if *n == 0 || left_global == 0 {
                    continue;
                }
                let pick = policy
                    .providers_for(r)
                    .map(|(name, _)| name)
                    .filter(|name| {
                        left.get(name).is_some_and(|&b| b > 0)
                            && headroom.get(name).is_some_and(|&h| h > 0)
                    })
                    .max_by_key(|name| (left[name], std::cmp::Reverse(*name)));
                let Some(name) = pick else { continue };
                *left.get_mut(name).expect("picked from it") -= 1;
                *headroom.get_mut(name).expect("picked from it") -= 1;
                left_global -= 1;
                *n -= 1;
                created += 1;
                // Counted at the first tick after it has booted.
                let ticks = (boot[name] / tick).ceil().max(1.0);
                arriving.push((t + ticks * tick, r));
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let p = percent(&have, &mins, &unrouted);
        timeline.push(CapacityPoint {
            minute: t / 60.0,
            percent: p,
        });
        if p >= 100.0 {
            full_at = Some(t);
        }
        if full_at.is_none()
            && k >= detect_ticks
            && arriving.is_empty()
            && created == created_before
            && (unrouted.is_empty() || egress_back_at.is_none())
        {
            break; // Nothing more can come.
        }
    }
    let missing = mins
        .iter()
        .map(|(r, min)| min.saturating_sub(have.get(r).copied().unwrap_or(0)))
        .sum();
    let at_5 = timeline
        .iter()
        .rfind(|p| p.minute <= 5.0)
        .map_or(loss_percent, |p| p.percent);
    WhatIf {
        provider: provider.to_owned(),
        at: now,
        in_policy: policy.adapters().any(|(name, _)| name == provider),
        paths_source: paths.source.clone(),
        regions,
        alternate_paths,
        alternate_paths_min_region,
        users,
        refill: Refill {
            minutes: full_at.map(|t| t / 60.0),
            notice_minutes: f64::from(notice_ticks) * tick / 60.0,
            detect_minutes: f64::from(detect_ticks) * tick / 60.0,
            spares_promoted: promoted,
            creates: created,
            missing,
            boot_seconds: boot,
            boot_basis,
            creates_per_tick: budget.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        },
        capacity_now_percent: percent(&live_now, &mins, &unrouted_now),
        capacity_after_loss_percent: loss_percent,
        capacity_at_5_min_percent: at_5,
        timeline,
    }
}

/// `target ≥ {target}{unit}: ok`, or `MISSED` where `value` falls short of it.
fn against<T: PartialOrd + std::fmt::Display>(value: T, target: T, unit: &str) -> String {
    let verdict = if value >= target { "ok" } else { "MISSED" };
    format!("target ≥ {target}{unit}: {verdict}")
}

/// The answer as a human table.
pub fn render(w: &WhatIf) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "what if {} went dark at {}?{}",
        w.provider,
        w.at.to_rfc3339(),
        if w.in_policy {
            ""
        } else {
            " (not in the policy's providers)"
        }
    );
    let _ = writeln!(out, "paths: {}", w.paths_source);
    let _ = writeln!(
        out,
        "{:<16} {:>5} {:>10} {:>9} {:>6} {:>6} {:>10}",
        "REGION", "PATHS", "ALTERNATE", "LIVE/MIN", "LOST", "SPARES", "FAILOVER"
    );
    for (name, r) in &w.regions {
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>10} {:>9} {:>6} {:>6} {:>10}",
            name,
            r.paths,
            r.alternate_paths,
            format!("{}/{}", r.live_ingress, r.min_ingress),
            r.lost_ingress,
            r.spares,
            if r.fails_over { "yes" } else { "NO" }
        );
    }
    for (name, r) in w.regions.iter().filter(|(_, r)| r.fronted_paths > 0) {
        let _ = writeln!(
            out,
            "{name}: {} of its {} paths through a CDN front (T3) remain",
            r.alternate_fronted_paths, r.fronted_paths
        );
    }
    let _ = writeln!(
        out,
        "alternate paths: {} in all, {} in the poorest region ({})",
        w.alternate_paths,
        w.alternate_paths_min_region,
        against(w.alternate_paths_min_region, targets::ALTERNATE_PATHS, "")
    );
    let _ = writeln!(
        out,
        "users failing over without re-enrollment: {:.1} % ({}; {})",
        w.users.percent,
        w.users.basis,
        against(w.users.percent, targets::USERS_PERCENT, " %")
    );
    let r = &w.refill;
    let _ = writeln!(
        out,
        "capacity: {:.0} % now, {:.0} % right after the loss, {:.0} % at 5 min ({})",
        w.capacity_now_percent,
        w.capacity_after_loss_percent,
        w.capacity_at_5_min_percent,
        against(
            w.capacity_at_5_min_percent,
            targets::CAPACITY_AT_5_MIN_PERCENT,
            " %"
        )
    );
    let _ = writeln!(
        out,
        "refill: {} (out of the catalog and spares in after {:.0} min, breaker opens after {:.0} min; {} spares promoted, {} creates{})",
        r.minutes.map_or_else(
            || "not reachable with the remaining providers and caps".to_owned(),
            |m| format!("{m:.0} min")
        ),
        r.notice_minutes,
        r.detect_minutes,
        r.spares_promoted,
        r.creates,
        if r.missing > 0 {
            format!(", {} ingress still missing", r.missing)
        } else {
            String::new()
        }
    );
    let boots: Vec<String> = r
        .boot_seconds
        .iter()
        .map(|(p, s)| format!("{p} {s:.0} s"))
        .collect();
    let caps: Vec<String> = r
        .creates_per_tick
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  boot times: {} ({}); creates per tick: {}",
        boots.join(", "),
        r.boot_basis,
        caps.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What-if of `dark` at `at` seconds, users spread evenly over the regions.
    fn even(state: &State, policy: &Policy, catalog: &CatalogPaths, dark: &str, at: i64) -> WhatIf {
        let scores = state.scores.snapshot(t(at), &policy.scoring);
        whatif(
            state,
            policy,
            catalog,
            &scores,
            &Users::RegionsEqual,
            dark,
            t(at),
        )
    }
    use crate::state::NodeRecord;
    use chrono::TimeDelta;
    use damm_provider::{FleetId, IdempotencyKey};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(1_800_000_000 + secs)
    }

    fn policy(spares: u32, boot_timeout: &str) -> Policy {
        let mut text = format!(
            "[fleet]\nid = \"t\"\ntick = \"60s\"\n[limits]\ncreates_per_tick = 6\nretires_per_tick = 3\nmonthly_spend_cap = 1000.0\n[lifecycle]\nboot_timeout = \"{boot_timeout}\"\n"
        );
        for p in ["a", "b", "c"] {
            text += &format!(
                "[providers.{p}]\nmax_nodes = 10\ncreates_per_tick = 2\nregions = [\"eu\", \"us\"]\nprices = {{ small = 5.0 }}\n"
            );
        }
        for r in ["eu", "us"] {
            text += &format!(
                "[regions.{r}]\ningress = {{ min = 2, max = 4 }}\negress = {{ min = 0, max = 1 }}\nwarm_spares = {spares}\nrotate_ingress_after = \"6h\"\nrotate_egress_after = \"7d\"\n"
            );
        }
        Policy::parse(&text, "test").unwrap()
    }

    /// Adds a node probed healthy at `t(0)`, booted in `boot` seconds.
    fn node(state: &mut State, key: &str, provider: &str, region: &str, status: Status, boot: i64) {
        let key = IdempotencyKey::new(key).unwrap();
        state.nodes.insert(
            key.clone(),
            NodeRecord {
                provider: provider.into(),
                id: key.to_string(),
                region: Region::new(region).unwrap(),
                role: NodeRole::Ingress,
                status,
                status_since: t(-600),
                state: NodeState::Running,
                created_at: t(-600),
                addresses: vec![],
                wireguard_port: None,
                last_seen: t(0),
                ready_at: Some(t(-600 + boot)),
            },
        );
        let scoring = damm_fleet::policy::Scoring::default();
        state.scores.probe(key.as_str(), t(0), true, None, &scoring);
    }

    fn paths(list: &[(&str, &[&str])]) -> CatalogPaths {
        let mut regions: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
        for (r, providers) in list {
            regions
                .entry((*r).to_owned())
                .or_default()
                .push(providers.iter().map(|p| (*p).to_owned()).collect());
        }
        CatalogPaths {
            regions,
            fronted: BTreeMap::new(),
            source: "test".into(),
        }
    }

    fn fleet(spare_provider: &str) -> State {
        let mut s = State::new(FleetId::new("t").unwrap());
        node(&mut s, "i1-eu", "a", "eu", Status::Active, 40);
        node(&mut s, "i2-eu", "b", "eu", Status::Active, 40);
        node(&mut s, "i3-us", "a", "us", Status::Active, 40);
        node(&mut s, "i4-us", "c", "us", Status::Active, 40);
        node(&mut s, "s5-eu", spare_provider, "eu", Status::Spare, 40);
        node(&mut s, "s6-us", spare_provider, "us", Status::Spare, 40);
        s
    }

    #[test]
    fn counts_alternate_paths_users_and_a_spare_backed_recovery() {
        let policy = policy(1, "10m");
        let state = fleet("b");
        let catalog = paths(&[
            ("eu", &["a"]),
            ("eu", &["b"]),
            ("eu", &["b", "a"]),
            ("us", &["a"]),
            ("us", &["c"]),
        ]);
        let w = even(&state, &policy, &catalog, "a", 0);
        assert_eq!(w.regions["eu"].alternate_paths, 1);
        assert_eq!(w.regions["us"].alternate_paths, 1);
        assert_eq!(w.alternate_paths, 2);
        assert_eq!(w.alternate_paths_min_region, 1);
        assert_eq!(w.users.percent, 100.0);
        assert!(w.users.basis.contains("regions weighted equally"));
        assert_eq!(w.capacity_now_percent, 100.0);
        assert_eq!(w.capacity_after_loss_percent, 50.0);
        // The first failed tick promotes both spares: full at 1 minute, before the breaker
        // opens after 2 failed ticks.
        assert_eq!(w.refill.notice_minutes, 1.0);
        assert_eq!(w.refill.detect_minutes, 2.0);
        assert_eq!(w.refill.spares_promoted, 2);
        assert_eq!(w.refill.creates, 0);
        assert_eq!(w.refill.minutes, Some(1.0));
        assert_eq!(w.capacity_at_5_min_percent, 100.0);
        assert!(
            !w.meets_claim(),
            "one alternate path per region is not three"
        );
    }

    #[test]
    fn without_spares_creates_wait_for_measured_boots_and_caps() {
        let policy = policy(0, "10m");
        let mut state = fleet("b");
        state.nodes.retain(|k, _| !k.as_str().starts_with('s'));
        let w = even(&state, &policy, &paths(&[]), "a", 0);
        assert!(w.refill.boot_basis.starts_with("measured"));
        assert_eq!(w.refill.boot_seconds["b"], 40.0);
        // Created at minute 2, booted in 40 s, counted at the next tick: minute 3.
        assert_eq!(w.refill.creates, 2);
        assert_eq!(w.refill.minutes, Some(3.0));
        assert_eq!(w.capacity_at_5_min_percent, 100.0);
        // No paths in the catalog: nobody fails over.
        assert_eq!(w.users.percent, 0.0);
    }

    #[test]
    fn unmeasured_boots_fall_back_to_the_boot_timeout_bound() {
        let policy = policy(0, "10m");
        let mut state = fleet("b");
        state.nodes.retain(|k, _| !k.as_str().starts_with('s'));
        for n in state.nodes.values_mut() {
            n.ready_at = None;
        }
        let w = even(&state, &policy, &paths(&[]), "a", 0);
        assert!(w.refill.boot_basis.contains("upper bound"), "{w:?}");
        assert_eq!(w.refill.minutes, Some(12.0));
        assert_eq!(w.capacity_at_5_min_percent, 50.0);
    }

    #[test]
    fn enrolled_clients_weigh_the_user_share() {
        let policy = policy(1, "10m");
        let mut state = fleet("b");
        assert_eq!(Users::from_state(&state), Users::RegionsEqual);
        let eu = Region::new("eu").unwrap();
        for _ in 0..3 {
            crate::enroll::enroll(&mut state, &policy, &eu, t(0)).unwrap();
        }
        crate::enroll::enroll(&mut state, &policy, &Region::new("us").unwrap(), t(0)).unwrap();
        assert_eq!(
            Users::from_state(&state),
            Users::PerRegion(BTreeMap::from([(eu, 3), (Region::new("us").unwrap(), 1)]))
        );
    }

    #[test]
    fn caps_that_cannot_refill_say_so_and_users_weigh_by_clients() {
        let mut policy = policy(0, "10m");
        for p in policy.providers.values_mut() {
            p.max_nodes = 2; // every provider is full
        }
        let mut state = fleet("b");
        state.nodes.retain(|k, _| !k.as_str().starts_with('s'));
        node(&mut state, "x7-us", "b", "us", Status::Draining, 40);
        node(&mut state, "x8-eu", "c", "eu", Status::Draining, 40);
        let scores = state.scores.snapshot(t(0), &policy.scoring);
        let catalog = paths(&[("eu", &["a"]), ("us", &["c"])]);
        let users = Users::PerRegion(BTreeMap::from([
            (Region::new("eu").unwrap(), 90),
            (Region::new("us").unwrap(), 10),
        ]));
        let w = whatif(&state, &policy, &catalog, &scores, &users, "a", t(0));
        assert_eq!(w.refill.minutes, None);
        assert_eq!(w.refill.missing, 2);
        assert_eq!(w.users.clients, Some(100));
        assert_eq!(w.users.percent, 10.0);
        assert!(render(&w).contains("not reachable"));
    }

    /// `policy` with eu fronted through the CDN `cdn`, and a front on each of eu's ingress.
    fn fronted(policy: &mut Policy, state: &mut State) {
        policy.fronts.providers.insert(
            "cdn".into(),
            damm_fleet::policy::EntryProvider {
                adapter: Some("cloudflare".into()),
                max: 4,
                per_tick: 2,
            },
        );
        let eu = Region::new("eu").unwrap();
        policy.regions.get_mut(&eu).unwrap().fronts = true;
        for ingress in ["i1-eu", "i2-eu"] {
            state.addresses.insert(
                IdempotencyKey::new(format!("{ingress}-cdn")).unwrap(),
                crate::state::AddressRecord {
                    provider: "cdn".into(),
                    id: format!("record-{ingress}"),
                    region: eu.clone(),
                    kind: damm_fleet::AddressKind::Front,
                    node: Some(IdempotencyKey::new(ingress).unwrap()),
                    address: None,
                    hostname: Some(format!("{ingress}.cdn.example")),
                },
            );
        }
    }

    #[test]
    fn a_cdn_down_loses_its_fronted_paths_and_keeps_the_bare_ones() {
        let mut policy = policy(1, "10m");
        let mut state = fleet("b");
        fronted(&mut policy, &mut state);
        // The paths as the orchestrator composes them: the fronts are T3 heads of eu's paths.
        let scores = state.scores.snapshot(t(0), &policy.scoring);
        let catalog = CatalogPaths::compose(&state, &policy, &scores);
        let eu = &catalog.regions["eu"];
        assert_eq!(eu.iter().filter(|p| p.contains("cdn")).count(), 2, "{eu:?}");
        assert_eq!(eu.len(), 4, "two T0 and two T3: {eu:?}");

        let w = even(&state, &policy, &catalog, "cdn", 0);
        assert!(w.in_policy, "a [fronts] provider is the policy's");
        assert_eq!(w.regions["eu"].paths, 4);
        assert_eq!(
            w.regions["eu"].alternate_paths, 2,
            "the bare WireGuard paths"
        );
        assert_eq!(w.regions["us"].alternate_paths, w.regions["us"].paths);
        assert_eq!(w.users.percent, 100.0);
        // A CDN holds no ingress: capacity does not move and nothing is created.
        assert_eq!(w.regions["eu"].lost_ingress, 0);
        assert_eq!(w.capacity_after_loss_percent, w.capacity_now_percent);
        assert_eq!(w.refill.creates, 0);
        assert_eq!(w.refill.spares_promoted, 0);
    }

    #[test]
    fn unknown_providers_are_refused_and_entry_providers_are_known() {
        let mut policy = policy(1, "10m");
        let mut state = fleet("b");
        fronted(&mut policy, &mut state);
        // A provider taken out of the policy whose node is still in state.
        node(&mut state, "i9-us", "retired", "us", Status::Draining, 40);
        let catalog = paths(&[("eu", &["a"])]);
        for known in ["a", "cdn", "retired"] {
            check_provider(&state, &policy, &catalog, known).unwrap();
        }
        let err = check_provider(&state, &policy, &catalog, "cnd")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown provider `cnd`"), "{err}");
        assert!(err.contains("known: a, b, c, cdn, retired"), "{err}");
    }

    #[test]
    fn an_already_open_breaker_reacts_at_once_and_unknown_providers_lose_nothing() {
        let policy = policy(1, "10m");
        let mut state = fleet("b");
        let breaker = policy.scoring.breaker.clone();
        for i in 0..2 {
            state
                .scores
                .provider_tick("c", t(i), Err("down".into()), &breaker);
        }
        let w = even(&state, &policy, &paths(&[]), "c", 2);
        assert_eq!(w.refill.detect_minutes, 0.0);
        let w = even(&state, &policy, &paths(&[]), "nobody", 2);
        assert!(!w.in_policy);
        assert_eq!(w.capacity_after_loss_percent, w.capacity_now_percent);
        assert_eq!(w.refill.creates, 0);
    }
}
