//! The conformance suite's own tests: it passes a well-behaved provider and fails the
//! ones that break the contract.
#![cfg(feature = "testkit")]

use std::time::Duration;

use damm_provider::testkit::memory::{MemoryProvider, Quirks};
use damm_provider::testkit::{self, Fixture, Outcome};
use damm_provider::{Capabilities, Capability};

fn fixture(declared: Capabilities, provider: &MemoryProvider) -> Fixture {
    let mut fixture = Fixture::new(
        declared,
        provider.fleet().clone(),
        "eu-central".parse().unwrap(),
    );
    fixture.timeout = Duration::from_millis(300);
    fixture.poll = Duration::from_millis(10);
    fixture
}

fn failed(outcome: Option<&Outcome>) -> String {
    match outcome {
        Some(Outcome::Failed(why)) => why.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_well_behaved_provider_passes_every_case() {
    let provider = MemoryProvider::full("memory");
    let report = testkit::run(&provider, &fixture(MemoryProvider::CAPABILITIES, &provider)).await;
    report.assert_passed();
    assert!(
        report.cases.iter().all(|c| c.outcome == Outcome::Passed),
        "{report}"
    );
    assert_eq!(report.cases.len(), 11);
}

#[tokio::test]
async fn cases_are_picked_by_capability() {
    let caps = Capabilities::of(&[Capability::Ingress, Capability::Egress]);
    let provider = MemoryProvider::new("memory", caps, Quirks::default());
    let report = testkit::run(&provider, &fixture(caps, &provider)).await;
    report.assert_passed();
    assert_eq!(report.outcome("ingress_lifecycle"), Some(&Outcome::Passed));
    assert!(matches!(
        report.outcome("compute_lifecycle"),
        Some(Outcome::Skipped(_))
    ));
    assert!(matches!(
        report.outcome("tunnel_term_lifecycle"),
        Some(Outcome::Skipped(_))
    ));
}

#[tokio::test]
async fn declaring_a_capability_not_handed_out_fails() {
    let handed = Capabilities::of(&[Capability::Ingress]);
    let declared = handed.with(Capability::Compute);
    let provider = MemoryProvider::new("liar", handed, Quirks::default());
    let report = testkit::run(&provider, &fixture(declared, &provider)).await;
    let why = failed(report.outcome("declared_equals_handed_out"));
    assert!(why.contains("missing: [compute]"), "{why}");
    let why = failed(report.outcome("compute_lifecycle"));
    assert!(why.contains("compute() is None"), "{why}");
    assert_eq!(report.outcome("ingress_lifecycle"), Some(&Outcome::Passed));
}

#[tokio::test]
async fn handing_out_an_undeclared_capability_fails() {
    let declared = Capabilities::of(&[Capability::Ingress]);
    let provider = MemoryProvider::new(
        "extra",
        declared.with(Capability::Egress),
        Quirks::default(),
    );
    let report = testkit::run(&provider, &fixture(declared, &provider)).await;
    let why = failed(report.outcome("declared_equals_handed_out"));
    assert!(why.contains("undeclared: [egress]"), "{why}");
}

#[tokio::test]
async fn inventory_that_hides_what_was_created_fails() {
    let quirks = Quirks {
        hides_created: true,
        ..Quirks::default()
    };
    let provider = MemoryProvider::new("forgetful", MemoryProvider::CAPABILITIES, quirks);
    let report = testkit::run(&provider, &fixture(MemoryProvider::CAPABILITIES, &provider)).await;
    let why = failed(report.outcome("compute_lifecycle"));
    assert!(why.contains("shows in inventory"), "{why}");
    for case in [
        "ingress_lifecycle",
        "egress_lifecycle",
        "overlay_lifecycle",
        "cdn_front_lifecycle",
        "tunnel_term_lifecycle",
    ] {
        let why = failed(report.outcome(case));
        assert!(why.contains("not listed"), "{case}: {why}");
    }
    // The suite cleaned up even though the cases failed half-way.
    assert_eq!(provider.stored_resources(), 0);
}

#[tokio::test]
async fn a_create_that_ignores_the_idempotency_key_fails() {
    let quirks = Quirks {
        ignores_idempotency_key: true,
        ..Quirks::default()
    };
    let caps = Capabilities::of(&[Capability::Compute]);
    let provider = MemoryProvider::new("duplicator", caps, quirks);
    let report = testkit::run(&provider, &fixture(caps, &provider)).await;
    let why = failed(report.outcome("compute_lifecycle"));
    assert!(why.contains("replayed create made"), "{why}");
}

#[tokio::test]
async fn the_report_reads_well() {
    let provider = MemoryProvider::new("liar", Capabilities::EMPTY, Quirks::default());
    let report = testkit::run(&provider, &fixture(Capabilities::EMPTY, &provider)).await;
    let text = report.to_string();
    assert!(text.contains("FAIL  declares_a_capability"), "{text}");
    assert!(text.contains("skip  compute_lifecycle"), "{text}");
}

#[tokio::test]
async fn addresses_can_ride_on_a_node_the_suite_creates_and_retires() {
    let provider = MemoryProvider::full("memory");
    let mut fixture = fixture(MemoryProvider::CAPABILITIES, &provider);
    fixture.addresses_need_node = true;
    let report = testkit::run(&provider, &fixture).await;
    report.assert_passed();
    assert_eq!(
        provider.stored_resources(),
        0,
        "nodes and addresses are gone"
    );
}
