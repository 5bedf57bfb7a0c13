//! The planner over many ticks of a toy world: converge, stay still, survive a dark
//! provider, rotate, respect the spend cap, leave foreign nodes alone.

mod common;

use std::collections::BTreeSet;

use chrono::TimeDelta;
use common::{World, t0};
use damm_fleet::{Action, FleetNode, Policy, Status, plan};
use damm_provider::{IdempotencyKey, NodeRole, NodeState};

/// Ticks until three ticks in a row change nothing (drains wait out their grace).
fn converge(world: &mut World, ticks: usize) -> usize {
    let mut quiet = 0;
    for tick in 0..ticks {
        let plan = world.tick();
        quiet = if plan.actions.is_empty() {
            quiet + 1
        } else {
            0
        };
        if quiet == 3 {
            return tick;
        }
    }
    panic!(
        "did not converge in {ticks} ticks: {:#?}",
        world.fleet.nodes
    );
}

#[test]
fn from_empty_the_first_tick_is_capped_and_spread() {
    let policy = Policy::default_policy();
    let mut world = World::new(policy.clone());
    let plan = world.tick();
    let creates: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Create { .. }))
        .collect();
    assert_eq!(creates.len() as u32, policy.limits.creates_per_tick);
    let mut per_provider = std::collections::BTreeMap::<&str, u32>::new();
    for a in &creates {
        *per_provider.entry(a.provider()).or_default() += 1;
    }
    assert!(per_provider.len() >= 2, "{per_provider:?}");
    for (p, n) in per_provider {
        assert!(n <= policy.providers[p].creates_per_tick);
    }
    assert!(
        plan.refused
            .iter()
            .any(|r| r.rule == "limits.creates_per_tick"),
        "{:?}",
        plan.refused
    );
}

#[test]
fn converges_to_the_policy_and_then_stays_still() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    for region in ["eu-central", "us-east"] {
        let ingress = world.live(region, NodeRole::Ingress);
        assert!(ingress.len() >= 2, "{region}: {ingress:?}");
        let providers: BTreeSet<_> = ingress.iter().map(|n| n.provider.as_str()).collect();
        assert!(providers.len() >= 2, "{region}: {providers:?}");
        let egress = world.live(region, NodeRole::Egress);
        let egress_providers: BTreeSet<_> = egress.iter().map(|n| n.provider.as_str()).collect();
        assert_eq!(egress.len(), 2, "{region}: {egress:?}");
        assert_eq!(
            egress_providers.len(),
            2,
            "{region}: one egress provider down keeps it routed"
        );
        let spares = world
            .fleet
            .nodes
            .iter()
            .filter(|n| n.region.as_str() == region && n.status == Status::Spare)
            .count();
        assert_eq!(spares, 1);
    }
    // Front doors and egress addresses where both region and provider ask for them.
    for a in &world.fleet.addresses {
        assert_eq!(a.provider, "hetzner");
    }
    // Stable: more ticks, no more actions.
    for _ in 0..3 {
        assert!(world.tick().actions.is_empty());
    }
}

#[test]
fn a_dark_provider_is_replaced_by_the_others() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    let victim = world.fleet.nodes[0].provider.clone();
    world.dark.push(victim.clone());
    for _ in 0..6 {
        let plan = world.tick();
        for a in &plan.actions {
            assert_ne!(a.provider(), victim, "touched the dark provider: {a:?}");
        }
    }
    for region in ["eu-central", "us-east"] {
        let ingress = world.live(region, NodeRole::Ingress);
        assert!(ingress.len() >= 2, "{region}: {ingress:?}");
        assert!(ingress.iter().all(|n| n.provider != victim));
        assert_eq!(world.live(region, NodeRole::Egress).len(), 2, "{region}");
    }
}

#[test]
fn a_spare_is_promoted_in_the_same_tick_a_provider_goes_dark() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    // Darken the provider of an active eu-central ingress that is not the spare's.
    let spare = world
        .fleet
        .nodes
        .iter()
        .find(|n| n.status == Status::Spare && n.region.as_str() == "eu-central")
        .unwrap()
        .clone();
    let victim = world
        .live("eu-central", NodeRole::Ingress)
        .into_iter()
        .find(|n| n.provider != spare.provider)
        .unwrap()
        .provider
        .clone();
    world.dark.push(victim.clone());
    // The first failed tick: the breaker is still closed (two failures open it), but the
    // provider is suspect. The spare stands in at once; nothing is created, drained or
    // retired yet, and nothing is sent to the failing provider.
    let plan = world.tick();
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    assert!(scores.suspect.contains(&victim) && scores.dark.is_empty());
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::Promote { key, .. } if *key == spare.key)),
        "{:#?}",
        plan.actions
    );
    for a in &plan.actions {
        assert_ne!(a.provider(), victim, "called the failing provider: {a:?}");
        assert!(
            !matches!(a, Action::Drain { .. } | Action::Retire { .. }),
            "one failed tick churns nothing: {a:?}"
        );
    }
}

#[test]
fn a_provider_that_answers_again_after_one_failed_tick_keeps_its_nodes() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    let before: Vec<_> = world.fleet.nodes.iter().map(|n| n.key.clone()).collect();
    let victim = world.fleet.nodes[0].provider.clone();
    world.dark.push(victim.clone());
    world.tick();
    world.dark.clear();
    for _ in 0..6 {
        for a in &world.tick().actions {
            assert!(
                !matches!(a, Action::Drain { .. } | Action::Retire { .. }),
                "a blip drains nothing: {a:?}"
            );
        }
    }
    for key in &before {
        assert!(
            world.fleet.nodes.iter().any(|n| &n.key == key),
            "{key} lost"
        );
    }
}

#[test]
fn rotation_starts_the_replacement_first_then_drains_then_retires() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    world.now += TimeDelta::hours(7); // past rotate_ingress_after, before egress rotation
    let old: BTreeSet<IdempotencyKey> = world
        .live("eu-central", NodeRole::Ingress)
        .iter()
        .map(|n| n.key.clone())
        .collect();
    let mut drained_at = None;
    let mut first_create_at = None;
    for tick in 0..20 {
        let plan = world.tick();
        for a in &plan.actions {
            match a {
                Action::Create {
                    region,
                    role: NodeRole::Ingress,
                    ..
                }
                | Action::Promote { region, .. }
                    if region.as_str() == "eu-central" =>
                {
                    first_create_at.get_or_insert(tick);
                }
                Action::Drain { key, .. } if old.contains(key) => {
                    drained_at.get_or_insert(tick);
                }
                _ => {}
            }
        }
        // Never fewer than one live ingress in the region.
        assert!(!world.live("eu-central", NodeRole::Ingress).is_empty());
    }
    assert!(first_create_at.unwrap() < drained_at.unwrap());
    let now: BTreeSet<IdempotencyKey> = world.fleet.nodes.iter().map(|n| n.key.clone()).collect();
    assert!(
        old.is_disjoint(&now),
        "old ingress nodes should be retired: {:#?}",
        world.fleet.nodes
    );
    assert_eq!(world.live("eu-central", NodeRole::Egress).len(), 2);
}

#[test]
fn the_spend_cap_refuses_with_its_rule() {
    let mut policy = Policy::default_policy();
    policy.limits.monthly_spend_cap = 15.0;
    let mut world = World::new(policy);
    let mut refused = false;
    for _ in 0..6 {
        let plan = world.tick();
        refused |= plan
            .refused
            .iter()
            .any(|r| r.rule == "limits.monthly_spend_cap");
    }
    assert!(refused);
    let spend: f64 = world
        .fleet
        .nodes
        .iter()
        .map(|n| world.policy.providers[&n.provider].node_cents() as f64 / 100.0)
        .sum();
    assert!(spend <= 15.0, "{spend}");
}

#[test]
fn foreign_nodes_are_never_touched() {
    let policy = Policy::default_policy();
    let mut world = World::new(policy);
    let foreign = FleetNode {
        key: IdempotencyKey::new("hand-made").unwrap(),
        provider: "hetzner".into(),
        id: Some("1".into()),
        region: common::region("eu-central"),
        role: NodeRole::Ingress,
        owned: false,
        status: Status::Active,
        status_since: t0(),
        state: NodeState::Stopped,
        created_at: t0() - TimeDelta::days(30),
    };
    world.fleet.nodes.push(foreign.clone());
    for _ in 0..10 {
        let plan = world.tick();
        assert!(plan.actions.iter().all(|a| a.key() != &foreign.key));
    }
    assert!(world.fleet.nodes.contains(&foreign));
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let mut world = World::new(Policy::default_policy());
    for _ in 0..3 {
        world.tick();
    }
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    let a = plan(&world.fleet, &world.policy, &scores, world.now);
    let b = plan(&world.fleet, &world.policy, &scores, world.now);
    assert_eq!(a, b);
}

#[test]
fn a_provider_with_an_alert_gets_no_creates_and_keeps_its_nodes() {
    let mut world = World::new(Policy::default_policy());
    converge(&mut world, 20);
    // A node is lost: without an alert, the planner sends its first create to `victim`.
    world.fleet.nodes.remove(0);
    let scoring = world.policy.scoring.clone();
    let creates_at = |book: &damm_fleet::ScoreBook, world: &World| -> Vec<String> {
        let scores = book.snapshot(world.now, &scoring);
        plan(&world.fleet, &world.policy, &scores, world.now)
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Create { .. }))
            .map(|a| a.provider().to_owned())
            .collect()
    };
    let unalerted = creates_at(&world.book, &world);
    let victim = unalerted.first().expect("a lost node is replaced").clone();
    let kept: BTreeSet<_> = world
        .fleet
        .nodes
        .iter()
        .filter(|n| n.provider == victim)
        .map(|n| n.key.clone())
        .collect();
    world
        .book
        .provider_alert(&victim, world.now, "quota_exceeded", "limit".into());
    let alerted = creates_at(&world.book, &world);
    assert_eq!(
        alerted.len(),
        unalerted.len(),
        "the others take the creates"
    );
    assert!(!alerted.contains(&victim), "{alerted:?}");
    for _ in 0..6 {
        let plan = world.tick();
        for a in &plan.actions {
            assert!(
                !(a.provider() == victim && matches!(a, Action::Create { .. })),
                "created at the alerted provider: {a:?}"
            );
        }
    }
    let still: BTreeSet<_> = world
        .fleet
        .nodes
        .iter()
        .filter(|n| n.provider == victim)
        .map(|n| n.key.clone())
        .collect();
    assert_eq!(still, kept, "its nodes stay");
    for region in ["eu-central", "us-east"] {
        assert!(world.live(region, NodeRole::Ingress).len() >= 2, "{region}");
        assert_eq!(world.live(region, NodeRole::Egress).len(), 2, "{region}");
    }
}
