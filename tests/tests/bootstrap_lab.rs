//! The full-fleet lab at CI size: the orchestrator creates 4 gateways (an ingress and an
//! egress in each of 2 regions, on two providers) on the simulator, and each boots from its cloud-init
//! user-data in a network namespace holding its simulated public address
//! (`damm_tests::bootlab`). Nobody configures them: the user-data downloads the `damm`
//! binary from the fleet's artifact URL and checks its SHA-256, writes the keys, the config
//! credential and `damm-agent.service`, and starts it; the agent makes its WireGuard
//! interfaces (userspace here: the lab's kernel has no WireGuard), pulls its signed config
//! from the orchestrator's public URL and applies it. Then a client is enrolled (with the
//! service stopped, as `damm enroll` still needs) and its traffic reaches a destination
//! through ingress → egress. Prints create → config applied, → in the catalog, and
//! enrolment → first packet through.
//!
//! ```text
//! orc 172.31.255.1 (artifacts :8080, the orchestrator :9477 relayed to the test's 127.0.0.1)
//! cl  172.31.255.10 ──wg──▶ ingress (sim address) ──backbone──▶ egress (sim address) ──▶ dst 172.31.255.30
//! ```
//!
//! Needs root and /dev/net/tun; skips loudly otherwise, except under CI (`CI` set) as root.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use damm_catalog::{Catalog, Role};
use damm_fleet::Policy;
use damm_orchestrator::bootstrap::Bootstrap;
use damm_orchestrator::dataplane::{CatalogSource, VersionFile, fetch_catalog};
use damm_orchestrator::enroll::{self, EnrollmentFile};
use damm_orchestrator::publish::Keys;
use damm_provider::Region;
use damm_tests::bootlab::{self, BootLab, Booted};
use damm_tests::netns::{self, wait_until};
use damm_tests::service::{self, ClientLoop, Service};

const POLICY: &str = include_str!("../policies/bootstrap-lab.toml");
const ORC: Ipv4Addr = Ipv4Addr::new(172, 31, 255, 1);
const CL: Ipv4Addr = Ipv4Addr::new(172, 31, 255, 10);
const DST: Ipv4Addr = Ipv4Addr::new(172, 31, 255, 30);
const REGIONS: [&str; 2] = ["eu-central", "us-east"];
/// What the agent logs once it has configured WireGuard.
const APPLIED: &str = "gateway config applied";

/// A gateway of the catalog: its id, role and machine.
type Gateway = (String, Role, Booted);

/// The gateways of the catalog's paths, by role.
fn gateways(catalog: &Catalog) -> BTreeMap<String, Role> {
    REGIONS
        .iter()
        .flat_map(|r| catalog.region(r).unwrap_or_default())
        .flat_map(|p| p.composition.iter())
        .filter(|c| matches!(c.role, Role::Ingress | Role::Egress))
        .map(|c| (c.component.clone(), c.role))
        .collect()
}

fn dump(fleet: &BootLab) -> String {
    let mut out = format!("boot errors: {:?}\n", fleet.errors());
    for m in fleet.machines() {
        out.push_str(&format!(
            "--- {} {} {} ({})\n{}\n",
            m.provider,
            m.id,
            m.name,
            m.ipv4,
            m.transcript()
        ));
    }
    out
}

#[test]
fn bootstrap_lab_gateways_created_on_the_simulator_configure_themselves_and_carry_a_client() {
    if netns::skip("bootstrap_lab") {
        return;
    }
    let (damm, sha) = bootlab::damm_binary().unwrap();
    let fleet = BootLab::new(&format!("dbl{}", std::process::id() % 1000)).unwrap();
    let (orc, cl, dst) = {
        let mut lab = fleet.lab();
        (
            lab.public_host("orc", ORC).unwrap(),
            lab.public_host("cl", CL).unwrap(),
            lab.public_host("dst", DST).unwrap(),
        )
    };
    let dst_addr = SocketAddr::V4(SocketAddrV4::new(DST, 7777));
    let artifacts = fleet.scratch().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&damm, artifacts.join("damm")).unwrap();
    {
        let mut lab = fleet.lab();
        lab.files(
            &orc,
            SocketAddr::V4(SocketAddrV4::new(ORC, 8080)),
            &artifacts,
        )
        .unwrap();
        lab.echo(&dst, dst_addr).unwrap();
    }

    // The simulator, whose machines boot in the lab; the orchestrator against it.
    let service = Service::start();
    let rt = Arc::clone(&service.rt);
    let config = damm_sim::SimConfig {
        boot: Some(fleet.hook()),
        ..damm_sim::SimConfig::default()
    };
    let sim = rt
        .block_on(damm_sim::start(config, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let policy = Policy::parse(POLICY, "bootstrap-lab.toml").unwrap();
    let keys = Arc::new(Keys::generate());
    let trusted = [keys.signing.public_key()];
    let bootstrap = Bootstrap::new(
        &format!("http://{ORC}:9477"),
        &format!("http://{ORC}:8080/damm"),
        &sha,
        &keys.signing.public_key().to_minisign(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = || {
        let providers = rt
            .block_on(damm_orchestrator::sim::providers(&sim, &policy))
            .unwrap();
        let mut engine = service::engine(&policy, providers, dir.path(), &keys);
        engine.set_bootstrap(bootstrap.clone());
        engine
    };

    // `damm serve`: the API on 127.0.0.1, reached by the gateways at orc:9477.
    let (shared, addr) = (Arc::clone(&service.shared), service.addr);
    fleet
        .lab()
        .expose(&orc, SocketAddr::V4(SocketAddrV4::new(ORC, 9477)), addr)
        .unwrap();
    let started = Instant::now();
    let looping = service.run(engine());
    // Every gateway of the catalog's paths runs its agent and has applied its config.
    let mut in_catalog: BTreeMap<String, Instant> = BTreeMap::new();
    let mut ready: Option<(Catalog, Vec<Gateway>)> = None;
    let converged = wait_until(Duration::from_secs(240), || {
        let (catalog, settled) = {
            let snap = rt.block_on(shared.read());
            // Settled: the last tick planned nothing (the first ticks may still move a
            // gateway to another provider for the region's provider diversity).
            let settled = snap.plan.as_ref().is_some_and(|p| p.is_empty());
            (snap.catalog.clone(), settled)
        };
        let Some(catalog) = catalog else {
            return false;
        };
        let gateways = gateways(&catalog);
        for id in gateways.keys() {
            in_catalog.entry(id.clone()).or_insert_with(Instant::now);
        }
        let every_region = REGIONS
            .iter()
            .all(|r| !catalog.region(r).unwrap_or_default().is_empty());
        let machines: Vec<_> = gateways
            .iter()
            .filter_map(|(id, role)| Some((id.clone(), *role, fleet.machine_named(id)?)))
            .collect();
        let applied = machines.len() == gateways.len()
            && machines
                .iter()
                .all(|(_, _, m)| !m.lines_with(APPLIED).is_empty());
        if settled && every_region && applied {
            ready = Some((catalog, machines));
        }
        ready.is_some()
    });
    assert!(
        converged,
        "the fleet did not converge in 240 s; nodes {:?}\n{}",
        rt.block_on(shared.read()).state.as_ref().map(|s| s
            .nodes
            .keys()
            .cloned()
            .collect::<Vec<_>>()),
        dump(&fleet)
    );
    let (catalog, machines) = ready.unwrap();
    println!(
        "bootstrap_lab: {} gateways converged {:.1}s after the first tick (catalog v{})",
        machines.len(),
        started.elapsed().as_secs_f64(),
        catalog.version
    );
    for (id, role, m) in &machines {
        let applied = m.lines_with(APPLIED)[0].0;
        let interface = m.lines_with("made the WireGuard interface");
        assert!(
            !interface.is_empty(),
            "{id}: the agent made no WireGuard interface\n{}",
            m.transcript()
        );
        assert!(
            !m.lines_with("damm.part: OK").is_empty(),
            "{id}: the download was not checked\n{}",
            m.transcript()
        );
        println!(
            "bootstrap_lab: {id} ({role:?}, {} {}, {}): create → agent running {:.1}s → config applied {:.1}s; → in catalog {:.1}s",
            m.provider,
            m.id,
            m.ipv4,
            (interface[0].0 - m.booted_at).as_secs_f64(),
            (applied - m.booted_at).as_secs_f64(),
            in_catalog[id]
                .saturating_duration_since(m.booted_at)
                .as_secs_f64(),
        );
    }
    // No machine runs a gateway that is not in the catalog (a spare may run its agent too).
    let named: BTreeSet<&str> = machines.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(named.len(), 4, "4 gateways: {named:?}");

    // Enrolment, as `damm enroll` does it today: the service stopped, the state edited.
    looping.stop();
    let region = Region::new(REGIONS[0]).unwrap();
    let bundle = {
        let mut engine = engine();
        let enrolled = enroll::enroll(engine.state_mut(), &policy, &region, Utc::now()).unwrap();
        engine.save().unwrap();
        let catalog = service.catalog().unwrap();
        EnrollmentFile::new(&enrolled, &policy, &catalog).unwrap()
    };
    let enrolled_at = Instant::now();
    let looping = service.run(engine());

    // The ingress learns of the client at its next config pull (every 10 s); a client
    // that connected before would report its path failing.
    let ingress = machines
        .iter()
        .find(|(id, role, _)| *role == Role::Ingress && id.ends_with(REGIONS[0]))
        .map(|(_, _, m)| m.clone())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            ingress
                .lines_with(APPLIED)
                .iter()
                .any(|(at, line)| *at > enrolled_at && line.contains("\"peers\":1"))
        }),
        "{} never took the client as a peer\n{}",
        ingress.name,
        ingress.transcript()
    );
    let peer_at = Instant::now();

    // The client: the signed catalog over HTTP, a tunnel to its best path.
    let versions = VersionFile(dir.path().join("catalog-version"));
    let served = rt
        .block_on(fetch_catalog(
            &CatalogSource::Url(format!("{}/v1/catalog.json", service.base())),
            &trusted,
            &versions,
            Utc::now(),
        ))
        .unwrap();
    let cl_iface = fleet.lab().wireguard(&cl, "cl").unwrap();
    let mut client = service::client_in(&cl, &cl_iface, &bundle, vec![format!("{DST}/32")], served);
    let path = client.connect(Instant::now()).unwrap();
    let egress = path
        .composition
        .iter()
        .find(|c| c.role == Role::Egress)
        .unwrap()
        .component
        .clone();
    let egress_ip = fleet.machine_named(&egress).unwrap().ipv4.to_string();
    let client_loop = ClientLoop::start(&service, client, bundle.token.clone(), |_, _| {});
    let probe = fleet
        .lab()
        .probe(&cl, dst_addr, Duration::from_millis(100))
        .unwrap();
    let through = probe.wait_for(enrolled_at, Duration::from_secs(60), |echo| {
        echo.source == egress_ip
    });
    client_loop.stop();
    looping.stop();
    let echo = through.unwrap_or_else(|| {
        let served: Vec<String> = rt
            .block_on(shared.read())
            .catalog
            .iter()
            .flat_map(|c| c.region(REGIONS[0]).unwrap_or_default())
            .map(|p| p.path_id.clone())
            .collect();
        panic!(
            "no echo through {} (egress {egress} at {egress_ip}) within 60 s; echoes: {:?}; \
             the catalog served now: {served:?}\n{}",
            path.path_id,
            probe.echoes(enrolled_at),
            dump(&fleet)
        )
    });
    println!(
        "bootstrap_lab: client enrolled → on its ingress {:.1}s → first echo through {} (seen from {}) {:.1}s; create of the first gateway → client traffic {:.1}s (with the enrolment stop)",
        (peer_at - enrolled_at).as_secs_f64(),
        path.path_id,
        echo.source,
        (echo.at - enrolled_at).as_secs_f64(),
        (echo.at - machines.iter().map(|(_, _, m)| m.booted_at).min().unwrap()).as_secs_f64(),
    );
    assert!(
        fleet.errors().is_empty(),
        "boot errors: {:?}",
        fleet.errors()
    );
    drop(sim);
}
