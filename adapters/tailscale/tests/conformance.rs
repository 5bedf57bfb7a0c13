//! The shared conformance suite against the simulator.

mod common;

use damm_adapter_tailscale::CAPABILITIES;
use damm_provider::FleetId;
use damm_provider::testkit::{self, Fixture};

#[tokio::test]
async fn passes_the_conformance_suite() {
    let sim = common::sim().await;
    let provider = common::adapter(&sim, "conformance");
    let mut fixture = Fixture::new(
        CAPABILITIES,
        FleetId::new("conformance").unwrap(),
        "eu-central".parse().unwrap(),
    );
    let addr = sim.addr();
    fixture.on_join = Some(Box::new(move |m| {
        Box::pin(async move {
            let (status, body) = common::join(addr, &m).await;
            assert_eq!(status, 200, "join: {body}");
        })
    }));
    testkit::run(&provider, &fixture).await.assert_passed();
    common::assert_clean(&sim);
}
