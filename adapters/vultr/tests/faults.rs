//! Failures the API answers with, and failures of the API itself: each becomes the
//! right error kind, temporary or not, and nothing hangs or panics.

mod common;

use damm_provider::Compute;
use damm_provider::testkit::checks;
use damm_provider::{ErrorKind, NodeFilter, NodeRole, Provider, Target};
use damm_sim::{Dark, Faults, Provider as SimProvider};

#[tokio::test]
async fn a_short_rate_limit_storm_is_waited_out() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "storm", &[]);
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.rate_limit_storm = 2),
    );
    let nodes = vultr
        .list_nodes(&NodeFilter::all())
        .await
        .expect("retried after the 429s");
    assert!(nodes.is_empty());
    common::assert_no_drift(&sim);
}

#[tokio::test]
async fn a_long_rate_limit_storm_is_reported_as_rate_limited() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "storm", &[]);
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.rate_limit_storm = 50),
    );
    let err = vultr.list_nodes(&NodeFilter::all()).await.unwrap_err();
    checks::assert_rate_limited(&err);
}

#[tokio::test]
async fn server_errors_are_temporary_unavailability() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "errors", &[]);
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.error_rate = 1.0),
    );
    let err = checks::expect_failure(
        vultr.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(err.message().contains("HTTP 500"), "{err}");
    checks::expect_err(
        vultr.probe_health(&Target::Api).await,
        ErrorKind::Unavailable,
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated_and_never_shown() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "auth", &[("DAMM_VULTR_TOKEN", "wrong-secret-token")]);
    checks::expect_failure(
        vultr.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unauthenticated,
        false,
    );
    let err = checks::expect_err(
        vultr.probe_health(&Target::Api).await,
        ErrorKind::Unauthenticated,
    );
    for shown in [err.to_string(), format!("{err:?}"), format!("{vultr:?}")] {
        assert!(!shown.contains("wrong-secret-token"), "{shown}");
    }
}

#[tokio::test]
async fn malformed_answers_are_errors_not_panics() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "malformed", &[]);
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.malformed_rate = 1.0),
    );
    checks::expect_failure(
        vultr.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unexpected,
        true,
    );
    assert!(vultr.list_nodes(&NodeFilter::all()).await.is_err());
    checks::expect_err(
        vultr
            .create_node(&checks::node_spec("malformed", "k1", NodeRole::Egress))
            .await,
        ErrorKind::Unexpected,
    );
}

#[tokio::test]
async fn a_dark_provider_is_temporarily_unavailable() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "dark", &[]);
    for mode in [Dark::Refuse, Dark::Unavailable] {
        sim.set_faults(SimProvider::Vultr, Faults::dark(mode));
        let err = vultr.list_nodes(&NodeFilter::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
        assert!(err.is_temporary(), "{mode:?}: {err}");
        let err = vultr.probe_health(&Target::Api).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode:?}: {err}");
    }
    sim.clear_faults(SimProvider::Vultr);
    vultr.list_nodes(&NodeFilter::all()).await.expect("back");
}

#[tokio::test]
async fn a_slow_provider_times_out_instead_of_hanging() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "slow", &[("DAMM_VULTR_REQUEST_TIMEOUT_MS", "300")]);
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.latency_ms = 5_000),
    );
    let err = checks::expect_failure(
        vultr.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(err.message().contains("no answer within"), "{err}");
}

#[tokio::test]
async fn a_create_past_the_instance_limit_is_quota_exceeded() {
    let sim = common::sim().await;
    let vultr = common::adapter(&sim, "limit", &[]);
    checks::create_nodes(&vultr, "limit", NodeRole::Ingress, 1).await;
    sim.set_faults(
        SimProvider::Vultr,
        checks::changed(|f: &mut Faults| f.quota_exhausted = true),
    );
    let spec = checks::node_spec("limit", "past-the-limit", NodeRole::Ingress);
    let err = checks::expect_failure(
        vultr.create_node(&spec).await,
        ErrorKind::QuotaExceeded,
        false,
    );
    assert!(
        err.message().contains("maximum number of instances"),
        "{err}"
    );
    assert_eq!(checks::nodes(&vultr).await.len(), 1, "listing works");
    sim.clear_faults(SimProvider::Vultr);
    vultr.create_node(&spec).await.expect("room again");
    common::assert_no_drift(&sim);
}
