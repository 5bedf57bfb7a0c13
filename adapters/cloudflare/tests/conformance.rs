//! The shared conformance suite against the simulator, and against Cloudflare itself
//! when credentials are given (`#[ignore]`d).

use damm_adapter_cloudflare::{CAPABILITIES, Cloudflare};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{FleetId, Provider as _, Target};
use damm_sim::{Provider, SimConfig};

/// The simulator's seeded zone.
const ZONE: &str = "damm.example";

#[tokio::test]
async fn passes_the_conformance_suite_against_the_simulator() {
    let sim = damm_sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let fleet = FleetId::new("conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "cloudflare").with_env([
        (
            "DAMM_CLOUDFLARE_API_URL".to_owned(),
            format!("{}/", sim.url(Provider::Cloudflare)),
        ),
        ("DAMM_CLOUDFLARE_TOKEN".to_owned(), sim.token().to_owned()),
        ("DAMM_CLOUDFLARE_ZONE".to_owned(), ZONE.to_owned()),
    ]);
    let provider = Cloudflare::from_config(&config).expect("configured");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
    let api = provider.probe_health(&Target::Api).await.unwrap();
    assert!(api.rtt.is_some());
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
#[ignore = "talks to Cloudflare: set DAMM_LIVE_CLOUDFLARE_TOKEN, DAMM_LIVE_CLOUDFLARE_ZONE (and DAMM_LIVE_CLOUDFLARE_ACCOUNT_ID)"]
async fn passes_the_conformance_suite_live() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let token = var("DAMM_LIVE_CLOUDFLARE_TOKEN").expect("DAMM_LIVE_CLOUDFLARE_TOKEN");
    let zone = var("DAMM_LIVE_CLOUDFLARE_ZONE").expect("DAMM_LIVE_CLOUDFLARE_ZONE");
    let mut env = vec![
        ("DAMM_CLOUDFLARE_TOKEN".to_owned(), token),
        ("DAMM_CLOUDFLARE_ZONE".to_owned(), zone),
    ];
    if let Some(account) = var("DAMM_LIVE_CLOUDFLARE_ACCOUNT_ID") {
        env.push(("DAMM_CLOUDFLARE_ACCOUNT_ID".to_owned(), account));
    }
    let fleet = FleetId::new("damm-live-conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "cloudflare").with_env(env);
    let provider = Cloudflare::from_config(&config).expect("configured");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
}
