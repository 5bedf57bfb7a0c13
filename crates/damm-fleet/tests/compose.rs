//! Compositions from a converged toy fleet: top-K per region, diversity of the first
//! alternates, the dark provider left out, fronted paths weighed above bare ones.

mod common;

use std::collections::BTreeSet;

use common::World;
use damm_fleet::Status;
use damm_fleet::{Entry, Policy, Transport, compose};
use damm_provider::{IdempotencyKey, NodeRole};

fn converged() -> World {
    let mut world = World::new(Policy::default_policy());
    for _ in 0..8 {
        world.tick();
    }
    world
}

#[test]
fn top_k_paths_with_diverse_first_alternates() {
    let world = converged();
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    let paths = compose(&world.fleet, &world.policy, &scores, &[], 4);
    for region in ["eu-central", "us-east"] {
        let list = &paths[&common::region(region)];
        // Two live ingress nodes in the region: two T0 paths.
        assert_eq!(list.len(), 2, "{list:#?}");
        let best = &list[0];
        assert!(list.windows(1).all(|w| w[0].score <= 1.0));
        // The alternate's ingress sits on another provider than the best path's.
        assert_ne!(list[1].ingress_provider, best.ingress_provider, "{list:#?}");
        // Egress is a separate egress node of the region.
        for p in list {
            let egress = world
                .fleet
                .nodes
                .iter()
                .find(|n| n.key == p.egress)
                .unwrap();
            assert_eq!(egress.role, NodeRole::Egress);
            assert_eq!(egress.status, Status::Active);
        }
        let ids: BTreeSet<String> = list.iter().map(|p| p.path_id()).collect();
        assert_eq!(ids.len(), list.len(), "path ids are unique");
    }
}

#[test]
fn a_dark_provider_leaves_the_catalog_and_fronts_rank_higher() {
    let mut world = converged();
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    let ingress = world
        .live("eu-central", NodeRole::Ingress)
        .into_iter()
        .next()
        .unwrap()
        .clone();
    let front = Entry {
        key: IdempotencyKey::new("front-1").unwrap(),
        provider: "cloudflare".into(),
        ingress: ingress.key.clone(),
        transport: Transport::CdnFronted,
    };
    let paths = compose(&world.fleet, &world.policy, &scores, &[front], 4);
    let list = &paths[&common::region("eu-central")];
    assert_eq!(list[0].transport, Transport::CdnFronted, "{list:#?}");
    assert_eq!(list.len(), 3);

    let victim = ingress.provider.clone();
    world.dark.push(victim.clone());
    world.tick();
    // One failed tick: the provider is suspect, and already out of the catalog.
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    assert!(scores.suspect.contains(&victim), "{scores:?}");
    let paths = compose(&world.fleet, &world.policy, &scores, &[], 4);
    assert!(paths.values().all(|list| !list.is_empty()));
    for list in paths.values() {
        for p in list {
            assert!(!p.providers().contains(victim.as_str()), "{p:?}");
        }
    }
    // Every provider failing at once (the orchestrator's own network, most likely): the
    // doubtful paths stay, since none would be worse.
    let mut all = scores.clone();
    all.suspect = world.policy.providers.keys().cloned().collect();
    let paths = compose(&world.fleet, &world.policy, &all, &[], 4);
    assert!(paths.values().all(|list| !list.is_empty()), "{paths:?}");
    world.tick();
    let scores = world.book.snapshot(world.now, &world.policy.scoring);
    assert!(scores.dark.contains(&victim));
    let paths = compose(&world.fleet, &world.policy, &scores, &[], 4);
    for list in paths.values() {
        for p in list {
            assert!(!p.providers().contains(victim.as_str()), "{p:?}");
        }
    }
}
