//! The Gcore CDN API as the simulator serves it, over real HTTP on 127.0.0.1.

mod common;

use common::{Api, assert_clean, assert_refused_then_malformed};
use damm_sim::testing::{QUICK_BOOT, booting_in, start};
use damm_sim::{Dark, Faults, Provider, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Gcore;
/// The seeded wildcard certificate for `*.damm.damm.example`.
const CERTIFICATE: i64 = 4101;
const MARKER: &str = "damm-fleet=prod;damm-key=k1";

impl Api {
    /// Creates an origin group pulling from `source`; its id.
    async fn group(&self, name: &str, source: &str) -> i64 {
        let (status, body) = self
            .call(
                Method::POST,
                "/cdn/origin_groups",
                Some(json!({ "name": name, "sources": [{ "source": source, "enabled": true, "backup": false }] })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Creates a fronting resource for `cname` on group `group`; its body.
    async fn resource(&self, cname: &str, group: i64) -> (u16, Value) {
        self.call(
            Method::POST,
            "/cdn/resources",
            Some(json!({
                "cname": cname,
                "originGroup": group,
                "originProtocol": "HTTP",
                "description": MARKER,
                "active": true,
                "sslEnabled": true,
                "sslData": CERTIFICATE,
                "options": { "websockets": { "enabled": true, "value": true } },
            })),
        )
        .await
    }
}

/// Gcore's general error shape.
fn general_error(body: &Value, class: &str) {
    assert_eq!(body["exception_class"], class, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        body["request_id"].as_str().map(str::len),
        Some(32),
        "{body}"
    );
}

#[tokio::test]
async fn a_front_lives_through_create_repoint_deactivate_and_delete() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let group = api.group(MARKER, "192.0.2.10:80").await;
    let (status, created) = api.resource("w1.damm.damm.example", group).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["cname"], "w1.damm.damm.example");
    assert_eq!(created["status"], "processed");
    assert_eq!(created["description"], MARKER);
    assert_eq!(created["originGroup"], group);
    assert_eq!(created["originGroup_name"], MARKER);
    assert_eq!(created["client"], 170);
    assert_eq!(created["options"]["websockets"]["value"], true);
    assert_eq!(created["sslData"], CERTIFICATE);

    // Propagated after the boot delay.
    tokio::time::sleep(QUICK_BOOT * 2).await;
    let (status, got) = api.get(&format!("/cdn/resources/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], "active");
    let (_, used) = api.get(&format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(used["has_related_resources"], true, "{used}");

    // Repoint: the group's source moves, the resource stays.
    let (status, moved) = api
        .call(
            Method::PATCH,
            &format!("/cdn/origin_groups/{group}"),
            Some(json!({ "name": MARKER, "sources": [{ "source": "198.51.100.7:80", "enabled": true, "backup": false }] })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["sources"][0]["source"], "198.51.100.7:80");
    let (_, found) = api
        .get("/cdn/origin_groups?name=damm-fleet%3Dprod%3Bdamm-key%3Dk1")
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");

    // Deletion needs deactivation first.
    let (status, refused) = api.delete(&format!("/cdn/resources/{id}")).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["errors"][0].as_str().unwrap().contains("active"));
    let (status, off) = api
        .call(
            Method::PATCH,
            &format!("/cdn/resources/{id}"),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["active"], false);
    assert_eq!(off["description"], MARKER, "a PATCH keeps what it omits");
    let (status, gone) = api.delete(&format!("/cdn/resources/{id}")).await;
    assert_eq!((status, gone), (204, Value::Null));

    // A tombstone stays listed; `deleted=false` leaves it out; the CNAME is free again.
    let (_, all) = api.get("/cdn/resources").await;
    assert_eq!(all[0]["deleted"], true, "{all}");
    assert_eq!(all[0]["status"], "deleted");
    let (_, live) = api.get("/cdn/resources?deleted=false").await;
    assert_eq!(live, json!([]));
    let (status, missing) = api.get(&format!("/cdn/resources/{id}")).await;
    assert_eq!(status, 404, "{missing}");
    general_error(&missing, "NotFoundError");
    let (status, body) = api.delete(&format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(status, 204, "{body}");
    let group = api.group(MARKER, "192.0.2.10:80").await;
    let (status, again) = api.resource("w1.damm.damm.example", group).await;
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["id"], id);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn refusals_come_in_gcore_shapes_and_change_nothing() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let group = api.group(MARKER, "192.0.2.10").await;
    let (status, _) = api.resource("w1.damm.damm.example", group).await;
    assert_eq!(status, 201);

    let (status, taken) = api.resource("w1.damm.damm.example", group).await;
    assert_eq!(status, 400, "{taken}");
    assert!(
        taken["errors"]["cname"][0]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let (status, in_use) = api.delete(&format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(status, 400, "{in_use}");
    assert!(in_use["name"][0].is_string());
    let (status, named) = api
        .call(
            Method::POST,
            "/cdn/origin_groups",
            Some(json!({ "name": MARKER, "sources": [{ "source": "192.0.2.11" }] })),
        )
        .await;
    assert_eq!(status, 400, "{named}");
    assert!(named["errors"]["name"][0].is_string());

    for (source, words) in [
        ("[2001:db8::1]:80", "IPv4"),
        ("10.1.2.3:80", "private"),
        ("100.64.0.1", "cannot be used"),
        ("192.0.2.10:70000", "port"),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/cdn/origin_groups",
                Some(json!({ "name": format!("g-{source}"), "sources": [{ "source": source }] })),
            )
            .await;
        assert_eq!(status, 400, "{source}: {body}");
        let message = body["errors"]["sources"][source]["source"][0]
            .as_str()
            .unwrap();
        assert!(message.contains(words), "{source}: {message}");
    }

    let (status, cert) = api
        .call(
            Method::POST,
            "/cdn/resources",
            Some(json!({ "cname": "w2.damm.damm.example", "originGroup": group, "sslEnabled": true, "sslData": 999 })),
        )
        .await;
    assert_eq!(status, 400, "{cert}");
    assert!(cert["errors"]["sslData"][0].is_string());
    let (status, slow) = api
        .call(
            Method::POST,
            "/cdn/resources",
            Some(
                json!({ "cname": "w2.damm.damm.example", "originGroup": group, "options": {
                "websockets": { "enabled": true, "value": true },
                "proxy_read_timeout": { "enabled": true, "value": "25s" },
            } }),
            ),
        )
        .await;
    assert_eq!(status, 400, "{slow}");
    assert!(slow["errors"]["options"]["proxy_read_timeout"][0].is_string());
    let (status, both) = api
        .call(
            Method::POST,
            "/cdn/resources",
            Some(json!({ "cname": "w2.damm.damm.example", "originGroup": group, "origin": "192.0.2.12" })),
        )
        .await;
    assert_eq!(status, 400, "{both}");
    let (status, unknown) = api.get("/cdn/origin_groups/4242").await;
    assert_eq!(status, 404);
    general_error(&unknown, "NotFoundError");

    let (_, live) = api.get("/cdn/resources?deleted=false").await;
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
    let (_, groups) = api.get("/cdn/origin_groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_clean(&sim, PROVIDER);
}

/// The simulator checks requests against `specs/gcore.json`: a body the document does not
/// allow is refused with Gcore's field error, naming the field, before anything changes.
#[tokio::test]
async fn requests_the_document_does_not_allow_are_refused() {
    let sim = start(SimConfig::default()).await;
    assert!(sim.schema_checked(PROVIDER));
    let api = Api::new(&sim, PROVIDER);
    let group = api.group(MARKER, "192.0.2.10").await;
    for (body, field) in [
        // `cname` is required.
        (json!({ "originGroup": group }), "cname"),
        // `originProtocol` is one of HTTP, HTTPS, MATCH.
        (
            json!({ "cname": "w3.damm.damm.example", "originGroup": group, "originProtocol": "FTP" }),
            "originProtocol",
        ),
        // `active` is a boolean.
        (
            json!({ "cname": "w3.damm.damm.example", "originGroup": group, "active": "yes" }),
            "active",
        ),
        // An option toggle needs both `enabled` and `value`.
        (
            json!({ "cname": "w3.damm.damm.example", "originGroup": group, "options": { "websockets": { "enabled": true } } }),
            "options",
        ),
    ] {
        let (status, refused) = api
            .call(Method::POST, "/cdn/resources", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {refused}");
        let message = refused["errors"][field][0].as_str().unwrap_or_default();
        assert!(message.contains("does not match"), "{body}: {refused}");
    }
    // An origin group change must name the group; a create must give sources.
    let (status, refused) = api
        .call(
            Method::PATCH,
            &format!("/cdn/origin_groups/{group}"),
            Some(json!({ "sources": [{ "source": "192.0.2.99" }] })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["errors"]["name"][0].is_string(), "{refused}");
    let (status, refused) = api
        .call(
            Method::POST,
            "/cdn/origin_groups",
            Some(json!({ "name": "no-sources" })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["errors"]["sources"][0].is_string(), "{refused}");
    // Not JSON at all: the parse error's own shape.
    let response = reqwest::Client::new()
        .post(format!("{}/cdn/resources", sim.url(PROVIDER)))
        .header("authorization", format!("APIKey {}", sim.token()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );

    let (_, live) = api.get("/cdn/resources").await;
    assert_eq!(live, json!([]));
    let (_, one) = api.get(&format!("/cdn/origin_groups/{group}")).await;
    assert_eq!(one["sources"][0]["source"], "192.0.2.10");
    assert_clean(&sim, PROVIDER);
}

/// A response that drifts from the document is caught: the paged listing loses `count`.
#[tokio::test]
async fn a_drifting_answer_is_caught() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    api.group(MARKER, "192.0.2.10").await;
    sim.set_faults(
        PROVIDER,
        Faults {
            drift: true,
            ..Faults::default()
        },
    );
    let (status, body) = api.get("/cdn/origin_groups?limit=10").await;
    assert_eq!(status, 500, "{body}");
    general_error(&body, "HTTPError");
    assert_eq!(sim.drifts().len(), 1, "{:?}", sim.drifts());
    assert!(
        sim.drifts()[0].contains("GET /cdn/origin_groups"),
        "{:?}",
        sim.drifts()
    );
}

#[tokio::test]
async fn listings_page_by_limit_and_offset() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    for i in 0..5 {
        api.group(&format!("g{i}"), &format!("192.0.2.{}", 20 + i))
            .await;
    }
    let (status, first) = api.get("/cdn/origin_groups?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["count"], 5);
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    assert!(next.contains("/gcore/cdn/origin_groups?"), "{next}");
    assert!(next.contains("offset=2"), "{next}");
    let (_, last) = api.get("/cdn/origin_groups?limit=2&offset=4").await;
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);
    assert!(last["previous"].as_str().unwrap().contains("offset=2"));
    let (_, filtered) = api
        .get("/cdn/origin_groups?has_related_resources=false&limit=10")
        .await;
    assert_eq!(filtered["count"], 5);

    sim.set_faults(
        PROVIDER,
        Faults {
            missing_page: true,
            ..Faults::default()
        },
    );
    let (_, lost) = api.get("/cdn/origin_groups?limit=2&offset=2").await;
    assert_eq!(lost["count"], 5, "the count still counts every group");
    assert_eq!(lost["results"], json!([]));
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn tokens_faults_and_limits_answer_in_gcore_shapes() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim, PROVIDER);
    let (status, body) = api.with_token(Some("wrong")).get("/cdn/resources").await;
    assert_eq!(status, 401, "{body}");
    general_error(&body, "token_not_valid");
    // The right token under the wrong scheme is refused too.
    let response = reqwest::Client::new()
        .get(format!("{}/cdn/resources", sim.url(PROVIDER)))
        .bearer_auth(sim.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    sim.set_faults(PROVIDER, Faults::dark(Dark::Unavailable));
    let (status, body) = api.get("/cdn/resources").await;
    assert_eq!(status, 503, "{body}");
    general_error(&body, "HTTPError");
    sim.set_faults(
        PROVIDER,
        Faults {
            rate_limit_storm: 1,
            ..Faults::default()
        },
    );
    let (status, headers, body) = api
        .call_with_headers(Method::GET, "/cdn/resources", None)
        .await;
    assert_eq!(status, 429, "{body}");
    general_error(&body, "HTTPError");
    assert!(headers.contains_key("retry-after"));
    sim.set_faults(
        PROVIDER,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let (status, body) = api.get("/cdn/resources").await;
    assert_eq!(status, 500, "{body}");
    general_error(&body, "HTTPError");
    sim.clear_faults(PROVIDER);
    api.group(MARKER, "192.0.2.10").await;
    assert_refused_then_malformed(&sim, PROVIDER, &api, "/cdn/origin_groups").await;
    assert_clean(&sim, PROVIDER);
}
