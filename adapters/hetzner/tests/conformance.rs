//! The shared conformance suite against a live endpoint.

use damm_adapter_hetzner::{CAPABILITIES, Hetzner};
use damm_provider::FleetId;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};

#[tokio::test]
#[ignore = "needs an endpoint: set DAMM_HETZNER_API_URL (and DAMM_HETZNER_REGIONS) to a simulator or emulator"]
async fn passes_the_conformance_suite() {
    let fleet = FleetId::new("conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "hetzner");
    let provider = Hetzner::from_config(&config).expect("configured from DAMM_HETZNER_*");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
}
