//! End to end through the orchestrator, with real tunnels: gateways registered through the
//! static-host adapter, the engine ticking and publishing the signed catalog, a client enrolled
//! with `damm_orchestrator::enroll`, gateways configured from the orchestrator's signed
//! `GET /v1/gateways/{id}/config`, the client's reports posted to `POST /v1/reports`. Then the
//! active ingress's namespace is torn down and traffic resumes through another ingress with the
//! same enrollment; the outage is printed.
//!
//! Topology (namespaces `dmeNNN-*` on one bridge, 172.30.0.0/24; the orchestrator in the test
//! process probes the hosts' heartbeats from `orc` .1, through ports of 127.0.0.1 that the lab
//! forwards there):
//!
//! ```text
//! cl .10 ──wg──▶ in1 .11 / in2 .12 / in3 .13 ──backbone wg──▶ eg1 .21 / eg2 .22 ──▶ dst .30
//! ```
//!
//! Needs root and /dev/net/tun; skips loudly otherwise, except under CI (`CI` set) as root.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use damm_agent::agent::GatewayAgent;
use damm_catalog::{GatewayRole, Role};
use damm_fleet::{Mode, Policy};
use damm_orchestrator::dataplane::{CatalogSource, Orchestrator, VersionFile, fetch_catalog};
use damm_orchestrator::enroll::{self, EnrollmentFile};
use damm_orchestrator::publish::Keys;
use damm_provider::{IdempotencyKey, Region};
use damm_tests::netns::{self, Topology, http_ok, wait_until, wg_identity};
use damm_tests::service::{self, ClientLoop, Service};

const NET: &str = "172.30.0";
const REGION: &str = "lab";

const POLICY: &str = include_str!("../policies/netns-enroll.toml");

/// A failover the client made: when, to which path, away from which.
type Switch = (Instant, String, Vec<String>);

struct Gateway {
    key: IdempotencyKey,
    ns: String,
    agent: GatewayAgent,
}

#[test]
fn enrolled_client_fails_over_between_static_host_gateways() {
    if netns::skip("netns_enroll") {
        return;
    }
    let prefix = format!("dme{}", std::process::id() % 1000);
    let hosts = [
        ("in1", 11, "ingress"),
        ("in2", 12, "ingress"),
        ("in3", 13, "ingress"),
        ("eg1", 21, "egress"),
        ("eg2", 22, "egress"),
    ];

    // The internet: the orchestrator's vantage point, the client, the destination, and five
    // hand-provisioned hosts with a heartbeat each.
    let dst_ip = format!("{NET}.30");
    let mut topology = Topology::new()
        .node("orc", &format!("{NET}.1/24"))
        .node("cl", &format!("{NET}.10/24"))
        .node("dst", &format!("{dst_ip}/24"));
    for (id, host, _) in hosts {
        topology = topology.node(id, &format!("{NET}.{host}/24"));
    }
    let mut lab = topology.build(&prefix).expect("lab");
    let (orc, cl, dst) = (lab.ns("orc"), lab.ns("cl"), lab.ns("dst"));
    let dst_addr: SocketAddr = format!("{dst_ip}:7777").parse().unwrap();
    lab.echo(&dst, dst_addr).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut inventory = String::new();
    for (id, host, role) in hosts {
        let ip = format!("{NET}.{host}");
        let heartbeat: SocketAddr = format!("{ip}:9100").parse().unwrap();
        lab.heartbeat(&lab.ns(id), heartbeat).unwrap();
        let probed = lab.forward(&orc, heartbeat).unwrap();
        inventory.push_str(&format!(
            "[[host]]\nid = \"{id}\"\nregion = \"{REGION}\"\naddress = \"{ip}\"\nwireguard_port = 51820\nroles = [\"{role}\"]\nheartbeat_url = \"http://{probed}/healthz\"\n\n"
        ));
        assert!(
            wait_until(Duration::from_secs(10), || http_ok(probed, "/healthz")),
            "heartbeat {heartbeat} unreachable from {orc} (forwarded at {probed})"
        );
    }
    std::fs::write(dir.path().join("hosts.toml"), inventory).unwrap();
    std::fs::write(
        dir.path().join("adapters.toml"),
        "[static-host]\ninventory = \"hosts.toml\"\n",
    )
    .unwrap();

    // The orchestrator: the engine over the static-host adapter, publishing every tick.
    let service = Service::start();
    let rt = Arc::clone(&service.rt);
    let policy = Policy::parse(POLICY, "policy.toml").unwrap();
    let providers = rt
        .block_on(damm_orchestrator::providers::build(
            &policy,
            Some(&dir.path().join("adapters.toml")),
        ))
        .unwrap();
    let keys = Arc::new(Keys::generate());
    let trusted = [keys.signing.public_key()];
    let mut engine = service::engine(&policy, providers, dir.path(), &keys);
    let report = rt.block_on(engine.tick(Mode::Apply, true)).unwrap();
    let catalog = report.catalog.expect("the engine publishes");
    let paths = catalog.region(REGION).unwrap_or_default();
    assert_eq!(
        paths.len(),
        3,
        "one path per static-host ingress: {paths:?}; nodes {:?}",
        engine.state().nodes.keys()
    );
    println!(
        "netns_enroll: catalog v{} with {} paths: {}",
        catalog.version,
        paths.len(),
        paths
            .iter()
            .map(|p| p.path_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Enrollment, as `damm enroll` does it.
    let region = Region::new(REGION).unwrap();
    let enrolled = enroll::enroll(engine.state_mut(), &policy, &region, Utc::now()).unwrap();
    engine.save().unwrap();
    let bundle = EnrollmentFile::new(&enrolled, &policy, &catalog).unwrap();
    let token = bundle.token.clone();
    println!(
        "netns_enroll: enrolled {} as {} (best path {})",
        bundle.client, bundle.address, bundle.path_id
    );

    // `damm serve`: the loop and the HTTP API on 127.0.0.1.
    let shared = Arc::clone(&service.shared);
    let looping = service.run(engine);
    assert!(
        wait_until(Duration::from_secs(30), || rt
            .block_on(shared.read())
            .catalog
            .is_some()),
        "the serve loop published nothing"
    );
    let base = service.base();

    // Gateways: wireguard-go interfaces, configured from the orchestrator's signed configs.
    let mut gateways: Vec<Gateway> = Vec::new();
    for (id, _, role) in hosts {
        let ns = lab.ns(id);
        let key = IdempotencyKey::new(format!("static-host-{id}")).unwrap();
        let private = keys.gateway(&key).private_key().clone();
        let agent = lab.gateway(&ns, id, role == "ingress", private).unwrap();
        gateways.push(Gateway { key, ns, agent });
    }
    // Egresses first, as a fleet converges: an ingress whose egress is not configured yet
    // waits a WireGuard rekey timeout (5 s) before its backbone handshake is retried.
    gateways.sort_by_key(|g| !g.key.as_str().contains("-eg"));
    for gw in &gateways {
        // Each gateway fetches with its own credential, as its bootstrap installs it.
        let as_gateway = Orchestrator::new(&base)
            .unwrap()
            .with_gateway_token(keys.gateway_token(gw.key.as_str()));
        let config = rt
            .block_on(as_gateway.gateway_config(gw.key.as_str(), &trusted, None, Utc::now()))
            .unwrap_or_else(|e| panic!("config of {}: {e:#}", gw.key));
        if config.role == GatewayRole::Ingress {
            assert!(
                config.peers.iter().any(|peer| peer.name == bundle.client
                    && peer.allowed_ips == [bundle.address.clone()]),
                "{} does not carry the client: {:?}",
                gw.key,
                config.peers
            );
        }
        let outcome = gw.agent.apply(&config).unwrap();
        assert!(outcome.peer_changes >= 1, "{}: {outcome:?}", gw.key);
    }

    // The client: the catalog from the orchestrator over HTTP, verified, its version kept.
    let versions = VersionFile(dir.path().join("catalog-version"));
    let served = rt
        .block_on(fetch_catalog(
            &CatalogSource::Url(format!("{base}/v1/catalog.json")),
            &trusted,
            &versions,
            Utc::now(),
        ))
        .unwrap();
    let cl_iface = lab.wireguard(&cl, "cl").unwrap();
    let mut client = service::client_in(
        &cl,
        &cl_iface,
        &bundle,
        vec![format!("{dst_ip}/32")],
        served,
    );
    let first = client.connect(Instant::now()).unwrap();
    let identity_before = wg_identity(&cl, &cl_iface).unwrap();

    let current = Arc::new(Mutex::new(first.clone()));
    let (posted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let switches: Arc<Mutex<Vec<Switch>>> = Arc::default();
    let connected_at = Instant::now();
    let client_loop = {
        let (current, switches) = (current.clone(), switches.clone());
        let (posted, refused) = (posted.clone(), refused.clone());
        ClientLoop::start(&service, client, token.clone(), move |client, reports| {
            let failed: Vec<String> = reports
                .iter()
                .filter(|(r, _)| r.failures > 0)
                .map(|(r, _)| r.path_id.clone())
                .collect();
            if !failed.is_empty() {
                let to = client
                    .current_path()
                    .map_or(String::new(), |p| p.path_id.clone());
                switches.lock().unwrap().push((Instant::now(), to, failed));
            }
            for (_, sent) in reports {
                let counter = if *sent { &posted } else { &refused };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(path) = client.current_path() {
                *current.lock().unwrap() = path.clone();
            }
        })
    };

    // Traffic: a probe every 50 ms, echoed with the source the destination saw (an egress).
    let start = Instant::now();
    let probe = lab.probe(&cl, dst_addr, Duration::from_millis(50)).unwrap();
    let egress_ips = [format!("{NET}.21"), format!("{NET}.22")];
    assert!(
        probe
            .wait_for(start, Duration::from_secs(20), |echo| egress_ips
                .contains(&echo.source))
            .is_some(),
        "no echo through {} → egress; echoes so far: {}",
        first.path_id,
        probe.echoes(start).len()
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "netns_enroll: {} echoes in the first {:?} (connected through {}, now on {})",
        probe.echoes(start).len(),
        start.elapsed(),
        first.path_id,
        current.lock().unwrap().path_id
    );

    let early = switches.lock().unwrap().clone();
    for (at, to, failed) in &early {
        println!(
            "netns_enroll: before the outage, at +{:.1}s the client left {failed:?} for {to}",
            (*at - connected_at).as_secs_f64()
        );
    }

    // Provider outage: the active ingress's namespace goes away.
    let active = current.lock().unwrap().clone();
    let active_ingress = active
        .composition
        .iter()
        .find(|c| c.role == Role::Ingress)
        .unwrap()
        .component
        .clone();
    let victim = gateways
        .iter()
        .find(|g| g.key.as_str() == active_ingress)
        .unwrap()
        .ns
        .clone();
    let down_at = Instant::now();
    lab.destroy(&victim);
    let outage = probe.outage(start, down_at, Duration::from_secs(30));
    let after = current.lock().unwrap().path_id.clone();
    let outage =
        outage.unwrap_or_else(|e| panic!("{active_ingress} went down (client on {after}): {e:#}"));
    assert_ne!(after, active.path_id, "the client did not switch");
    println!(
        "netns_enroll: OUTAGE {} down → {after}: {outage}",
        active.path_id
    );
    assert_eq!(
        wg_identity(&cl, &cl_iface).unwrap(),
        identity_before,
        "the client's key and address must not change (no re-enrollment)"
    );

    // The client's report on the failed path reaches the orchestrator's scores.
    let scored = wait_until(Duration::from_secs(30), || {
        rt.block_on(shared.read())
            .scores
            .get(&active_ingress)
            .is_some_and(|s| s.client_quality.is_some_and(|q| q < 1.0))
    });
    client_loop.stop();
    let snap = rt.block_on(shared.read());
    let reports = &snap.reports;
    println!(
        "netns_enroll: reports posted {} (client-side failures {}); orchestrator accepted {}, refused {:?}; {active_ingress} client quality {:?}",
        posted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        reports.accepted,
        reports.refused,
        snap.scores
            .get(&active_ingress)
            .and_then(|s| s.client_quality)
    );
    assert!(
        scored,
        "the failure report never lowered {active_ingress}'s client quality below 1"
    );
    assert!(
        reports.accepted >= 2,
        "reports accepted: {}",
        reports.accepted
    );
    assert_eq!(refused.load(Ordering::Relaxed), 0, "a report was refused");
    drop(snap);
    looping.stop();
}
