//! Fronts and overlay memberships over many ticks of the toy world: every live ingress gets
//! one front, spread over the CDNs; rotation moves fronts and keeps their keys (and so the
//! hostnames); a dark CDN's ingresses are fronted elsewhere and the duplicates go when it
//! comes back; memberships follow the gateways.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use common::World;
use damm_fleet::{Action, AddressKind, Policy, Status};
use damm_provider::{IdempotencyKey, NodeRole, NodeState};

const ENTRIES: &str = r#"
[fronts.providers.cdn-a]
adapter = "cloudflare"
max = 20
per_tick = 4

[fronts.providers.cdn-b]
adapter = "cloudflare"
max = 20
per_tick = 4

[overlay.providers.tailnet]
adapter = "tailscale"
max = 40
per_tick = 6
"#;

fn policy() -> Policy {
    let text = damm_fleet::policy::DEFAULT_POLICY
        .replace(
            "[regions.eu-central]\n",
            "[regions.eu-central]\nfronts = true\noverlay = true\n",
        )
        .replace("[regions.us-east]\n", "[regions.us-east]\noverlay = true\n");
    Policy::parse(&format!("{text}\n{ENTRIES}"), "entries.toml").unwrap()
}

fn converge(world: &mut World) {
    let mut quiet = 0;
    for _ in 0..40 {
        quiet = if world.tick().actions.is_empty() {
            quiet + 1
        } else {
            0
        };
        if quiet == 3 {
            return;
        }
    }
    panic!("did not converge: {:#?}", world.fleet.addresses);
}

/// Front keys per live ingress of `region`, and the providers of those fronts.
fn fronts(world: &World, region: &str) -> BTreeMap<IdempotencyKey, Vec<(IdempotencyKey, String)>> {
    let mut out: BTreeMap<_, Vec<_>> = world
        .live(region, NodeRole::Ingress)
        .into_iter()
        .map(|n| (n.key.clone(), Vec::new()))
        .collect();
    for a in &world.fleet.addresses {
        if a.kind == AddressKind::Front
            && let Some(list) = a.node.as_ref().and_then(|n| out.get_mut(n))
        {
            list.push((a.key.clone(), a.provider.clone()));
        }
    }
    out
}

#[test]
fn every_live_ingress_gets_one_front_spread_over_the_cdns() {
    let mut world = World::new(policy());
    converge(&mut world);
    let eu = fronts(&world, "eu-central");
    assert!(eu.len() >= 2, "{eu:?}");
    for (node, list) in &eu {
        assert_eq!(list.len(), 1, "{node}: {list:?}");
    }
    let cdns: BTreeSet<&str> = eu.values().flatten().map(|(_, p)| p.as_str()).collect();
    assert_eq!(cdns.len(), 2, "both CDNs carry eu-central: {cdns:?}");
    // us-east asks for no fronts; spares and draining nodes get none.
    let fronted: BTreeSet<&IdempotencyKey> = world
        .fleet
        .addresses
        .iter()
        .filter(|a| a.kind == AddressKind::Front)
        .filter_map(|a| a.node.as_ref())
        .collect();
    for node in fronted {
        let n = world.fleet.node(node).unwrap();
        assert_eq!(n.region.as_str(), "eu-central");
        assert_eq!((n.role, n.status), (NodeRole::Ingress, Status::Active));
    }
    // Every published or spare ingress of both regions is in the tailnet, once.
    let members: Vec<&IdempotencyKey> = world
        .fleet
        .addresses
        .iter()
        .filter(|a| a.kind == AddressKind::Overlay)
        .filter_map(|a| a.node.as_ref())
        .collect();
    let unique: BTreeSet<_> = members.iter().collect();
    assert_eq!(unique.len(), members.len(), "{members:?}");
    for n in &world.fleet.nodes {
        let serving = n.role == NodeRole::Ingress
            && matches!(n.status, Status::Active | Status::Spare)
            && n.state == NodeState::Running;
        assert_eq!(serving, unique.contains(&&n.key), "{n:?}");
    }
}

#[test]
fn rotation_moves_fronts_and_keeps_their_hostnames() {
    let mut world = World::new(policy());
    converge(&mut world);
    let before: BTreeSet<IdempotencyKey> = fronts(&world, "eu-central")
        .into_values()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    world.now += TimeDelta::hours(7); // past rotate_ingress_after
    let mut moved = 0;
    let mut released = Vec::new();
    for _ in 0..40 {
        for a in world.tick().actions {
            match a {
                Action::Repoint { kind, .. } => {
                    assert_eq!(kind, AddressKind::Front);
                    moved += 1;
                }
                Action::Release {
                    key,
                    kind: AddressKind::Front,
                    ..
                } => released.push(key),
                _ => {}
            }
        }
    }
    assert!(
        moved >= before.len(),
        "{moved} moves for {before:?}: {:#?} {:#?}",
        world
            .fleet
            .addresses
            .iter()
            .filter(|a| a.kind == AddressKind::Front)
            .collect::<Vec<_>>(),
        world.live("eu-central", NodeRole::Ingress)
    );
    assert!(
        released.is_empty(),
        "fronts were retired, not moved: {released:?}"
    );
    let after = fronts(&world, "eu-central");
    let keys: BTreeSet<IdempotencyKey> = after.values().flatten().map(|(k, _)| k.clone()).collect();
    assert!(
        before.is_subset(&keys),
        "hostnames kept: {before:?} ⊄ {keys:?}"
    );
    for (node, list) in &after {
        assert_eq!(list.len(), 1, "{node}: {list:?}");
    }
}

#[test]
fn a_dark_cdn_is_fronted_around_and_duplicates_go_when_it_returns() {
    let mut world = World::new(policy());
    converge(&mut world);
    world.dark.push("cdn-a".into());
    for _ in 0..6 {
        let plan = world.tick();
        assert!(
            plan.actions.iter().all(|a| a.provider() != "cdn-a"),
            "{:?}",
            plan.actions
        );
    }
    // Every live ingress has a front at the CDN that answers.
    for (node, list) in fronts(&world, "eu-central") {
        assert!(list.iter().any(|(_, p)| p == "cdn-b"), "{node}: {list:?}");
    }
    world.dark.clear();
    // The breaker closes after its cooldown.
    world.now += TimeDelta::minutes(10);
    converge(&mut world);
    for (node, list) in fronts(&world, "eu-central") {
        assert_eq!(list.len(), 1, "{node}: {list:?}");
    }
}

#[test]
fn fronts_stop_at_the_cap_with_a_refusal_and_only_censored_limits_them() {
    let capped = policy()
        .fronts
        .providers
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    let mut p = policy();
    p.fronts.providers.get_mut(&capped[0]).unwrap().max = 1;
    p.fronts.providers.get_mut(&capped[1]).unwrap().max = 0;
    let mut world = World::new(p);
    let mut refused = false;
    for _ in 0..20 {
        let plan = world.tick();
        refused |= plan
            .refused
            .iter()
            .any(|r| r.rule == "fronts.providers.*.max");
    }
    let held = world
        .fleet
        .addresses
        .iter()
        .filter(|a| a.kind == AddressKind::Front)
        .count();
    assert_eq!(held, 1, "one at the only CDN with room");
    assert!(refused, "the cap is reported");

    let mut p = policy();
    p.fronts.only_censored = true;
    let mut world = World::new(p);
    converge(&mut world);
    assert!(
        world
            .fleet
            .addresses
            .iter()
            .all(|a| a.kind != AddressKind::Front),
        "eu-central is not marked censored"
    );
}
