//! The adapter against the simulator: paging, ownership, addresses, probes, and every
//! failure the simulator can inject. No assertion depends on timing; every test ends.

mod common;

use std::time::Duration;

use common::{BOOT, adapter, sim, spec};
use damm_adapter_digitalocean::Digitalocean;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, Compute, Egress, EgressIpRef, ErrorKind, FleetId, FrontdoorRef, HealthStatus,
    IdempotencyKey, Ingress, Labels, NodeFilter, NodeRef, NodeRole, NodeState, Provider, Region,
    Target,
};
use damm_sim::{Dark, Faults, Provider as Sim, SimHandle};
use serde_json::{Value, json};

/// Waits (boundedly) until the node runs.
async fn running(provider: &Digitalocean, node: &NodeRef) {
    for _ in 0..200 {
        let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
        if nodes
            .iter()
            .any(|n| n.reference == *node && n.state == NodeState::Running)
        {
            return;
        }
        tokio::time::sleep(BOOT / 4).await;
    }
    panic!("{node} never ran");
}

fn address_spec(fleet: &str, key: &str, node: Option<NodeRef>) -> AddressSpec {
    let key = IdempotencyKey::new(key).unwrap();
    AddressSpec {
        labels: Labels::owned(&FleetId::new(fleet).unwrap(), &key),
        key,
        region: Region::new("eu-central").unwrap(),
        node,
    }
}

/// A raw call to the simulated API, as another tool on the same account would make it.
async fn raw(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.url(Sim::DigitalOcean)))
        .bearer_auth(sim.token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn lists_every_page_and_only_its_fleet() {
    let sim = sim().await;
    let provider = adapter(&sim, "paged", &[("DAMM_DIGITALOCEAN_PAGE_SIZE", "2")]);
    let other = adapter(&sim, "other", &[]);
    let mut created = Vec::new();
    for i in 0..5 {
        let node = provider
            .create_ingress_node(&spec("paged", &format!("k{i}"), NodeRole::Ingress))
            .await
            .unwrap();
        assert_eq!(node.state, NodeState::Provisioning);
        assert_eq!(node.provider_region, "fra1");
        assert!(node.addresses.iter().any(|a| a.is_ipv4()), "{node:?}");
        assert!(node.addresses.iter().any(|a| a.is_ipv6()), "{node:?}");
        created.push(node.reference);
    }
    other
        .create_egress_node(&spec("other", "k0", NodeRole::Egress))
        .await
        .unwrap();
    let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
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
    assert_eq!(other.list_nodes(&NodeFilter::all()).await.unwrap().len(), 1);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn creates_are_idempotent_and_checked() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let wanted = spec("fleet", "key_1", NodeRole::Egress);
    let first = provider.create_egress_node(&wanted).await.unwrap();
    let again = provider.create_egress_node(&wanted).await.unwrap();
    assert_eq!(first.reference, again.reference);
    let (_, droplet) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/droplets/{}", first.reference.id),
        None,
    )
    .await;
    assert_eq!(droplet["droplet"]["name"], "damm-key-1");
    assert_eq!(droplet["droplet"]["size_slug"], "s-1vcpu-1gb");

    let mut far = spec("fleet", "far", NodeRole::Ingress);
    far.region = Region::new("antarctica").unwrap();
    let err = provider.create_ingress_node(&far).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let mut huge = spec("fleet", "huge", NodeRole::Ingress);
    huge.profile = "enormous".into();
    let err = provider.create_ingress_node(&huge).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("enormous"), "{err}");
    let foreign = spec("someone-else", "k", NodeRole::Ingress);
    let err = provider.create_ingress_node(&foreign).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

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
    let (status, body) = raw(
        &sim,
        reqwest::Method::POST,
        "/droplets",
        Some(json!({ "name": "pet", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["damm-key:pet"] })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let pet = NodeRef::new("digitalocean", body["droplet"]["id"].to_string());
    assert!(
        provider
            .list_nodes(&NodeFilter::all())
            .await
            .unwrap()
            .is_empty()
    );
    let err = provider.drain_node(&pet).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = provider.retire_node(&pet).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = provider
        .probe_health(&Target::Node(pet.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = provider
        .allocate_ingress_frontdoor(&address_spec("fleet", "fd", Some(pet.clone())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // The pet's key tag is not this fleet's: a create with that key makes a new droplet.
    let node = provider
        .create_ingress_node(&spec("fleet", "pet", NodeRole::Ingress))
        .await
        .unwrap();
    assert_ne!(node.reference, pet);
    let (status, _) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/droplets/{}", pet.id),
        None,
    )
    .await;
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
    let err = provider
        .allocate_ingress_frontdoor(&address_spec("fleet", "fd", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("carry no tags"), "{err}");

    let node = provider
        .create_ingress_node(&spec("fleet", "gw", NodeRole::Ingress))
        .await
        .unwrap()
        .reference;
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
    running(&provider, &node).await;

    let wanted = address_spec("fleet", "fd", Some(node.clone()));
    let door = provider.allocate_ingress_frontdoor(&wanted).await.unwrap();
    assert_eq!(door.node.as_ref(), Some(&node));
    assert!(door.labels.is_owned_by(&FleetId::new("fleet").unwrap()));
    let again = provider.allocate_ingress_frontdoor(&wanted).await.unwrap();
    assert_eq!(
        again.reference, door.reference,
        "a replay finds the address"
    );
    let listed = provider.list_frontdoors().await.unwrap();
    assert_eq!(listed, vec![door.clone()]);
    assert!(provider.list_egress_ips().await.unwrap().is_empty());
    let (_, droplet) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/droplets/{}", node.id),
        None,
    )
    .await;
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
    let err = provider
        .allocate_egress_ip(&address_spec("fleet", "eg", Some(node.clone())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    let target = Target::Frontdoor(door.reference.clone());
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Healthy
    );
    assert!(provider.get_metrics(&target).await.unwrap().rtt.is_some());
    let (status, _) = raw(
        &sim,
        reqwest::Method::POST,
        &format!("/reserved_ips/{}/actions", door.reference.id),
        Some(json!({ "type": "unassign" })),
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
    assert!(provider.list_frontdoors().await.unwrap().is_empty());
    let (status, _) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/reserved_ips/{}", door.reference.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    provider
        .release_ingress_frontdoor(&door.reference)
        .await
        .unwrap();
    let err = provider.probe_health(&target).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // Now the droplet is free for an egress address; retiring the node releases it too.
    let egress = provider
        .allocate_egress_ip(&address_spec("fleet", "eg", Some(node.clone())))
        .await
        .unwrap();
    assert_eq!(provider.list_egress_ips().await.unwrap().len(), 1);
    provider.retire_node(&node).await.unwrap();
    assert!(provider.list_egress_ips().await.unwrap().is_empty());
    let (_, all) = raw(&sim, reqwest::Method::GET, "/reserved_ips", None).await;
    assert_eq!(all["meta"]["total"], 0, "{all}");
    let err = provider
        .release_egress_ip(&EgressIpRef::new("digitalocean", "not-an-ip"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    provider.release_egress_ip(&egress.reference).await.unwrap();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn an_interrupted_allocation_is_adopted_and_foreign_addresses_are_left_alone() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let node = provider
        .create_ingress_node(&spec("fleet", "gw", NodeRole::Ingress))
        .await
        .unwrap()
        .reference;
    // The reserved IP got created, the claim tag did not (a crash in between).
    let (status, body) = raw(
        &sim,
        reqwest::Method::POST,
        "/reserved_ips",
        Some(json!({ "droplet_id": node.id.parse::<u64>().unwrap() })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let orphan = body["reserved_ip"]["ip"].as_str().unwrap().to_owned();
    assert!(provider.list_frontdoors().await.unwrap().is_empty());
    let door = provider
        .allocate_ingress_frontdoor(&address_spec("fleet", "fd", Some(node.clone())))
        .await
        .unwrap();
    assert_eq!(door.reference.id, orphan);
    assert_eq!(provider.list_frontdoors().await.unwrap().len(), 1);

    // A reserved IP nobody in the fleet claims is not released.
    let (_, spare) = raw(
        &sim,
        reqwest::Method::POST,
        "/reserved_ips",
        Some(json!({ "region": "fra1" })),
    )
    .await;
    let spare = spare["reserved_ip"]["ip"].as_str().unwrap().to_owned();
    let err = provider
        .release_ingress_frontdoor(&FrontdoorRef::new("digitalocean", spare.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let (status, _) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/reserved_ips/{spare}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Nor is a front door released as an egress address.
    let err = provider
        .release_egress_ip(&EgressIpRef::new("digitalocean", door.reference.id.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(provider.list_frontdoors().await.unwrap().len(), 1);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn drain_tags_the_droplet_and_probes_follow_its_state() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    let node = provider
        .create_ingress_node(&spec("fleet", "gw", NodeRole::Ingress))
        .await
        .unwrap()
        .reference;
    running(&provider, &node).await;
    let target = Target::Node(node.clone());
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Healthy
    );
    provider.drain_node(&node).await.unwrap();
    provider.drain_node(&node).await.unwrap();
    let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
    assert_eq!(nodes[0].state, NodeState::Draining);
    assert_eq!(nodes[0].labels.get("damm-draining"), Some(""));
    let (status, _) = raw(
        &sim,
        reqwest::Method::POST,
        &format!("/droplets/{}/actions", node.id),
        Some(json!({ "type": "power_off" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        provider.probe_health(&target).await.unwrap().status,
        HealthStatus::Down
    );
    assert_eq!(
        provider.list_nodes(&NodeFilter::all()).await.unwrap()[0].state,
        NodeState::Stopped
    );
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
    sim.set_faults(
        Sim::DigitalOcean,
        Faults {
            rate_limit_storm: 2,
            ..Faults::default()
        },
    );
    provider
        .list_nodes(&NodeFilter::all())
        .await
        .expect("retried after the reset");
    sim.set_faults(
        Sim::DigitalOcean,
        Faults {
            rate_limit_storm: 50,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err}"
    );
    assert!(err.is_temporary());
    assert!(err.retry_after().unwrap() >= Duration::from_secs(1));
    sim.clear_faults(Sim::DigitalOcean);
}

#[tokio::test]
async fn server_errors_are_temporary_after_the_retries() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    sim.set_faults(
        Sim::DigitalOcean,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let before = sim.requests();
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
    assert!(sim.requests() - before > 1, "reads are retried");
    let before = sim.requests();
    let err = provider.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
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
            .create_ingress_node(&spec("fleet", "k", NodeRole::Ingress))
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
    let err = Digitalocean::from_config(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("DAMM_DIGITALOCEAN_TOKEN"), "{err}");
}

#[tokio::test]
async fn malformed_answers_are_errors() {
    let sim = sim().await;
    let provider = adapter(&sim, "fleet", &[]);
    sim.set_faults(
        Sim::DigitalOcean,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert!(err.is_temporary());
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
        sim.set_faults(Sim::DigitalOcean, Faults::dark(mode));
        let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
        assert!(err.is_temporary(), "{mode:?}");
        let err = provider.probe_health(&Target::Api).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
    }
    sim.set_faults(
        Sim::DigitalOcean,
        Faults {
            latency_ms: 2_000,
            ..Faults::default()
        },
    );
    let err = provider.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
    assert!(err.message().contains("no answer"), "{err}");
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    sim.clear_faults(Sim::DigitalOcean);
    provider.list_nodes(&NodeFilter::all()).await.unwrap();
}
