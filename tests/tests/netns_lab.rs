//! The netns harness itself, on the shape later censor and multi-hop tests take: a client
//! behind a router on a point-to-point link, routes both ways, the router's nftables rules
//! dropping the UDP it forwards while TCP still passes, and a port of 127.0.0.1 forwarded
//! into the lab that fails once its target's host is gone.
//!
//! Topology (namespaces `dmlNNN-*`):
//!
//! ```text
//! cl 10.29.0.2/30 ── mid 10.29.0.1/30 + 172.29.0.2/24 ── internet ── dst 172.29.0.30/24
//! ```
//!
//! Needs root and /dev/net/tun; skips loudly otherwise, except under CI (`CI` set) as root.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use damm_tests::netns::{self, Topology, http_ok, wait_until};

/// Drops every UDP datagram the router forwards: what a censor does to WireGuard.
const DROP_FORWARDED_UDP: &str = "table inet censor {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp drop
    }
}";

#[test]
fn a_router_forwards_until_its_rules_drop_udp_and_forwards_fail_with_their_host() {
    if netns::skip("netns_lab") {
        return;
    }
    let prefix = format!("dml{}", std::process::id() % 1000);
    let mut lab = Topology::new()
        .node("dst", "172.29.0.30/24")
        .node("mid", "172.29.0.2/24")
        .link("cl", "10.29.0.2/30", "mid", "10.29.0.1/30")
        .router("mid")
        .route("cl", "default", "10.29.0.1")
        .route("dst", "10.29.0.0/30", "172.29.0.2")
        .build(&prefix)
        .expect("lab");
    let (cl, mid, dst) = (lab.ns("cl"), lab.ns("mid"), lab.ns("dst"));
    let echo: SocketAddr = "172.29.0.30:7777".parse().unwrap();
    let heartbeat: SocketAddr = "172.29.0.30:9100".parse().unwrap();
    lab.echo(&dst, echo).unwrap();
    lab.heartbeat(&dst, heartbeat).unwrap();

    // Through the router, routed not translated: the destination sees the client's address.
    let start = Instant::now();
    let probe = lab.probe(&cl, echo, Duration::from_millis(50)).unwrap();
    let first = probe
        .wait_for(start, Duration::from_secs(10), |_| true)
        .expect("no echo through the router");
    assert_eq!(first.source, "10.29.0.2", "{first:?}");

    // The test reaches the lab only through 127.0.0.1, here relayed from the client.
    let forwarded = lab.forward(&cl, heartbeat).unwrap();
    assert!(forwarded.ip().is_loopback(), "{forwarded}");
    assert!(
        wait_until(Duration::from_secs(10), || http_ok(forwarded, "/healthz")),
        "the heartbeat is unreachable through {forwarded}"
    );

    // The censor: forwarded UDP is dropped, forwarded TCP is not.
    lab.nft(&mid, DROP_FORWARDED_UDP).unwrap();
    let censored = Instant::now() + Duration::from_millis(200);
    assert!(
        probe
            .wait_for(censored, Duration::from_secs(2), |_| true)
            .is_none(),
        "UDP crossed the censor: {:?}",
        probe.echoes(censored)
    );
    assert!(
        http_ok(forwarded, "/healthz"),
        "TCP through the censor failed"
    );

    // The destination's host goes away: the forwarded port fails as its target does.
    lab.destroy(&dst);
    assert!(
        wait_until(Duration::from_secs(20), || !http_ok(forwarded, "/healthz")),
        "{forwarded} still answers with its target's host gone"
    );
}
