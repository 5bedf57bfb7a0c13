//! The Hetzner adapter against damm-sim's Hetzner API on 127.0.0.1, and (ignored)
//! against the real API with `DAMM_LIVE_HETZNER_TOKEN`.

use std::time::Duration;

use damm_adapter_hetzner::{CAPABILITIES, Hetzner};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{ErrorKind, FleetId, NodeFilter, NodeRole, Provider};
use damm_sim::SimHandle;
use damm_sim::testing::{QUICK_BOOT, adapter_env, booting_in};

async fn sim() -> SimHandle {
    booting_in(QUICK_BOOT).await
}

const HZ: damm_sim::Provider = damm_sim::Provider::Hetzner;

/// The fleet the tests' adapter is configured for.
const FLEET: &str = "conformance";

fn fleet() -> FleetId {
    checks::fleet(FLEET)
}

fn adapter(sim: &SimHandle, extra: &[(&str, &str)]) -> Hetzner {
    let env = adapter_env(sim, HZ, extra);
    Hetzner::from_config(&AdapterConfig::new(fleet(), "hetzner").with_env(env)).unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    let mut fixture = Fixture::new(CAPABILITIES, fleet(), "eu-central".parse().unwrap());
    fixture.timeout = Duration::from_secs(10);
    let report = testkit::run(&provider, &fixture).await;
    println!("{report}");
    report.assert_passed();
    assert!(sim.schema_checked(HZ));
    assert!(sim.drifts().is_empty(), "schema drift: {:?}", sim.drifts());
}

#[tokio::test]
async fn lists_every_page() {
    let sim = sim().await;
    let provider = adapter(&sim, &[("DAMM_HETZNER_PAGE_SIZE", "2")]);
    let compute = provider.compute().unwrap();
    checks::create_nodes(compute, FLEET, NodeRole::Ingress, 5).await;
    let nodes = checks::nodes(&provider).await;
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().all(|n| n.labels.is_owned_by(&fleet())));
    assert!(sim.requests() >= 3 + 5, "three pages were read");
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_reported() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    let all = NodeFilter::all();
    checks::check_rate_limits(
        |faults| sim.set_faults(HZ, faults),
        provider.list_nodes(&all),
        provider.list_nodes(&all),
    )
    .await;
}

#[tokio::test]
async fn failures_map_to_the_shared_error_kinds() {
    let sim = sim().await;
    let provider = adapter(&sim, &[("DAMM_HETZNER_REQUEST_TIMEOUT_MS", "300")]);
    checks::check_failures(&provider, |faults| sim.set_faults(HZ, faults)).await;

    let wrong = {
        let env = [
            ("DAMM_HETZNER_API_URL".to_owned(), sim.url(HZ)),
            ("DAMM_HETZNER_TOKEN".to_owned(), "not-the-token".to_owned()),
        ];
        Hetzner::from_config(&AdapterConfig::new(fleet(), "hetzner").with_env(env)).unwrap()
    };
    let err = checks::expect_failure(
        wrong.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unauthenticated,
        false,
    );
    assert!(!format!("{wrong:?}").contains("not-the-token"));
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn configuration_is_checked() {
    let unconfigured = AdapterConfig::new(fleet(), "hetzner").without_env();
    let err = checks::expect_err(Hetzner::from_config(&unconfigured), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("DAMM_HETZNER_TOKEN"), "{err}");
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    let compute = provider.compute().unwrap();
    checks::check_unplaceable_creates(compute, FLEET).await;
    let price = compute.price("small", &"eu-central".parse().unwrap());
    assert_eq!(price.map(|p| p.monthly_cents), Some(379));
}

/// Runs the conformance suite against the real Hetzner API: it creates (and removes)
/// one server and two addresses in the account of `DAMM_LIVE_HETZNER_TOKEN`.
#[tokio::test]
#[ignore = "needs DAMM_LIVE_HETZNER_TOKEN and creates billable resources"]
async fn live_conformance() {
    let token = std::env::var("DAMM_LIVE_HETZNER_TOKEN").expect("DAMM_LIVE_HETZNER_TOKEN");
    let config = AdapterConfig::new(fleet(), "hetzner").with_env([("DAMM_HETZNER_TOKEN", token)]);
    let provider = Hetzner::from_config(&config).unwrap();
    let mut fixture = Fixture::new(CAPABILITIES, fleet(), "eu-central".parse().unwrap());
    fixture.timeout = Duration::from_secs(300);
    fixture.poll = Duration::from_secs(5);
    testkit::run(&provider, &fixture).await.assert_passed();
}

#[tokio::test]
async fn a_create_past_the_server_limit_is_quota_exceeded() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    let compute = provider.compute().unwrap();
    checks::create_nodes(compute, FLEET, NodeRole::Ingress, 1).await;
    sim.set_faults(
        HZ,
        checks::changed(|f: &mut damm_sim::Faults| f.quota_exhausted = true),
    );
    let spec = checks::node_spec(FLEET, "past-the-limit", NodeRole::Ingress);
    let err = checks::expect_failure(
        compute.create_node(&spec).await,
        ErrorKind::QuotaExceeded,
        false,
    );
    assert!(err.message().contains("resource_limit_exceeded"), "{err}");
    assert_eq!(checks::nodes(&provider).await.len(), 1, "listing works");
    sim.clear_faults(HZ);
    compute.create_node(&spec).await.expect("room again");
    assert!(sim.drifts().is_empty(), "schema drift: {:?}", sim.drifts());
}
