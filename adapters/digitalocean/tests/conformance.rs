//! The shared conformance suite: against the simulator, and (ignored) against the real API.

mod common;

use std::time::Duration;

use damm_adapter_digitalocean::{CAPABILITIES, Digitalocean};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{FleetId, Region};

fn fixture(fleet: FleetId, region: Region, timeout: Duration) -> Fixture {
    let mut fixture = Fixture::new(CAPABILITIES, fleet, region);
    // Reserved IPs carry no tags: ownership lives on the droplet they are assigned to.
    fixture.addresses_need_node = true;
    fixture.timeout = timeout;
    fixture
}

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = common::sim().await;
    let provider = common::adapter(&sim, "conformance", &[]);
    let fleet = FleetId::new("conformance").unwrap();
    let fixture = fixture(
        fleet,
        Region::new("eu-central").unwrap(),
        Duration::from_secs(10),
    );
    let report = testkit::run(&provider, &fixture).await;
    report.assert_passed();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

/// Creates (and then deletes) real, billed droplets and reserved IPs.
#[tokio::test]
#[ignore = "talks to the real DigitalOcean API and creates billed resources: set DAMM_LIVE_DIGITALOCEAN_TOKEN"]
async fn passes_the_conformance_suite_live() {
    let token = std::env::var("DAMM_LIVE_DIGITALOCEAN_TOKEN")
        .expect("set DAMM_LIVE_DIGITALOCEAN_TOKEN to a DigitalOcean API token");
    let mut env = vec![("DAMM_DIGITALOCEAN_TOKEN".to_owned(), token)];
    if let Ok(url) = std::env::var("DAMM_LIVE_DIGITALOCEAN_API_URL") {
        env.push(("DAMM_DIGITALOCEAN_API_URL".to_owned(), url));
    }
    let region =
        std::env::var("DAMM_LIVE_DIGITALOCEAN_REGION").unwrap_or_else(|_| "eu-central".to_owned());
    let fleet = FleetId::new("damm-live-conformance").unwrap();
    // Only these variables count, not whatever DAMM_DIGITALOCEAN_* the shell has.
    let config = AdapterConfig::new(fleet.clone(), "digitalocean").with_env(env);
    let provider = Digitalocean::from_config(&config).expect("configured");
    let mut fixture = fixture(
        fleet,
        Region::new(region).expect("a DAMM region"),
        Duration::from_secs(600),
    );
    fixture.poll = Duration::from_secs(5);
    testkit::run(&provider, &fixture).await.assert_passed();
}
