//! End to end with real tunnels: a client fails over between three ingresses without
//! re-enrollment, and the egress behind its ingress rotates without the client noticing.
//!
//! Topology (namespaces `dmwNNN-*`, all on one bridge "internet" 172.31.0.0/24):
//!
//! ```text
//! cl 172.31.0.10 ──wg──▶ in1 .11 / in2 .12 / in3 .13 ──backbone wg──▶ eg1 .21 / eg2 .22 ──▶ dst .30
//!  10.77.0.2/32          10.77.0.1/16 + backbone 10.78.0.1x/24        10.78.0.{1,2}/24     UDP echo
//! ```
//!
//! The client routes only 172.31.0.30/32 into its tunnel; the destination echoes each probe
//! with the source address it saw, which must be the egress's.
//!
//! Needs root and /dev/net/tun; skips loudly otherwise, except under CI (`CI` set) as root.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Duration as Span, Utc};
use damm_agent::Host;
use damm_agent::agent::GatewayAgent;
use damm_agent::client::{ClientAgent, ClientSettings, Enrollment};
use damm_agent::wg::WgTool;
use damm_catalog::{
    Backbone, Catalog, Component, GatewayConfig, GatewayPeer, GatewayRole, KeyPair, Path,
    RegionPaths, Role, SigningKey, Transport, sign_catalog, sign_gateway_config, verify,
    verify_gateway_config,
};
use damm_tests::netns::{self, Lab, Topology, wg_identity, wg_peers};

const DST: &str = "172.31.0.30";
const REGION: &str = "lab";

struct Gateway {
    ns: String,
    keys: KeyPair,
    agent: GatewayAgent,
    version: u64,
}

impl Gateway {
    /// Gateway `name` on its host of the lab, with a fresh key.
    fn new(lab: &mut Lab, name: &str, backbone: bool) -> Gateway {
        let ns = lab.ns(name);
        let keys = KeyPair::generate();
        let agent = lab
            .gateway(&ns, name, backbone, keys.private_key().clone())
            .unwrap();
        Gateway {
            ns,
            keys,
            agent,
            version: 0,
        }
    }
}

fn ingress_config(
    i: usize,
    version: u64,
    client: &GatewayPeer,
    egress: &Gateway,
    egress_ip: &str,
) -> GatewayConfig {
    let now = Utc::now();
    GatewayConfig {
        schema: damm_catalog::GATEWAY_SCHEMA_V1.into(),
        fleet: "lab".into(),
        gateway: format!("in{i}"),
        version,
        issued_at: now,
        expires_at: now + Span::hours(1),
        role: GatewayRole::Ingress,
        listen_port: 51820,
        address: "10.77.0.1/16".into(),
        peers: vec![client.clone()],
        backbone: Some(Backbone {
            listen_port: 51821,
            address: format!("10.78.0.1{i}/24"),
            peer: GatewayPeer {
                name: egress.ns.clone(),
                public_key: egress.keys.public_key(),
                allowed_ips: vec!["0.0.0.0/0".into()],
                endpoint: Some(format!("{egress_ip}:51821")),
                persistent_keepalive: Some(1),
            },
        }),
        transports: Default::default(),
    }
}

#[test]
fn client_fails_over_between_ingresses_and_survives_egress_rotation() {
    if netns::skip("netns_failover") {
        return;
    }
    let prefix = format!("dmw{}", std::process::id() % 1000);
    let signing = SigningKey::generate();
    let trusted = [signing.public_key()];

    // The internet: the client, the destination, two egresses and three ingresses.
    let mut topology = Topology::new()
        .node("cl", "172.31.0.10/24")
        .node("dst", &format!("{DST}/24"));
    for j in 1..=2 {
        topology = topology.node(&format!("eg{j}"), &format!("172.31.0.2{j}/24"));
    }
    for i in 1..=3 {
        topology = topology.node(&format!("in{i}"), &format!("172.31.0.1{i}/24"));
    }
    let mut lab = topology.build(&prefix).expect("lab");
    let (cl, dst) = (lab.ns("cl"), lab.ns("dst"));
    let dst_addr: SocketAddr = format!("{DST}:7777").parse().unwrap();
    lab.echo(&dst, dst_addr).unwrap();

    // Gateways: wireguard-go interfaces, configured by the agent through wireguard-control.
    let mut egresses: Vec<Gateway> = (1..=2)
        .map(|j| Gateway::new(&mut lab, &format!("eg{j}"), false))
        .collect();
    let mut ingresses: Vec<Gateway> = (1..=3)
        .map(|i| Gateway::new(&mut lab, &format!("in{i}"), true))
        .collect();

    // Enrollment: one key and address, stamped on every ingress of the region.
    let client_keys = KeyPair::generate();
    let client_peer = GatewayPeer {
        name: "alice".into(),
        public_key: client_keys.public_key(),
        allowed_ips: vec!["10.77.0.2/32".into()],
        endpoint: None,
        persistent_keepalive: Some(1),
    };

    // Egress configs list every ingress's backbone address; ingresses start on eg1.
    let now = Utc::now();
    for (j, eg) in egresses.iter_mut().enumerate() {
        eg.version += 1;
        let config = GatewayConfig {
            schema: damm_catalog::GATEWAY_SCHEMA_V1.into(),
            fleet: "lab".into(),
            gateway: format!("eg{}", j + 1),
            version: eg.version,
            issued_at: now,
            expires_at: now + Span::hours(1),
            role: GatewayRole::Egress,
            listen_port: 51821,
            address: format!("10.78.0.{}/24", j + 1),
            peers: (1..=3)
                .map(|i| GatewayPeer {
                    name: format!("in{i}"),
                    public_key: ingresses[i - 1].keys.public_key(),
                    allowed_ips: vec![format!("10.78.0.1{i}/32")],
                    endpoint: None,
                    persistent_keepalive: None,
                })
                .collect(),
            backbone: None,
            transports: Default::default(),
        };
        apply_signed(eg, &config, &signing, &trusted);
    }
    for (i, gw) in ingresses.iter_mut().enumerate() {
        gw.version += 1;
        let config = ingress_config(i + 1, gw.version, &client_peer, &egresses[0], "172.31.0.21");
        let outcome = apply_signed(gw, &config, &signing, &trusted);
        assert!(
            outcome.peer_changes >= 2,
            "first apply adds peers: {outcome:?}"
        );
        // Idempotent: the same config again changes nothing.
        let again = gw.agent.apply(&config).unwrap();
        assert_eq!(again.peer_changes, 0, "re-apply changed peers");
        assert!(!again.interface_changed);
    }

    // The signed catalog: three one-ingress paths on three providers.
    let paths = (1..=3)
        .map(|i| Path {
            path_id: format!("{REGION}/in{i}"),
            composition: vec![Component {
                role: Role::Ingress,
                provider: format!("provider{i}"),
                component: format!("provider{i}:lab:in{i}"),
            }],
            score: 1.0 - 0.1 * i as f64,
            transports: vec![Transport::WireguardUdp],
            endpoint: format!("172.31.0.1{i}:51820"),
            gateway_public_key: ingresses[i - 1].keys.public_key(),
            offers: Vec::new(),
        })
        .collect();
    let catalog = Catalog {
        schema: damm_catalog::SCHEMA_V1.into(),
        fleet: "lab".into(),
        version: 1,
        issued_at: now,
        expires_at: now + Span::hours(1),
        validated_for: vec![],
        regions: BTreeMap::from([(REGION.into(), RegionPaths { paths })]),
    };
    let signed = sign_catalog(&catalog, &signing).unwrap();
    let accepted = verify(
        signed.json.as_bytes(),
        &signed.signature,
        &trusted,
        None,
        Utc::now(),
    )
    .unwrap();

    // The client: wireguard-go in its namespace, driven through the `wg` tool.
    let cl_iface = lab.wireguard(&cl, "cl").unwrap();
    let mut settings = ClientSettings::new(&cl_iface, 1);
    settings.routes = vec![format!("{DST}/32")];
    settings.report_every = Duration::from_secs(1);
    let enrollment = Enrollment {
        client: "alice".into(),
        region: REGION.into(),
        private_key: client_keys.private_key().clone(),
        address: "10.77.0.2/32".into(),
    };
    let mut client = ClientAgent::new(
        Host::netns(&cl),
        Box::new(WgTool::new(Host::netns(&cl))),
        enrollment,
        settings,
        accepted,
    );
    let first = client.connect(Instant::now()).unwrap();
    assert_eq!(first.path_id, format!("{REGION}/in1"), "best path first");
    let identity_before = wg_identity(&cl, &cl_iface).unwrap();

    let current = Arc::new(Mutex::new(first.path_id.clone()));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let loop_thread = {
        let (current, reports, stop) = (current.clone(), reports.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match client.tick(Instant::now()) {
                    Ok(r) => reports.lock().unwrap().extend(r),
                    Err(e) => eprintln!("client tick: {e}"),
                }
                if let Some(path) = client.current_path() {
                    *current.lock().unwrap() = path.path_id.clone();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // Traffic: a probe every 50 ms, echoed with the source the destination saw.
    let start = Instant::now();
    let probe = lab.probe(&cl, dst_addr, Duration::from_millis(50)).unwrap();
    let through_eg1 = probe.wait_for(start, Duration::from_secs(20), |echo| {
        echo.source == "172.31.0.21"
    });
    assert!(
        through_eg1.is_some(),
        "no echo through in1 → eg1; echoes so far: {:?}",
        probe.echoes(start).len()
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "netns: {} echoes through in1 → eg1 in the first {:?}",
        probe.echoes(start).len(),
        start.elapsed()
    );

    // Provider outage: the active ingress's namespace goes away.
    let down_at = Instant::now();
    lab.destroy(&ingresses[0].ns.clone());
    let outage = probe.outage(start, down_at, Duration::from_secs(30));
    let after_path = current.lock().unwrap().clone();
    let outage = outage.unwrap_or_else(|e| panic!("in1 went down (client on {after_path}): {e:#}"));
    assert_ne!(
        after_path,
        format!("{REGION}/in1"),
        "the client did not switch"
    );
    println!("netns: OUTAGE in1 down → {after_path}: {outage}");
    assert_eq!(
        wg_identity(&cl, &cl_iface).unwrap(),
        identity_before,
        "the client's key and address must not change (no re-enrollment)"
    );

    // Egress rotation behind the current ingress: eg1 → eg2; the client sees no change.
    let idx = if after_path.ends_with("in2") { 1 } else { 2 };
    let peer_before = wg_peers(&cl, &cl_iface).unwrap();
    let rotate_at = Instant::now();
    {
        let gw = &mut ingresses[idx];
        gw.version += 1;
        let config = ingress_config(
            idx + 1,
            gw.version,
            &client_peer,
            &egresses[1],
            "172.31.0.22",
        );
        let outcome = apply_signed(gw, &config, &signing, &trusted);
        assert_eq!(
            outcome.peer_changes, 2,
            "old egress out, new egress in: {outcome:?}"
        );
    }
    let via_eg2 = probe
        .wait_for(rotate_at, Duration::from_secs(20), |echo| {
            echo.source == "172.31.0.22"
        })
        .expect("the destination never saw eg2's address after the rotation");
    let last_eg1 = probe
        .echoes(rotate_at)
        .into_iter()
        .rfind(|echo| echo.source == "172.31.0.21")
        .map(|echo| echo.at)
        .unwrap_or(rotate_at);
    println!(
        "netns: egress rotation eg1 → eg2 behind {after_path}: gap {:.0} ms",
        (via_eg2.at - last_eg1).as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        wg_peers(&cl, &cl_iface).unwrap(),
        peer_before,
        "the client's peer changed"
    );
    assert_eq!(
        *current.lock().unwrap(),
        after_path,
        "the client switched path on an egress rotation"
    );
    assert_eq!(wg_identity(&cl, &cl_iface).unwrap(), identity_before);

    stop.store(true, Ordering::Relaxed);
    loop_thread.join().unwrap();
    let reports = reports.lock().unwrap();
    let failed: Vec<_> = reports.iter().filter(|r| r.failures > 0).collect();
    assert!(
        failed.iter().any(|r| r.path_id == format!("{REGION}/in1")),
        "a report on the failed path: {reports:?}"
    );
    println!(
        "netns: {} reports, e.g. {}",
        reports.len(),
        serde_json::to_string(failed[0]).unwrap()
    );
}

fn apply_signed(
    gw: &mut Gateway,
    config: &GatewayConfig,
    key: &SigningKey,
    trusted: &[damm_catalog::PublicKey],
) -> damm_agent::agent::ApplyOutcome {
    let signed = sign_gateway_config(config, key).unwrap();
    let verified = verify_gateway_config(
        signed.json.as_bytes(),
        &signed.signature,
        trusted,
        Some(gw.version.saturating_sub(1).max(1)),
        Utc::now(),
    )
    .unwrap();
    gw.agent.apply(&verified).unwrap()
}
