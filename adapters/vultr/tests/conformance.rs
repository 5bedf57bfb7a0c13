//! The shared conformance suite, against the simulator (and, ignored, the real API).

mod common;

use std::time::Duration;

use damm_adapter_vultr::{CAPABILITIES, Vultr};
use damm_provider::FleetId;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_sim::Provider as SimProvider;

fn fixture(fleet: &str) -> Fixture {
    let mut fixture = Fixture::new(
        CAPABILITIES,
        FleetId::new(fleet).unwrap(),
        "eu-central".parse().unwrap(),
    );
    fixture.timeout = Duration::from_secs(10);
    fixture
}

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = common::sim().await;
    let provider = common::adapter(&sim, "conformance", &[]);
    let report = testkit::run(&provider, &fixture("conformance")).await;
    println!("{report}");
    report.assert_passed();
    common::assert_no_drift(&sim);
    if damm_sim::shared_specs_dir()
        .join("vultr.subset.json")
        .is_file()
    {
        assert!(sim.schema_checked(SimProvider::Vultr));
    }
}

#[tokio::test]
async fn passes_with_addresses_attached_to_nodes() {
    // The same suite with every front door and egress IP attached to a fresh node:
    // allocate attaches, release detaches before deleting.
    let sim = common::sim().await;
    let provider = common::adapter(&sim, "attached", &[]);
    let mut fixture = fixture("attached");
    fixture.addresses_need_node = true;
    let report = testkit::run(&provider, &fixture).await;
    println!("{report}");
    report.assert_passed();
    common::assert_no_drift(&sim);
}

/// Creates real instances and reserved IPs (and deletes them): run by hand with
/// `DAMM_LIVE_VULTR_TOKEN=... cargo test -p damm-adapter-vultr --test conformance -- --ignored`.
#[tokio::test]
#[ignore = "talks to the real Vultr API and costs money: set DAMM_LIVE_VULTR_TOKEN"]
async fn passes_the_conformance_suite_against_the_real_api() {
    let Ok(token) = std::env::var("DAMM_LIVE_VULTR_TOKEN") else {
        panic!("set DAMM_LIVE_VULTR_TOKEN to a Vultr API key to run the live test");
    };
    let fleet = FleetId::new("damm-live-conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "vultr").with_env([("DAMM_VULTR_TOKEN", token)]);
    let provider = Vultr::from_config(&config).expect("configured");
    let mut fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    // Real instances take minutes to boot.
    fixture.timeout = Duration::from_secs(900);
    fixture.poll = Duration::from_secs(5);
    testkit::run(&provider, &fixture).await.assert_passed();
}
