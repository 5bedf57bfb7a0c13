//! The Tailscale API as the simulator serves it, over real HTTP on 127.0.0.1.

mod common;

use common::{Api, assert_clean};
use damm_sim::testing::start;
use damm_sim::{Provider, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Tailscale;

async fn create_key(api: &Api, reusable: bool, tags: &[&str]) -> Value {
    let (status, key) = api
        .call(
            Method::POST,
            "/tailnet/-/keys",
            Some(json!({
                "capabilities": { "devices": { "create": {
                    "reusable": reusable, "ephemeral": true, "preauthorized": true, "tags": tags
                }}},
                "expirySeconds": 3600,
                "description": "damm test"
            })),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    key
}

#[tokio::test]
async fn key_join_list_delete() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let key = create_key(&api, false, &["tag:damm-fleet-f1", "tag:damm-key-k1"]).await;
    let secret = key["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tskey-auth-"));
    let id = key["id"].as_str().unwrap().to_owned();

    // Listing and reading never show the secret.
    let (status, list) = api.get("/tailnet/-/keys").await;
    assert_eq!(status, 200);
    let listed = &list["keys"].as_array().unwrap()[0];
    assert_eq!(listed["id"], json!(id));
    assert!(listed.get("key").is_none());
    let (status, read) = api.get(&format!("/tailnet/-/keys/{id}")).await;
    assert_eq!(status, 200);
    assert!(read.get("key").is_none());
    assert_eq!(
        read["capabilities"]["devices"]["create"]["tags"],
        json!(["tag:damm-fleet-f1", "tag:damm-key-k1"])
    );

    // A gateway joins with the key.
    let (status, device) = api
        .call(
            Method::POST,
            "/_sim/tailscale/join",
            Some(json!({ "key": secret, "hostname": "gw-1" })),
        )
        .await;
    assert_eq!(status, 200, "{device}");
    let device_id = device["id"].as_str().unwrap().to_owned();

    let (status, devices) = api.get("/tailnet/-/devices?fields=all").await;
    assert_eq!(status, 200);
    let listed = &devices["devices"].as_array().unwrap()[0];
    let v4: std::net::Ipv4Addr = listed["addresses"][0].as_str().unwrap().parse().unwrap();
    assert_eq!(v4.octets()[0], 100);
    assert!((64..128).contains(&v4.octets()[1]));
    assert!(
        listed["addresses"][1]
            .as_str()
            .unwrap()
            .starts_with("fd7a:115c:a1e0:")
    );
    assert_eq!(
        listed["tags"],
        json!(["tag:damm-fleet-f1", "tag:damm-key-k1"])
    );
    assert_eq!(listed["hostname"], json!("gw-1"));
    assert!(listed["name"].as_str().unwrap().ends_with(".ts.net"));
    assert_eq!(listed["authorized"], json!(true));
    assert!(listed.get("enabledRoutes").is_some());

    // The one-off key is used up: listed as invalid, refused a second time.
    let (_, read) = api.get(&format!("/tailnet/-/keys/{id}")).await;
    assert_eq!(read["invalid"], json!(true));
    let (status, again) = api
        .call(
            Method::POST,
            "/_sim/tailscale/join",
            Some(json!({ "key": secret, "hostname": "gw-2" })),
        )
        .await;
    assert_eq!(status, 400, "{again}");
    let (status, _) = api
        .call(
            Method::POST,
            "/_sim/tailscale/join",
            Some(json!({ "key": "tskey-auth-nope", "hostname": "gw-3" })),
        )
        .await;
    assert_eq!(status, 404);

    // Device operations by id and by nodeId.
    let node_id = listed["nodeId"].as_str().unwrap().to_owned();
    let (status, one) = api.get(&format!("/device/{node_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], json!(device_id));
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/device/{device_id}/tags"),
            Some(json!({ "tags": ["tag:damm-fleet-f1", "tag:other"] })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/device/{device_id}/tags"),
            Some(json!({ "tags": ["not-a-tag"] })),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/device/{device_id}/authorized"),
            Some(json!({ "authorized": false })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, routes) = api
        .call(
            Method::POST,
            &format!("/device/{device_id}/routes"),
            Some(json!({ "routes": ["10.0.0.0/16"] })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(routes["enabledRoutes"], json!(["10.0.0.0/16"]));
    let (status, _) = api.get(&format!("/device/{device_id}/routes")).await;
    assert_eq!(status, 200);

    let (status, _) = api.delete(&format!("/device/{device_id}")).await;
    assert_eq!(status, 200);
    let (status, gone) = api.get(&format!("/device/{device_id}")).await;
    assert_eq!(status, 404);
    assert_eq!(gone, json!({ "message": "not found" }));
    let (_, devices) = api.get("/tailnet/-/devices").await;
    assert!(devices["devices"].as_array().unwrap().is_empty());

    // Revoking a key.
    let (status, _) = api.delete(&format!("/tailnet/-/keys/{id}")).await;
    assert_eq!(status, 200);
    let (status, _) = api.delete(&format!("/tailnet/-/keys/{id}")).await;
    assert_eq!(status, 404);
    let (_, list) = api.get("/tailnet/-/keys").await;
    assert!(list["keys"].as_array().unwrap().is_empty());
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn reusable_keys_join_many_and_revoked_keys_none() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let key = create_key(&api, true, &["tag:damm-fleet-f2"]).await;
    let secret = key["key"].as_str().unwrap();
    let mut addresses = Vec::new();
    for host in ["a", "b"] {
        let (status, device) = api
            .call(
                Method::POST,
                "/_sim/tailscale/join",
                Some(json!({ "key": secret, "hostname": host })),
            )
            .await;
        assert_eq!(status, 200);
        addresses.push(device["addresses"][0].clone());
    }
    assert_ne!(addresses[0], addresses[1]);
    let id = key["id"].as_str().unwrap();
    api.delete(&format!("/tailnet/-/keys/{id}")).await;
    let (status, _) = api
        .call(
            Method::POST,
            "/_sim/tailscale/join",
            Some(json!({ "key": secret, "hostname": "c" })),
        )
        .await;
    assert_eq!(status, 400);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn unauthenticated_calls_get_401_in_tailscale_shape() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER).with_token(Some("wrong"));
    let (status, body) = api.get("/tailnet/-/devices").await;
    assert_eq!(status, 401);
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_clean(&sim, PROVIDER);
}
