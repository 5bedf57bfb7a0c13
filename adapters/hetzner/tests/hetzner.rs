//! The Hetzner adapter against damm-sim's Hetzner API on 127.0.0.1, and (ignored)
//! against the real API with `DAMM_LIVE_HETZNER_TOKEN`.

use std::time::Duration;

use damm_adapter_hetzner::{CAPABILITIES, Hetzner};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{
    ErrorKind, FleetId, IdempotencyKey, NodeFilter, NodeRole, NodeSpec, Provider, Target,
};
use damm_sim::testing::{QUICK_BOOT, adapter_env, booting_in};
use damm_sim::{Dark, Faults, SimHandle};

async fn sim() -> SimHandle {
    booting_in(QUICK_BOOT).await
}

fn fleet() -> FleetId {
    FleetId::new("conformance").unwrap()
}

fn adapter(sim: &SimHandle, extra: &[(&str, &str)]) -> Hetzner {
    let env = adapter_env(sim, damm_sim::Provider::Hetzner, extra);
    Hetzner::from_config(&AdapterConfig::new(fleet(), "hetzner").with_env(env)).unwrap()
}

fn spec(key: &str) -> NodeSpec {
    NodeSpec::new(
        &fleet(),
        IdempotencyKey::new(key).unwrap(),
        "eu-central".parse().unwrap(),
        NodeRole::Ingress,
        "small",
    )
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
    assert!(sim.schema_checked(damm_sim::Provider::Hetzner));
    assert!(sim.drifts().is_empty(), "schema drift: {:?}", sim.drifts());
}

#[tokio::test]
async fn lists_every_page() {
    let sim = sim().await;
    let provider = adapter(&sim, &[("DAMM_HETZNER_PAGE_SIZE", "2")]);
    let compute = provider.compute().unwrap();
    for i in 0..5 {
        compute
            .create_node(&spec(&format!("page-{i}")))
            .await
            .unwrap();
    }
    let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().all(|n| n.labels.is_owned_by(&fleet())));
    assert!(sim.requests() >= 3 + 5, "three pages were read");
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_reported() {
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    sim.set_faults(
        damm_sim::Provider::Hetzner,
        Faults {
            rate_limit_storm: 2,
            ..Faults::default()
        },
    );
    provider
        .list_nodes(&NodeFilter::all())
        .await
        .expect("two 429s are waited out");
    sim.set_faults(
        damm_sim::Provider::Hetzner,
        Faults {
            rate_limit_storm: 50,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::RateLimited { .. }), "{err}");
    assert!(err.retry_after().is_some() && err.is_temporary());
}

#[tokio::test]
async fn failures_map_to_the_shared_error_kinds() {
    let sim = sim().await;
    let provider = adapter(&sim, &[("DAMM_HETZNER_REQUEST_TIMEOUT_MS", "300")]);
    let hz = damm_sim::Provider::Hetzner;

    sim.set_faults(
        hz,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());

    sim.set_faults(
        hz,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");

    sim.set_faults(hz, Faults::dark(Dark::Unavailable));
    let err = provider.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());

    sim.set_faults(hz, Faults::dark(Dark::Refuse));
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());

    sim.set_faults(
        hz,
        Faults {
            latency_ms: 2_000,
            ..Faults::default()
        },
    );
    let err = provider.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Unavailable,
        "a request past its timeout: {err}"
    );

    sim.clear_faults(hz);
    provider
        .list_nodes(&NodeFilter::all())
        .await
        .expect("recovers when the fault clears");

    let wrong = {
        let env = [
            ("DAMM_HETZNER_API_URL".to_owned(), sim.url(hz)),
            ("DAMM_HETZNER_TOKEN".to_owned(), "not-the-token".to_owned()),
        ];
        Hetzner::from_config(&AdapterConfig::new(fleet(), "hetzner").with_env(env)).unwrap()
    };
    let err = wrong.list_nodes(&NodeFilter::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!err.is_temporary());
    assert!(!format!("{wrong:?}").contains("not-the-token"));
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn configuration_is_checked() {
    let err =
        Hetzner::from_config(&AdapterConfig::new(fleet(), "hetzner").without_env()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("DAMM_HETZNER_TOKEN"), "{err}");
    let sim = sim().await;
    let provider = adapter(&sim, &[]);
    let mut bad = spec("bad-region");
    bad.region = "mars".parse().unwrap();
    let err = provider
        .compute()
        .unwrap()
        .create_node(&bad)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let mut bad = spec("bad-profile");
    bad.profile = "huge".into();
    let err = provider
        .compute()
        .unwrap()
        .create_node(&bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("huge"), "{err}");
    assert_eq!(
        provider
            .compute()
            .unwrap()
            .price("small", &"eu-central".parse().unwrap())
            .map(|p| p.monthly_cents),
        Some(379)
    );
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
