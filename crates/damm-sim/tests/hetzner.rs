//! The Hetzner API as the simulator serves it, over real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Api, assert_clean, assert_refused_then_malformed, assert_reset_in_future};
use damm_sim::testing::{QUICK_BOOT, booting_in};
use damm_sim::{Dark, Faults, Provider};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Hetzner;

impl Api {
    async fn create(&self, name: &str, labels: Value) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/servers",
                Some(json!({ "name": name, "server_type": "cx22", "image": "debian-12", "location": "fsn1", "labels": labels, "user_data": "#cloud-config\n" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

#[tokio::test]
async fn servers_boot_list_by_label_and_page() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let created = api
        .create("gw-1", json!({ "damm-fleet": "prod", "damm-key": "k1" }))
        .await;
    assert_eq!(created["server"]["status"], "initializing");
    assert_eq!(created["action"]["status"], "running");
    let ip = created["server"]["public_net"]["ipv4"]["ip"]
        .as_str()
        .unwrap();
    assert!(ip.starts_with("192.0.2."), "{ip}");
    for i in 2..=7 {
        api.create(
            &format!("gw-{i}"),
            json!({ "damm-fleet": if i % 2 == 0 { "prod" } else { "other" } }),
        )
        .await;
    }
    let (status, page) = api
        .get("/servers?label_selector=damm-fleet%3Dprod&per_page=2&page=2")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["pagination"]["total_entries"], 4);
    assert_eq!(page["meta"]["pagination"]["last_page"], 2);
    assert_eq!(page["meta"]["pagination"]["next_page"], Value::Null);
    assert_eq!(page["servers"].as_array().unwrap().len(), 2);

    tokio::time::sleep(Duration::from_millis(250)).await;
    let id = created["server"]["id"].as_i64().unwrap();
    let (_, got) = api.get(&format!("/servers/{id}")).await;
    assert_eq!(got["server"]["status"], "running");
    let action = created["action"]["id"].as_i64().unwrap();
    let (_, got) = api.get(&format!("/actions/{action}")).await;
    assert_eq!(got["action"]["status"], "success");

    let (status, _) = api.delete(&format!("/servers/{id}")).await;
    assert_eq!(status, 200);
    let (status, body) = api.get(&format!("/servers/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn addresses_assign_and_unassign() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let server = api.create("gw", json!({})).await;
    let sid = server["server"]["id"].as_i64().unwrap();
    let (status, fip) = api
        .call(Method::POST, "/floating_ips", Some(json!({ "type": "ipv4", "home_location": "fsn1", "labels": { "damm-fleet": "prod" } })))
        .await;
    assert_eq!(status, 201, "{fip}");
    let fid = fip["floating_ip"]["id"].as_i64().unwrap();
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/floating_ips/{fid}/actions/assign"),
            Some(json!({ "server": sid })),
        )
        .await;
    assert_eq!(status, 201);
    let (_, got) = api.get(&format!("/servers/{sid}")).await;
    assert_eq!(got["server"]["public_net"]["floating_ips"], json!([fid]));
    let (status, pip) = api
        .call(Method::POST, "/primary_ips", Some(json!({ "name": "door", "type": "ipv4", "assignee_type": "server", "location": "fsn1", "labels": { "damm-fleet": "prod" } })))
        .await;
    assert_eq!(status, 201, "{pip}");
    let (_, list) = api
        .get("/primary_ips?label_selector=damm-fleet%3Dprod")
        .await;
    assert_eq!(list["primary_ips"].as_array().unwrap().len(), 1);
    let (status, _) = api.delete(&format!("/floating_ips/{fid}")).await;
    assert_eq!(status, 204);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn auth_rate_limits_and_faults_look_like_hetzner() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let wrong = api.with_token(Some("nope"));
    let (status, body) = wrong.get("/servers").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");

    let (status, headers, _) = api.call_with_headers(Method::GET, "/servers", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ratelimit-limit"], "3600");
    assert!(headers.contains_key("ratelimit-remaining") && headers.contains_key("ratelimit-reset"));

    sim.set_faults(
        Provider::Hetzner,
        Faults {
            rate_limit_storm: 2,
            ..Faults::default()
        },
    );
    let (status, headers, body) = api.call_with_headers(Method::GET, "/servers", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_reset_in_future(&headers, "ratelimit-reset");
    assert_eq!(api.get("/servers").await.0, 429);
    assert_eq!(api.get("/servers").await.0, 200, "the storm is over");

    sim.set_faults(Provider::Hetzner, Faults::dark(Dark::Unavailable));
    assert_eq!(api.get("/servers").await.0, 503);
    assert_refused_then_malformed(&sim, PROVIDER, &api, "/servers").await;
}

#[tokio::test]
async fn requests_that_break_the_schema_are_refused() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let (status, body) = api
        .call(
            Method::POST,
            "/servers",
            Some(json!({ "name": "x", "server_type": 3, "image": "debian-12" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/server_type"),
        "{body}"
    );
}

#[tokio::test]
async fn the_admin_api_sets_faults_over_http() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let admin = "/_sim/faults/hetzner";
    let (status, _) = api
        .call(Method::PUT, admin, Some(json!({ "dark": "unavailable" })))
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.get("/servers").await.0, 503);
    api.delete(admin).await;
    assert_eq!(api.get("/servers").await.0, 200);
    let (status, _) = api
        .call(Method::PUT, "/_sim/faults/nowhere", Some(json!({})))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_response_that_drifts_from_the_published_schema_is_caught() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    api.create("gw", json!({})).await;
    assert!(sim.drifts().is_empty());
    // The simulator's own answer loses a required field: the schema check must notice.
    sim.set_faults(
        Provider::Hetzner,
        Faults {
            drift: true,
            ..Faults::default()
        },
    );
    let (status, body) = api.get("/servers").await;
    assert_eq!(status, 500, "{body}");
    let drifts = sim.drifts();
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert!(drifts[0].contains("GET /servers"), "{drifts:?}");
    assert!(
        drifts[0].contains("required property is missing"),
        "{drifts:?}"
    );
}

#[tokio::test]
async fn at_the_server_limit_creates_are_refused_and_the_rest_works() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let created = api.create("gw-1", json!({ "damm-fleet": "prod" })).await;
    let id = created["server"]["id"].as_i64().unwrap();
    let quota = Faults {
        quota_exhausted: true,
        ..Faults::default()
    };
    sim.set_faults(PROVIDER, quota);
    let (status, body) = api
        .call(
            Method::POST,
            "/servers",
            Some(json!({ "name": "gw-2", "server_type": "cx22", "image": "debian-12" })),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "resource_limit_exceeded");
    assert!(body["error"]["details"]["limits"].is_array(), "{body}");
    let (status, page) = api.get("/servers").await;
    assert_eq!(status, 200, "listing works");
    assert_eq!(page["servers"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(api.delete(&format!("/servers/{id}")).await.0, 200);
    sim.clear_faults(PROVIDER);
    api.create("gw-2", json!({})).await;
    assert_clean(&sim, PROVIDER);
}
