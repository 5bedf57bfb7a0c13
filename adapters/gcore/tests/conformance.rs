//! The shared conformance suite against the simulator, and against Gcore itself when
//! credentials are given (`#[ignore]`d).

use damm_adapter_gcore::{CAPABILITIES, Gcore};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{FleetId, Provider as _, Target};
use damm_sim::{Provider, SimConfig};

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = damm_sim::testing::start(SimConfig::default()).await;
    assert!(sim.schema_checked(Provider::Gcore));
    let fleet = FleetId::new("conformance").unwrap();
    let env = damm_sim::testing::adapter_env(
        &sim,
        Provider::Gcore,
        &[
            ("DAMM_GCORE_ZONE", "damm.example"),
            ("DAMM_GCORE_CERTIFICATE_ID", "4101"),
        ],
    );
    let config = AdapterConfig::new(fleet.clone(), "gcore").with_env(env);
    let provider = Gcore::from_config(&config).expect("configured");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
    let api = provider.probe_health(&Target::Api).await.unwrap();
    assert!(api.rtt.is_some());
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
#[ignore = "talks to Gcore: set DAMM_LIVE_GCORE_TOKEN, _ZONE, _SUBDOMAIN, _CERTIFICATE_ID and _ORIGIN"]
async fn passes_the_conformance_suite_live() {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{name} is not set"))
    };
    let env = [
        ("DAMM_GCORE_TOKEN", var("DAMM_LIVE_GCORE_TOKEN")),
        ("DAMM_GCORE_ZONE", var("DAMM_LIVE_GCORE_ZONE")),
        ("DAMM_GCORE_SUBDOMAIN", var("DAMM_LIVE_GCORE_SUBDOMAIN")),
        (
            "DAMM_GCORE_CERTIFICATE_ID",
            var("DAMM_LIVE_GCORE_CERTIFICATE_ID"),
        ),
    ];
    let fleet = FleetId::new("damm-live-conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "gcore").with_env(env);
    let provider = Gcore::from_config(&config).expect("configured");
    let mut fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    // Gcore may refuse documentation addresses as origins: one of the operator's own.
    fixture.front_origin = var("DAMM_LIVE_GCORE_ORIGIN")
        .parse()
        .expect("DAMM_LIVE_GCORE_ORIGIN is an IPv4 address");
    testkit::run(&provider, &fixture).await.assert_passed();
}
