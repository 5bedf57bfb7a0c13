//! Property tests over random fleets, policies and scores: no plan exceeds a cap or an
//! allowlist, none touches a resource without the fleet label or at a dark provider, none
//! drains or retires the last healthy ingress of a region without a ready replacement, and
//! the same inputs give the same plan. Fronts and overlay memberships keep their providers'
//! caps, go only to live ingress of the regions that ask for them, and move only off an
//! ingress that no longer serves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use damm_fleet::policy::{
    Bounds, EntryProvider, FleetSection, FrontsPolicy, Lifecycle, Limits, OverlayPolicy,
    ProviderPolicy, RegionPolicy, Scoring,
};
use damm_fleet::{
    Action, AddressKind, Fleet, FleetAddress, FleetNode, Mode, Plan, Policy, ScoreBook, Scores,
    Span, Status, plan,
};
use damm_provider::{FleetId, IdempotencyKey, NodeRole, NodeState, Region};
use proptest::prelude::*;

const PROVIDERS: [&str; 4] = ["aws", "hetzner", "vultr", "digitalocean"];
const REGIONS: [&str; 3] = ["eu-central", "us-east", "ap-southeast"];
/// Entry providers: two CDNs for fronts, one overlay.
const FRONTS: [&str; 2] = ["cdn-a", "cdn-b"];
const OVERLAY: &str = "mesh";
const ENTRY_PROVIDERS: [&str; 3] = ["cdn-a", "cdn-b", "mesh"];

fn now() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + TimeDelta::days(20_000)
}

fn region(i: usize) -> Region {
    Region::new(REGIONS[i]).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    policy: Policy,
    fleet: Fleet,
    scores: Scores,
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    let provider = (
        1u32..12,
        0u32..4,
        1usize..8,
        0u32..3,
        any::<bool>(),
        any::<bool>(),
    );
    let region_seed = (
        0u32..4,
        0u32..3,
        0u32..3,
        0u32..3,
        0u32..4,
        1u64..20,
        any::<bool>(),
    );
    // Per region: fronts, overlay, censored.
    let region_entries = (any::<bool>(), any::<bool>(), any::<bool>());
    // Per entry provider: max, per_tick.
    let entry = (0u32..10, 1u32..4);
    (
        prop::collection::vec(provider, 1..=PROVIDERS.len()),
        prop::collection::vec(region_seed, 1..=REGIONS.len()),
        (0u32..8, 0u32..4, 0u32..200),
        prop::collection::vec(any::<prop::sample::Index>(), 8),
        (
            prop::collection::vec(region_entries, REGIONS.len()),
            prop::collection::vec(entry, ENTRY_PROVIDERS.len()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                providers,
                regions,
                (creates, retires, cap),
                picks,
                (wants, entry_caps, only_censored),
            )| {
                let region_names: Vec<Region> = (0..regions.len()).map(region).collect();
                let mut pmap = BTreeMap::new();
                for (i, (max_nodes, per_tick, mask, price, fd, eg)) in providers.iter().enumerate()
                {
                    // Each provider serves a non-empty subset of the regions.
                    let mut served: Vec<Region> = region_names
                        .iter()
                        .enumerate()
                        .filter(|(r, _)| mask & (1 << r) != 0)
                        .map(|(_, r)| r.clone())
                        .collect();
                    if served.is_empty() {
                        served.push(region_names[picks[i].index(region_names.len())].clone());
                    }
                    pmap.insert(
                        PROVIDERS[i].to_owned(),
                        ProviderPolicy {
                            adapter: None,
                            max_nodes: *max_nodes,
                            creates_per_tick: *per_tick,
                            regions: served,
                            profile: "small".into(),
                            prices: [("small".to_owned(), f64::from(*price) * 5.0)].into(),
                            frontdoors: *fd,
                            egress_ips: *eg,
                        },
                    );
                }
                let mut rmap = BTreeMap::new();
                for (i, (imin, imax_extra, emin, emax_extra, spares, rotate_h, fd)) in
                    regions.iter().enumerate()
                {
                    let r = region_names[i].clone();
                    let serving = pmap
                        .values()
                        .filter(|p: &&ProviderPolicy| p.regions.contains(&r))
                        .count() as u32;
                    if serving == 0 {
                        // Give the region to the first provider.
                        pmap.values_mut().next().unwrap().regions.push(r.clone());
                    }
                    let serving = serving.max(1);
                    rmap.insert(
                        r,
                        RegionPolicy {
                            ingress: Bounds {
                                min: *imin,
                                max: imin + imax_extra,
                            },
                            egress: Bounds {
                                min: *emin,
                                max: emin + emax_extra,
                            },
                            warm_spares: *spares,
                            min_providers: (*spares % 3 + 1).min(serving),
                            rotate_ingress_after: Span::secs(rotate_h * 3600),
                            rotate_egress_after: Span::secs(rotate_h * 3600 * 4),
                            frontdoors: *fd,
                            egress_ips: !*fd,
                            fronts: wants[i].0,
                            overlay: wants[i].1,
                            censored: wants[i].2,
                            t1: false,
                            t2: false,
                        },
                    );
                }
                Policy {
                    fleet: FleetSection {
                        id: FleetId::new("prop").unwrap(),
                        tick: Span::secs(60),
                        mode: Mode::Apply,
                    },
                    limits: Limits {
                        creates_per_tick: creates,
                        retires_per_tick: retires,
                        monthly_spend_cap: f64::from(cap),
                        currency: "USD".into(),
                    },
                    scoring: Scoring::default(),
                    lifecycle: Lifecycle::default(),
                    paths: damm_fleet::policy::Paths::default(),
                    clients: Default::default(),
                    providers: pmap,
                    regions: rmap,
                    fronts: FrontsPolicy {
                        providers: FRONTS
                            .iter()
                            .zip(&entry_caps)
                            .map(|(name, (max, per_tick))| {
                                let p = EntryProvider {
                                    adapter: None,
                                    max: *max,
                                    per_tick: *per_tick,
                                };
                                ((*name).to_owned(), p)
                            })
                            .collect(),
                        only_censored,
                    },
                    overlay: OverlayPolicy {
                        providers: [(
                            OVERLAY.to_owned(),
                            EntryProvider {
                                adapter: None,
                                max: entry_caps[2].0,
                                per_tick: entry_caps[2].1,
                            },
                        )]
                        .into(),
                    },
                    transports: Default::default(),
                }
            },
        )
}

/// One node: provider index (past the list = not allowlisted), region index (past the
/// list = not allowed), role, owned, status, state, age in minutes, status age, probe
/// successes of 4, client quality, address.
type NodeSeed = (usize, usize, bool, u8, u8, u8, u32, u32, u8, Option<u8>, u8);

fn arb_case() -> impl Strategy<Value = Case> {
    let node = (
        0usize..PROVIDERS.len() + 1,
        0usize..REGIONS.len() + 1,
        any::<bool>(),
        0u8..20,
        0u8..3,
        0u8..10,
        0u32..2000,
        0u32..2000,
        0u8..5,
        prop::option::of(0u8..10),
        0u8..4,
    );
    // An entry: front (else overlay membership), provider (past the list: foreign), node
    // (past the nodes: none), owned.
    let entry = (
        any::<bool>(),
        0usize..ENTRY_PROVIDERS.len() + 1,
        0usize..44,
        prop::bool::weighted(0.9),
    );
    (
        arb_policy(),
        prop::collection::vec(node, 0..40),
        // Per provider, then per entry provider: 0 answering, 1 failed its last tick
        // (suspect), 2 dark, 3 answering with an alert raised (refused credentials or quota).
        prop::collection::vec(0u8..4, PROVIDERS.len() + ENTRY_PROVIDERS.len()),
        prop::collection::vec(entry, 0..16),
    )
        .prop_map(|(policy, nodes, dark, entries)| build(policy, nodes, dark, entries))
}

type EntrySeed = (bool, usize, usize, bool);

fn build(policy: Policy, seeds: Vec<NodeSeed>, dark: Vec<u8>, entries: Vec<EntrySeed>) -> Case {
    let scoring = policy.scoring.clone();
    let mut book = ScoreBook::default();
    let mut fleet = Fleet::default();
    for (i, (p, r, ingress, owned, status, state, age, since, ok, quality, addr)) in
        seeds.into_iter().enumerate()
    {
        let key = IdempotencyKey::new(format!("n{i}")).unwrap();
        let provider = PROVIDERS.get(p).map_or("foreign", |p| p).to_owned();
        let region = Region::new(REGIONS.get(r).copied().unwrap_or("old-region")).unwrap();
        let created_at = now() - TimeDelta::minutes(i64::from(age));
        let state = match state {
            0 => NodeState::Provisioning,
            1 => NodeState::Stopped,
            2 => NodeState::Unknown,
            _ => NodeState::Running,
        };
        for k in 0..4u8 {
            book.probe(
                key.as_str(),
                now(),
                k < ok,
                Some(Duration::from_millis(20)),
                &scoring,
            );
        }
        if let Some(q) = quality {
            book.client_report(key.as_str(), now(), f64::from(q) / 10.0, &scoring);
        }
        let role = if ingress {
            NodeRole::Ingress
        } else {
            NodeRole::Egress
        };
        let owned = owned != 0;
        if addr > 1 {
            fleet.addresses.push(FleetAddress {
                key: IdempotencyKey::new(format!("a{i}")).unwrap(),
                provider: provider.clone(),
                id: None,
                region: region.clone(),
                kind: if addr == 2 {
                    AddressKind::Frontdoor
                } else {
                    AddressKind::EgressIp
                },
                node: Some(key.clone()),
                owned,
                endpoint: None,
            });
        }
        fleet.nodes.push(FleetNode {
            key,
            provider,
            id: Some(i.to_string()),
            region,
            role,
            owned,
            status: [Status::Active, Status::Spare, Status::Draining][usize::from(status)],
            status_since: created_at + TimeDelta::minutes(i64::from(since.min(age))),
            state,
            created_at,
        });
    }
    for (i, (front, p, node, owned)) in entries.into_iter().enumerate() {
        let node = fleet.nodes.get(node);
        fleet.addresses.push(FleetAddress {
            key: IdempotencyKey::new(format!("e{i}")).unwrap(),
            provider: ENTRY_PROVIDERS.get(p).map_or("foreign", |p| p).to_owned(),
            id: Some(format!("id{i}")),
            region: node.map_or_else(|| region(i % REGIONS.len()), |n| n.region.clone()),
            kind: if front {
                AddressKind::Front
            } else {
                AddressKind::Overlay
            },
            node: node.map(|n| n.key.clone()),
            owned,
            endpoint: Some(format!("h{i}.example")),
        });
    }
    fleet.next_serial = 1000;
    for (i, d) in dark.into_iter().enumerate() {
        let name = PROVIDERS.iter().chain(&ENTRY_PROVIDERS).nth(i).unwrap();
        if d == 3 {
            book.provider_tick(name, now(), Ok(()), &scoring.breaker);
            book.provider_alert(name, now(), "quota_exceeded", "limit".into());
            continue;
        }
        let outcome = if d > 0 {
            Err("down".to_owned())
        } else {
            Ok(())
        };
        let ticks = if d == 1 { 1 } else { scoring.breaker.failures };
        for _ in 0..ticks {
            book.provider_tick(name, now(), outcome.clone(), &scoring.breaker);
        }
    }
    let scores = book.snapshot(now(), &scoring);
    Case {
        policy,
        fleet,
        scores,
    }
}

/// Healthy published ingress, as the planner defines it.
fn healthy_ingress(
    case: &Case,
    status_of: impl Fn(&FleetNode) -> Option<Status>,
    region: &Region,
) -> usize {
    case.fleet
        .nodes
        .iter()
        .filter(|n| {
            &n.region == region
                && n.role == NodeRole::Ingress
                && n.owned
                && case.policy.providers.contains_key(&n.provider)
                && !case.scores.dark.contains(&n.provider)
                && n.state == NodeState::Running
                && case.scores.get(n.key.as_str()).is_some_and(|s| s.healthy)
                && status_of(n) == Some(Status::Active)
        })
        .count()
}

fn check(case: &Case, plan: &Plan) -> Result<(), TestCaseError> {
    let policy = &case.policy;
    let mut creates = 0u32;
    let mut retires = 0u32;
    let mut created_at: BTreeMap<&str, u32> = BTreeMap::new();
    let mut spend_added = 0u64;
    let existing: BTreeSet<&IdempotencyKey> = case.fleet.nodes.iter().map(|n| &n.key).collect();
    let mut new_keys = BTreeSet::new();
    for action in &plan.actions {
        let provider = action.provider();
        if entry_action(action) {
            continue; // checked by check_entries
        }
        prop_assert!(
            policy.providers.contains_key(provider),
            "provider outside the allowlist: {action:?}"
        );
        prop_assert!(
            !case.scores.dark.contains(provider),
            "dark provider touched: {action:?}"
        );
        if matches!(action, Action::Create { .. }) {
            prop_assert!(
                !case.scores.alerted.contains(provider),
                "created at a provider with an alert raised: {action:?}"
            );
        }
        if matches!(action, Action::Create { .. } | Action::Promote { .. }) {
            prop_assert!(
                !case.scores.suspect.contains(provider),
                "created or promoted at a provider that failed its last tick: {action:?}"
            );
        }
        match action {
            Action::Create {
                key,
                provider,
                region,
                ..
            } => {
                creates += 1;
                *created_at.entry(provider).or_default() += 1;
                spend_added += policy.providers[provider].node_cents();
                prop_assert!(
                    policy.regions.contains_key(region),
                    "region outside the allowlist"
                );
                prop_assert!(
                    policy.providers[provider].regions.contains(region),
                    "provider not allowed there"
                );
                prop_assert!(
                    !existing.contains(key) && new_keys.insert(key.clone()),
                    "key reused: {key}"
                );
            }
            Action::Retire { key, .. }
            | Action::Drain { key, .. }
            | Action::Promote { key, .. } => {
                if matches!(action, Action::Retire { .. }) {
                    retires += 1;
                }
                let node = case.fleet.node(key).expect("acts on a known node");
                prop_assert!(node.owned, "touched an unlabelled node: {action:?}");
            }
            Action::Release { key, .. } => {
                let a = case
                    .fleet
                    .addresses
                    .iter()
                    .find(|a| &a.key == key)
                    .expect("known address");
                prop_assert!(a.owned, "touched an unlabelled address: {action:?}");
            }
            Action::Allocate { node, .. } => {
                prop_assert!(case.fleet.node(node).is_some_and(|n| n.owned));
            }
            Action::Repoint { .. } => unreachable!("an entry action"),
        }
    }
    prop_assert!(creates <= policy.limits.creates_per_tick);
    prop_assert!(retires <= policy.limits.retires_per_tick);
    for (p, n) in &created_at {
        let pp = &policy.providers[*p];
        prop_assert!(*n <= pp.creates_per_tick);
        let held = case
            .fleet
            .nodes
            .iter()
            .filter(|x| x.owned && x.provider == *p)
            .count() as u32;
        prop_assert!(
            held + n <= pp.max_nodes,
            "{p}: {held} + {n} > {}",
            pp.max_nodes
        );
    }
    if creates > 0 {
        let spend: u64 = case
            .fleet
            .nodes
            .iter()
            .filter(|n| n.owned)
            .filter_map(|n| policy.providers.get(&n.provider))
            .map(ProviderPolicy::node_cents)
            .sum::<u64>()
            + spend_added;
        prop_assert!(
            spend <= (policy.limits.monthly_spend_cap * 100.0).round() as u64,
            "spend {spend}"
        );
    }
    check_entries(case, plan)?;
    // The last healthy ingress of a region stays, unless a promoted spare takes over.
    let after: BTreeMap<&IdempotencyKey, Status> =
        plan.desired.iter().map(|d| (&d.key, d.status)).collect();
    for region in policy.regions.keys() {
        let before = healthy_ingress(case, |n| Some(n.status), region);
        let kept = healthy_ingress(case, |n| after.get(&n.key).copied(), region);
        prop_assert!(
            before == 0 || kept >= 1,
            "{region}: {before} healthy ingress before, none after"
        );
    }
    Ok(())
}

fn entry_action(action: &Action) -> bool {
    match action {
        Action::Allocate { kind, .. } | Action::Release { kind, .. } => kind.is_entry(),
        Action::Repoint { .. } => true,
        _ => false,
    }
}

/// Fronts and memberships: only at the policy's entry providers and never at a dark or
/// alerted one, within each provider's `max` and `per_tick`, onto live ingress of regions
/// that ask for them, moved only off an ingress that no longer serves; after the plan no
/// live ingress holds two fronts at available providers.
fn check_entries(case: &Case, plan: &Plan) -> Result<(), TestCaseError> {
    let policy = &case.policy;
    let after: BTreeMap<&IdempotencyKey, Status> =
        plan.desired.iter().map(|d| (&d.key, d.status)).collect();
    let live = |key: &IdempotencyKey, spares: bool| {
        case.fleet.node(key).is_some_and(|n| {
            n.owned
                && n.role == NodeRole::Ingress
                && n.state == NodeState::Running
                && policy.providers.contains_key(&n.provider)
                && policy.regions.contains_key(&n.region)
                && !case.scores.dark.contains(&n.provider)
                && case.scores.get(n.key.as_str()).is_some_and(|s| s.healthy)
                && match after.get(key) {
                    Some(Status::Active) => true,
                    Some(Status::Spare) => spares,
                    _ => false,
                }
        })
    };
    // Aged past its rotation or blocked: due for replacement.
    let due = |key: &IdempotencyKey| {
        case.fleet.node(key).is_some_and(|n| {
            let blocked = case.scores.get(n.key.as_str()).is_some_and(|s| s.blocked);
            let aged = n.status == Status::Active
                && policy
                    .regions
                    .get(&n.region)
                    .is_some_and(|r| now() - n.status_since >= r.rotate_after(n.role).chrono());
            blocked || aged
        })
    };
    let entry_policy = |provider: &str| {
        policy
            .fronts
            .providers
            .get(provider)
            .or_else(|| policy.overlay.providers.get(provider))
    };
    let known: BTreeSet<&IdempotencyKey> = case.fleet.addresses.iter().map(|a| &a.key).collect();
    let mut changes: BTreeMap<&str, u32> = BTreeMap::new();
    let mut added: BTreeMap<&str, i64> = BTreeMap::new();
    // The fronts after the plan: key → (provider, node).
    let mut fronts: BTreeMap<&IdempotencyKey, (&str, Option<&IdempotencyKey>)> = case
        .fleet
        .addresses
        .iter()
        .filter(|a| a.owned && a.kind == AddressKind::Front)
        .filter(|a| policy.fronts.providers.contains_key(&a.provider))
        .map(|a| (&a.key, (a.provider.as_str(), a.node.as_ref())))
        .collect();
    for action in plan.actions.iter().filter(|a| entry_action(a)) {
        let provider = action.provider();
        prop_assert!(
            entry_policy(provider).is_some(),
            "not an entry provider: {action:?}"
        );
        prop_assert!(
            !case.scores.dark.contains(provider) && !case.scores.alerted.contains(provider),
            "dark or alerted entry provider touched: {action:?}"
        );
        *changes.entry(provider).or_default() += 1;
        match action {
            Action::Allocate {
                key,
                kind,
                node,
                region,
                ..
            } => {
                *added.entry(provider).or_default() += 1;
                prop_assert!(!known.contains(key), "entry key reused: {key}");
                let front = *kind == AddressKind::Front;
                prop_assert!(
                    live(node, !front),
                    "entry for a node that does not serve: {action:?}"
                );
                let wanted = if front {
                    policy.fronts_in(region)
                } else {
                    policy.overlay_in(region)
                };
                prop_assert!(
                    wanted,
                    "entry in a region that does not ask for it: {action:?}"
                );
                if front {
                    fronts.insert(key, (provider, Some(node)));
                }
            }
            Action::Release { key, .. } => {
                *added.entry(provider).or_default() -= 1;
                let a = case
                    .fleet
                    .addresses
                    .iter()
                    .find(|a| &a.key == key)
                    .expect("known entry");
                prop_assert!(a.owned, "touched an unlabelled entry: {action:?}");
                fronts.remove(key);
            }
            Action::Repoint {
                key,
                from,
                to,
                region,
                ..
            } => {
                let a = case
                    .fleet
                    .addresses
                    .iter()
                    .find(|a| &a.key == key)
                    .expect("known entry");
                prop_assert!(a.owned && a.kind == AddressKind::Front, "{action:?}");
                prop_assert!(
                    from.as_ref().is_none_or(|f| !live(f, false) || due(f)),
                    "moved a front off an ingress that still serves: {action:?}"
                );
                prop_assert!(
                    live(to, false),
                    "moved a front onto a node that does not serve"
                );
                prop_assert_eq!(&case.fleet.node(to).unwrap().region, region);
                fronts.insert(key, (provider, Some(to)));
            }
            _ => unreachable!(),
        }
    }
    for (provider, n) in &changes {
        let p = entry_policy(provider).unwrap();
        prop_assert!(*n <= p.per_tick, "{provider}: {n} changes > {}", p.per_tick);
        if added.get(provider).is_some_and(|a| *a > 0) {
            let held = case
                .fleet
                .addresses
                .iter()
                .filter(|a| a.owned && a.provider == *provider)
                .filter(|a| {
                    (a.kind == AddressKind::Front)
                        == policy.fronts.providers.contains_key(*provider)
                })
                .count() as i64;
            prop_assert!(
                held + added[provider] <= i64::from(p.max),
                "{provider} over max"
            );
        }
    }
    // Per live ingress, the providers of its fronts at available providers.
    let mut per_node: BTreeMap<&IdempotencyKey, Vec<&str>> = BTreeMap::new();
    for (provider, node) in fronts.values() {
        let available =
            !case.scores.dark.contains(*provider) && !case.scores.alerted.contains(*provider);
        if let Some(node) = node.filter(|n| available && live(n, false)) {
            per_node.entry(node).or_default().push(provider);
        }
    }
    // A second front of one ingress goes, as fast as its provider's per_tick allows.
    for (node, providers) in per_node {
        let exhausted = providers
            .iter()
            .any(|p| changes.get(p).copied().unwrap_or(0) >= policy.fronts.providers[*p].per_tick);
        prop_assert!(
            providers.len() <= 1 || exhausted,
            "{node} holds fronts at {providers:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn plans_respect_caps_allowlists_labels_and_the_last_ingress(case in arb_case()) {
        let p = plan(&case.fleet, &case.policy, &case.scores, now());
        check(&case, &p)?;
        // Same inputs, same plan.
        prop_assert_eq!(&p, &plan(&case.fleet, &case.policy, &case.scores, now()));
    }
}
