//! The Vultr API as the simulator serves it, over real HTTP on 127.0.0.1.
//!
//! Vultr's document states no licence, so it is not vendored: the simulator checks
//! Vultr traffic against `../shared/specs/vultr.subset.json` when it is there, and these
//! tests say so (and print a note when it is not).

mod common;

use std::time::Duration;

use common::{Api, assert_clean, assert_refused};
use damm_sim::testing::{QUICK_BOOT, booting_in};
use damm_sim::{Dark, Faults, Provider};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Vultr;

impl Api {
    async fn create(&self, region: &str, tags: Value) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/instances",
                Some(json!({
                    "region": region, "plan": "vc2-1c-1gb", "os_id": 2136, "label": "damm-k1",
                    "hostname": "damm-k1", "user_data": "I2Nsb3VkLWNvbmZpZwo=", "tags": tags,
                })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["instance"].clone()
    }
}

#[tokio::test]
async fn instances_boot_and_list_by_tag_with_cursors() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let first = api
        .create("fra", json!(["damm-fleet:prod", "damm-key:k1"]))
        .await;
    assert_eq!(first["status"], "pending");
    assert_eq!(first["server_status"], "installingbooting");
    assert_eq!(first["power_status"], "running");
    assert_eq!(first["region"], "fra");
    assert!(first["ram"].is_i64() && first["vcpu_count"].is_i64() && first["os_id"].is_i64());
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let ip = first["main_ip"].as_str().unwrap();
    assert!(ip.starts_with("192.0.2."), "{ip}");
    assert!(
        first["v6_main_ip"]
            .as_str()
            .unwrap()
            .starts_with("2001:db8:"),
        "{first}"
    );
    for i in 2..=7 {
        let fleet = if i % 2 == 0 { "prod" } else { "other" };
        api.create("ams", json!([format!("damm-fleet:{fleet}")]))
            .await;
    }

    // Four instances carry the tag; pages of three: next, then back with prev.
    let (status, page1) = api.get("/instances?tag=damm-fleet%3Aprod&per_page=3").await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["meta"]["total"], 4);
    assert_eq!(page1["instances"].as_array().unwrap().len(), 3);
    assert_eq!(page1["meta"]["links"]["prev"], "");
    let next = page1["meta"]["links"]["next"].as_str().unwrap().to_owned();
    assert!(!next.is_empty());
    let (status, page2) = api
        .get(&format!(
            "/instances?tag=damm-fleet%3Aprod&per_page=3&cursor={next}"
        ))
        .await;
    assert_eq!(status, 200, "{page2}");
    let rest = page2["instances"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(page2["meta"]["links"]["next"], "");
    let prev = page2["meta"]["links"]["prev"].as_str().unwrap().to_owned();
    let (_, back) = api
        .get(&format!(
            "/instances?tag=damm-fleet%3Aprod&per_page=3&cursor={prev}"
        ))
        .await;
    assert_eq!(back["instances"], page1["instances"]);
    let mut seen: Vec<&str> = page1["instances"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest)
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 4, "every tagged instance once");

    let (status, body) = api.get("/instances?cursor=not-a-cursor").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400);
    let (status, _) = api.get("/instances?per_page=501").await;
    assert_eq!(status, 400);

    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, got) = api.get(&format!("/instances/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["instance"]["status"], "active");
    assert_eq!(got["instance"]["server_status"], "ok");

    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(json!({ "tags": ["damm-fleet:prod", "damm-key:k1", "damm-draining"] })),
        )
        .await;
    assert_eq!(status, 202, "{patched}");
    assert_eq!(
        patched["instance"]["tags"],
        json!(["damm-fleet:prod", "damm-key:k1", "damm-draining"])
    );
    let (_, drained) = api.get("/instances?tag=damm-draining").await;
    assert_eq!(drained["meta"]["total"], 1);

    for (action, power) in [
        ("halt", "stopped"),
        ("start", "running"),
        ("reboot", "running"),
    ] {
        let (status, body) = api
            .call(Method::POST, &format!("/instances/{id}/{action}"), None)
            .await;
        assert_eq!(status, 204, "{action}: {body}");
        let (_, got) = api.get(&format!("/instances/{id}")).await;
        assert_eq!(got["instance"]["power_status"], power, "after {action}");
    }

    let (status, body) = api.delete(&format!("/instances/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = api.get(&format!("/instances/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({ "error": "Not found", "status": 404 }));
    let (status, _) = api.delete(&format!("/instances/{id}")).await;
    assert_eq!(status, 404);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn unknown_catalogue_entries_and_bad_user_data_are_refused() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    for (body, what) in [
        (
            json!({ "region": "mars", "plan": "vc2-1c-1gb", "os_id": 2136 }),
            "region",
        ),
        (
            json!({ "region": "fra", "plan": "vc9-huge", "os_id": 2136 }),
            "plan",
        ),
        (
            json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 1 }),
            "os_id",
        ),
        (
            json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 2136, "user_data": "#cloud-config" }),
            "user_data",
        ),
    ] {
        let (status, answer) = api.call(Method::POST, "/instances", Some(body)).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["status"], 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(what), "{answer}");
    }
    if sim.schema_checked(Provider::Vultr) {
        // The document requires `region` and `plan`, and `os_id` is an integer.
        let (status, answer) = api
            .call(
                Method::POST,
                "/instances",
                Some(json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": "2136" })),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("/os_id"),
            "{answer}"
        );
    }
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn reserved_ips_attach_and_detach() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let instance = api.create("fra", json!(["damm-fleet:prod"])).await;
    let iid = instance["id"].as_str().unwrap();
    let (status, created) = api
        .call(
            Method::POST,
            "/reserved-ips",
            Some(json!({ "region": "fra", "ip_type": "v4", "label": "damm-fleet=prod,damm-key=r1,damm-role=frontdoor" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let reserved = &created["reserved_ip"];
    assert_eq!(reserved["instance_id"], "", "unattached: {reserved}");
    assert_eq!(reserved["subnet_size"], 32);
    assert_eq!(reserved["ip_type"], "v4");
    let rid = reserved["id"].as_str().unwrap().to_owned();

    let (status, body) = api
        .call(
            Method::POST,
            &format!("/reserved-ips/{rid}/attach"),
            Some(json!({ "instance_id": iid })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, got) = api.get(&format!("/reserved-ips/{rid}")).await;
    assert_eq!(got["reserved_ip"]["instance_id"], iid);
    let (status, body) = api.delete(&format!("/reserved-ips/{rid}")).await;
    assert_eq!(status, 400, "attached addresses are detached first: {body}");

    // Another region's instance cannot take it.
    let far = api.create("sgp", json!([])).await;
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/reserved-ips/{rid}/attach"),
            Some(json!({ "instance_id": far["id"] })),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = api
        .call(Method::POST, &format!("/reserved-ips/{rid}/detach"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = api
        .call(Method::POST, &format!("/reserved-ips/{rid}/detach"), None)
        .await;
    assert_eq!(status, 400, "not attached any more");

    for _ in 0..3 {
        let (status, _) = api
            .call(
                Method::POST,
                "/reserved-ips",
                Some(json!({ "region": "ams", "ip_type": "v4" })),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, page) = api.get("/reserved-ips?per_page=2").await;
    assert_eq!(page["meta"]["total"], 4);
    assert_eq!(page["reserved_ips"].as_array().unwrap().len(), 2);
    let next = page["meta"]["links"]["next"].as_str().unwrap();
    let (_, page2) = api
        .get(&format!("/reserved-ips?per_page=2&cursor={next}"))
        .await;
    assert_eq!(page2["reserved_ips"].as_array().unwrap().len(), 2);
    assert_eq!(page2["meta"]["links"]["next"], "");

    // Deleting an instance detaches its reserved IPs.
    api.call(
        Method::POST,
        &format!("/reserved-ips/{rid}/attach"),
        Some(json!({ "instance_id": iid })),
    )
    .await;
    api.delete(&format!("/instances/{iid}")).await;
    let (_, got) = api.get(&format!("/reserved-ips/{rid}")).await;
    assert_eq!(got["reserved_ip"]["instance_id"], "");
    let (status, _) = api.delete(&format!("/reserved-ips/{rid}")).await;
    assert_eq!(status, 204);
    let (status, body) = api.delete(&format!("/reserved-ips/{rid}")).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({ "error": "Not found", "status": 404 }));
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn auth_and_faults_look_like_vultr() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let wrong = api.with_token(Some("nope"));
    let (status, body) = wrong.get("/instances").await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    assert!(body["error"].is_string(), "{body}");

    sim.set_faults(
        Provider::Vultr,
        Faults {
            rate_limit_storm: 2,
            ..Faults::default()
        },
    );
    let (status, headers, body) = api.call_with_headers(Method::GET, "/instances", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["status"], 429, "{body}");
    assert!(
        !headers
            .keys()
            .any(|h| h.as_str().starts_with("ratelimit") || h.as_str().starts_with("x-ratelimit")),
        "Vultr sends no rate-limit headers: {headers:?}"
    );
    assert_eq!(api.get("/instances").await.0, 429);
    assert_eq!(api.get("/instances").await.0, 200, "the storm is over");

    sim.set_faults(Provider::Vultr, Faults::dark(Dark::Unavailable));
    let (status, body) = api.get("/instances").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], 503);
    sim.set_faults(Provider::Vultr, Faults::dark(Dark::Refuse));
    assert_refused(&api, "/instances").await;
    sim.clear_faults(Provider::Vultr);
    assert_eq!(api.get("/instances").await.0, 200);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn more_than_thirty_requests_a_second_are_refused() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let calls: Vec<_> = (0..120)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/instances").await })
        })
        .collect();
    let mut limited = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            200 => {}
            429 => {
                assert_eq!(body["status"], 429, "{body}");
                limited += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    // The bucket holds 30 and refills at 30/s: a burst of 120 cannot all pass.
    assert!(limited > 0, "no call was limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("/instances").await.0, 200);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn at_the_instance_limit_creates_are_refused_and_the_rest_works() {
    let sim = booting_in(QUICK_BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let first = api.create("fra", json!(["damm-fleet:prod"])).await;
    let id = first["id"].as_str().unwrap().to_owned();
    sim.set_faults(
        PROVIDER,
        Faults {
            quota_exhausted: true,
            ..Faults::default()
        },
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/instances",
            Some(json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 2136 })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("maximum number of instances"),
        "{body}"
    );
    let (status, page) = api.get("/instances").await;
    assert_eq!(status, 200, "listing works");
    assert_eq!(page["instances"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(api.delete(&format!("/instances/{id}")).await.0, 204);
    sim.clear_faults(PROVIDER);
    api.create("fra", json!([])).await;
    assert_clean(&sim, PROVIDER);
}
