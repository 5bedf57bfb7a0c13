//! The shared conformance suite against a live endpoint.

use damm_adapter_aws::{Aws, CAPABILITIES};
use damm_provider::FleetId;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};

#[tokio::test]
#[ignore = "needs an endpoint: set DAMM_AWS_API_URL (and DAMM_AWS_REGIONS) to a simulator or emulator"]
async fn passes_the_conformance_suite() {
    let fleet = FleetId::new("conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "aws");
    let provider = Aws::from_config(&config).expect("configured from DAMM_AWS_*");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
}
