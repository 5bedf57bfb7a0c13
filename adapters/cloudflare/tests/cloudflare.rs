//! Adapter behaviour against the simulator: typed results, ownership, health, and how
//! failures map to DAMM's error kinds (never leaking the token).

use std::net::IpAddr;

use damm_adapter_cloudflare::Cloudflare;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    ErrorKind, ExposeSecret, FleetId, FrontSpec, HealthStatus, IdempotencyKey, Labels,
    Provider as _, Target, TunnelSpec,
};
use damm_sim::{Dark, Faults, Provider, SimConfig, SimHandle};

const ZONE: &str = "damm.example";
const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";

async fn sim() -> SimHandle {
    damm_sim::testing::start(SimConfig::default()).await
}

fn adapter(sim: &SimHandle, fleet: &str, token: &str) -> Cloudflare {
    let fleet = FleetId::new(fleet).unwrap();
    let config = AdapterConfig::new(fleet, "cloudflare").with_env([
        (
            "DAMM_CLOUDFLARE_API_URL".to_owned(),
            format!("{}/", sim.url(Provider::Cloudflare)),
        ),
        ("DAMM_CLOUDFLARE_TOKEN".to_owned(), token.to_owned()),
        ("DAMM_CLOUDFLARE_ZONE".to_owned(), ZONE.to_owned()),
        (
            "DAMM_CLOUDFLARE_ACCOUNT_ID".to_owned(),
            ACCOUNT_ID.to_owned(),
        ),
        (
            "DAMM_CLOUDFLARE_REQUEST_TIMEOUT_MS".to_owned(),
            "5000".to_owned(),
        ),
    ]);
    Cloudflare::from_config(&config).expect("configured")
}

fn front_spec(fleet: &str, key: &str, origin: &str) -> FrontSpec {
    let fleet = FleetId::new(fleet).unwrap();
    let key = IdempotencyKey::new(key).unwrap();
    FrontSpec {
        name: key.to_string(),
        origin: origin.parse::<IpAddr>().unwrap(),
        labels: Labels::owned(&fleet, &key),
        key,
    }
}

fn tunnel_spec(fleet: &str, key: &str) -> TunnelSpec {
    let fleet = FleetId::new(fleet).unwrap();
    let key = IdempotencyKey::new(key).unwrap();
    TunnelSpec {
        name: key.to_string(),
        origin: "http://127.0.0.1:8080".to_owned(),
        labels: Labels::owned(&fleet, &key),
        key,
    }
}

#[tokio::test]
async fn fronts_are_typed_idempotent_and_fleet_only() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod", sim.token());
    let other = adapter(&sim, "other", sim.token());
    let cdn = prod.cdn_front().unwrap();
    let front = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(front.hostname, "gw-1.damm.damm.example");
    assert_eq!(front.origin, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(front.reference.provider, "cloudflare");
    assert_eq!(front.reference.id.len(), 32);
    let again = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(again.reference, front.reference);
    let v6 = cdn
        .publish_front(&front_spec("prod", "gw-2", "2001:db8::2"))
        .await
        .unwrap();
    assert!(v6.origin.is_ipv6());
    other
        .cdn_front()
        .unwrap()
        .publish_front(&front_spec("other", "gw-1", "192.0.2.11"))
        .await
        .unwrap();
    let listed = cdn.list_fronts().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|f| f.labels.is_owned_by(prod.fleet())));

    let health = prod
        .probe_health(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    let metrics = prod
        .get_metrics(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert!(metrics.rtt.is_some());

    cdn.retire_front(&front.reference).await.unwrap();
    cdn.retire_front(&front.reference).await.unwrap();
    assert_eq!(cdn.list_fronts().await.unwrap().len(), 1);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn repointing_a_front_moves_the_origin_and_keeps_everything_else() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod", sim.token());
    let other = adapter(&sim, "other", sim.token());
    let cdn = prod.cdn_front().unwrap();
    let front = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();

    // IPv4 → IPv6 changes the record's type too; the hostname and reference stay.
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let moved = cdn.repoint_front(&front.reference, v6).await.unwrap();
    assert_eq!(moved.reference, front.reference);
    assert_eq!(moved.hostname, "gw-1.damm.damm.example");
    assert_eq!(moved.origin, v6);
    assert_eq!(moved.labels, front.labels);
    // Still proxied (the PATCH left `proxied` alone), so the probe stays healthy.
    let health = prod
        .probe_health(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert_eq!(health.status, HealthStatus::Healthy, "{}", health.detail);
    // A replayed publish of the same key finds the moved record, not a new one.
    let replayed = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(replayed.reference, front.reference);
    assert_eq!(replayed.origin, v6);

    // The other fleet cannot move prod's record, and prod's record is left as it was.
    let refused = other
        .cdn_front()
        .unwrap()
        .repoint_front(&front.reference, "192.0.2.99".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
    assert!(refused.to_string().contains("repoint_front"), "{refused}");
    let listed = cdn.list_fronts().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].origin, v6);

    cdn.retire_front(&front.reference).await.unwrap();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn tunnels_carry_token_and_report_connections() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod", sim.token());
    let tunnels = prod.tunnel_term().unwrap();
    let tunnel = tunnels
        .register_tunnel(&tunnel_spec("prod", "t-1"))
        .await
        .unwrap();
    assert_eq!(tunnel.name, "damm-prod-t-1");
    assert_eq!(tunnel.reference.id.len(), 36);
    assert!(tunnel.token.is_some());
    assert_eq!(tunnel.connected, Some(false));
    let token = tunnel.token.as_ref().unwrap().expose_secret().to_owned();
    assert!(!token.is_empty());
    assert!(!format!("{tunnel:?}").contains(&token));
    let again = tunnels
        .register_tunnel(&tunnel_spec("prod", "t-1"))
        .await
        .unwrap();
    assert_eq!(again.reference, tunnel.reference);
    let target = Target::Tunnel(tunnel.reference.clone());
    assert_eq!(
        prod.probe_health(&target).await.unwrap().status,
        HealthStatus::Degraded
    );
    let connect = reqwest::Client::new()
        .post(format!(
            "http://{}/_sim/cloudflare/tunnels/{}/connect",
            sim.addr(),
            tunnel.reference.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status().as_u16(), 204);
    assert_eq!(
        prod.probe_health(&target).await.unwrap().status,
        HealthStatus::Healthy
    );
    let listed = tunnels.list_tunnels().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].origin, "http://127.0.0.1:8080");
    assert_eq!(listed[0].connected, Some(true));
    assert!(listed[0].token.is_none());
    let other = adapter(&sim, "other", sim.token());
    assert!(
        other
            .tunnel_term()
            .unwrap()
            .list_tunnels()
            .await
            .unwrap()
            .is_empty()
    );

    tunnels.retire_tunnel(&tunnel.reference).await.unwrap();
    tunnels.retire_tunnel(&tunnel.reference).await.unwrap();
    assert!(tunnels.list_tunnels().await.unwrap().is_empty());
    let unsupported = prod
        .probe_health(&Target::Node(damm_provider::NodeRef::new(
            "cloudflare",
            "x",
        )))
        .await
        .unwrap_err();
    assert_eq!(unsupported.kind(), ErrorKind::Unsupported);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn wrong_token_is_unauthenticated_and_never_shown() {
    let sim = sim().await;
    let secret = "cf-very-secret-token-value";
    let cf = adapter(&sim, "prod", secret);
    assert!(!format!("{cf:?}").contains(secret));
    let err = cf.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!err.is_temporary());
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    let err = cf.cdn_front().unwrap().list_fronts().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!format!("{err:?}").contains(secret));
}

#[tokio::test]
async fn server_errors_are_temporary_unavailable() {
    let sim = sim().await;
    sim.set_faults(
        Provider::Cloudflare,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let cf = adapter(&sim, "prod", sim.token());
    let err = cf.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
}

#[tokio::test]
async fn a_dark_provider_is_temporary_unavailable() {
    let sim = sim().await;
    sim.set_faults(Provider::Cloudflare, Faults::dark(Dark::Refuse));
    let cf = adapter(&sim, "prod", sim.token());
    let err = cf.tunnel_term().unwrap().list_tunnels().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
}

#[tokio::test]
async fn malformed_answers_are_errors_not_panics() {
    let sim = sim().await;
    sim.set_faults(
        Provider::Cloudflare,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let cf = adapter(&sim, "prod", sim.token());
    let err = cf.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    let err = cf.cdn_front().unwrap().list_fronts().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
}

/// API calls per front change, counted at the simulator: what bounds the fronts a tick can
/// make under Cloudflare's documented limit (1200 requests per 5 minutes). A count, not a
/// timing; the figure is printed for docs/performance.md.
#[tokio::test]
async fn a_front_change_costs_two_calls_once_the_zone_is_known() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod", sim.token());
    let cdn = prod.cdn_front().unwrap();
    // The zone lookup is made once and cached.
    cdn.list_fronts().await.unwrap();
    let before = sim.requests();
    let n = 20u64;
    let mut fronts = Vec::new();
    for i in 0..n {
        let spec = front_spec("prod", &format!("gw-{i}"), "192.0.2.10");
        fronts.push(cdn.publish_front(&spec).await.unwrap());
    }
    let publish = (sim.requests() - before) as f64 / n as f64;
    let before = sim.requests();
    for f in &fronts {
        cdn.repoint_front(&f.reference, "192.0.2.11".parse().unwrap())
            .await
            .unwrap();
    }
    let repoint = (sim.requests() - before) as f64 / n as f64;
    let before = sim.requests();
    cdn.list_fronts().await.unwrap();
    let listing = sim.requests() - before;
    assert!(publish <= 2.0 && repoint <= 2.0, "{publish} {repoint}");
    // A 60 s tick's share of the limit, less the tick's one listing.
    let budget = 1200.0 / 300.0 * 60.0 - listing as f64;
    println!(
        "figure: cloudflare calls per publish {publish:.1}, per move {repoint:.1}, listing {listing}; \
         at the documented limit a 60 s tick fits {:.0} new fronts",
        (budget / publish).floor()
    );
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}
