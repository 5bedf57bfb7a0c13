//! The Compute Engine adapter against damm-sim's Compute Engine API on 127.0.0.1 (checked
//! against Google's Discovery document), and (ignored) against the real API with
//! `GOOGLE_APPLICATION_CREDENTIALS` and `DAMM_LIVE_GCE_PROJECT`.

use std::time::{Duration, Instant};

use damm_adapter_gce::{CAPABILITIES, Gce};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{
    AddressSpec, ErrorKind, FleetId, IdempotencyKey, NodeFilter, NodeRole, NodeSpec, NodeState,
    Provider, Target,
};
use damm_sim::SimHandle;
use damm_sim::testing::{QUICK_BOOT, booting_in};

const GCE: damm_sim::Provider = damm_sim::Provider::Gce;

async fn sim_with_boot(boot: Duration) -> SimHandle {
    booting_in(boot).await
}

async fn sim() -> SimHandle {
    booting_in(QUICK_BOOT).await
}

/// The fleet the tests' adapter is configured for.
const FLEET: &str = "conformance";

fn fleet() -> FleetId {
    checks::fleet(FLEET)
}

/// The endpoint a Google client takes: the simulator's address and `/gce`.
fn endpoint(sim: &SimHandle) -> String {
    format!("http://{}/gce", sim.addr())
}

fn env(sim: &SimHandle, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("DAMM_GCE_API_URL".to_owned(), endpoint(sim)),
        ("DAMM_GCE_PROJECT".to_owned(), "damm-test".to_owned()),
    ];
    if !extra.iter().any(|(k, _)| *k == "DAMM_GCE_ANONYMOUS") {
        env.push(("DAMM_GCE_TOKEN".to_owned(), sim.token().to_owned()));
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

async fn adapter_for(sim: &SimHandle, fleet: FleetId, extra: &[(&str, &str)]) -> Gce {
    let config = AdapterConfig::new(fleet, "gce").with_env(env(sim, extra));
    Gce::from_config(&config).await.unwrap()
}

async fn adapter(sim: &SimHandle, extra: &[(&str, &str)]) -> Gce {
    adapter_for(sim, fleet(), extra).await
}

fn spec(key: &str) -> NodeSpec {
    checks::node_spec(FLEET, key, NodeRole::Ingress)
}

fn address_spec(key: &str, node: Option<damm_provider::NodeRef>) -> AddressSpec {
    checks::address_spec(FLEET, key, node)
}

fn assert_clean(sim: &SimHandle) {
    assert!(sim.schema_checked(GCE), "GCE traffic is checked");
    assert!(sim.drifts().is_empty(), "schema drift: {:#?}", sim.drifts());
}

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]).await;
    let mut fixture = Fixture::new(CAPABILITIES, fleet(), "eu-central".parse().unwrap());
    fixture.timeout = Duration::from_secs(10);
    let report = testkit::run(&provider, &fixture).await;
    println!("{report}");
    report.assert_passed();
    assert_clean(&sim);
}

#[tokio::test]
async fn lists_every_page() {
    let sim = sim_with_boot(Duration::ZERO).await;
    let provider = adapter(&sim, &[("DAMM_GCE_PAGE_SIZE", "2")]).await;
    let compute = provider.compute().unwrap();
    checks::create_nodes(compute, FLEET, NodeRole::Ingress, 5).await;
    let before = sim.requests();
    let mut in_region = NodeFilter::all();
    in_region.region = Some("eu-central".parse().unwrap());
    let nodes = provider.list_nodes(&in_region).await.unwrap();
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().all(|n| n.labels.is_owned_by(&fleet())));
    assert_eq!(
        sim.requests() - before,
        3,
        "five instances are three pages of two"
    );
    assert_eq!(checks::nodes(&provider).await.len(), 5);

    let egress = provider.egress().unwrap();
    for i in 0..3 {
        egress
            .allocate_egress_ip(&address_spec(&format!("eg-page-{i}"), None))
            .await
            .unwrap();
    }
    assert_eq!(checks::egress_ips(&provider).await.len(), 3);
    assert!(checks::frontdoors(&provider).await.is_empty());
    assert_clean(&sim);
}

#[tokio::test]
async fn creates_wait_for_their_operation() {
    let boot = Duration::from_millis(800);
    let sim = sim_with_boot(boot).await;
    let provider = adapter(&sim, &[]).await;
    let started = Instant::now();
    let node = provider
        .compute()
        .unwrap()
        .create_node(&spec("waited"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= boot,
        "create returned before the insert operation was DONE: {:?}",
        started.elapsed()
    );
    assert_eq!(node.state, NodeState::Running);
    assert_eq!(node.provider_region, "europe-west3-a");
    assert_eq!(node.addresses.len(), 1, "an ephemeral external address");
    assert_eq!(
        provider.region(&"eu-central".parse().unwrap()).as_deref(),
        Some("europe-west3")
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn front_doors_move_onto_nodes_and_off_again() {
    let sim = sim_with_boot(Duration::from_millis(50)).await;
    let provider = adapter(&sim, &[]).await;
    let node = provider
        .compute()
        .unwrap()
        .create_node(&spec("holder"))
        .await
        .unwrap();
    let ephemeral = node.addresses[0];
    let ingress = provider.ingress().unwrap();
    let door = ingress
        .allocate_ingress_frontdoor(&address_spec("door", Some(node.reference.clone())))
        .await
        .unwrap();
    assert_eq!(door.node.as_ref(), Some(&node.reference));
    let listed = checks::nodes(&provider).await;
    assert_eq!(
        listed[0].addresses,
        vec![door.address],
        "the static address replaced the ephemeral one"
    );
    assert_ne!(door.address, ephemeral);
    // A replay adopts the same address.
    let again = ingress
        .allocate_ingress_frontdoor(&address_spec("door", Some(node.reference.clone())))
        .await
        .unwrap();
    assert_eq!(again.reference, door.reference);
    // One external address per instance: a second static one is a conflict.
    checks::expect_err(
        provider
            .egress()
            .unwrap()
            .allocate_egress_ip(&address_spec("second", Some(node.reference.clone())))
            .await,
        ErrorKind::Conflict,
    );
    let signal = provider
        .probe_health(&Target::Frontdoor(door.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, damm_provider::HealthStatus::Healthy);

    ingress
        .release_ingress_frontdoor(&door.reference)
        .await
        .unwrap();
    ingress
        .release_ingress_frontdoor(&door.reference)
        .await
        .unwrap();
    assert!(checks::frontdoors(&provider).await.is_empty());
    let listed = checks::nodes(&provider).await;
    assert_eq!(
        listed[0].addresses.len(),
        1,
        "the node got an ephemeral address back"
    );
    assert_ne!(listed[0].addresses[0], door.address);
    assert_clean(&sim);
}

#[tokio::test]
async fn a_name_taken_outside_the_fleet_is_a_conflict() {
    let sim = sim_with_boot(Duration::ZERO).await;
    let ours = adapter(&sim, &[]).await;
    let theirs = adapter_for(&sim, FleetId::new("other").unwrap(), &[]).await;
    ours.compute()
        .unwrap()
        .create_node(&spec("shared-key"))
        .await
        .unwrap();
    let mut their_spec = NodeSpec::new(
        &FleetId::new("other").unwrap(),
        IdempotencyKey::new("shared-key").unwrap(),
        "eu-central".parse().unwrap(),
        NodeRole::Egress,
        "small",
    );
    their_spec.profile = "small".into();
    // Their key lookup finds nothing; the insert meets 409 alreadyExists on the name,
    // and the instance there is not theirs to adopt.
    checks::expect_err(
        theirs
            .compute()
            .unwrap()
            .create_egress_node(&their_spec)
            .await,
        ErrorKind::Conflict,
    );
    assert!(checks::nodes(&theirs).await.is_empty());
    assert_clean(&sim);
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_reported() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]).await;
    // A read retries; a probe makes one attempt (the next tick probes again).
    let all = NodeFilter::all();
    checks::check_rate_limits(
        |faults| sim.set_faults(GCE, faults),
        provider.list_nodes(&all),
        provider.probe_health(&Target::Api),
    )
    .await;
}

#[tokio::test]
async fn failures_map_to_the_shared_error_kinds() {
    let sim = sim().await;
    let provider = adapter(&sim, &[("DAMM_GCE_REQUEST_TIMEOUT_MS", "300")]).await;

    checks::check_failures(&provider, |faults| sim.set_faults(GCE, faults)).await;

    let wrong = adapter(&sim, &[("DAMM_GCE_TOKEN", "not-the-token")]).await;
    let err = checks::expect_failure(
        wrong.probe_health(&Target::Api).await,
        ErrorKind::Unauthenticated,
        false,
    );
    assert!(!format!("{wrong:?}").contains("not-the-token"));
    assert!(!format!("{err:?}").contains("not-the-token"));

    // Anonymous credentials send no Authorization header; the simulator wants its token.
    let anonymous = adapter(&sim, &[("DAMM_GCE_ANONYMOUS", "true")]).await;
    checks::expect_err(
        anonymous.probe_health(&Target::Api).await,
        ErrorKind::Unauthenticated,
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn configuration_is_checked() {
    let err = checks::expect_err(
        Gce::from_config(&AdapterConfig::new(fleet(), "gce").without_env()).await,
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("DAMM_GCE_PROJECT"), "{err}");
    let sim = sim().await;
    let provider = adapter(&sim, &[]).await;
    let compute = provider.compute().unwrap();
    checks::check_unplaceable_creates(compute, FLEET).await;
    let price = compute
        .price("small", &"eu-central".parse().unwrap())
        .unwrap();
    assert_eq!(
        (price.monthly_cents, price.currency.as_str()),
        (1223, "USD")
    );
    assert!(compute.price("small", &"mars".parse().unwrap()).is_none());
}

/// Runs the conformance suite against the real Compute Engine API: it creates (and
/// removes) one e2-small instance and two static addresses in `DAMM_LIVE_GCE_PROJECT`,
/// with the Application Default Credentials of `GOOGLE_APPLICATION_CREDENTIALS`.
#[tokio::test]
#[ignore = "needs GOOGLE_APPLICATION_CREDENTIALS and DAMM_LIVE_GCE_PROJECT; creates billable resources"]
async fn live_conformance() {
    let project = std::env::var("DAMM_LIVE_GCE_PROJECT").expect("DAMM_LIVE_GCE_PROJECT");
    assert!(
        std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some(),
        "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
    );
    let fleet = FleetId::new("damm-live-conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "gce").with_env([("DAMM_GCE_PROJECT", project)]);
    let provider = Gce::from_config(&config).await.unwrap();
    let mut fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    fixture.timeout = Duration::from_secs(300);
    fixture.poll = Duration::from_secs(5);
    testkit::run(&provider, &fixture).await.assert_passed();
}

#[tokio::test]
async fn an_insert_past_the_instances_quota_is_quota_exceeded() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]).await;
    let compute = provider.compute().unwrap();
    compute.create_node(&spec("first")).await.unwrap();
    sim.set_faults(
        GCE,
        checks::changed(|f: &mut damm_sim::Faults| f.quota_exhausted = true),
    );
    let err = checks::expect_failure(
        compute.create_node(&spec("past-the-quota")).await,
        ErrorKind::QuotaExceeded,
        false,
    );
    assert!(
        err.message().contains("Quota 'INSTANCES' exceeded"),
        "{err}"
    );
    assert_eq!(checks::nodes(&provider).await.len(), 1, "listing works");
    sim.clear_faults(GCE);
    compute
        .create_node(&spec("past-the-quota"))
        .await
        .expect("room again");
    assert_clean(&sim);
}
