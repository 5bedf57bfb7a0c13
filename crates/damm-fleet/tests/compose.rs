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

/// Ingress on hetzner, digitalocean and vultr; egress on hetzner and digitalocean. Each path
/// keeps to its ingress's provider where that provider has an egress, so losing one provider
/// takes exactly that provider's paths and no other.
#[test]
fn a_path_keeps_to_its_ingress_provider_egress() {
    let policy = Policy::default_policy();
    let mut fleet = damm_fleet::Fleet::default();
    let mut book = damm_fleet::ScoreBook::default();
    let now = common::t0();
    // The best egress by score is digitalocean's: without the preference the best path
    // (hetzner's ingress) would take it.
    let layout = [
        ("hetzner", NodeRole::Ingress, 20),
        ("digitalocean", NodeRole::Ingress, 25),
        ("vultr", NodeRole::Ingress, 30),
        ("hetzner", NodeRole::Egress, 150),
        ("digitalocean", NodeRole::Egress, 10),
    ];
    for (i, (provider, role, rtt)) in layout.into_iter().enumerate() {
        let key = IdempotencyKey::new(format!("n{i}")).unwrap();
        book.probe(
            key.as_str(),
            now,
            true,
            Some(std::time::Duration::from_millis(rtt)),
            &policy.scoring,
        );
        if rtt == 150 {
            // A lost probe too: healthy, but clearly the weaker egress.
            book.probe(key.as_str(), now, false, None, &policy.scoring);
        }
        fleet.nodes.push(damm_fleet::FleetNode {
            key,
            provider: provider.to_owned(),
            id: Some(i.to_string()),
            region: common::region("eu-central"),
            role,
            owned: true,
            status: Status::Active,
            status_since: now,
            state: damm_provider::NodeState::Running,
            created_at: now,
        });
    }
    let scores = book.snapshot(now, &policy.scoring);
    assert!(scores.get("n3").unwrap().value < scores.get("n4").unwrap().value);
    let paths = compose(&fleet, &policy, &scores, &[], 4);
    let list = &paths[&common::region("eu-central")];
    assert_eq!(list.len(), 3, "{list:#?}");
    for p in list {
        match p.ingress_provider.as_str() {
            "vultr" => assert_ne!(p.egress_provider, "vultr"),
            own => {
                assert_eq!(p.egress_provider, own, "{p:#?}");
                assert_eq!(p.providers().len(), 1, "{p:#?}");
            }
        }
    }
    // Losing hetzner or digitalocean takes its own path and at most the vultr one; losing
    // vultr takes only its own. (Egress on another provider than the ingress, as before,
    // would make every path fall with either of two providers.)
    let left = |gone: &str| {
        list.iter()
            .filter(|p| !p.providers().contains(gone))
            .count()
    };
    assert!(
        left("hetzner") >= 1 && left("digitalocean") >= 1,
        "{list:#?}"
    );
    assert_eq!(left("vultr"), 2, "{list:#?}");
}
