//! The adapter against the simulator: paging, ownership, addresses, probes, and every
//! failure the simulator can inject. No assertion depends on timing; every test ends.

mod common;

use std::time::Duration;

use common::{BOOT, adapter, sim};
use damm_adapter_digitalocean::Digitalocean;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks::{self, RawApi, address_spec, node_spec};
use damm_provider::{
    Compute, Egress, EgressIpRef, ErrorKind, FleetId, FrontdoorRef, HealthStatus, Ingress,
    NodeFilter, NodeRef, NodeRole, NodeState, Provider, Region, Target,
};
use damm_sim::{Dark, Faults, Provider as Sim, SimHandle};
use serde_json::json;

const DO: Sim = Sim::DigitalOcean;

/// The simulated API, called as another tool on the same account would call it.
fn api(sim: &SimHandle) -> RawApi {
    RawApi::new(sim.url(DO), sim.token())
}

/// A new ingress node `gw` of the fleet `fleet`.
async fn gateway(provider: &Digitalocean) -> NodeRef {
    let spec = node_spec("fleet", "gw", NodeRole::Ingress);
    provider.create_ingress_node(&spec).await.unwrap().reference
}

#[tokio::test]
async fn lists_every_page_and_only_its_fleet() {
    let sim = sim().await;
    let provider = adapter(&sim, "paged", &[("DAMM_DIGITALOCEAN_PAGE_SIZE", "2")]);
    let other = adapter(&sim, "other", &[]);
    let mut created = Vec::new();
    for i in 0..5 {
        let node = provider
            .create_ingress_node(&node_spec("paged", &format!("k{i}"), NodeRole::Ingress))
            .await
            .unwrap();
        assert_eq!(node.state, NodeState::Provisioning);
        assert_eq!(node.provider_region, "fra1");
        assert!(node.addresses.iter().any(|a| a.is_ipv4()), "{node:?}");
        assert!(node.addresses.iter().any(|a| a.is_ipv6()), "{node:?}");
        created.push(node.reference);
    }
    other
        .create_egress_node(&node_spec("other", "k0", NodeRole::Egress))
        .await
        .unwrap();
    let nodes = checks::nodes(&provider).await;
    assert_eq!(nodes.len(), 5, "{nodes:?}");
    for reference in &created {
        assert!(nodes.iter().any(|n| n.reference == *reference));
    }
    let node = &nodes[0];
    assert_eq!(node.labels.get("damm-fleet"), Some("paged"));
    assert_eq!(node.labels.get("damm-region"), Some("eu-central"));
    assert_eq!(node.roles, vec![NodeRole::Ingress]);
    assert!(node.created_at.is_some());
    let mut egress_only = NodeFilter::all();
    egress_only.role = Some(NodeRole::Egress);
    assert!(provider.list_nodes(&egress_only).await.unwrap().is_empty());
    assert_eq!(checks::nodes(&other).await.len(), 1);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn creates_are_idempotent_and_checked() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let wanted = node_spec("fleet", "key_1", NodeRole::Egress);
    let first = provider.create_egress_node(&wanted).await.unwrap();
    let again = provider.create_egress_node(&wanted).await.unwrap();
    assert_eq!(first.reference, again.reference);
    let (_, droplet) = api(&sim)
        .get(&format!("/droplets/{}", first.reference.id))
        .await;
    assert_eq!(droplet["droplet"]["name"], "damm-key-1");
    assert_eq!(droplet["droplet"]["size_slug"], "s-1vcpu-1gb");

    let mut far = node_spec("fleet", "far", NodeRole::Ingress);
    far.region = Region::new("antarctica").unwrap();
    checks::expect_err(
        provider.create_ingress_node(&far).await,
        ErrorKind::InvalidInput,
    );
    let mut huge = node_spec("fleet", "huge", NodeRole::Ingress);
    huge.profile = "enormous".into();
    let err = checks::expect_err(
        provider.create_ingress_node(&huge).await,
        ErrorKind::InvalidInput,
    );
    assert!(err.message().contains("enormous"), "{err}");
    let foreign = node_spec("someone-else", "k", NodeRole::Ingress);
    checks::expect_err(
        provider.create_ingress_node(&foreign).await,
        ErrorKind::InvalidInput,
    );

    let price = Compute::price(&provider, "medium", &Region::new("uk").unwrap()).unwrap();
    assert_eq!(
        (price.monthly_cents, price.currency.as_str()),
        (1200, "USD")
    );
    assert!(Compute::price(&provider, "medium", &Region::new("mars").unwrap()).is_none());
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn never_touches_droplets_outside_the_fleet() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let (status, body) = api(&sim).post("/droplets", json!({ "name": "pet", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["damm-key:pet"] })).await;
    assert_eq!(status, 202, "{body}");
    let pet = NodeRef::new("digitalocean", body["droplet"]["id"].to_string());
    assert!(checks::nodes(&provider).await.is_empty());
    checks::expect_err(provider.drain_node(&pet).await, ErrorKind::InvalidInput);
    checks::expect_err(provider.retire_node(&pet).await, ErrorKind::InvalidInput);
    checks::expect_err(
        provider.probe_health(&Target::Node(pet.clone())).await,
        ErrorKind::NotFound,
    );
    checks::expect_err(
        provider
            .allocate_ingress_frontdoor(&address_spec("fleet", "fd", Some(pet.clone())))
            .await,
        ErrorKind::InvalidInput,
    );
    // The pet's key tag is not this fleet's: a create with that key makes a new droplet.
    let node = provider
        .create_ingress_node(&node_spec("fleet", "pet", NodeRole::Ingress))
        .await
        .unwrap();
    assert_ne!(node.reference, pet);
    let (status, _) = api(&sim).get(&format!("/droplets/{}", pet.id)).await;
    assert_eq!(status, 200, "the pet is still there");
    // Retiring what is already gone succeeds.
    provider
        .retire_node(&NodeRef::new("digitalocean", "999999"))
        .await
        .unwrap();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn addresses_live_on_fleet_droplets() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let err = checks::expect_err(
        provider
            .allocate_ingress_frontdoor(&address_spec("fleet", "fd", None))
            .await,
        ErrorKind::InvalidInput,
    );
    assert!(err.message().contains("carry no tags"), "{err}");

    let node = gateway(&provider).await;
    let signal = provider
        .probe_health(&Target::Node(node.clone()))
        .await
        .unwrap();
    assert_eq!(
        signal.status,
        HealthStatus::Unknown,
        "booting: {}",
        signal.detail
    );
    checks::wait_running(&provider, &node, BOOT / 4).await;

    let wanted = address_spec("fleet", "fd", Some(node.clone()));
    let door = provider.allocate_ingress_frontdoor(&wanted).await.unwrap();
    assert_eq!(door.node.as_ref(), Some(&node));
    assert!(door.labels.is_owned_by(&FleetId::new("fleet").unwrap()));
    let again = provider.allocate_ingress_frontdoor(&wanted).await.unwrap();
    assert_eq!(
        again.reference, door.reference,
        "a replay finds the address"
    );
    let listed = checks::frontdoors(&provider).await;
    assert_eq!(listed, vec![door.clone()]);
    assert!(checks::egress_ips(&provider).await.is_empty());
    let (_, droplet) = api(&sim).get(&format!("/droplets/{}", node.id)).await;
    let claim = format!(
        "damm-frontdoor:{}:fd",
        door.address.to_string().replace('.', "-")
    );
    assert!(
        droplet["droplet"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!(claim)),
        "{droplet}"
    );

    // DigitalOcean assigns one reserved IP per droplet.
    checks::expect_err(
        provider
            .allocate_egress_ip(&address_spec("fleet", "eg", Some(node.clone())))
            .await,
        ErrorKind::Conflict,
    );

    let target = Target::Frontdoor(door.reference.clone());
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Healthy
    );
    assert!(provider.get_metrics(&target).await.unwrap().rtt.is_some());
    let (status, _) = api(&sim)
        .post(
            &format!("/reserved_ips/{}/actions", door.reference.id),
            json!({ "type": "unassign" }),
        )
        .await;
    assert_eq!(status, 201);
    let signal = provider.probe_health(&target).await.unwrap();
    assert_eq!(signal.status, HealthStatus::Degraded, "{}", signal.detail);
    // A release that finds it unassigned still finds the claim, and finishes the job.
    provider
        .release_ingress_frontdoor(&door.reference)
        .await
        .unwrap();
    assert!(checks::frontdoors(&provider).await.is_empty());
    let (status, _) = api(&sim)
        .get(&format!("/reserved_ips/{}", door.reference.id))
        .await;
    assert_eq!(status, 404);
    provider
        .release_ingress_frontdoor(&door.reference)
        .await
        .unwrap();
    checks::expect_err(provider.probe_health(&target).await, ErrorKind::NotFound);

    // Now the droplet is free for an egress address; retiring the node releases it too.
    let egress = provider
        .allocate_egress_ip(&address_spec("fleet", "eg", Some(node.clone())))
        .await
        .unwrap();
    assert_eq!(checks::egress_ips(&provider).await.len(), 1);
    provider.retire_node(&node).await.unwrap();
    assert!(checks::egress_ips(&provider).await.is_empty());
    let (_, all) = api(&sim).get("/reserved_ips").await;
    assert_eq!(all["meta"]["total"], 0, "{all}");
    checks::expect_err(
        provider
            .release_egress_ip(&EgressIpRef::new("digitalocean", "not-an-ip"))
            .await,
        ErrorKind::InvalidInput,
    );
    provider.release_egress_ip(&egress.reference).await.unwrap();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn an_interrupted_allocation_is_adopted_and_foreign_addresses_are_left_alone() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let node = gateway(&provider).await;
    // The reserved IP got created, the claim tag did not (a crash in between).
    let (status, body) = api(&sim)
        .post(
            "/reserved_ips",
            json!({ "droplet_id": node.id.parse::<u64>().unwrap() }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let orphan = body["reserved_ip"]["ip"].as_str().unwrap().to_owned();
    assert!(checks::frontdoors(&provider).await.is_empty());
    let door = provider
        .allocate_ingress_frontdoor(&address_spec("fleet", "fd", Some(node.clone())))
        .await
        .unwrap();
    assert_eq!(door.reference.id, orphan);
    assert_eq!(checks::frontdoors(&provider).await.len(), 1);

    // A reserved IP nobody in the fleet claims is not released.
    let (_, spare) = api(&sim)
        .post("/reserved_ips", json!({ "region": "fra1" }))
        .await;
    let spare = spare["reserved_ip"]["ip"].as_str().unwrap().to_owned();
    checks::expect_err(
        provider
            .release_ingress_frontdoor(&FrontdoorRef::new("digitalocean", spare.clone()))
            .await,
        ErrorKind::InvalidInput,
    );
    let (status, _) = api(&sim).get(&format!("/reserved_ips/{spare}")).await;
    assert_eq!(status, 200);
    // Nor is a front door released as an egress address.
    checks::expect_err(
        provider
            .release_egress_ip(&EgressIpRef::new("digitalocean", door.reference.id.clone()))
            .await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(checks::frontdoors(&provider).await.len(), 1);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn drain_tags_the_droplet_and_probes_follow_its_state() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let node = gateway(&provider).await;
    checks::wait_running(&provider, &node, BOOT / 4).await;
    let target = Target::Node(node.clone());
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Healthy
    );
    provider.drain_node(&node).await.unwrap();
    provider.drain_node(&node).await.unwrap();
    let nodes = checks::nodes(&provider).await;
    assert_eq!(nodes[0].state, NodeState::Draining);
    assert_eq!(nodes[0].labels.get("damm-draining"), Some(""));
    let (status, _) = api(&sim)
        .post(
            &format!("/droplets/{}/actions", node.id),
            json!({ "type": "power_off" }),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Down
    );
    assert_eq!(checks::nodes(&provider).await[0].state, NodeState::Stopped);
    let api = provider.probe_health(&Target::Api).await.unwrap();
    assert_eq!(api.status, HealthStatus::Healthy);
    assert!(api.rtt.is_some());
    let unsupported = Target::Tunnel(damm_provider::TunnelRef::new("digitalocean", "t"));
    assert_eq!(
        provider
            .probe_health(&unsupported)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_reported_with_their_wait() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let all = NodeFilter::all();
    let err = checks::check_rate_limits(
        |faults| sim.set_faults(DO, faults),
        provider.list_nodes(&all),
        provider.list_nodes(&all),
    )
    .await;
    assert!(err.retry_after().unwrap() >= Duration::from_secs(1));
    sim.clear_faults(DO);
}

#[tokio::test]
async fn server_errors_are_temporary_after_the_retries() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    sim.set_faults(DO, checks::changed(|f: &mut Faults| f.error_rate = 1.0));
    let before = sim.requests();
    checks::expect_failure(
        provider.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(sim.requests() - before > 1, "reads are retried");
    let before = sim.requests();
    checks::expect_err(
        provider.probe_health(&Target::Api).await,
        ErrorKind::Unavailable,
    );
    assert_eq!(sim.requests() - before, 1, "a probe looks once");
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated_and_never_shown() {
    let sim = sim().await;
    let secret = "dop_v1_wrong_but_secret";
    let provider = adapter(&sim, "fleet", &[("DAMM_DIGITALOCEAN_TOKEN", secret)]);
    for err in [
        provider.list_nodes(&NodeFilter::all()).await.unwrap_err(),
        provider.probe_health(&Target::Api).await.unwrap_err(),
        provider
            .create_ingress_node(&node_spec("fleet", "k", NodeRole::Ingress))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
        assert!(!err.is_temporary());
        assert!(!format!("{err} {err:?}").contains(secret));
    }
    assert!(!format!("{provider:?}").contains(secret));
}

#[tokio::test]
async fn a_missing_token_is_named() {
    let config = AdapterConfig::new(FleetId::new("fleet").unwrap(), "digitalocean")
        .with_env([("DAMM_DIGITALOCEAN_API_URL", "http://127.0.0.1:9/v2")]);
    let err = checks::expect_err(Digitalocean::from_config(&config), ErrorKind::InvalidInput);
    assert!(err.message().contains("DAMM_DIGITALOCEAN_TOKEN"), "{err}");
}

#[tokio::test]
async fn malformed_answers_are_errors() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    sim.set_faults(DO, checks::changed(|f: &mut Faults| f.malformed_rate = 1.0));
    checks::expect_failure(
        provider.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unexpected,
        true,
    );
    assert!(provider.list_frontdoors().await.is_err());
    assert!(provider.probe_health(&Target::Api).await.is_err());
}

#[tokio::test]
async fn a_dark_provider_is_unavailable_and_never_hangs() {
    let sim = sim().await;
    let provider = adapter(
        &sim,
        "fleet",
        &[("DAMM_DIGITALOCEAN_REQUEST_TIMEOUT_MS", "300")],
    );
    for mode in [Dark::Refuse, Dark::Unavailable] {
        sim.set_faults(DO, Faults::dark(mode));
        let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
        assert!(err.is_temporary(), "{mode:?}");
        let err = provider.probe_health(&Target::Api).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
    }
    sim.set_faults(DO, checks::changed(|f: &mut Faults| f.latency_ms = 2_000));
    let err = checks::expect_failure(
        provider.probe_health(&Target::Api).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(err.message().contains("no answer"), "{err}");
    checks::expect_err(
        provider.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unavailable,
    );
    sim.clear_faults(DO);
    checks::nodes(&provider).await;
}

#[tokio::test]
async fn a_create_past_the_droplet_limit_is_quota_exceeded() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    gateway(&provider).await;
    sim.set_faults(
        DO,
        checks::changed(|f: &mut Faults| f.quota_exhausted = true),
    );
    let spec = node_spec("fleet", "past-the-limit", NodeRole::Ingress);
    let err = checks::expect_failure(
        provider.create_node(&spec).await,
        ErrorKind::QuotaExceeded,
        false,
    );
    assert!(err.message().contains("droplet limit"), "{err}");
    assert_eq!(checks::nodes(&provider).await.len(), 1, "listing works");
    sim.clear_faults(DO);
    provider.create_node(&spec).await.expect("room again");
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}
