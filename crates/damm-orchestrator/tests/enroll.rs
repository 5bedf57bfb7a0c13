//! Enrollment and the data plane's API, over the engine running the static-host adapter on
//! 127.0.0.1: `enroll` keeps no secret in state, Debug or logs; `GET /v1/gateways/{id}/config`
//! serves signed configs that verify and carry the client; `POST /v1/reports` accepts only
//! authenticated, well-formed reports on known paths, and accepted ones reach the scores.

#![cfg(feature = "static-host")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use damm_catalog::{GatewayRole, Role};
use damm_fleet::{Mode, Policy};
use damm_orchestrator::dataplane::{CatalogSource, Orchestrator, VersionFile, fetch_catalog};
use damm_orchestrator::engine::{Engine, Options, wall_clock};
use damm_orchestrator::enroll::{self, EnrollmentFile};
use damm_orchestrator::publish::{Keys, Sink};
use damm_orchestrator::serve::{self, Shared, Stop};
use damm_orchestrator::state::FileStore;
use damm_provider::Region;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const POLICY: &str = include_str!("policies/enroll.toml");

/// Answers 200 to every HTTP request: the hosts' heartbeat.
async fn heartbeat() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    )
                    .await;
            });
        }
    });
    addr
}

/// Log lines, captured for the secrets check.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

struct Lab {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    engine: Engine,
    keys: Arc<Keys>,
}

async fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let hb = heartbeat().await;
    let mut hosts = String::new();
    for (id, address, role) in [
        ("in1", "127.0.0.11", "ingress"),
        ("in2", "127.0.0.12", "ingress"),
        ("eg1", "127.0.0.21", "egress"),
    ] {
        hosts.push_str(&format!(
            "[[host]]\nid = \"{id}\"\nregion = \"lab\"\naddress = \"{address}\"\nroles = [\"{role}\"]\nheartbeat_url = \"http://{hb}/{id}\"\n\n"
        ));
    }
    std::fs::write(path.join("hosts.toml"), hosts).unwrap();
    std::fs::write(
        path.join("adapters.toml"),
        "[static-host]\ninventory = \"hosts.toml\"\n",
    )
    .unwrap();
    let policy = Policy::parse(POLICY, "policy.toml").unwrap();
    let providers = damm_orchestrator::providers::build(&policy, Some(&path.join("adapters.toml")))
        .await
        .unwrap();
    let store = FileStore::open(&path.join("state.json")).unwrap();
    let mut engine = Engine::new(
        policy,
        providers,
        Box::new(store),
        wall_clock(),
        Options::default(),
    )
    .unwrap();
    let keys = Arc::new(Keys::generate());
    std::fs::write(
        path.join("catalog.pub"),
        keys.signing.public_key().to_minisign(),
    )
    .unwrap();
    engine.set_publisher(
        Arc::clone(&keys),
        Sink {
            path: path.join("catalog.json"),
        },
    );
    Lab {
        _dir: dir,
        dir: path,
        engine,
        keys,
    }
}

async fn http(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn enroll_serve_gateway_configs_and_score_reports() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut lab = lab().await;
    // One tick: the three static hosts are adopted, probed healthy, published.
    let report = lab.engine.tick(Mode::Apply, true).await.unwrap();
    let catalog = report.catalog.expect("a catalog is published");
    let paths = catalog.region("lab").unwrap();
    assert_eq!(paths.len(), 2, "one path per ingress: {paths:?}");
    let state = lab.engine.state();
    assert_eq!(state.nodes.len(), 3, "{:?}", state.nodes.keys());
    assert!(
        state
            .nodes
            .contains_key(&"static-host-in1".parse().unwrap())
    );
    assert_eq!(
        state.backbone.len(),
        3,
        "every gateway has a backbone address"
    );

    // Enroll: only public data in state; the secrets in the bundle.
    let policy = lab.engine.policy().clone();
    let region = Region::new("lab").unwrap();
    let enrolled = enroll::enroll(lab.engine.state_mut(), &policy, &region, Utc::now()).unwrap();
    let second = enroll::enroll(lab.engine.state_mut(), &policy, &region, Utc::now()).unwrap();
    lab.engine.save().unwrap();
    let bundle = EnrollmentFile::new(&enrolled, &policy, &catalog).unwrap();
    let id = enrolled.record.id.clone();
    let token = enrolled.token.expose().to_owned();
    let private = enrolled.private_key.expose_base64();
    assert_eq!(enrolled.record.address.to_string(), "10.77.0.2");
    assert_eq!(second.record.address.to_string(), "10.77.0.3");
    assert!(
        bundle
            .wg_quick
            .contains(&format!("PrivateKey = {private}\n"))
    );
    assert!(bundle.wg_quick.contains("Address = 10.77.0.2/32\n"));
    assert!(bundle.wg_quick.contains("PersistentKeepalive = 2\n"));
    let best = damm_catalog::pick(&catalog, "lab", &BTreeMap::new())[0];
    assert_eq!(bundle.path_id, best.path_id);
    assert!(
        bundle
            .wg_quick
            .contains(&format!("Endpoint = {}\n", best.endpoint))
    );
    assert!(
        bundle
            .wg_quick
            .contains(&format!("PublicKey = {}\n", best.gateway_public_key))
    );
    // The bundle round-trips and yields the client's key.
    let again =
        EnrollmentFile::from_json(serde_json::to_string(&bundle).unwrap().as_bytes()).unwrap();
    assert_eq!(
        again.private_key().unwrap().public_key(),
        enrolled.record.public_key
    );
    for debug in [
        format!("{enrolled:?}"),
        format!("{bundle:?}"),
        format!("{:?}", lab.engine.state()),
    ] {
        assert!(!debug.contains(&token), "token in Debug: {debug}");
        assert!(!debug.contains(&private), "private key in Debug: {debug}");
    }
    let state_text = std::fs::read_to_string(lab.dir.join("state.json")).unwrap();
    assert!(state_text.contains(&id), "the client is in the state file");
    assert!(state_text.contains(&enrolled.record.public_key.to_string()));
    assert!(state_text.contains(&enroll::token_hash(&token)));
    assert!(!state_text.contains(&token), "raw token in the state file");
    assert!(
        !state_text.contains(&private),
        "private key in the state file"
    );

    // Serve: the loop ticks every second.
    let shared: Shared = Shared::default();
    let (addr, server) = serve::http("127.0.0.1:0".parse().unwrap(), Arc::clone(&shared))
        .await
        .unwrap();
    tokio::spawn(server);
    let stop = Arc::new(Stop::default());
    let engine = lab.engine;
    // The loop's future is not Send (the engine's store is not Sync): it runs beside the
    // checks in this task.
    let looping = serve::run_loop(engine, Arc::clone(&shared), Arc::clone(&stop));
    let checks = async {
        let base = format!("http://{addr}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while shared.read().await.catalog.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "no tick");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The catalog over HTTP verifies; an older version is then refused.
        let trusted = [lab.keys.signing.public_key()];
        let versions = VersionFile(lab.dir.join("catalog-version"));
        let source = CatalogSource::parse(&format!("{base}/v1/catalog.json"));
        let served = fetch_catalog(&source, &trusted, &versions, Utc::now())
            .await
            .unwrap();
        assert_eq!(versions.load().unwrap(), Some(served.version));
        versions.store(served.version + 1000).unwrap();
        let err = fetch_catalog(&source, &trusted, &versions, Utc::now())
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("rejected"), "{err:#}");

        // Gateway configs: signed, verified, the clients on every ingress, the egress behind.
        // Each gateway presents its own credential.
        let as_gateway = |id: &str| {
            Orchestrator::new(&base)
                .unwrap()
                .with_gateway_token(lab.keys.gateway_token(id))
        };
        let egress_key = "static-host-eg1";
        let egress_pub = lab.keys.gateway(&egress_key.parse().unwrap()).public_key();
        for ingress in ["static-host-in1", "static-host-in2"] {
            let orchestrator = as_gateway(ingress);
            let config = orchestrator
                .gateway_config(ingress, &trusted, None, Utc::now())
                .await
                .unwrap();
            assert_eq!(config.role, GatewayRole::Ingress);
            assert_eq!(config.address, "10.77.0.1/16");
            assert_eq!(config.listen_port, 51820);
            let peer = config
                .peers
                .iter()
                .find(|p| p.name == id)
                .expect("the client is a peer");
            assert_eq!(peer.public_key, enrolled.record.public_key);
            assert_eq!(peer.allowed_ips, vec!["10.77.0.2/32"]);
            assert_eq!(peer.persistent_keepalive, Some(2));
            assert_eq!(config.peers.len(), 2);
            let backbone = config.backbone.expect("an ingress has a backbone");
            assert_eq!(backbone.peer.name, egress_key);
            assert_eq!(backbone.peer.public_key, egress_pub);
            assert_eq!(backbone.peer.endpoint.as_deref(), Some("127.0.0.21:51821"));
            // Signed for this gateway only.
            let err = orchestrator
                .gateway_config(
                    ingress,
                    &[damm_catalog::SigningKey::generate().public_key()],
                    None,
                    Utc::now(),
                )
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("rejected"), "{err:#}");
            let err = orchestrator
                .gateway_config(ingress, &trusted, Some(config.version + 1), Utc::now())
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("rejected"), "rollback: {err:#}");
        }
        // Without a credential, or with another gateway's, nothing is served.
        for orchestrator in [
            Orchestrator::new(&base).unwrap(),
            as_gateway("static-host-in1"),
        ] {
            let err = orchestrator
                .gateway_config(egress_key, &trusted, None, Utc::now())
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("401"), "{err:#}");
        }
        let egress = as_gateway(egress_key)
            .gateway_config(egress_key, &trusted, None, Utc::now())
            .await
            .unwrap();
        assert_eq!(egress.role, GatewayRole::Egress);
        assert_eq!(egress.peers.len(), 2, "both ingresses: {:?}", egress.peers);
        assert!(
            egress
                .peers
                .iter()
                .all(|p| p.allowed_ips[0].ends_with("/32"))
        );
        // An unknown gateway looks like a known one to whoever lacks its credential.
        let client = reqwest::Client::new();
        let nope = format!("{base}/v1/gateways/static-host-nope/config");
        let (status, _) = http(&client, reqwest::Method::GET, &nope, None, None).await;
        assert_eq!(status, 401);
        let nope_token = {
            use damm_provider::ExposeSecret as _;
            lab.keys
                .gateway_token("static-host-nope")
                .expose_secret()
                .to_owned()
        };
        let (status, _) = http(
            &client,
            reqwest::Method::GET,
            &nope,
            Some(&nope_token),
            None,
        )
        .await;
        assert_eq!(status, 404);

        // Reports.
        let url = format!("{base}/v1/reports");
        let failing = paths
            .iter()
            .find(|p| p.path_id == best.path_id)
            .unwrap()
            .clone();
        let ingress_of = |p: &damm_catalog::Path| {
            p.composition
                .iter()
                .find(|c| c.role == Role::Ingress)
                .unwrap()
                .component
                .clone()
        };
        // `transport` names the transport the client carried the path on; older clients
        // name none.
        let report_on = |client_id: &str, path: &str, transport: Option<&str>, failures: u32| {
            serde_json::to_vec(&enroll::Report {
                client: client_id.into(),
                path_id: path.into(),
                transport: transport.map(str::to_owned),
                handshake_age_s: Some(3),
                rtt_ms: None,
                failures,
                at: Utc::now(),
            })
            .unwrap()
        };
        let report =
            |client_id: &str, path: &str, failures: u32| report_on(client_id, path, None, failures);
        let post = |token: Option<&str>, body: Vec<u8>| {
            let client = client.clone();
            let url = url.clone();
            let token = token.map(str::to_owned);
            async move {
                http(
                    &client,
                    reqwest::Method::POST,
                    &url,
                    token.as_deref(),
                    Some(body),
                )
                .await
            }
        };
        // Refused: no token, a wrong token, another client's token, malformed JSON, an unknown
        // transport, an unknown client, an unknown path, an oversized body.
        let good = report(&id, &failing.path_id, 1);
        assert_eq!(post(None, good.clone()).await.0, 401);
        assert_eq!(post(Some("not-the-token"), good.clone()).await.0, 401);
        assert_eq!(post(Some(second.token.expose()), good.clone()).await.0, 401);
        assert_eq!(post(Some(&token), b"{\"client\":".to_vec()).await.0, 400);
        assert_eq!(
            post(Some(&token), br#"{"client":"x","path_id":3}"#.to_vec())
                .await
                .0,
            400
        );
        let (status, body) = post(
            Some(&token),
            report_on(&id, &failing.path_id, Some("T9"), 1),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("transport: `T9`"), "{body}");
        assert_eq!(
            post(
                Some(&token),
                report("client-0000000000", &failing.path_id, 0)
            )
            .await
            .0,
            401
        );
        assert_eq!(
            post(Some(&token), report(&id, "t0:nowhere>nothing", 0))
                .await
                .0,
            422
        );
        assert_eq!(post(Some(&token), vec![b' '; 64 * 1024]).await.0, 413);
        // Accepted: the path failed for this client, on T0 (an older client's report, naming
        // no transport) and on T1.
        let (status, body) = post(Some(&token), good).await;
        assert_eq!(status, 202, "{body}");
        let (status, body) = post(
            Some(&token),
            report_on(&id, &failing.path_id, Some("T1"), 2),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let metrics = http(
            &client,
            reqwest::Method::GET,
            &format!("{base}/metrics"),
            None,
            None,
        )
        .await
        .1;
        assert!(
            metrics.contains("damm_reports_total{outcome=\"accepted\",reason=\"ok\"} 2\n"),
            "{metrics}"
        );
        assert!(
            metrics
                .contains("damm_reports_total{outcome=\"refused\",reason=\"unauthenticated\"} 4\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("damm_reports_total{outcome=\"refused\",reason=\"malformed\"} 3\n")
        );
        for (series, n) in [
            ("transport=\"T0\",outcome=\"failed\"", 1),
            ("transport=\"T1\",outcome=\"failed\"", 1),
            ("transport=\"T1\",outcome=\"ok\"", 0),
        ] {
            assert!(
                metrics.contains(&format!("damm_client_reports_total{{{series}}} {n}\n")),
                "{series}: {metrics}"
            );
        }
        assert!(
            metrics.contains("damm_reports_total{outcome=\"refused\",reason=\"unknown_path\"} 1\n")
        );
        assert!(metrics.contains("damm_clients 2\n"), "{metrics}");

        // The next tick scores it: the failed path's ingress gets client quality 0, its egress is
        // not charged.
        let failed_ingress = ingress_of(&failing);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let snap = shared.read().await;
            if let Some(score) = snap.scores.get(&failed_ingress)
                && score.client_quality.is_some()
            {
                assert_eq!(score.client_quality, Some(0.0));
                let egress_score = snap.scores.get(egress_key).unwrap();
                assert_eq!(
                    egress_score.client_quality, None,
                    "the egress is not charged"
                );
                break;
            }
            drop(snap);
            assert!(
                tokio::time::Instant::now() < deadline,
                "the report never reached the scores"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.request();
    };
    let (looped, ()) = tokio::join!(looping, checks);
    looped.unwrap();

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("report refused"), "refusals are logged");
    assert!(!logs.contains(&token), "the token reached the logs");
    assert!(!logs.contains(&private), "the private key reached the logs");
}

#[test]
fn enroll_refuses_unknown_regions_and_a_full_pool() {
    let text = POLICY.replace("pool = \"10.77.0.0/16\"", "pool = \"10.77.0.0/30\"");
    let policy = Policy::parse(&text, "p.toml").unwrap();
    let mut state = damm_orchestrator::State::new(policy.fleet.id.clone());
    let err = enroll::enroll(
        &mut state,
        &policy,
        &Region::new("mars").unwrap(),
        Utc::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in the policy"), "{err}");
    let lab = Region::new("lab").unwrap();
    // A /30 has two hosts: the gateways' and one client.
    let one = enroll::enroll(&mut state, &policy, &lab, Utc::now()).unwrap();
    assert_eq!(one.record.address.to_string(), "10.77.0.2");
    let err = enroll::enroll(&mut state, &policy, &lab, Utc::now()).unwrap_err();
    assert!(err.to_string().contains("pool"), "{err}");
    enroll::unenroll(&mut state, &one.record.id).unwrap();
    assert!(enroll::unenroll(&mut state, &one.record.id).is_err());
    let again = enroll::enroll(&mut state, &policy, &lab, Utc::now()).unwrap();
    assert_eq!(
        again.record.address.to_string(),
        "10.77.0.2",
        "freed address reused"
    );
}

/// An ingress's config asks for the transports its catalog offers: T1 on the policy's port
/// under the gateway's own key where the region offers T1, and a T3 listener with the
/// secret path of every front that leads to it. An egress runs none.
#[tokio::test]
async fn gateway_configs_carry_the_transport_listeners_their_offers_name() {
    let mut lab = lab().await;
    let catalog = lab
        .engine
        .tick(Mode::Apply, true)
        .await
        .unwrap()
        .catalog
        .unwrap();
    let mut policy = lab.engine.policy().clone();
    policy
        .regions
        .get_mut(&Region::new("lab").unwrap())
        .unwrap()
        .t1 = true;
    let state = lab.engine.state_mut();
    let ingress: damm_provider::IdempotencyKey = "static-host-in1".parse().unwrap();
    let front: damm_provider::IdempotencyKey = "in1-cdn".parse().unwrap();
    state.addresses.insert(
        front.clone(),
        damm_orchestrator::state::AddressRecord {
            provider: "cloudflare".into(),
            id: "rec1".into(),
            region: Region::new("lab").unwrap(),
            kind: damm_fleet::AddressKind::Front,
            node: Some(ingress.clone()),
            address: None,
            hostname: Some("w1.damm.example".into()),
        },
    );
    let state = lab.engine.state().clone();
    let trusted = [lab.keys.signing.public_key()];
    let config = |id: &str| {
        let signed = enroll::signed_gateway_config(
            &state,
            &policy,
            &lab.keys,
            Some(&catalog),
            id,
            Utc::now(),
        )
        .unwrap();
        damm_catalog::verify_gateway_config(
            signed.json.as_bytes(),
            &signed.signature,
            &trusted,
            None,
            Utc::now(),
        )
        .unwrap()
    };
    let in1 = config("static-host-in1");
    let t1 = in1
        .transports
        .t1
        .as_ref()
        .expect("T1 where the region offers it");
    assert_eq!(t1.port, policy.transports.t1_port);
    assert_eq!(t1.key.to_bytes(), Some(lab.keys.gateway_t1(&ingress)));
    let t3 = in1
        .transports
        .t3
        .as_ref()
        .expect("T3 for the front leading here");
    assert_eq!(t3.port, policy.transports.t3_port);
    assert_eq!(t3.paths, [lab.keys.front_path(&front)]);
    // The other ingress has T1 (its own key) and no front.
    let in2 = config("static-host-in2");
    assert_ne!(in2.transports.t1.as_ref().unwrap().key, t1.key);
    assert!(in2.transports.t3.is_none());
    let egress = state
        .nodes
        .iter()
        .find(|(_, n)| n.role == damm_provider::NodeRole::Egress)
        .map(|(k, _)| k.to_string())
        .unwrap();
    assert!(config(&egress).transports.is_empty());
    assert!(
        !format!("{in1:?}").contains(t1.key.expose_hex()),
        "the key in Debug"
    );
}
