//! Fronts and overlay in the tick, against the simulator's Cloudflare and Tailscale: the
//! orchestrator fronts every live ingress of the censored region, the catalog lists a
//! fronted (T3) path beside each bare (T0) one, gateways that redeem their auth key show
//! up as overlay paths in their tailnet's catalog only, and a dark CDN takes its fronted
//! paths out of the catalog while T0 stays; when it answers again the same hostnames come
//! back. Prints the figures (ticks from an ingress's first T0 path to its fronted path,
//! Cloudflare calls per front).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use damm_catalog::{Catalog, Role, Transport};
use damm_fleet::{AddressKind, Policy};
use damm_provider::ExposeSecret as _;
use damm_sim::{Dark, Faults, Provider};
use damm_tests::harness::{Harness, Setup};

const POLICY: &str = include_str!("../policies/fronts.toml");

/// Paths of `region` by transport: (path id, endpoint, ingress component).
fn paths(catalog: &Catalog, region: &str, transport: Transport) -> Vec<(String, String, String)> {
    catalog
        .regions
        .get(region)
        .map(|r| r.paths.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|p| p.transports.contains(&transport))
        .map(|p| {
            let ingress = p
                .composition
                .iter()
                .find(|c| c.role == Role::Ingress)
                .map(|c| c.component.clone())
                .unwrap_or_default();
            (p.path_id.clone(), p.endpoint.clone(), ingress)
        })
        .collect()
}

/// Plays a gateway's tailscaled: redeems `key` at the simulator under `hostname`.
async fn join_tailnet(sim: &damm_sim::SimHandle, key: &str, hostname: &str) {
    let url = format!("http://{}/_sim/tailscale/join", sim.addr());
    let answer = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({ "key": key, "hostname": hostname }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fronted_and_overlay_paths_are_published_and_a_dark_cdn_leaves_t0() {
    let policy = Policy::parse(POLICY, "tests/policies/fronts.toml").unwrap();
    let setup = Setup {
        compression: 120.0,
        boot: Duration::from_secs(30),
        sim_rate_limits: true,
    };
    let mut h = Harness::start(policy.clone(), setup).await.unwrap();

    // Build the fleet; note the tick each eu-central ingress first appears bare and fronted.
    let mut first: BTreeMap<(String, Transport), u32> = BTreeMap::new();
    let mut catalog = None;
    for tick in 0..30u32 {
        let report = h.tick().await.unwrap();
        let c = report.catalog.expect("the harness publishes");
        for t in [Transport::WireguardUdp, Transport::CdnFronted] {
            for (_, _, ingress) in paths(&c, "eu-central", t) {
                first.entry((ingress, t)).or_insert(tick);
            }
        }
        let bare = paths(&c, "eu-central", Transport::WireguardUdp).len();
        let fronted = paths(&c, "eu-central", Transport::CdnFronted).len();
        let quiet = report.plan.actions.is_empty();
        catalog = Some(c);
        if quiet && bare >= 2 && fronted >= 2 {
            break;
        }
    }
    let catalog = catalog.unwrap();
    let fronted = paths(&catalog, "eu-central", Transport::CdnFronted);
    let bare = paths(&catalog, "eu-central", Transport::WireguardUdp);
    assert!(fronted.len() >= 2, "{:#?}", catalog.regions);
    let state = h.engine.state();
    for (id, endpoint, ingress) in &fronted {
        assert!(id.starts_with("t3:"), "{id}");
        let (host, port) = endpoint.rsplit_once(':').unwrap();
        assert_eq!(port, "443", "{endpoint}");
        assert!(host.ends_with(".damm.example"), "{endpoint}");
        // The hostname names no node, region or fleet: a censor learns nothing from SNI.
        assert!(
            !host.contains(ingress.as_str()) && !host.contains("eu") && !host.contains("fronts"),
            "{endpoint}"
        );
        assert!(
            bare.iter().any(|(_, _, i)| i == ingress),
            "{ingress} has a T0 path too"
        );
    }
    let path = &catalog.regions["eu-central"].paths;
    let t3 = path.iter().find(|p| p.path_id.starts_with("t3:")).unwrap();
    assert_eq!(t3.composition[0].role, Role::Front);
    assert_eq!(t3.composition[0].provider, "cloudflare");
    // us-east asks for fronts but is not censored (`only_censored`).
    assert!(paths(&catalog, "us-east", Transport::CdnFronted).is_empty());
    assert!(!paths(&catalog, "us-east", Transport::WireguardUdp).is_empty());
    // Overlay addresses never reach the public catalog.
    assert!(
        catalog
            .regions
            .values()
            .flat_map(|r| &r.paths)
            .all(|p| !p.transports.contains(&Transport::Overlay)),
        "{:#?}",
        catalog.regions
    );
    let delays: Vec<u32> = first
        .iter()
        .filter(|((_, t), _)| *t == Transport::CdnFronted)
        .map(|((ingress, _), at)| at - first[&(ingress.clone(), Transport::WireguardUdp)])
        .collect();
    println!(
        "figure: ticks from an ingress's first T0 path to its fronted path: {delays:?} (tick = {})",
        policy.fleet.tick
    );

    // Gateways redeem their auth keys (as tailscaled would): overlay paths appear in the
    // tailnet's catalog.
    let members: Vec<(String, String)> = state
        .addresses
        .values()
        .filter(|a| a.kind == AddressKind::Overlay)
        .filter_map(|a| a.node.clone())
        .filter_map(|node| {
            let key = h.engine.overlay_key("tailscale", &node)?;
            Some((node.to_string(), key.expose_secret().to_owned()))
        })
        .collect();
    assert!(members.len() >= 4, "{members:?}");
    let hostnames: Vec<String> = fronted.iter().map(|(_, e, _)| e.clone()).collect();
    for (node, key) in &members {
        join_tailnet(&h.sim, key, node).await;
    }
    let report = h.tick().await.unwrap();
    let overlay = &report.overlay_catalogs["tailscale"];
    let ov = paths(overlay, "eu-central", Transport::Overlay);
    assert!(!ov.is_empty(), "{:#?}", overlay.regions);
    for (id, endpoint, _) in &ov {
        assert!(
            id.starts_with("ov:") && endpoint.starts_with("100."),
            "{id} {endpoint}"
        );
    }
    assert!(!paths(overlay, "eu-central", Transport::WireguardUdp).is_empty());
    let public = report.catalog.unwrap();
    assert!(paths(&public, "eu-central", Transport::Overlay).is_empty());
    assert!(
        members.iter().all(|(node, _)| {
            let node = node.parse().unwrap();
            h.engine.overlay_key("tailscale", &node).is_none()
        }),
        "joined gateways' keys are forgotten"
    );

    // Cloudflare goes dark: nothing is asked of it, its paths leave, T0 stays.
    h.sim
        .set_faults(Provider::Cloudflare, Faults::dark(Dark::Unavailable));
    let mut left_after = None;
    for tick in 1..=4u32 {
        let report = h.tick().await.unwrap();
        let c = report.catalog.unwrap();
        if paths(&c, "eu-central", Transport::CdnFronted).is_empty() {
            left_after.get_or_insert(tick);
            assert!(!paths(&c, "eu-central", Transport::WireguardUdp).is_empty());
            assert!(!paths(&c, "us-east", Transport::WireguardUdp).is_empty());
            assert!(
                report
                    .plan
                    .actions
                    .iter()
                    .all(|a| a.provider() != "cloudflare"),
                "{:?}",
                report.plan.actions
            );
        }
    }
    let left_after = left_after.expect("fronted paths leave the catalog while Cloudflare is dark");
    assert!(
        left_after <= policy.scoring.breaker.failures,
        "{left_after}"
    );

    // It answers again: after the breaker's cooldown the same hostnames are back.
    h.sim.clear_faults(Provider::Cloudflare);
    let mut back = BTreeSet::new();
    for _ in 0..10 {
        let c = h.tick().await.unwrap().catalog.unwrap();
        back = paths(&c, "eu-central", Transport::CdnFronted)
            .into_iter()
            .map(|(_, e, _)| e)
            .collect();
        if back.len() >= hostnames.len() {
            break;
        }
    }
    let before: BTreeSet<String> = hostnames.into_iter().collect();
    assert_eq!(
        back, before,
        "the fronts kept their hostnames through the outage"
    );
    assert!(h.sim.drifts().is_empty(), "{:?}", h.sim.drifts());
    h.shutdown().await;
}
