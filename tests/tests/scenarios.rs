//! Short forms of the provider-dark and converge scenarios: small fleets on the simulator,
//! asserting invariants only (no cap exceeded, the dark provider excluded, capacity
//! restored), never timings. The full runs print their figures: `cargo xtask scenario ...`.

use std::time::Duration;

use damm_tests::converge::ConvergeRun;
use damm_tests::dark::DarkRun;

/// Both tests set the process-wide rate-limit compression: the same value, so their order
/// does not matter.
const COMPRESSION: f64 = 120.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_provider_is_excluded_and_capacity_restored_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("validated.json");
    let mut run = DarkRun::new("hetzner");
    run.setup.compression = COMPRESSION;
    run.validated = Some(record.clone());
    let r = damm_tests::dark::run(&run).await.unwrap();
    assert!(
        r.ingress_lost > 0,
        "the run must take live capacity away: {r:?}"
    );
    assert!(r.cap_violations.is_empty(), "{:?}", r.cap_violations);
    assert_eq!(
        r.actions_at_dark, 0,
        "nothing is planned at a dark provider"
    );
    assert!(
        r.ticks_to_exclude.is_some(),
        "never excluded: {:?}",
        r.timeline
    );
    let last = r.timeline.last().unwrap();
    assert!(last.excluded, "excluded again later: {:?}", r.timeline);
    assert_eq!(last.capacity_percent, 100.0, "{:?}", r.timeline);
    assert!(r.seconds_to_100.is_some());
    // The proof is recorded, and feeds `validated_for`.
    assert!(r.proves_failover());
    let proven = damm_orchestrator::validated::load(&record).unwrap();
    assert_eq!(
        proven["hetzner"].ticks_to_exclude,
        u64::from(r.ticks_to_exclude.unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fleet_converges_within_the_caps() {
    let mut run = ConvergeRun::new(30);
    run.setup.compression = COMPRESSION;
    run.setup.boot = Duration::from_secs(30);
    let r = damm_tests::converge::run(&run).await.unwrap();
    assert!(r.cap_violations.is_empty(), "{:?}", r.cap_violations);
    assert_eq!(r.live, 30, "{r:?}");
    assert!(r.seconds.is_some());
    // Live capacity never shrinks while the fleet is built.
    assert!(r.live_per_tick.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
}
