//! The DigitalOcean API as the simulator serves it, over real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Api, assert_clean, assert_refused_then_malformed, assert_reset_in_future};
use damm_sim::testing::{QUICK_BOOT, booting_in};
use damm_sim::{Dark, Faults, Provider};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::DigitalOcean;
const BOOT: Duration = QUICK_BOOT;

impl Api {
    async fn create(&self, name: &str, region: &str, tags: &[&str]) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/droplets",
                Some(json!({
                    "name": name, "region": region, "size": "s-1vcpu-1gb",
                    "image": "debian-12-x64", "ipv6": true, "tags": tags,
                    "user_data": "#cloud-config\n",
                })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }
}

fn public_v4(droplet: &Value) -> String {
    droplet["networks"]["v4"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "public")
        .unwrap()["ip_address"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn droplets_boot_list_by_tag_and_page() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let created = api.create("gw-1", "fra1", &["damm-fleet:prod"]).await;
    let droplet = &created["droplet"];
    assert_eq!(droplet["status"], "new");
    assert_eq!(droplet["tags"], json!(["damm-fleet:prod"]));
    assert!(public_v4(droplet).starts_with("192.0.2."), "{droplet}");
    let v6 = droplet["networks"]["v6"][0]["ip_address"].as_str().unwrap();
    assert!(v6.starts_with("2001:db8:"), "{v6}");
    let link = &created["links"]["actions"][0];
    assert_eq!(link["rel"], "create");
    let href = link["href"].as_str().unwrap();
    assert!(href.starts_with(&api.base), "{href} is absolute");

    for i in 2..=7 {
        let tag = if i % 3 == 0 {
            "damm-fleet:other"
        } else {
            "damm-fleet:prod"
        };
        api.create(&format!("gw-{i}"), "ams3", &[tag]).await;
    }
    // Five droplets carry the prod tag; walk them two at a time through `links.pages.next`.
    let (status, first) = api
        .get("/droplets?tag_name=damm-fleet%3Aprod&per_page=2")
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["meta"]["total"], 5);
    assert!(first["links"]["pages"].get("prev").is_none(), "{first}");
    let mut seen: Vec<i64> = Vec::new();
    let mut page = first;
    let mut pages = 1;
    loop {
        for d in page["droplets"].as_array().unwrap() {
            assert!(
                d["tags"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("damm-fleet:prod"))
            );
            seen.push(d["id"].as_i64().unwrap());
        }
        let Some(next) = page["links"]["pages"]["next"].as_str().map(str::to_owned) else {
            break;
        };
        assert!(next.starts_with("http://127.0.0.1:"), "{next}");
        assert!(next.contains("tag_name=damm-fleet%3Aprod"), "{next}");
        let (status, body) = api.get(&next).await;
        assert_eq!(status, 200, "{body}");
        page = body;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert!(page["links"]["pages"]["prev"].as_str().is_some());
    assert!(page["links"]["pages"]["first"].as_str().is_some());

    tokio::time::sleep(BOOT + Duration::from_millis(100)).await;
    let id = droplet["id"].as_i64().unwrap();
    let (_, got) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(got["droplet"]["status"], "active");
    let (_, action) = api.get(href).await;
    assert_eq!(action["action"]["status"], "completed");
    assert_eq!(action["action"]["type"], "create");

    let (status, off) = api
        .call(
            Method::POST,
            &format!("/droplets/{id}/actions"),
            Some(json!({ "type": "power_off" })),
        )
        .await;
    assert_eq!(status, 201, "{off}");
    assert_eq!(off["action"]["type"], "power_off");
    let (_, got) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(got["droplet"]["status"], "off");

    let (status, body) = api.delete(&format!("/droplets/{id}")).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert_eq!(
        body["message"],
        "The resource you were accessing could not be found."
    );
    assert!(body["request_id"].is_string());
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn unknown_catalogue_entries_are_unprocessable() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    for (region, size, image) in [
        ("mars1", "s-1vcpu-1gb", "debian-12-x64"),
        ("fra1", "s-64vcpu-1tb", "debian-12-x64"),
        ("fra1", "s-1vcpu-1gb", "windows-95"),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/droplets",
                Some(json!({ "name": "x", "region": region, "size": size, "image": image })),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["id"], "unprocessable_entity");
    }
    // The document's own checks: a name with characters DigitalOcean refuses.
    let (status, body) = api
        .call(
            Method::POST,
            "/droplets",
            Some(json!({ "name": "bad_name!", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("/name"),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/droplets",
            Some(json!({ "name": "x", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["k=v"] })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn reserved_ips_assign_and_unassign() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let a = api.create("a", "fra1", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let b = api.create("b", "fra1", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let far = api.create("far", "nyc3", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();

    let (status, created) = api
        .call(
            Method::POST,
            "/reserved_ips",
            Some(json!({ "droplet_id": a })),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let ip = created["reserved_ip"]["ip"].as_str().unwrap().to_owned();
    assert_eq!(created["reserved_ip"]["droplet"]["id"], a);
    assert_eq!(created["reserved_ip"]["region"]["slug"], "fra1");
    assert_eq!(created["links"]["actions"][0]["rel"], "assign_ip");
    // One reserved IP per droplet.
    let (status, body) = api
        .call(
            Method::POST,
            "/reserved_ips",
            Some(json!({ "droplet_id": a })),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, spare) = api
        .call(
            Method::POST,
            "/reserved_ips",
            Some(json!({ "region": "fra1" })),
        )
        .await;
    assert_eq!(status, 202, "{spare}");
    assert_eq!(spare["reserved_ip"]["droplet"], Value::Null);
    let spare_ip = spare["reserved_ip"]["ip"].as_str().unwrap().to_owned();

    // Assign the spare to b; not to a droplet in another region, nor to a (taken).
    let assign = |droplet: i64| json!({ "type": "assign", "droplet_id": droplet });
    let path = format!("/reserved_ips/{spare_ip}/actions");
    let (status, body) = api.call(Method::POST, &path, Some(assign(far))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = api.call(Method::POST, &path, Some(assign(a))).await;
    assert_eq!(status, 422, "{body}");
    let (status, action) = api.call(Method::POST, &path, Some(assign(b))).await;
    assert_eq!(status, 201, "{action}");
    assert_eq!(action["action"]["type"], "assign_ip");
    assert_eq!(action["action"]["resource_type"], "reserved_ip");
    let (_, got) = api.get(&format!("/reserved_ips/{spare_ip}")).await;
    assert_eq!(got["reserved_ip"]["droplet"]["id"], b);

    let unassign = Some(json!({ "type": "unassign" }));
    let (status, _) = api.call(Method::POST, &path, unassign.clone()).await;
    assert_eq!(status, 201);
    let (status, body) = api.call(Method::POST, &path, unassign).await;
    assert_eq!(status, 422, "already unassigned: {body}");
    let (_, got) = api.get(&format!("/reserved_ips/{spare_ip}")).await;
    assert_eq!(got["reserved_ip"]["droplet"], Value::Null);

    let (_, list) = api.get("/reserved_ips?per_page=1").await;
    assert_eq!(list["meta"]["total"], 2);
    assert_eq!(list["reserved_ips"].as_array().unwrap().len(), 1);
    assert!(list["links"]["pages"]["next"].is_string(), "{list}");

    // Deleting the droplet leaves its reserved IP reserved, unassigned.
    let (status, _) = api.delete(&format!("/droplets/{a}")).await;
    assert_eq!(status, 204);
    let (_, got) = api.get(&format!("/reserved_ips/{ip}")).await;
    assert_eq!(got["reserved_ip"]["droplet"], Value::Null);

    for gone in [&ip, &spare_ip] {
        let (status, _) = api.delete(&format!("/reserved_ips/{gone}")).await;
        assert_eq!(status, 204);
        let (status, body) = api.get(&format!("/reserved_ips/{gone}")).await;
        assert_eq!(status, 404);
        assert_eq!(body["id"], "not_found");
    }
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn tags_mark_droplets() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let id = api.create("gw", "lon1", &["damm-fleet:prod"]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let resources =
        json!({ "resources": [{ "resource_id": id.to_string(), "resource_type": "droplet" }] });

    // Tagging needs the tag to exist.
    let (status, body) = api
        .call(
            Method::POST,
            "/tags/damm-draining/resources",
            Some(resources.clone()),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    for _ in 0..2 {
        let (status, tag) = api
            .call(
                Method::POST,
                "/tags",
                Some(json!({ "name": "damm-draining" })),
            )
            .await;
        assert_eq!(status, 201, "creating a tag twice is fine: {tag}");
        assert_eq!(tag["tag"]["name"], "damm-draining");
    }
    let (status, body) = api
        .call(Method::POST, "/tags", Some(json!({ "name": "k=v" })))
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, _) = api
        .call(
            Method::POST,
            "/tags/damm-draining/resources",
            Some(resources.clone()),
        )
        .await;
    assert_eq!(status, 204);
    let (_, got) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(
        got["droplet"]["tags"],
        json!(["damm-fleet:prod", "damm-draining"])
    );
    let (_, tag) = api.get("/tags/damm-draining").await;
    assert_eq!(tag["tag"]["resources"]["count"], 1);
    let (_, list) = api.get("/droplets?tag_name=damm-draining").await;
    assert_eq!(list["meta"]["total"], 1);

    let (status, _) = api
        .call(
            Method::DELETE,
            "/tags/damm-draining/resources",
            Some(resources),
        )
        .await;
    assert_eq!(status, 204);
    let (_, got) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(got["droplet"]["tags"], json!(["damm-fleet:prod"]));
    let (status, _) = api.delete("/tags/damm-fleet:prod").await;
    assert_eq!(status, 204);
    let (_, got) = api.get(&format!("/droplets/{id}")).await;
    assert_eq!(got["droplet"]["tags"], json!([]));
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn auth_rate_limits_and_faults_look_like_digitalocean() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let wrong = api.with_token(Some("nope"));
    let (status, body) = wrong.get("/droplets").await;
    assert_eq!(status, 401);
    assert_eq!(body["id"], "unauthorized");
    assert_eq!(body["message"], "Unable to authenticate you");
    assert!(body["request_id"].is_string());

    let (status, headers, _) = api.call_with_headers(Method::GET, "/droplets", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ratelimit-limit"], "5000");
    let remaining: u64 = headers["ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 5000, "{remaining}");
    assert!(headers.contains_key("ratelimit-reset"));

    sim.set_faults(
        Provider::DigitalOcean,
        Faults {
            rate_limit_storm: 2,
            ..Faults::default()
        },
    );
    let (status, headers, body) = api.call_with_headers(Method::GET, "/droplets", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["id"], "too_many_requests");
    assert_eq!(headers["ratelimit-limit"], "5000");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_reset_in_future(&headers, "ratelimit-reset");
    assert_eq!(api.get("/droplets").await.0, 429);
    assert_eq!(api.get("/droplets").await.0, 200, "the storm is over");

    sim.set_faults(Provider::DigitalOcean, Faults::dark(Dark::Unavailable));
    let (status, body) = api.get("/droplets").await;
    assert_eq!(status, 503);
    assert!(body["message"].is_string(), "{body}");
    sim.set_faults(
        Provider::DigitalOcean,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let (status, body) = api.get("/droplets").await;
    assert_eq!(status, 500);
    assert!(body["id"].is_string(), "{body}");
    assert_refused_then_malformed(&sim, PROVIDER, &api, "/droplets").await;
    let (status, body) = api.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn at_the_droplet_limit_creates_are_refused_and_the_rest_works() {
    let sim = booting_in(BOOT).await;
    let api = Api::new(&sim, PROVIDER);
    let created = api.create("gw-1", "fra1", &["damm-fleet:prod"]).await;
    let id = created["droplet"]["id"].as_i64().unwrap();
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
            "/droplets",
            Some(json!({ "name": "gw-2", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["id"], "unprocessable_entity");
    assert!(
        body["message"].as_str().unwrap().contains("droplet limit"),
        "{body}"
    );
    let (status, page) = api.get("/droplets").await;
    assert_eq!(status, 200, "listing works");
    assert_eq!(page["droplets"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(api.delete(&format!("/droplets/{id}")).await.0, 204);
    sim.clear_faults(PROVIDER);
    api.create("gw-2", "fra1", &[]).await;
    assert_clean(&sim, PROVIDER);
}
