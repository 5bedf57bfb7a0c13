//! The Cloudflare API as the simulator serves it, over real HTTP on 127.0.0.1.

use damm_sim::{Provider, SimConfig, SimHandle};
use serde_json::{Value, json};

/// The seeded zone and account (see the simulator's Cloudflare module).
const ZONE_NAME: &str = "damm.example";
const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";

async fn sim() -> SimHandle {
    damm_sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(sim: &SimHandle) -> Self {
        Api {
            http: reqwest::Client::new(),
            base: sim.url(Provider::Cloudflare),
            token: sim.token().to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    async fn zone_id(&self) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/zones?name={ZONE_NAME}"),
                None,
            )
            .await;
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
    let sim = sim().await;
    let api = Api::new(&sim);
    let zone = api.zone_id().await;
    let (status, body) = api
        .call(reqwest::Method::GET, "/zones?name=unknown.example", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"].as_array().unwrap().len(), 0);

    let (status, created) = api
        .call(
            reqwest::Method::POST,
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

    let (status, got) = api
        .call(
            reqwest::Method::GET,
            &format!("/zones/{zone}/dns_records/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["result"]["content"], "192.0.2.10");

    let (status, patched) = api
        .call(
            reqwest::Method::PATCH,
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
            reqwest::Method::PUT,
            &format!("/zones/{zone}/dns_records/{id}"),
            Some(json!({ "type": "AAAA", "name": "gw1.damm", "content": "2001:db8::1", "proxied": false, "ttl": 300 })),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["result"]["type"], "AAAA");
    assert_eq!(put["result"]["name"], "gw1.damm.damm.example");
    assert_eq!(put["result"]["proxied"], false);
    assert!(put["result"].get("comment").is_none(), "{put}");

    let (status, deleted) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/zones/{zone}/dns_records/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["result"]["id"], id.as_str());
    // (A 404 here would be recorded as drift: the document's 4XX schemas for DNS
    // records require `success` to be both true and false, so none are asserted.)
    let (status, gone) = api
        .call(
            reqwest::Method::GET,
            &format!("/zones/{zone}/dns_records?name=gw1.damm.damm.example"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["result"].as_array().unwrap().len(), 0);
    assert_eq!(gone["result_info"]["total_count"], 0);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn records_filter_by_comment_and_name_with_pages() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let zone = api.zone_id().await;
    for i in 0..7 {
        let fleet = if i % 2 == 0 { "prod" } else { "other" };
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                &format!("/zones/{zone}/dns_records"),
                Some(json!({ "type": "A", "name": format!("gw{i}.damm.damm.example"), "content": format!("192.0.2.{}", 20 + i), "proxied": true, "comment": format!("damm-fleet={fleet};damm-key=k{i}") })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, page) = api
        .call(
            reqwest::Method::GET,
            &format!(
                "/zones/{zone}/dns_records?comment.startswith=damm-fleet%3Dprod%3B&per_page=3&page=2"
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["result_info"]["total_count"], 4);
    assert_eq!(page["result_info"]["page"], 2);
    assert_eq!(page["result"].as_array().unwrap().len(), 1);

    let (_, exact) = api
        .call(
            reqwest::Method::GET,
            &format!("/zones/{zone}/dns_records?comment=damm-fleet%3Dother%3Bdamm-key%3Dk3"),
            None,
        )
        .await;
    assert_eq!(exact["result"].as_array().unwrap().len(), 1);
    assert_eq!(exact["result"][0]["name"], "gw3.damm.damm.example");

    let (_, named) = api
        .call(
            reqwest::Method::GET,
            &format!("/zones/{zone}/dns_records?name=gw4.damm.damm.example&type=A"),
            None,
        )
        .await;
    assert_eq!(named["result"].as_array().unwrap().len(), 1);
    assert_eq!(named["result"][0]["content"], "192.0.2.24");
    let (_, none) = api
        .call(
            reqwest::Method::GET,
            &format!("/zones/{zone}/dns_records?name=gw4.damm.damm.example&type=AAAA"),
            None,
        )
        .await;
    assert_eq!(none["result"].as_array().unwrap().len(), 0);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn tunnel_create_configure_token_connect_and_delete() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let base = format!("/accounts/{ACCOUNT_ID}/cfd_tunnel");
    let (status, created) = api
        .call(
            reqwest::Method::POST,
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
            reqwest::Method::PUT,
            &format!("{base}/{id}/configurations"),
            Some(config),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let (_, got) = api
        .call(
            reqwest::Method::GET,
            &format!("{base}/{id}/configurations"),
            None,
        )
        .await;
    assert_eq!(
        got["result"]["config"]["ingress"][0]["service"],
        "http://127.0.0.1:8080"
    );

    let (status, token) = api
        .call(reqwest::Method::GET, &format!("{base}/{id}/token"), None)
        .await;
    assert_eq!(status, 200, "{token}");
    assert!(!token["result"].as_str().unwrap().is_empty());

    let (_, conns) = api
        .call(
            reqwest::Method::GET,
            &format!("{base}/{id}/connections"),
            None,
        )
        .await;
    assert_eq!(conns["result"].as_array().unwrap().len(), 0);
    let connect = reqwest::Client::new()
        .post(format!(
            "http://{}/_sim/cloudflare/tunnels/{id}/connect",
            sim.addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status().as_u16(), 204);
    let (_, conns) = api
        .call(
            reqwest::Method::GET,
            &format!("{base}/{id}/connections"),
            None,
        )
        .await;
    assert_eq!(conns["result"].as_array().unwrap().len(), 1, "{conns}");
    let (_, one) = api
        .call(reqwest::Method::GET, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(one["result"]["status"], "healthy");

    let (_, listed) = api
        .call(
            reqwest::Method::GET,
            &format!("{base}?include_prefix=damm-prod-&is_deleted=false"),
            None,
        )
        .await;
    assert_eq!(listed["result"].as_array().unwrap().len(), 1, "{listed}");

    let (status, deleted) = api
        .call(
            reqwest::Method::DELETE,
            &format!("{base}/{id}?cascade=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert!(deleted["result"]["deleted_at"].is_string());
    let (_, listed) = api
        .call(
            reqwest::Method::GET,
            &format!("{base}?is_deleted=false"),
            None,
        )
        .await;
    assert_eq!(listed["result"].as_array().unwrap().len(), 0);
    let (status, again) = api
        .call(
            reqwest::Method::DELETE,
            &format!("{base}/{id}?cascade=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn wrong_token_gets_the_error_envelope() {
    let sim = sim().await;
    let resp = reqwest::Client::new()
        .get(format!("{}/zones", sim.url(Provider::Cloudflare)))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 10000);
    assert_eq!(body["result"], Value::Null);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}
