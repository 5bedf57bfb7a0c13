//! static-host against real listeners on 127.0.0.1: an HTTP heartbeat, a UDP responder,
//! a silent UDP socket and a closed port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use damm_adapter_static_host::{CAPABILITIES, StaticHost};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{self, Fixture};
use damm_provider::{
    AddressSpec, ErrorKind, FleetId, FrontdoorRef, HealthStatus, IdempotencyKey, Labels,
    NodeFilter, NodeRef, Provider, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Serves `status` with `body` to every HTTP request; returns its address.
async fn heartbeat(status: u16, body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

/// Answers every datagram (a stand-in for a gateway agent that acknowledges probes).
async fn udp_responder() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A bound socket that never answers, like WireGuard to an unknown peer.
async fn silent_udp() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fleet() -> FleetId {
    FleetId::new("test").unwrap()
}

/// The adapter's config as `fleet.toml` in `dir` holding `text`, ignoring the environment.
fn config(dir: &Path, text: &str) -> AdapterConfig {
    AdapterConfig::from_toml(
        fleet(),
        "static-host",
        dir.join("fleet.toml"),
        text,
        &["providers", "static-host"],
    )
    .without_env()
}

fn build(dir: &Path, inventory: &str) -> StaticHost {
    std::fs::write(dir.join("hosts.toml"), inventory).unwrap();
    let config_text =
        "[providers.static-host]\ninventory = \"hosts.toml\"\nprobe_timeout_ms = 400\n";
    StaticHost::from_config(&config(dir, config_text)).unwrap()
}

fn host(id: &str, region: &str, port: u16, roles: &str, heartbeat: Option<SocketAddr>) -> String {
    let mut text = format!(
        "[[host]]\nid = \"{id}\"\nregion = \"{region}\"\naddress = \"127.0.0.1\"\nwireguard_port = {port}\nroles = {roles}\n"
    );
    if let Some(addr) = heartbeat {
        text.push_str(&format!("heartbeat_url = \"http://{addr}/healthz\"\n"));
    }
    text
}

fn spec(key: &str, region: &str) -> AddressSpec {
    let key = IdempotencyKey::new(key).unwrap();
    AddressSpec {
        labels: Labels::owned(&fleet(), &key),
        key,
        region: region.parse().unwrap(),
        node: None,
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let hb = heartbeat(200, r#"{"active_peers": 3}"#).await;
    let udp = udp_responder().await;
    let inventory = [
        host(
            "pi-a",
            "eu-central",
            51820,
            r#"["ingress", "egress"]"#,
            Some(hb),
        ),
        host(
            "pi-b",
            "eu-central",
            udp.port(),
            r#"["ingress", "egress"]"#,
            None,
        ),
    ]
    .concat();
    let provider = build(dir.path(), &inventory);
    let mut fixture = Fixture::new(CAPABILITIES, fleet(), "eu-central".parse().unwrap());
    fixture.expect_healthy_addresses = true;
    fixture.timeout = Duration::from_secs(5);
    let report = testkit::run(&provider, &fixture).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn probes_tell_healthy_down_and_unknown_apart() {
    let dir = tempfile::tempdir().unwrap();
    let ok = heartbeat(
        200,
        r#"{"rx_bytes": 10, "tx_bytes": 20, "active_peers": 3, "cpu_percent": 12.5}"#,
    )
    .await;
    let failing = heartbeat(503, "{}").await;
    let udp = udp_responder().await;
    let (_silent_socket, silent) = silent_udp().await;
    let closed_tcp: SocketAddr = format!("127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    })
    .parse()
    .unwrap();
    let inventory = [
        host("hb-ok", "eu", 51820, r#"["ingress"]"#, Some(ok)),
        host("hb-503", "eu", 51820, r#"["ingress"]"#, Some(failing)),
        host("hb-closed", "eu", 51820, r#"["ingress"]"#, Some(closed_tcp)),
        host("udp-answers", "eu", udp.port(), r#"["ingress"]"#, None),
        host("udp-silent", "eu", silent.port(), r#"["ingress"]"#, None),
        host("udp-closed", "eu", closed_port(), r#"["ingress"]"#, None),
    ]
    .concat();
    let provider = build(dir.path(), &inventory);
    let status = async |id: &str| {
        let signal = provider
            .probe_health(&Target::Node(NodeRef::new("static-host", id)))
            .await
            .unwrap();
        (signal.status, signal.rtt.is_some(), signal.detail)
    };
    assert_eq!(status("hb-ok").await.0, HealthStatus::Healthy);
    assert!(status("hb-ok").await.1, "a healthy heartbeat has an RTT");
    assert_eq!(status("hb-503").await.0, HealthStatus::Down);
    assert_eq!(status("hb-closed").await.0, HealthStatus::Down);
    assert_eq!(status("udp-answers").await.0, HealthStatus::Healthy);
    let (silent_status, _, detail) = status("udp-silent").await;
    assert_eq!(silent_status, HealthStatus::Unknown, "{detail}");
    assert_eq!(status("udp-closed").await.0, HealthStatus::Down);

    let metrics = provider
        .get_metrics(&Target::Node(NodeRef::new("static-host", "hb-ok")))
        .await
        .unwrap();
    assert_eq!(metrics.active_peers, Some(3));
    assert_eq!(metrics.rx_bytes, Some(10));
    assert_eq!(metrics.cpu_percent, Some(12.5));

    let err = provider
        .probe_health(&Target::Node(NodeRef::new("static-host", "nope")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = provider
        .probe_health(&Target::Frontdoor(FrontdoorRef::new(
            "static-host",
            "hb-ok",
        )))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "not allocated yet: {err}");
}

#[tokio::test]
async fn inclusions_survive_a_restart_and_hosts_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = [
        host("a", "eu", 51820, r#"["ingress"]"#, None),
        host("b", "eu", 51820, r#"["ingress", "egress"]"#, None),
    ]
    .concat();
    let provider = build(dir.path(), &inventory);
    let ingress = provider.ingress().unwrap();
    let first = ingress
        .allocate_ingress_frontdoor(&spec("k1", "eu"))
        .await
        .unwrap();
    let again = ingress
        .allocate_ingress_frontdoor(&spec("k1", "eu"))
        .await
        .unwrap();
    assert_eq!(
        first.reference, again.reference,
        "same key, same front door"
    );
    let second = ingress
        .allocate_ingress_frontdoor(&spec("k2", "eu"))
        .await
        .unwrap();
    assert_ne!(first.reference, second.reference);
    let err = ingress
        .allocate_ingress_frontdoor(&spec("k3", "eu"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    let err = ingress
        .allocate_ingress_frontdoor(&spec("k4", "us"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");

    // A spec without the fleet label is refused: adapters never touch unowned resources.
    let mut unowned = spec("k5", "eu");
    unowned.labels = Labels::new();
    let err = provider
        .egress()
        .unwrap()
        .allocate_egress_ip(&unowned)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    drop(provider);
    let restarted = build(dir.path(), &inventory);
    let doors = restarted
        .ingress()
        .unwrap()
        .list_frontdoors()
        .await
        .unwrap();
    assert_eq!(doors.len(), 2, "{doors:?}");
    assert!(doors.iter().all(|d| d.labels.is_owned_by(&fleet())));
}

#[tokio::test]
async fn inventory_edits_apply_and_bad_edits_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let provider = build(dir.path(), &host("a", "eu", 51820, r#"["ingress"]"#, None));
    assert_eq!(
        provider.list_nodes(&NodeFilter::all()).await.unwrap().len(),
        1
    );

    // Make sure the modification time moves even on coarse file systems.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let grown = [
        host("a", "eu", 51820, r#"["ingress"]"#, None),
        host("b", "us", 51820, r#"["egress"]"#, None),
    ]
    .concat();
    std::fs::write(dir.path().join("hosts.toml"), &grown).unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(dir.path().join("hosts.toml"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(provider.region(&"us".parse().unwrap()).is_some());

    std::fs::write(dir.path().join("hosts.toml"), "[[host]]\nid = \"a\"\n").unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
    let nodes = provider.list_nodes(&NodeFilter::all()).await.unwrap();
    assert_eq!(nodes.len(), 2, "a broken edit keeps the previous inventory");
    let api = provider.probe_health(&Target::Api).await.unwrap();
    assert_eq!(api.status, HealthStatus::Degraded);
    assert!(api.detail.contains("hosts.toml"), "{}", api.detail);
    assert!(api.detail.contains("region"), "{}", api.detail);
}

#[tokio::test]
async fn configuration_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[providers.static-host]\ninventory = \"missing.toml\"\n";
    let err = StaticHost::from_config(&config(dir.path(), text)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("missing.toml"), "{err}");

    let text = "[providers.static-host]\ninventory = \"hosts.toml\"\nprobe_timeout_ms = \"soon\"\n";
    let err = StaticHost::from_config(&config(dir.path(), text))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fleet.toml [providers.static-host]") && err.contains("line 3"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nid = \"a\"\nregion = \"EU\"\naddress = \"127.0.0.1\"\nroles = [\"ingress\"]\n",
    )
    .unwrap();
    let text = "[providers.static-host]\ninventory = \"hosts.toml\"\n";
    let err = StaticHost::from_config(&config(dir.path(), text))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hosts.toml:3:10: field `region`"), "{err}");
}
