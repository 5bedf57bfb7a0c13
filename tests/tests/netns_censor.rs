//! The censor in the lab: a router namespace between a client and a gateway whose nftables
//! drop WireGuard handshake initiations by the rule a DPI box uses (UDP payload of 148 bytes
//! starting `01 00 00 00`). Real userspace WireGuard on both ends.
//!
//! - T0 (WireGuard straight to the gateway) never completes a handshake, and the censor's
//!   counter shows its rule matched;
//! - T1 (the client's WireGuard aimed at a loopback forwarder that seals each datagram for
//!   the gateway's T1 listener) carries the tunnel through the same censor, with the same
//!   keys, and the rule matches nothing more.
//!
//! Prints the time from switching to T1 to the first echo answered through the tunnel
//! (a figure for docs/transports.md, never asserted).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use damm_tests::netns::{self, Lab, Topology};

/// What a DPI box drops: UDP whose payload is 148 bytes long (UDP length 156) and starts
/// with WireGuard's initiation type `01 00 00 00`.
const DROP_WIREGUARD_INITIATIONS: &str = "table inet censor {
    chain forward {
        type filter hook forward priority 0; policy accept;
        udp length 156 @th,64,32 0x01000000 counter drop
    }
}";

/// A WireGuard key pair made with `wg` inside `ns`: (private, public).
fn keypair(lab: &Lab, ns: &str) -> (String, String) {
    let private = lab.exec(ns, "wg", &["genkey"]).unwrap().trim().to_owned();
    let public = lab
        .exec(ns, "sh", &["-c", &format!("echo {private} | wg pubkey")])
        .unwrap()
        .trim()
        .to_owned();
    (private, public)
}

/// A WireGuard pair: the gateway's interface configured (key, port 51820, the client as
/// peer at `<net>.2/32`, its own address `<net>.1/24`, up), the client's made and keyed.
struct Tunnel {
    gw_if: String,
    cl_if: String,
    gw_public: String,
    cl_private: String,
    /// The client's private key file.
    cl_key: String,
}

fn tunnel(lab: &mut Lab, gw: &str, cl: &str, dir: &std::path::Path, net: &str) -> Tunnel {
    let gw_if = lab.wireguard(gw, "gw").unwrap();
    let cl_if = lab.wireguard(cl, "cl").unwrap();
    let (gw_private, gw_public) = keypair(lab, gw);
    let (cl_private, cl_public) = keypair(lab, cl);
    let gw_key = dir.join("gw.key");
    let cl_key = dir.join("cl.key");
    std::fs::write(&gw_key, gw_private).unwrap();
    std::fs::write(&cl_key, &cl_private).unwrap();
    let gw_key = gw_key.to_string_lossy().into_owned();
    let peer = format!("{net}.2/32");
    lab.exec(
        gw,
        "wg",
        &[
            "set",
            &gw_if,
            "private-key",
            &gw_key,
            "listen-port",
            "51820",
            "peer",
            &cl_public,
            "allowed-ips",
            &peer,
        ],
    )
    .unwrap();
    let address = format!("{net}.1/24");
    lab.exec(gw, "ip", &["address", "add", &address, "dev", &gw_if])
        .unwrap();
    lab.exec(gw, "ip", &["link", "set", &gw_if, "up"]).unwrap();
    Tunnel {
        gw_if,
        cl_if,
        gw_public,
        cl_private,
        cl_key: cl_key.to_string_lossy().into_owned(),
    }
}

/// Points the client's WireGuard peer at `endpoint`.
fn connect(lab: &Lab, ns: &str, iface: &str, key: &str, peer: &str, endpoint: &str) {
    lab.exec(
        ns,
        "wg",
        &[
            "set",
            iface,
            "private-key",
            key,
            "peer",
            peer,
            "endpoint",
            endpoint,
            "allowed-ips",
            "10.99.0.0/24",
            "persistent-keepalive",
            "1",
        ],
    )
    .unwrap();
}

/// Packets the censor's rule dropped so far.
fn dropped(lab: &Lab, censor: &str) -> u64 {
    let rules = lab.exec(censor, "nft", &["list", "ruleset"]).unwrap();
    rules
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn censor_dropping_wireguard_handshakes_stops_t0_and_t1_carries_the_tunnel() {
    if netns::skip("netns_censor") {
        return;
    }
    let prefix = format!("dct{}", std::process::id() % 1000);
    let mut lab = Topology::new()
        .node("gw", "172.31.0.11/24")
        .node("censor", "172.31.0.2/24")
        .link("cl", "10.31.0.2/30", "censor", "10.31.0.1/30")
        .router("censor")
        .route("cl", "default", "10.31.0.1")
        .route("gw", "10.31.0.0/30", "172.31.0.2")
        .nft("censor", DROP_WIREGUARD_INITIATIONS)
        .build(&prefix)
        .expect("lab");
    let (cl, gw, censor) = (lab.ns("cl"), lab.ns("gw"), lab.ns("censor"));
    let dir = tempfile::tempdir().unwrap();

    // WireGuard on both ends.
    let Tunnel {
        gw_if,
        cl_if,
        gw_public,
        cl_key,
        ..
    } = tunnel(&mut lab, &gw, &cl, dir.path(), "10.99.0");
    connect(&lab, &cl, &cl_if, &cl_key, &gw_public, "172.31.0.11:51820");
    lab.exec(
        &cl,
        "ip",
        &["address", "add", "10.99.0.2/24", "dev", &cl_if],
    )
    .unwrap();
    lab.exec(&cl, "ip", &["link", "set", &cl_if, "up"]).unwrap();

    // Traffic through the tunnel: a UDP echo on the gateway's tunnel address, probed from
    // the client every 50 ms.
    let echo: SocketAddr = "10.99.0.1:7777".parse().unwrap();
    lab.echo(&gw, echo).unwrap();
    let probe = lab.probe(&cl, echo, Duration::from_millis(50)).unwrap();

    // T0 through the censor: the handshake never completes, and the rule is what stops it.
    let start = Instant::now();
    assert!(
        probe
            .wait_for(start, Duration::from_secs(4), |_| true)
            .is_none(),
        "traffic crossed a censor that drops WireGuard initiations"
    );
    let blocked = dropped(&lab, &censor);
    assert!(blocked > 0, "the censor's rule never matched WireGuard");

    // T1: relays on both ends under one key; the client's WireGuard aims at its forwarder.
    let t1_key = dir.path().join("t1.key");
    std::fs::write(&t1_key, T1_KEY_HEX).unwrap();
    let t1_key = t1_key.to_string_lossy().into_owned();
    let helper = env!("CARGO_BIN_EXE_damm-netns-udp");
    lab.spawn(
        &gw,
        helper,
        &["t1-gateway", "0.0.0.0:4443", "127.0.0.1:51820", &t1_key],
    )
    .unwrap();
    lab.spawn(
        &cl,
        helper,
        &["t1-client", "127.0.0.1:5555", "172.31.0.11:4443", &t1_key],
    )
    .unwrap();
    let switched = Instant::now();
    connect(&lab, &cl, &cl_if, &cl_key, &gw_public, "127.0.0.1:5555");
    let first = probe.wait_for(switched, Duration::from_secs(20), |_| true);
    assert!(
        first.is_some(),
        "no echo through the tunnel over T1: client {} gateway {}",
        lab.exec(&cl, "wg", &["show", &cl_if]).unwrap_or_default(),
        lab.exec(&gw, "wg", &["show", &gw_if]).unwrap_or_default(),
    );
    let first = first.unwrap();
    assert_eq!(
        first.source, "10.99.0.2",
        "the echo saw the client's tunnel address"
    );
    println!(
        "figure: censor drops WireGuard initiations: first echo over T1 {:.2} s after the switch",
        (first.at - switched).as_secs_f64()
    );
    // Two more seconds of traffic: it keeps flowing, and the rule matches none of it.
    std::thread::sleep(Duration::from_secs(2));
    let later = probe.echoes(first.at + Duration::from_millis(1));
    assert!(later.len() >= 20, "{} echoes in 2 s", later.len());
    assert_eq!(
        dropped(&lab, &censor),
        blocked,
        "the censor matched a T1 datagram"
    );
}

/// What a censor that tolerates no VPN does: drops every UDP datagram, and everything to the
/// gateway's address. Only the CDN edge stays reachable.
const DROP_UDP_AND_THE_GATEWAY: &str = "table inet censor {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp counter drop
        ip daddr 172.31.1.11 counter drop
    }
}";

/// A test CA and the edge's certificate for `host`, made with openssl in `dir`:
/// (CA file, certificate, key).
fn test_certificates(dir: &std::path::Path, host: &str) -> (String, String, String) {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("edge.key"),
        p("edge.csr"),
        p("edge.pem"),
        p("edge.ext"),
    );
    std::fs::write(&ext, format!("subjectAltName=DNS:{host}\n")).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let run = |args: &[&str]| netns::sh("openssl", args).unwrap();
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=DAMM test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={host}"),
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (ca, cert, key)
}

/// nginx as a CDN edge: TLS for `host`, every request proxied to `origin`, WebSocket
/// upgrades forwarded, Cloudflare's 100 s idle limit.
fn edge_config(dir: &std::path::Path, host: &str, cert: &str, key: &str, origin: &str) -> String {
    let d = dir.to_string_lossy();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 443 ssl;\n    server_name {host};\n    ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n    location / {{\n      proxy_pass http://{origin};\n\
               proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
               proxy_set_header Connection \"upgrade\";\n      proxy_set_header Host $host;\n\
               proxy_read_timeout 100s;\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn censor_dropping_all_udp_and_the_gateway_leaves_t3_through_the_cdn_edge() {
    if netns::skip("netns_censor") {
        return;
    }
    let prefix = format!("dc3{}", std::process::id() % 1000);
    let mut lab = edge_topology(1)
        .nft("censor", DROP_UDP_AND_THE_GATEWAY)
        .build(&prefix)
        .expect("lab");
    let (cl, gw, edge) = (lab.ns("cl"), lab.ns("gw"), lab.ns("edge"));
    let dir = tempfile::tempdir().unwrap();
    let host = "front.example";

    // The gateway: WireGuard and T3's listener behind the edge.
    let Tunnel {
        gw_if,
        cl_if,
        gw_public,
        cl_key,
        ..
    } = tunnel(&mut lab, &gw, &cl, dir.path(), "10.99.1");
    let helper = env!("CARGO_BIN_EXE_damm-netns-udp");
    lab.spawn(
        &gw,
        helper,
        &["t3-gateway", "0.0.0.0:8080", "127.0.0.1:51820", SECRET],
    )
    .unwrap();

    // The edge: nginx with a test CA's certificate.
    let (ca, cert, key) = test_certificates(dir.path(), host);
    let conf = edge_config(dir.path(), host, &cert, &key, "172.31.1.11:8080");
    lab.spawn(&edge, "nginx", &["-c", &conf]).unwrap();

    // The client: WireGuard aimed at T3's forwarder.
    let echo: SocketAddr = "10.99.1.1:7777".parse().unwrap();
    lab.echo(&gw, echo).unwrap();
    lab.exec(
        &cl,
        "ip",
        &["address", "add", "10.99.1.2/24", "dev", &cl_if],
    )
    .unwrap();
    lab.exec(&cl, "ip", &["link", "set", &cl_if, "up"]).unwrap();
    let url = format!("wss://{host}{SECRET}");
    lab.spawn(
        &cl,
        helper,
        &["t3-client", "127.0.0.1:5556", &url, "172.31.1.20:443", &ca],
    )
    .unwrap();
    let probe = lab.probe(&cl, echo, Duration::from_millis(50)).unwrap();
    let started = Instant::now();
    lab.exec(
        &cl,
        "wg",
        &[
            "set",
            &cl_if,
            "private-key",
            &cl_key,
            "peer",
            &gw_public,
            "endpoint",
            "127.0.0.1:5556",
            "allowed-ips",
            "10.99.1.0/24",
            "persistent-keepalive",
            "25",
        ],
    )
    .unwrap();
    let first = probe.wait_for(started, Duration::from_secs(20), |_| true);
    assert!(
        first.is_some(),
        "no echo through the tunnel over T3: client {} gateway {} edge log {}",
        lab.exec(&cl, "wg", &["show", &cl_if]).unwrap_or_default(),
        lab.exec(&gw, "wg", &["show", &gw_if]).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default(),
    );
    let first = first.unwrap();
    assert_eq!(first.source, "10.99.1.2");
    println!(
        "figure: censor drops all UDP and the gateway's address: first echo over T3 {:.2} s after the client started",
        (first.at - started).as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let later = probe.echoes(first.at + Duration::from_millis(1));
    assert!(later.len() >= 20, "{} echoes in 2 s", later.len());
    // The censor saw the client try nothing but TLS to the edge: its rules dropped none of
    // T3's packets (the client's own UDP never leaves its namespace).
    let rules = lab
        .exec(&lab.ns("censor"), "nft", &["list", "ruleset"])
        .unwrap();
    assert!(
        rules.matches("packets 0").count() == 2,
        "the censor dropped T3 traffic: {rules}"
    );
}

/// Received throughput of a 5 s iperf3 TCP run from `cl` to the server at `server`, in
/// bits per second.
fn iperf(lab: &Lab, cl: &str, server: &str) -> f64 {
    let json = lab
        .exec(
            cl,
            "iperf3",
            &["-c", server, "-t", "5", "-J", "--connect-timeout", "3000"],
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 to {server}: {}", v["error"]))
}

/// The throughput figures of docs/transports.md: T0, T1 and T3 on the same netns path, no
/// censor rule, one WireGuard pair. A measurement, not a check: `cargo test -p damm-tests
/// --test netns_censor -- --ignored --nocapture` (needs iperf3: `apt-get install iperf3`).
#[test]
#[ignore = "a measurement: run by hand for docs/transports.md"]
fn censor_lab_throughput_per_transport() {
    if netns::skip("netns_censor") || netns::sh("sh", &["-c", "command -v iperf3"]).is_err() {
        eprintln!("skipped: needs root, the netns tools and iperf3");
        return;
    }
    let prefix = format!("dcp{}", std::process::id() % 1000);
    let mut lab = edge_topology(2).build(&prefix).expect("lab");
    let (cl, gw, edge) = (lab.ns("cl"), lab.ns("gw"), lab.ns("edge"));
    let dir = tempfile::tempdir().unwrap();
    let Tunnel {
        gw_if,
        cl_if,
        gw_public,
        cl_key,
        ..
    } = tunnel(&mut lab, &gw, &cl, dir.path(), "10.99.0");
    // One MTU for all three, small enough for T1 and T3 not to fragment.
    lab.exec(
        &cl,
        "ip",
        &["address", "add", "10.99.0.2/24", "dev", &cl_if],
    )
    .unwrap();
    for (ns, iface) in [(&gw, &gw_if), (&cl, &cl_if)] {
        lab.exec(ns, "ip", &["link", "set", iface, "mtu", "1380", "up"])
            .unwrap();
    }
    let ca = gateway_transports(&mut lab, &gw, &edge, dir.path(), 2);
    let helper = env!("CARGO_BIN_EXE_damm-netns-udp");
    let t1_key = dir.path().join("t1.key").to_string_lossy().into_owned();
    lab.spawn(
        &cl,
        helper,
        &["t1-client", "127.0.0.1:5555", "172.31.2.11:4443", &t1_key],
    )
    .unwrap();
    let url = format!("wss://front.example{SECRET}");
    lab.spawn(
        &cl,
        helper,
        &["t3-client", "127.0.0.1:5556", &url, "172.31.2.20:443", &ca],
    )
    .unwrap();
    lab.spawn(&gw, "iperf3", &["-s", "-B", "10.99.0.1"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut results = Vec::new();
    for (name, endpoint) in [
        ("T0", "172.31.2.11:51820"),
        ("T1", "127.0.0.1:5555"),
        ("T3", "127.0.0.1:5556"),
    ] {
        connect(&lab, &cl, &cl_if, &cl_key, &gw_public, endpoint);
        // Let the handshake settle on the new endpoint.
        std::thread::sleep(Duration::from_secs(2));
        let bps = iperf(&lab, &cl, "10.99.0.1");
        results.push((name, bps));
    }
    let t0 = results[0].1;
    for (name, bps) in &results {
        println!(
            "figure: throughput over {name}: {:.0} Mbit/s ({:.2} of T0)",
            bps / 1e6,
            bps / t0
        );
    }
}

/// A censor that drops every UDP datagram.
const DROP_ALL_UDP: &str = "table inet censor {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp drop
    }
}";

/// The censor lab with a CDN edge: the client behind a routing censor (`10.31.N.0/30`),
/// the gateway (`172.31.N.11`) and the edge (`172.31.N.20`) on the internet switch.
fn edge_topology(n: u8) -> Topology {
    let net = |host: u8| format!("172.31.{n}.{host}/24");
    Topology::new()
        .node("gw", &net(11))
        .node("edge", &net(20))
        .node("censor", &net(2))
        .link(
            "cl",
            &format!("10.31.{n}.2/30"),
            "censor",
            &format!("10.31.{n}.1/30"),
        )
        .router("censor")
        .route("cl", "default", &format!("10.31.{n}.1"))
        .route("gw", &format!("10.31.{n}.0/30"), &format!("172.31.{n}.2"))
        .route("edge", &format!("10.31.{n}.0/30"), &format!("172.31.{n}.2"))
}

/// The lab's shared T1 key (hex) and T3 secret path.
const T1_KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const SECRET: &str = "/v2Lq8RtYx4mNz7Kp3WcB6h";

/// The gateway's T1 and T3 listeners (T3 on 8080 behind the edge) and the edge: nginx with
/// a test CA's certificate for `front.example`. Returns the CA file clients trust.
fn gateway_transports(lab: &mut Lab, gw: &str, edge: &str, dir: &std::path::Path, n: u8) -> String {
    let t1_key = dir.join("t1.key");
    std::fs::write(&t1_key, T1_KEY_HEX).unwrap();
    let t1_key = t1_key.to_string_lossy().into_owned();
    let helper = env!("CARGO_BIN_EXE_damm-netns-udp");
    lab.spawn(
        gw,
        helper,
        &["t1-gateway", "0.0.0.0:4443", "127.0.0.1:51820", &t1_key],
    )
    .unwrap();
    lab.spawn(
        gw,
        helper,
        &["t3-gateway", "0.0.0.0:8080", "127.0.0.1:51820", SECRET],
    )
    .unwrap();
    let (ca, cert, key) = test_certificates(dir, "front.example");
    let origin = format!("172.31.{n}.11:8080");
    let conf = edge_config(dir, "front.example", &cert, &key, &origin);
    lab.spawn(edge, "nginx", &["-c", &conf]).unwrap();
    ca
}

/// The catalog the client agent gets: one path to the gateway with T0, T1 and T3 offers.
fn offering_catalog(gateway_public: &str, t1_key_hex: &str, secret: &str) -> damm_catalog::Catalog {
    let text = format!(
        r#"{{
          "schema": "damm-catalog/1", "fleet": "lab", "version": 1,
          "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2036-01-01T00:00:00Z",
          "validated_for": [],
          "regions": {{ "lab": {{ "paths": [
            {{ "path_id": "p", "score": 0.9, "transports": ["T0"], "endpoint": "172.31.3.11:51820",
              "gateway_public_key": "{gateway_public}",
              "composition": [{{ "role": "ingress", "provider": "lab", "component": "gw" }}],
              "offers": [
                {{ "kind": "T0", "endpoint": "172.31.3.11:51820" }},
                {{ "kind": "T1", "endpoint": "172.31.3.11:4443", "key": "{t1_key_hex}" }},
                {{ "kind": "T3", "url": "wss://front.example{secret}", "host": "front.example", "sni": "front.example" }}
              ] }}
          ] }} }}
        }}"#
    );
    damm_catalog::Catalog::from_json(text.as_bytes()).unwrap()
}

/// A censor that starts dropping all UDP in the middle of a session: the client agent,
/// which connected over T0, notices the silence and moves to T1, then T3 through the CDN
/// edge, with the same enrollment (its tunnel address is what the destination sees on both
/// sides of the block). Prints the outage.
#[test]
fn censor_blocking_udp_mid_session_moves_the_client_to_t3_with_the_same_enrollment() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use damm_agent::client::{ClientAgent, ClientSettings, Enrollment};
    use damm_agent::{Host, wg::WgTool};

    if netns::skip("netns_censor") {
        return;
    }
    let prefix = format!("dcm{}", std::process::id() % 1000);
    let mut lab = edge_topology(3).build(&prefix).expect("lab");
    let (cl, gw, edge, censor) = (lab.ns("cl"), lab.ns("gw"), lab.ns("edge"), lab.ns("censor"));
    let dir = tempfile::tempdir().unwrap();

    // The gateway: WireGuard, its T1 and T3 listeners, the edge before it, an echo inside.
    let Tunnel {
        cl_if,
        gw_public,
        cl_private,
        ..
    } = tunnel(&mut lab, &gw, &cl, dir.path(), "10.99.3");
    let ca = gateway_transports(&mut lab, &gw, &edge, dir.path(), 3);
    let echo: SocketAddr = "10.99.3.1:7777".parse().unwrap();
    lab.echo(&gw, echo).unwrap();

    // The client agent, on a thread inside the client's namespace, so that its forwarders'
    // sockets are there too.
    let catalog = offering_catalog(&gw_public, T1_KEY_HEX, SECRET);
    let enrollment = Enrollment {
        client: "alice".into(),
        region: "lab".into(),
        private_key: cl_private.parse::<damm_catalog::PrivateKey>().unwrap(),
        address: "10.99.3.2/32".into(),
    };
    let mut settings = ClientSettings::new(&cl_if, 1);
    settings.allowed_ips = vec!["10.99.3.0/24".into()];
    settings.routes = vec!["10.99.3.0/24".into()];
    let tls = damm_agent::tls_trusting(&std::fs::read(&ca).unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let current: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = {
        let (stop, current, cl) = (Arc::clone(&stop), Arc::clone(&current), cl.clone());
        std::thread::spawn(move || {
            let netns = std::fs::File::open(format!("/var/run/netns/{cl}")).unwrap();
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // Worker threads are made from this one: they are in the namespace too.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let host = Host::netns(&cl);
                let mut agent = ClientAgent::new(
                    host.clone(),
                    Box::new(WgTool::new(host)),
                    enrollment,
                    settings,
                    catalog,
                );
                agent.set_transport_tls(tls);
                agent.pin_front("front.example", "172.31.3.20:443".parse().unwrap());
                agent.connect(Instant::now()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Err(e) = agent.tick(Instant::now()) {
                        eprintln!("client tick: {e}");
                    }
                    let path = agent
                        .current_path()
                        .map(|p| p.path_id.clone())
                        .unwrap_or_default();
                    let mut seen = current.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.last() != Some(&path) {
                        seen.push(path);
                    }
                }
            });
        })
    };

    // Before the block: T0, traffic flowing.
    let probe = lab.probe(&cl, echo, Duration::from_millis(50)).unwrap();
    let start = Instant::now();
    let first = probe.wait_for(start, Duration::from_secs(20), |_| true);
    assert!(first.is_some(), "no traffic before the block");
    assert_eq!(first.unwrap().source, "10.99.3.2");
    let now_on = || current.lock().unwrap_or_else(|e| e.into_inner()).clone();
    netns::wait_until(Duration::from_secs(2), || !now_on().is_empty());
    assert_eq!(now_on(), ["p"], "bare WireGuard first");
    std::thread::sleep(Duration::from_secs(1));

    // The censor starts dropping every UDP datagram.
    let down_at = Instant::now();
    lab.nft(&censor, DROP_ALL_UDP).unwrap();
    let outage = probe.outage(start, down_at, Duration::from_secs(40));
    stop.store(true, Ordering::Relaxed);
    let path = now_on();
    client.join().unwrap();
    let outage = outage.unwrap_or_else(|e| panic!("{e:#}: paths {path:?}"));
    assert_eq!(
        outage.first.source, "10.99.3.2",
        "the same enrollment after the move"
    );
    assert_eq!(path.last().map(String::as_str), Some("p~t3"), "{path:?}");
    println!(
        "figure: all UDP blocked mid-session: outage {outage}, paths {}",
        path.join(" → ")
    );
}
