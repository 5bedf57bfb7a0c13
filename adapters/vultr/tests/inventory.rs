//! Inventory, pagination, ownership, attachments, prices and configuration.

mod common;

use std::time::Duration;

use damm_adapter_vultr::Vultr;
use damm_provider::config::AdapterConfig;
use damm_provider::http::reqwest::Method;
use damm_provider::testkit::checks::{self, RawApi, address_spec, node_spec};
use damm_provider::{
    ErrorKind, FleetId, FrontdoorRef, HealthStatus, IdempotencyKey, NodeFilter, NodeRef, NodeRole,
    NodeState, Provider, Region, Target, UserData,
};
use damm_sim::{Provider as SimProvider, SimHandle};
use serde_json::json;

/// The simulated API, called as someone else's tooling would call it.
fn api(sim: &SimHandle) -> RawApi {
    RawApi::new(sim.url(SimProvider::Vultr), sim.token())
}

#[tokio::test]
async fn listings_follow_every_page() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "paged", &[("DAMM_VULTR_PAGE_SIZE", "2")]);
    let compute = vultr.compute().unwrap();
    let mut spec = node_spec("paged", "k0", NodeRole::Ingress);
    spec.user_data = Some(UserData::new("#cloud-config\nruncmd: [true]\n"));
    for i in 0..5 {
        spec.key = IdempotencyKey::new(format!("k{i}")).unwrap();
        spec.labels = node_spec("paged", &format!("k{i}"), NodeRole::Ingress).labels;
        let node = compute.create_node(&spec).await.unwrap();
        assert_eq!(node.state, NodeState::Provisioning);
        assert_eq!(node.provider_region, "fra");
        assert!(!node.addresses.is_empty());
        assert!(node.created_at.is_some());
    }
    let nodes = checks::nodes(&vultr).await;
    assert_eq!(nodes.len(), 5, "{nodes:#?}");
    let mut keys: Vec<String> = nodes.iter().map(|n| n.key().unwrap().to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    let mut egress_only = NodeFilter::all();
    egress_only.role = Some(NodeRole::Egress);
    assert!(vultr.list_nodes(&egress_only).await.unwrap().is_empty());

    let ingress = vultr.ingress().unwrap();
    for i in 0..3 {
        ingress
            .allocate_ingress_frontdoor(&address_spec("paged", &format!("fd{i}"), None))
            .await
            .unwrap();
    }
    vultr
        .egress()
        .unwrap()
        .allocate_egress_ip(&address_spec("paged", "eg0", None))
        .await
        .unwrap();
    assert_eq!(checks::frontdoors(&vultr).await.len(), 3);
    assert_eq!(checks::egress_ips(&vultr).await.len(), 1);
    common::assert_no_drift(&sim);
}

#[tokio::test]
async fn other_peoples_resources_are_neither_listed_nor_touched() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "mine", &[]);
    let theirs = api(&sim).post("/instances", json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 2136, "tags": ["damm-fleet:other", "damm-key:k1"] })).await.1;
    let theirs_id = theirs["instance"]["id"].as_str().unwrap().to_owned();
    api(&sim)
        .post(
            "/instances",
            json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 2136, "label": "web" }),
        )
        .await;
    let mut reserved_ids = Vec::new();
    for label in [
        "damm-fleet=other,damm-key=fd1,damm-role=frontdoor",
        "damm-fleet=mine,damm-key=fd1,damm-role=frontdoor,note=hand-made",
        "office VPN",
    ] {
        let r = api(&sim)
            .post(
                "/reserved-ips",
                json!({ "region": "fra", "ip_type": "v4", "label": label }),
            )
            .await
            .1;
        reserved_ids.push(r["reserved_ip"]["id"].as_str().unwrap().to_owned());
    }

    assert!(checks::nodes(&vultr).await.is_empty());
    assert!(checks::frontdoors(&vultr).await.is_empty());
    assert!(checks::egress_ips(&vultr).await.is_empty());

    // The same key in another fleet is not a replay of ours.
    let mine = vultr
        .compute()
        .unwrap()
        .create_node(&node_spec("mine", "k1", NodeRole::Ingress))
        .await
        .unwrap();
    assert_ne!(mine.reference.id, theirs_id);
    let door = vultr
        .ingress()
        .unwrap()
        .allocate_ingress_frontdoor(&address_spec("mine", "fd1", None))
        .await
        .unwrap();
    assert!(!reserved_ids.contains(&door.reference.id));

    let foreign = NodeRef::new("vultr", &theirs_id);
    let compute = vultr.compute().unwrap();
    for err in [
        compute.retire_node(&foreign).await.unwrap_err(),
        compute.drain_node(&foreign).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    checks::expect_err(
        vultr.probe_health(&Target::Node(foreign.clone())).await,
        ErrorKind::NotFound,
    );
    for id in &reserved_ids {
        checks::expect_err(
            vultr
                .ingress()
                .unwrap()
                .release_ingress_frontdoor(&FrontdoorRef::new("vultr", id))
                .await,
            ErrorKind::InvalidInput,
        );
    }
    // Still there, unchanged.
    let still = api(&sim).get(&format!("/instances/{theirs_id}")).await.1;
    assert_eq!(
        still["instance"]["tags"],
        json!(["damm-fleet:other", "damm-key:k1"])
    );
    for id in &reserved_ids {
        let r = api(&sim).get(&format!("/reserved-ips/{id}")).await.1;
        assert_eq!(r["reserved_ip"]["id"], id.as_str());
    }
    common::assert_no_drift(&sim);
}

#[tokio::test]
async fn addresses_attach_to_nodes_and_release_cleanly() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "attach", &[]);
    let node = vultr
        .compute()
        .unwrap()
        .create_node(&node_spec("attach", "gw1", NodeRole::Egress))
        .await
        .unwrap();
    checks::wait_running(&vultr, &node.reference, Duration::from_millis(50)).await;
    let egress = vultr.egress().unwrap();
    let spec = address_spec("attach", "eg1", Some(node.reference.clone()));
    let ip = egress.allocate_egress_ip(&spec).await.unwrap();
    assert_eq!(ip.node.as_ref(), Some(&node.reference));
    assert_eq!(ip.region.as_str(), "eu-central");
    let again = egress.allocate_egress_ip(&spec).await.unwrap();
    assert_eq!(again.reference, ip.reference, "a replay finds it");
    assert_eq!(checks::egress_ips(&vultr).await, vec![ip.clone()]);
    let target = Target::EgressIp(ip.reference.clone());
    let signal = vultr.probe_health(&target).await.unwrap();
    assert_eq!(signal.status, HealthStatus::Healthy, "{}", signal.detail);
    assert!(signal.rtt.is_some());
    let metrics = vultr.get_metrics(&target).await.unwrap();
    assert!(metrics.rtt.is_some());
    let signal = vultr
        .probe_health(&Target::Node(node.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Healthy, "{}", signal.detail);

    // An egress IP is not a front door.
    checks::expect_err(
        vultr
            .ingress()
            .unwrap()
            .release_ingress_frontdoor(&FrontdoorRef::new("vultr", &ip.reference.id))
            .await,
        ErrorKind::InvalidInput,
    );

    egress.release_egress_ip(&ip.reference).await.unwrap();
    assert!(checks::egress_ips(&vultr).await.is_empty());
    egress.release_egress_ip(&ip.reference).await.unwrap();
    checks::expect_err(vultr.probe_health(&target).await, ErrorKind::NotFound);

    // A node in another region cannot take the address.
    let mut far = address_spec("attach", "eg2", Some(node.reference.clone()));
    far.region = Region::new("us-west").unwrap();
    checks::expect_err(
        egress.allocate_egress_ip(&far).await,
        ErrorKind::InvalidInput,
    );

    // Halted, the node probes as down.
    api(&sim)
        .call(
            Method::POST,
            &format!("/instances/{}/halt", node.reference.id),
            None,
        )
        .await;
    let signal = vultr
        .probe_health(&Target::Node(node.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Down);
    let listed = checks::nodes(&vultr).await;
    assert_eq!(listed[0].state, NodeState::Stopped);
    common::assert_no_drift(&sim);
}

#[tokio::test]
async fn unmapped_regions_and_profiles_are_invalid_input() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "checks", &[("DAMM_VULTR_REGIONS", "mars-1=mars")]);
    let compute = vultr.compute().unwrap();
    let mut spec = node_spec("checks", "k1", NodeRole::Ingress);
    spec.profile = "huge".into();
    let err = checks::expect_err(compute.create_node(&spec).await, ErrorKind::InvalidInput);
    assert!(err.message().contains("huge"), "{err}");
    spec.profile = "small".into();
    spec.region = Region::new("antarctica").unwrap();
    checks::expect_err(compute.create_node(&spec).await, ErrorKind::InvalidInput);
    // Mapped here, but Vultr does not know the region: its 400 is InvalidInput too.
    spec.region = Region::new("mars-1").unwrap();
    let err = checks::expect_err(compute.create_node(&spec).await, ErrorKind::InvalidInput);
    assert!(err.message().contains("mars"), "{err}");

    let eu = Region::new("eu-central").unwrap();
    assert_eq!(vultr.region(&eu).as_deref(), Some("fra"));
    let price = compute.price("medium", &eu).unwrap();
    assert_eq!(
        (price.monthly_cents, price.currency.as_str()),
        (1000, "USD")
    );
    assert!(compute.price("huge", &eu).is_none());
    assert!(
        compute
            .price("small", &Region::new("antarctica").unwrap())
            .is_none()
    );
    common::assert_no_drift(&sim);
}

#[test]
fn a_missing_token_names_the_variable() {
    let config = AdapterConfig::new(FleetId::new("f").unwrap(), "vultr").without_env();
    let err = checks::expect_err(Vultr::from_config(&config), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("DAMM_VULTR_TOKEN"), "{err}");
    let config = AdapterConfig::new(FleetId::new("f").unwrap(), "vultr")
        .with_env([("DAMM_VULTR_TOKEN", "tok"), ("DAMM_VULTR_PAGE_SIZE", "0")]);
    let err = Vultr::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("page_size"), "{err}");
    let config = AdapterConfig::new(FleetId::new("f").unwrap(), "vultr")
        .with_env([("DAMM_VULTR_TOKEN", "tok"), ("DAMM_VULTR_COLOUR", "red")]);
    let err = Vultr::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}
