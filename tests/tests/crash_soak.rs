//! The crash soak in the test suite: 50 `kill -9`s of `damm serve` while it applies
//! against the in-process simulator, with no leak, no duplicate (nodes, addresses, CDN fronts
//! and overlay memberships alike), no cap exceeded and the state readable after every kill;
//! fronts were published, moved and published again, memberships joined. `cargo xtask soak`
//! runs 500 in release mode. The machinery is `damm_tests::soak`.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kills_leave_no_leak_no_duplicate_and_no_cap_exceeded() {
    let damm = damm_tests::soak::damm_binary(false).expect("the damm binary");
    let args = damm_tests::soak::SoakArgs {
        kills: 50,
        damm,
        seed: 8,
        check_every: 10,
        max_run: Duration::from_millis(1500),
    };
    let report = damm_tests::soak::run(&args)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert_eq!(report.kills, 50);
    assert_eq!(report.leaked, 0);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.max_over_cap, 0);
    assert!(
        report.state_reads >= report.kills,
        "the state was read after every kill"
    );
    // The entries churned: the checks above covered fronts and memberships in flight.
    assert!(report.front_moves > 0, "rotation moved fronts");
    assert!(
        report.fronts > 0 && report.fronts_removed > 0,
        "fronts were published, removed behind DAMM's back and published again"
    );
    assert!(report.memberships > 0, "gateways joined the overlay");
}
