//! Client-side ranking and failover.

use std::collections::BTreeMap;

use damm_catalog::{Catalog, Measurement, RegionPaths, Role, effective_score, next_after, pick};

use crate::common::{path, sample};

fn region(paths: Vec<damm_catalog::Path>) -> Catalog {
    let mut catalog = sample();
    catalog.regions = BTreeMap::from([("r".to_owned(), RegionPaths { paths })]);
    catalog.validate().unwrap();
    catalog
}

fn ids(paths: &[&damm_catalog::Path]) -> Vec<String> {
    paths.iter().map(|p| p.path_id.clone()).collect()
}

fn measured(entries: &[(&str, Measurement)]) -> BTreeMap<String, Measurement> {
    entries
        .iter()
        .map(|(id, m)| ((*id).to_owned(), *m))
        .collect()
}

fn ingress(provider: &str) -> [(Role, &str); 1] {
    [(Role::Ingress, provider)]
}

#[test]
fn without_measurements_the_catalog_score_orders_and_ids_break_ties() {
    let catalog = region(vec![
        path("c", 0.5, &ingress("hetzner"), "192.0.2.3:51820"),
        path("a", 0.9, &ingress("aws"), "192.0.2.1:51820"),
        path("b", 0.5, &ingress("vultr"), "192.0.2.2:51820"),
        path("d", 0.0, &ingress("gce"), "192.0.2.4:51820"),
    ]);
    let ranked = pick(&catalog, "r", &BTreeMap::new());
    assert_eq!(ids(&ranked), ["a", "b", "c", "d"]);
    assert!(pick(&catalog, "elsewhere", &BTreeMap::new()).is_empty());
}

#[test]
fn the_order_does_not_depend_on_catalog_order() {
    let mut paths = vec![
        path("p1", 0.7, &ingress("hetzner"), "192.0.2.1:1"),
        path("p2", 0.7, &ingress("aws"), "192.0.2.2:1"),
        path("p3", 0.8, &ingress("vultr"), "192.0.2.3:1"),
        path("p4", 0.6, &ingress("gce"), "192.0.2.4:1"),
    ];
    let m = measured(&[
        (
            "p1",
            Measurement {
                rtt_ms: Some(40.0),
                ..Default::default()
            },
        ),
        (
            "p4",
            Measurement {
                failures: 1,
                ..Default::default()
            },
        ),
    ]);
    let expected = ids(&pick(&region(paths.clone()), "r", &m));
    for rotation in 1..paths.len() {
        paths.rotate_left(1);
        assert_eq!(
            ids(&pick(&region(paths.clone()), "r", &m)),
            expected,
            "rotation {rotation}"
        );
    }
    paths.reverse();
    assert_eq!(ids(&pick(&region(paths), "r", &m)), expected);
}

#[test]
fn failures_push_a_path_down() {
    let catalog = region(vec![
        path("best", 0.95, &ingress("hetzner"), "192.0.2.1:1"),
        path("good", 0.8, &ingress("aws"), "192.0.2.2:1"),
        path("fair", 0.6, &ingress("vultr"), "192.0.2.3:1"),
    ]);
    let one = measured(&[(
        "best",
        Measurement {
            failures: 1,
            ..Default::default()
        },
    )]);
    assert_eq!(ids(&pick(&catalog, "r", &one)), ["good", "fair", "best"]);
    let many = measured(&[(
        "best",
        Measurement {
            failures: 1000,
            ..Default::default()
        },
    )]);
    let ranked = pick(&catalog, "r", &many);
    assert_eq!(ranked.last().unwrap().path_id, "best");
    assert!(effective_score(ranked[2], many.get("best")) >= 0.0);
}

#[test]
fn measured_rtt_blends_in() {
    let catalog = region(vec![
        path("slow", 0.85, &ingress("hetzner"), "192.0.2.1:1"),
        path("fast", 0.8, &ingress("aws"), "192.0.2.2:1"),
    ]);
    let m = measured(&[
        (
            "slow",
            Measurement {
                rtt_ms: Some(400.0),
                ..Default::default()
            },
        ),
        (
            "fast",
            Measurement {
                rtt_ms: Some(15.0),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(ids(&pick(&catalog, "r", &m)), ["fast", "slow"]);
    // A slightly slower RTT does not overturn a clearly better catalog score.
    let close = measured(&[
        (
            "slow",
            Measurement {
                rtt_ms: Some(60.0),
                ..Default::default()
            },
        ),
        (
            "fast",
            Measurement {
                rtt_ms: Some(40.0),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(ids(&pick(&catalog, "r", &close)), ["slow", "fast"]);
    // Garbage measurements are ignored, not propagated.
    let junk = measured(&[(
        "slow",
        Measurement {
            rtt_ms: Some(f64::NAN),
            ..Default::default()
        },
    )]);
    assert_eq!(ids(&pick(&catalog, "r", &junk)), ["slow", "fast"]);
    let negative = measured(&[(
        "slow",
        Measurement {
            rtt_ms: Some(-5.0),
            ..Default::default()
        },
    )]);
    assert_eq!(ids(&pick(&catalog, "r", &negative)), ["slow", "fast"]);
}

#[test]
fn handshakes_keep_a_live_path_and_demote_a_stale_one() {
    let catalog = region(vec![
        path("a", 0.82, &ingress("hetzner"), "192.0.2.1:1"),
        path("b", 0.8, &ingress("aws"), "192.0.2.2:1"),
    ]);
    let live_b = measured(&[(
        "b",
        Measurement {
            last_handshake_age_s: Some(30),
            ..Default::default()
        },
    )]);
    assert_eq!(
        ids(&pick(&catalog, "r", &live_b)),
        ["b", "a"],
        "stay on the working path"
    );
    let stale_a = measured(&[(
        "a",
        Measurement {
            last_handshake_age_s: Some(600),
            ..Default::default()
        },
    )]);
    assert_eq!(ids(&pick(&catalog, "r", &stale_a)), ["b", "a"]);
}

#[test]
fn failover_prefers_a_path_sharing_no_provider() {
    let catalog = region(vec![
        path(
            "h1",
            0.95,
            &[(Role::Ingress, "hetzner"), (Role::Egress, "aws")],
            "192.0.2.1:1",
        ),
        path("h2", 0.9, &ingress("hetzner"), "192.0.2.2:1"),
        path(
            "cf-h",
            0.85,
            &[(Role::Front, "cloudflare"), (Role::Ingress, "hetzner")],
            "192.0.2.3:1",
        ),
        path(
            "v-aws",
            0.8,
            &[(Role::Ingress, "vultr"), (Role::Egress, "aws")],
            "192.0.2.4:1",
        ),
        path("do", 0.5, &ingress("digitalocean"), "192.0.2.5:1"),
    ]);
    let none = BTreeMap::new();
    // h1 failed: do shares nothing with it; v-aws still shares aws egress.
    assert_eq!(
        next_after(&catalog, "r", &none, "h1").unwrap().path_id,
        "do"
    );
    // h2 failed (hetzner only): v-aws shares nothing, and ranks above do.
    assert_eq!(
        next_after(&catalog, "r", &none, "h2").unwrap().path_id,
        "v-aws"
    );
    // Unknown current path: the best.
    assert_eq!(
        next_after(&catalog, "r", &none, "gone").unwrap().path_id,
        "h1"
    );
}

#[test]
fn failover_falls_back_to_another_ingress_then_to_anything() {
    // Every path crosses aws: prefer a different ingress provider.
    let catalog = region(vec![
        path(
            "h-aws",
            0.95,
            &[(Role::Ingress, "hetzner"), (Role::Egress, "aws")],
            "192.0.2.1:1",
        ),
        path(
            "h2-aws",
            0.9,
            &[(Role::Ingress, "hetzner"), (Role::Egress, "aws")],
            "192.0.2.2:1",
        ),
        path(
            "v-aws",
            0.7,
            &[(Role::Ingress, "vultr"), (Role::Egress, "aws")],
            "192.0.2.3:1",
        ),
    ]);
    let none = BTreeMap::new();
    assert_eq!(
        next_after(&catalog, "r", &none, "h-aws").unwrap().path_id,
        "v-aws"
    );
    // Only the same provider left: the next best anyway.
    let same = region(vec![
        path("h1", 0.9, &ingress("hetzner"), "192.0.2.1:1"),
        path("h2", 0.8, &ingress("hetzner"), "192.0.2.2:1"),
    ]);
    assert_eq!(next_after(&same, "r", &none, "h1").unwrap().path_id, "h2");
    // Nothing else left.
    let alone = region(vec![path("h1", 0.9, &ingress("hetzner"), "192.0.2.1:1")]);
    assert!(next_after(&alone, "r", &none, "h1").is_none());
    assert!(next_after(&alone, "nowhere", &none, "h1").is_none());
}

#[test]
fn failover_uses_measurements() {
    let catalog = region(vec![
        path("h1", 0.95, &ingress("hetzner"), "192.0.2.1:1"),
        path("v1", 0.9, &ingress("vultr"), "192.0.2.2:1"),
        path("a1", 0.85, &ingress("aws"), "192.0.2.3:1"),
    ]);
    let m = measured(&[
        (
            "h1",
            Measurement {
                failures: 3,
                ..Default::default()
            },
        ),
        (
            "v1",
            Measurement {
                failures: 2,
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(next_after(&catalog, "r", &m, "h1").unwrap().path_id, "a1");
}
