//! Adapter behaviour against the simulator: typed fronts, what Gcore is asked for on the
//! wire, ownership, health, and how failures map to DAMM's error kinds (never leaking the
//! token).

use std::net::IpAddr;

use damm_adapter_gcore::Gcore;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    ErrorKind, FleetId, FrontRef, FrontSpec, HealthStatus, IdempotencyKey, Labels, Provider as _,
    Target,
};
use damm_sim::testing::{QUICK_BOOT, adapter_env};
use damm_sim::{Dark, Faults, Provider, SimConfig, SimHandle};
use reqwest::Method;
use serde_json::{Value, json};

/// The simulator's zone and its wildcard certificate for `*.damm.damm.example`.
const ZONE: &str = "damm.example";
const CERTIFICATE: &str = "4101";

async fn sim() -> SimHandle {
    damm_sim::testing::booting_in(QUICK_BOOT).await
}

fn adapter_with(sim: &SimHandle, fleet: &str, extra: &[(&str, &str)]) -> Gcore {
    let mut settings = vec![
        ("DAMM_GCORE_ZONE", ZONE),
        ("DAMM_GCORE_CERTIFICATE_ID", CERTIFICATE),
        ("DAMM_GCORE_REQUEST_TIMEOUT_MS", "5000"),
    ];
    settings.extend_from_slice(extra);
    let env = adapter_env(sim, Provider::Gcore, &settings);
    let config = AdapterConfig::new(FleetId::new(fleet).unwrap(), "gcore").with_env(env);
    Gcore::from_config(&config).expect("configured")
}

fn adapter(sim: &SimHandle, fleet: &str) -> Gcore {
    adapter_with(sim, fleet, &[])
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

/// `method path` on the simulator's Gcore API, as Gcore itself would be called.
async fn raw(sim: &SimHandle, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.url(Provider::Gcore)))
        .header("authorization", format!("APIKey {}", sim.token()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(sim: &SimHandle, path: &str) -> (u16, Value) {
    raw(sim, Method::GET, path, None).await
}

#[tokio::test]
async fn fronts_are_typed_idempotent_and_fleet_only() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod");
    let other = adapter(&sim, "other");
    let cdn = prod.cdn_front().unwrap();
    let front = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(front.hostname, "gw-1.damm.damm.example");
    assert_eq!(front.origin, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(front.reference.provider, "gcore");
    assert!(front.labels.is_owned_by(prod.fleet()));
    assert_eq!(front.labels.key().unwrap().as_str(), "gw-1");

    // What Gcore was asked for: HTTPS with the certificate, WebSockets to the origin over
    // plain HTTP on the T3 port, the ownership marker.
    let (status, resource) = get(&sim, &format!("/cdn/resources/{}", front.reference.id)).await;
    assert_eq!(status, 200, "{resource}");
    assert_eq!(resource["cname"], "gw-1.damm.damm.example");
    assert_eq!(resource["description"], "damm-fleet=prod;damm-key=gw-1");
    assert_eq!(
        resource["options"]["websockets"],
        json!({ "enabled": true, "value": true })
    );
    assert_eq!(resource["sslEnabled"], true);
    assert_eq!(resource["sslData"], 4101);
    assert_eq!(resource["originProtocol"], "HTTP");
    assert_eq!(resource["active"], true);
    let group = resource["originGroup"].as_i64().unwrap();
    let (_, origins) = get(&sim, &format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(origins["name"], "damm-fleet=prod;damm-key=gw-1");
    assert_eq!(
        origins["sources"],
        json!([{ "source": "192.0.2.10:80", "backup": false, "enabled": true, "tag": "default", "host_header_override": null }])
    );

    // Propagating at first, healthy once active.
    let target = Target::Front(front.reference.clone());
    let health = prod.probe_health(&target).await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded, "{}", health.detail);
    tokio::time::sleep(QUICK_BOOT * 2).await;
    let health = prod.probe_health(&target).await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy, "{}", health.detail);
    assert!(prod.get_metrics(&target).await.unwrap().rtt.is_some());

    let again = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(again, front);
    other
        .cdn_front()
        .unwrap()
        .publish_front(&front_spec("other", "gw-2", "192.0.2.11"))
        .await
        .unwrap();
    // A stranger's resource under the same subdomain: never listed, never taken over.
    let (status, stranger) = raw(
        &sim,
        Method::POST,
        "/cdn/resources",
        Some(json!({ "cname": "shop.damm.damm.example", "origin": "203.0.113.9", "description": "the shop" })),
    )
    .await;
    assert_eq!(status, 201, "{stranger}");
    let listed = cdn.list_fronts().await.unwrap();
    assert_eq!(listed, vec![front.clone()]);
    let taken = cdn
        .publish_front(&front_spec("prod", "shop", "192.0.2.12"))
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict, "{taken}");
    assert!(taken.to_string().contains("publish_front"), "{taken}");
    let foreign = FrontRef::new("gcore", stranger["id"].to_string());
    let refused = prod.probe_health(&Target::Front(foreign.clone())).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::NotFound);
    cdn.retire_front(&foreign).await.unwrap();
    let (status, _) = get(&sim, &format!("/cdn/resources/{}", foreign.id)).await;
    assert_eq!(status, 200, "the stranger's resource is left alone");

    // Retire deactivates, deletes, and takes the front's origin group along.
    cdn.retire_front(&front.reference).await.unwrap();
    cdn.retire_front(&front.reference).await.unwrap();
    assert!(cdn.list_fronts().await.unwrap().is_empty());
    let (status, _) = get(&sim, &format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(status, 404);
    let gone = prod.probe_health(&target).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    assert_eq!(
        other
            .cdn_front()
            .unwrap()
            .list_fronts()
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn repointing_moves_the_origin_and_keeps_the_hostname() {
    let sim = sim().await;
    let prod = adapter_with(&sim, "prod", &[("DAMM_GCORE_ORIGIN_PORT", "8080")]);
    let cdn = prod.cdn_front().unwrap();
    let front = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    let moved_to: IpAddr = "198.51.100.7".parse().unwrap();
    let moved = cdn.repoint_front(&front.reference, moved_to).await.unwrap();
    assert_eq!(moved.reference, front.reference);
    assert_eq!(moved.hostname, front.hostname);
    assert_eq!(moved.labels, front.labels);
    assert_eq!(moved.origin, moved_to);
    let again = cdn.repoint_front(&front.reference, moved_to).await.unwrap();
    assert_eq!(again, moved, "repointing is idempotent");
    let listed = cdn.list_fronts().await.unwrap();
    assert_eq!(listed, vec![moved.clone()]);
    let (_, resource) = get(&sim, &format!("/cdn/resources/{}", front.reference.id)).await;
    let group = resource["originGroup"].as_i64().unwrap();
    let (_, origins) = get(&sim, &format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(origins["sources"][0]["source"], "198.51.100.7:8080");
    // A replayed publish of the same key finds the moved front, not a new one.
    let replayed = cdn
        .publish_front(&front_spec("prod", "gw-1", "192.0.2.10"))
        .await
        .unwrap();
    assert_eq!(replayed, moved);

    // Moved by hand to a group that is not its own: repointing gives it its own group
    // back and leaves the other group as it was.
    let (status, foreign) = raw(
        &sim,
        Method::POST,
        "/cdn/origin_groups",
        Some(json!({ "name": "hand-made", "sources": [{ "source": "203.0.113.50" }] })),
    )
    .await;
    assert_eq!(status, 201, "{foreign}");
    let (status, _) = raw(
        &sim,
        Method::PATCH,
        &format!("/cdn/resources/{}", front.reference.id),
        Some(json!({ "originGroup": foreign["id"] })),
    )
    .await;
    assert_eq!(status, 200);
    let listed = cdn.list_fronts().await.unwrap();
    assert_eq!(listed[0].origin, "203.0.113.50".parse::<IpAddr>().unwrap());
    let back = cdn.repoint_front(&front.reference, moved_to).await.unwrap();
    assert_eq!(back.origin, moved_to);
    let (_, resource) = get(&sim, &format!("/cdn/resources/{}", front.reference.id)).await;
    assert_eq!(resource["originGroup"], group);
    let (_, untouched) = get(&sim, &format!("/cdn/origin_groups/{}", foreign["id"])).await;
    assert_eq!(untouched["sources"][0]["source"], "203.0.113.50");

    // Another fleet cannot move it.
    let other = adapter(&sim, "other");
    let refused = other
        .cdn_front()
        .unwrap()
        .repoint_front(&front.reference, "192.0.2.99".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
    assert!(refused.to_string().contains("repoint_front"), "{refused}");
    let foreign_ref = FrontRef::new("elsewhere", front.reference.id.clone());
    let refused = cdn.repoint_front(&foreign_ref, moved_to).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    cdn.retire_front(&front.reference).await.unwrap();
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn ipv6_origins_and_bad_names_are_refused_before_any_call() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod");
    let cdn = prod.cdn_front().unwrap();
    let before = sim.requests();
    let v6 = cdn
        .publish_front(&front_spec("prod", "gw-1", "2001:db8::1"))
        .await
        .unwrap_err();
    assert_eq!(v6.kind(), ErrorKind::InvalidInput);
    assert!(v6.to_string().contains("IPv4"), "{v6}");
    let mut spec = front_spec("prod", "gw-1", "192.0.2.10");
    spec.name = "not_a_label".into();
    let bad = cdn.publish_front(&spec).await.unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    assert_eq!(sim.requests(), before);
}

#[tokio::test]
async fn wrong_token_is_unauthenticated_and_never_shown() {
    let sim = sim().await;
    let secret = "gcore-very-secret-token-value";
    let gcore = adapter_with(&sim, "prod", &[("DAMM_GCORE_TOKEN", secret)]);
    assert!(!format!("{gcore:?}").contains(secret));
    let err = gcore.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!err.is_temporary());
    assert!(err.request_id().is_some(), "{err:?}");
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    let err = gcore.cdn_front().unwrap().list_fronts().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("list_fronts"), "{err}");
    assert!(err.to_string().contains("gcore"), "{err}");
}

#[tokio::test]
async fn faults_map_to_temporary_errors_and_never_panic() {
    let sim = sim().await;
    let gcore = adapter(&sim, "prod");
    let cdn = gcore.cdn_front().unwrap();

    sim.set_faults(
        Provider::Gcore,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let err = gcore.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());

    sim.set_faults(Provider::Gcore, Faults::dark(Dark::Refuse));
    let err = cdn.list_fronts().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
    sim.set_faults(Provider::Gcore, Faults::dark(Dark::Unavailable));
    let err = gcore.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    sim.set_faults(
        Provider::Gcore,
        Faults {
            rate_limit_storm: 1,
            ..Faults::default()
        },
    );
    let err = gcore.probe_health(&Target::Api).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::RateLimited { .. }), "{err}");
    assert!(err.retry_after().is_some());
    assert!(err.is_temporary());

    sim.set_faults(
        Provider::Gcore,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let err = gcore.probe_health(&Target::Api).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    sim.clear_faults(Provider::Gcore);
    cdn.list_fronts().await.unwrap();
}

/// A page lost mid-listing fails the listing: a short inventory would make the missing
/// fronts look deleted.
#[tokio::test]
async fn a_lost_page_fails_the_listing() {
    let sim = damm_sim::testing::start(SimConfig {
        max_page_size: Some(2),
        boot_delay: QUICK_BOOT,
        ..SimConfig::default()
    })
    .await;
    let gcore = adapter(&sim, "prod");
    let cdn = gcore.cdn_front().unwrap();
    for i in 0..5 {
        cdn.publish_front(&front_spec("prod", &format!("gw-{i}"), "192.0.2.10"))
            .await
            .unwrap();
    }
    assert_eq!(cdn.list_fronts().await.unwrap().len(), 5, "every page read");
    sim.set_faults(
        Provider::Gcore,
        Faults {
            missing_page: true,
            ..Faults::default()
        },
    );
    let err = cdn.list_fronts().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert!(err.is_temporary());
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

/// API calls per front change, counted at the simulator. A count, not a timing; the figure is
/// printed for docs/performance.md.
#[tokio::test]
async fn the_calls_a_front_change_costs() {
    let sim = sim().await;
    let prod = adapter(&sim, "prod");
    let cdn = prod.cdn_front().unwrap();
    let n = 5u64;
    let before = sim.requests();
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
    let before = sim.requests();
    for f in &fronts {
        cdn.retire_front(&f.reference).await.unwrap();
    }
    let retire = (sim.requests() - before) as f64 / n as f64;
    // Look up the CNAME and the group, create both; read the resource and its group,
    // change the group; read, deactivate, delete the resource, read and delete the group.
    assert!(publish <= 4.0, "{publish}");
    assert!(repoint <= 3.0, "{repoint}");
    assert!(retire <= 5.0, "{retire}");
    assert_eq!(listing, 2, "one page of resources, one of origin groups");
    println!(
        "figure: gcore calls per publish {publish:.1}, per move {repoint:.1}, per retire {retire:.1}, listing {listing}"
    );
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}
