//! The Cloudflare API as the simulator serves it, over real HTTP on 127.0.0.1.

mod common;

use common::{Api, assert_clean};
use damm_sim::testing::start;
use damm_sim::{Provider, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Cloudflare;
/// The seeded zone and account (see the simulator's Cloudflare module).
const ZONE_NAME: &str = "damm.example";
const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";

impl Api {
    async fn zone_id(&self) -> String {
        let (status, body) = self.get(&format!("/zones?name={ZONE_NAME}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["result"][0]["name"], ZONE_NAME);
        assert_eq!(body["result"][0]["account"]["id"], ACCOUNT_ID);
        let id = body["result"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        id
    }
}

#[tokio::test]
async fn records_crud_with_proxied_and_comment() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let zone = api.zone_id().await;
    let (status, body) = api.get("/zones?name=unknown.example").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"].as_array().unwrap().len(), 0);

    let (status, created) = api
        .call(
            Method::POST,
            &format!("/zones/{zone}/dns_records"),
            Some(json!({ "type": "A", "name": "gw1.damm.damm.example", "content": "192.0.2.10", "proxied": true, "ttl": 1, "comment": "damm-fleet=prod;damm-key=k1" })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let record = &created["result"];
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(record["proxied"], true);
    assert_eq!(record["comment"], "damm-fleet=prod;damm-key=k1");
    assert_eq!(record["name"], "gw1.damm.damm.example");

    let (status, got) = api.get(&format!("/zones/{zone}/dns_records/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["result"]["content"], "192.0.2.10");

    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/zones/{zone}/dns_records/{id}"),
            Some(json!({ "type": "A", "name": "gw1.damm.damm.example", "content": "192.0.2.11" })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["result"]["content"], "192.0.2.11");
    assert_eq!(patched["result"]["proxied"], true);
    assert_eq!(patched["result"]["comment"], "damm-fleet=prod;damm-key=k1");

    let (status, put) = api
        .call(
            Method::PUT,
            &format!("/zones/{zone}/dns_records/{id}"),
            Some(json!({ "type": "AAAA", "name": "gw1.damm", "content": "2001:db8::1", "proxied": false, "ttl": 300 })),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["result"]["type"], "AAAA");
    assert_eq!(put["result"]["name"], "gw1.damm.damm.example");
    assert_eq!(put["result"]["proxied"], false);
    assert!(put["result"].get("comment").is_none(), "{put}");

    let (status, deleted) = api.delete(&format!("/zones/{zone}/dns_records/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["result"]["id"], id.as_str());
    // (A 404 here would be recorded as drift: the document's 4XX schemas for DNS
    // records require `success` to be both true and false, so none are asserted.)
    let (status, gone) = api
        .get(&format!(
            "/zones/{zone}/dns_records?name=gw1.damm.damm.example"
        ))
        .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["result"].as_array().unwrap().len(), 0);
    assert_eq!(gone["result_info"]["total_count"], 0);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn records_filter_by_comment_and_name_with_pages() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let zone = api.zone_id().await;
    for i in 0..7 {
        let fleet = if i % 2 == 0 { "prod" } else { "other" };
        let (status, body) = api
            .call(
                Method::POST,
                &format!("/zones/{zone}/dns_records"),
                Some(json!({ "type": "A", "name": format!("gw{i}.damm.damm.example"), "content": format!("192.0.2.{}", 20 + i), "proxied": true, "comment": format!("damm-fleet={fleet};damm-key=k{i}") })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, page) = api
        .get(&format!(
            "/zones/{zone}/dns_records?comment.startswith=damm-fleet%3Dprod%3B&per_page=3&page=2"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["result_info"]["total_count"], 4);
    assert_eq!(page["result_info"]["page"], 2);
    assert_eq!(page["result"].as_array().unwrap().len(), 1);

    let (_, exact) = api
        .get(&format!(
            "/zones/{zone}/dns_records?comment=damm-fleet%3Dother%3Bdamm-key%3Dk3"
        ))
        .await;
    assert_eq!(exact["result"].as_array().unwrap().len(), 1);
    assert_eq!(exact["result"][0]["name"], "gw3.damm.damm.example");

    let (_, named) = api
        .get(&format!(
            "/zones/{zone}/dns_records?name=gw4.damm.damm.example&type=A"
        ))
        .await;
    assert_eq!(named["result"].as_array().unwrap().len(), 1);
    assert_eq!(named["result"][0]["content"], "192.0.2.24");
    let (_, none) = api
        .get(&format!(
            "/zones/{zone}/dns_records?name=gw4.damm.damm.example&type=AAAA"
        ))
        .await;
    assert_eq!(none["result"].as_array().unwrap().len(), 0);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn tunnel_create_configure_token_connect_and_delete() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let base = format!("/accounts/{ACCOUNT_ID}/cfd_tunnel");
    let (status, created) = api
        .call(
            Method::POST,
            &base,
            Some(json!({ "name": "damm-prod-t1", "config_src": "cloudflare" })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(created["result"]["status"], "inactive");

    let config = json!({ "config": { "ingress": [
        { "hostname": "t1.damm.damm.example", "service": "http://127.0.0.1:8080" },
        { "hostname": "*", "service": "http_status:404" }
    ] } });
    let (status, put) = api
        .call(
            Method::PUT,
            &format!("{base}/{id}/configurations"),
            Some(config),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let (_, got) = api.get(&format!("{base}/{id}/configurations")).await;
    assert_eq!(
        got["result"]["config"]["ingress"][0]["service"],
        "http://127.0.0.1:8080"
    );

    let (status, token) = api.get(&format!("{base}/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    assert!(!token["result"].as_str().unwrap().is_empty());

    let (_, conns) = api.get(&format!("{base}/{id}/connections")).await;
    assert_eq!(conns["result"].as_array().unwrap().len(), 0);
    let connect = format!("/_sim/cloudflare/tunnels/{id}/connect");
    let (status, _) = api
        .with_token(None)
        .call(Method::POST, &connect, None)
        .await;
    assert_eq!(status, 204);
    let (_, conns) = api.get(&format!("{base}/{id}/connections")).await;
    assert_eq!(conns["result"].as_array().unwrap().len(), 1, "{conns}");
    let (_, one) = api.get(&format!("{base}/{id}")).await;
    assert_eq!(one["result"]["status"], "healthy");

    let (_, listed) = api
        .get(&format!(
            "{base}?include_prefix=damm-prod-&is_deleted=false"
        ))
        .await;
    assert_eq!(listed["result"].as_array().unwrap().len(), 1, "{listed}");

    let (status, deleted) = api.delete(&format!("{base}/{id}?cascade=true")).await;
    assert_eq!(status, 200, "{deleted}");
    assert!(deleted["result"]["deleted_at"].is_string());
    let (_, listed) = api.get(&format!("{base}?is_deleted=false")).await;
    assert_eq!(listed["result"].as_array().unwrap().len(), 0);
    let (status, again) = api.delete(&format!("{base}/{id}?cascade=true")).await;
    assert_eq!(status, 200, "{again}");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn wrong_token_gets_the_error_envelope() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER).with_token(Some("wrong"));
    let (status, body) = api.get("/zones").await;
    assert_eq!(status, 401);
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 10000);
    assert_eq!(body["result"], Value::Null);
    assert_clean(&sim, PROVIDER);
}

/// Cloudflare's document makes the whole record (`type`, `name`, `content`) the body of a
/// PATCH: a body with only `type` and `content` is refused and changes nothing, one that
/// names the record changes what it carries and keeps what it leaves out.
#[tokio::test]
async fn record_patch_needs_the_name_and_keeps_what_it_omits() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let zone = api.zone_id().await;
    let (status, created) = api
        .call(
            Method::POST,
            &format!("/zones/{zone}/dns_records"),
            Some(json!({ "type": "A", "name": "gw1.damm.damm.example", "content": "192.0.2.10", "proxied": true, "ttl": 1, "comment": "damm-fleet=prod;damm-key=k1" })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    let path = format!("/zones/{zone}/dns_records/{id}");

    let (status, refused) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "type": "A", "content": "192.0.2.11" })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["success"], false);
    assert_eq!(refused["errors"][0]["code"], 1004);
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("/name"), "{message}");
    let (_, unchanged) = api.get(&path).await;
    assert_eq!(unchanged["result"]["content"], "192.0.2.10", "{unchanged}");

    let (status, moved) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "type": "AAAA", "name": "gw1.damm.damm.example", "content": "2001:db8::7" })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let record = &moved["result"];
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["type"], "AAAA");
    assert_eq!(record["content"], "2001:db8::7");
    assert_eq!(record["name"], "gw1.damm.damm.example");
    assert_eq!(record["proxied"], true);
    assert_eq!(record["ttl"], 1);
    assert_eq!(record["comment"], "damm-fleet=prod;damm-key=k1");
    let (_, listed) = api
        .get(&format!(
            "/zones/{zone}/dns_records?comment=damm-fleet%3Dprod%3Bdamm-key%3Dk1"
        ))
        .await;
    assert_eq!(listed["result"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["result"][0]["content"], "2001:db8::7");
    assert_clean(&sim, PROVIDER);
}
