//! The DigitalOcean API as the simulator serves it, over real HTTP on 127.0.0.1.

use std::time::Duration;

use damm_sim::{Dark, Faults, Provider, SimConfig, SimHandle};
use reqwest::Method;
use serde_json::{Value, json};

const BOOT: Duration = Duration::from_millis(200);

async fn sim() -> SimHandle {
    let config = SimConfig {
        boot_delay: BOOT,
        ..SimConfig::default()
    };
    damm_sim::start(config, "127.0.0.1:0".parse().unwrap())
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
            base: sim.url(Provider::DigitalOcean),
            token: sim.token().to_owned(),
        }
    }

    /// Calls `path` (relative to the base URL, or an absolute href the API handed out).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, json)
    }

    async fn create(&self, name: &str, region: &str, tags: &[&str]) -> Value {
        let (status, _, body) = self
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
    let sim = sim().await;
    let api = Api::new(&sim);
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
    let (status, _, first) = api
        .call(
            Method::GET,
            "/droplets?tag_name=damm-fleet%3Aprod&per_page=2",
            None,
        )
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
        let (status, _, body) = api.call(Method::GET, &next, None).await;
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
    let (_, _, got) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(got["droplet"]["status"], "active");
    let (_, _, action) = api.call(Method::GET, href, None).await;
    assert_eq!(action["action"]["status"], "completed");
    assert_eq!(action["action"]["type"], "create");

    let (status, _, off) = api
        .call(
            Method::POST,
            &format!("/droplets/{id}/actions"),
            Some(json!({ "type": "power_off" })),
        )
        .await;
    assert_eq!(status, 201, "{off}");
    assert_eq!(off["action"]["type"], "power_off");
    let (_, _, got) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(got["droplet"]["status"], "off");

    let (status, _, body) = api
        .call(Method::DELETE, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _, body) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert_eq!(
        body["message"],
        "The resource you were accessing could not be found."
    );
    assert!(body["request_id"].is_string());
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn unknown_catalogue_entries_are_unprocessable() {
    let sim = sim().await;
    let api = Api::new(&sim);
    for (region, size, image) in [
        ("mars1", "s-1vcpu-1gb", "debian-12-x64"),
        ("fra1", "s-64vcpu-1tb", "debian-12-x64"),
        ("fra1", "s-1vcpu-1gb", "windows-95"),
    ] {
        let (status, _, body) = api
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
    let (status, _, body) = api
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
    let (status, _, body) = api
        .call(
            Method::POST,
            "/droplets",
            Some(json!({ "name": "x", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["k=v"] })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn reserved_ips_assign_and_unassign() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let a = api.create("a", "fra1", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let b = api.create("b", "fra1", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let far = api.create("far", "nyc3", &[]).await["droplet"]["id"]
        .as_i64()
        .unwrap();

    let (status, _, created) = api
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
    let (status, _, body) = api
        .call(
            Method::POST,
            "/reserved_ips",
            Some(json!({ "droplet_id": a })),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, _, spare) = api
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
    let (status, _, body) = api.call(Method::POST, &path, Some(assign(far))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = api.call(Method::POST, &path, Some(assign(a))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, action) = api.call(Method::POST, &path, Some(assign(b))).await;
    assert_eq!(status, 201, "{action}");
    assert_eq!(action["action"]["type"], "assign_ip");
    assert_eq!(action["action"]["resource_type"], "reserved_ip");
    let (_, _, got) = api
        .call(Method::GET, &format!("/reserved_ips/{spare_ip}"), None)
        .await;
    assert_eq!(got["reserved_ip"]["droplet"]["id"], b);

    let unassign = Some(json!({ "type": "unassign" }));
    let (status, _, _) = api.call(Method::POST, &path, unassign.clone()).await;
    assert_eq!(status, 201);
    let (status, _, body) = api.call(Method::POST, &path, unassign).await;
    assert_eq!(status, 422, "already unassigned: {body}");
    let (_, _, got) = api
        .call(Method::GET, &format!("/reserved_ips/{spare_ip}"), None)
        .await;
    assert_eq!(got["reserved_ip"]["droplet"], Value::Null);

    let (_, _, list) = api
        .call(Method::GET, "/reserved_ips?per_page=1", None)
        .await;
    assert_eq!(list["meta"]["total"], 2);
    assert_eq!(list["reserved_ips"].as_array().unwrap().len(), 1);
    assert!(list["links"]["pages"]["next"].is_string(), "{list}");

    // Deleting the droplet leaves its reserved IP reserved, unassigned.
    let (status, _, _) = api
        .call(Method::DELETE, &format!("/droplets/{a}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, _, got) = api
        .call(Method::GET, &format!("/reserved_ips/{ip}"), None)
        .await;
    assert_eq!(got["reserved_ip"]["droplet"], Value::Null);

    for gone in [&ip, &spare_ip] {
        let (status, _, _) = api
            .call(Method::DELETE, &format!("/reserved_ips/{gone}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, _, body) = api
            .call(Method::GET, &format!("/reserved_ips/{gone}"), None)
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["id"], "not_found");
    }
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn tags_mark_droplets() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let id = api.create("gw", "lon1", &["damm-fleet:prod"]).await["droplet"]["id"]
        .as_i64()
        .unwrap();
    let resources =
        json!({ "resources": [{ "resource_id": id.to_string(), "resource_type": "droplet" }] });

    // Tagging needs the tag to exist.
    let (status, _, body) = api
        .call(
            Method::POST,
            "/tags/damm-draining/resources",
            Some(resources.clone()),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    for _ in 0..2 {
        let (status, _, tag) = api
            .call(
                Method::POST,
                "/tags",
                Some(json!({ "name": "damm-draining" })),
            )
            .await;
        assert_eq!(status, 201, "creating a tag twice is fine: {tag}");
        assert_eq!(tag["tag"]["name"], "damm-draining");
    }
    let (status, _, body) = api
        .call(Method::POST, "/tags", Some(json!({ "name": "k=v" })))
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, _, _) = api
        .call(
            Method::POST,
            "/tags/damm-draining/resources",
            Some(resources.clone()),
        )
        .await;
    assert_eq!(status, 204);
    let (_, _, got) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(
        got["droplet"]["tags"],
        json!(["damm-fleet:prod", "damm-draining"])
    );
    let (_, _, tag) = api.call(Method::GET, "/tags/damm-draining", None).await;
    assert_eq!(tag["tag"]["resources"]["count"], 1);
    let (_, _, list) = api
        .call(Method::GET, "/droplets?tag_name=damm-draining", None)
        .await;
    assert_eq!(list["meta"]["total"], 1);

    let (status, _, _) = api
        .call(
            Method::DELETE,
            "/tags/damm-draining/resources",
            Some(resources),
        )
        .await;
    assert_eq!(status, 204);
    let (_, _, got) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(got["droplet"]["tags"], json!(["damm-fleet:prod"]));
    let (status, _, _) = api
        .call(Method::DELETE, "/tags/damm-fleet:prod", None)
        .await;
    assert_eq!(status, 204);
    let (_, _, got) = api
        .call(Method::GET, &format!("/droplets/{id}"), None)
        .await;
    assert_eq!(got["droplet"]["tags"], json!([]));
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn auth_rate_limits_and_faults_look_like_digitalocean() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let wrong = Api {
        token: "nope".into(),
        ..Api::new(&sim)
    };
    let (status, _, body) = wrong.call(Method::GET, "/droplets", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["id"], "unauthorized");
    assert_eq!(body["message"], "Unable to authenticate you");
    assert!(body["request_id"].is_string());

    let (status, headers, _) = api.call(Method::GET, "/droplets", None).await;
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
    let (status, headers, body) = api.call(Method::GET, "/droplets", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["id"], "too_many_requests");
    assert_eq!(headers["ratelimit-limit"], "5000");
    assert_eq!(headers["ratelimit-remaining"], "0");
    let reset: u64 = headers["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now, "reset {reset} is in the future of {now}");
    assert_eq!(api.call(Method::GET, "/droplets", None).await.0, 429);
    assert_eq!(
        api.call(Method::GET, "/droplets", None).await.0,
        200,
        "the storm is over"
    );

    sim.set_faults(Provider::DigitalOcean, Faults::dark(Dark::Unavailable));
    let (status, _, body) = api.call(Method::GET, "/droplets", None).await;
    assert_eq!(status, 503);
    assert!(body["message"].is_string(), "{body}");
    sim.set_faults(
        Provider::DigitalOcean,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let (status, _, body) = api.call(Method::GET, "/droplets", None).await;
    assert_eq!(status, 500);
    assert!(body["id"].is_string(), "{body}");
    sim.set_faults(Provider::DigitalOcean, Faults::dark(Dark::Refuse));
    let err = api
        .http
        .get(format!("{}/droplets", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err}");
    sim.set_faults(
        Provider::DigitalOcean,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let text = api
        .http
        .get(format!("{}/droplets", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    sim.clear_faults(Provider::DigitalOcean);
    assert_eq!(api.call(Method::GET, "/droplets", None).await.0, 200);
    let (status, _, body) = api.call(Method::GET, "/no/such/route", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}
