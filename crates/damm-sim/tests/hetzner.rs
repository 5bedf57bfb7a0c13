//! The Hetzner API as the simulator serves it, over real HTTP on 127.0.0.1.

use std::time::Duration;

use damm_sim::{Dark, Faults, Provider, SimConfig, SimHandle};
use serde_json::{Value, json};

async fn sim() -> SimHandle {
    let config = SimConfig {
        boot_delay: Duration::from_millis(200),
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
            base: sim.url(Provider::Hetzner),
            token: sim.token().to_owned(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
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

    async fn create(&self, name: &str, labels: Value) -> Value {
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
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
    let sim = sim().await;
    let api = Api::new(&sim);
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
    let (status, _, page) = api
        .call(
            reqwest::Method::GET,
            "/servers?label_selector=damm-fleet%3Dprod&per_page=2&page=2",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["pagination"]["total_entries"], 4);
    assert_eq!(page["meta"]["pagination"]["last_page"], 2);
    assert_eq!(page["meta"]["pagination"]["next_page"], Value::Null);
    assert_eq!(page["servers"].as_array().unwrap().len(), 2);

    tokio::time::sleep(Duration::from_millis(250)).await;
    let id = created["server"]["id"].as_i64().unwrap();
    let (_, _, got) = api
        .call(reqwest::Method::GET, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(got["server"]["status"], "running");
    let action = created["action"]["id"].as_i64().unwrap();
    let (_, _, got) = api
        .call(reqwest::Method::GET, &format!("/actions/{action}"), None)
        .await;
    assert_eq!(got["action"]["status"], "success");

    let (status, _, _) = api
        .call(reqwest::Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = api
        .call(reqwest::Method::GET, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn addresses_assign_and_unassign() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let server = api.create("gw", json!({})).await;
    let sid = server["server"]["id"].as_i64().unwrap();
    let (status, _, fip) = api
        .call(reqwest::Method::POST, "/floating_ips", Some(json!({ "type": "ipv4", "home_location": "fsn1", "labels": { "damm-fleet": "prod" } })))
        .await;
    assert_eq!(status, 201, "{fip}");
    let fid = fip["floating_ip"]["id"].as_i64().unwrap();
    let (status, _, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/floating_ips/{fid}/actions/assign"),
            Some(json!({ "server": sid })),
        )
        .await;
    assert_eq!(status, 201);
    let (_, _, got) = api
        .call(reqwest::Method::GET, &format!("/servers/{sid}"), None)
        .await;
    assert_eq!(got["server"]["public_net"]["floating_ips"], json!([fid]));
    let (status, _, pip) = api
        .call(reqwest::Method::POST, "/primary_ips", Some(json!({ "name": "door", "type": "ipv4", "assignee_type": "server", "location": "fsn1", "labels": { "damm-fleet": "prod" } })))
        .await;
    assert_eq!(status, 201, "{pip}");
    let (_, _, list) = api
        .call(
            reqwest::Method::GET,
            "/primary_ips?label_selector=damm-fleet%3Dprod",
            None,
        )
        .await;
    assert_eq!(list["primary_ips"].as_array().unwrap().len(), 1);
    let (status, _, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/floating_ips/{fid}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(sim.drifts().is_empty(), "{:?}", sim.drifts());
}

#[tokio::test]
async fn auth_rate_limits_and_faults_look_like_hetzner() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let wrong = Api {
        token: "nope".into(),
        ..Api::new(&sim)
    };
    let (status, _, body) = wrong.call(reqwest::Method::GET, "/servers", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");

    let (status, headers, _) = api.call(reqwest::Method::GET, "/servers", None).await;
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
    let (status, headers, body) = api.call(reqwest::Method::GET, "/servers", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
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
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        429
    );
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        200,
        "the storm is over"
    );

    sim.set_faults(Provider::Hetzner, Faults::dark(Dark::Unavailable));
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        503
    );
    sim.set_faults(Provider::Hetzner, Faults::dark(Dark::Refuse));
    let err = api
        .http
        .get(format!("{}/servers", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err}");
    sim.set_faults(
        Provider::Hetzner,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    let text = api
        .http
        .get(format!("{}/servers", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    sim.clear_faults(Provider::Hetzner);
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        200
    );
}

#[tokio::test]
async fn requests_that_break_the_schema_are_refused() {
    let sim = sim().await;
    let api = Api::new(&sim);
    let (status, _, body) = api
        .call(
            reqwest::Method::POST,
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
    let sim = sim().await;
    let api = Api::new(&sim);
    let admin = format!("http://{}/_sim/faults/hetzner", sim.addr());
    let resp = api
        .http
        .put(&admin)
        .json(&json!({ "dark": "unavailable" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        503
    );
    api.http.delete(&admin).send().await.unwrap();
    assert_eq!(
        api.call(reqwest::Method::GET, "/servers", None).await.0,
        200
    );
    let resp = api
        .http
        .put(format!("http://{}/_sim/faults/nowhere", sim.addr()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_response_that_drifts_from_the_published_schema_is_caught() {
    let sim = sim().await;
    let api = Api::new(&sim);
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
    let (status, _, body) = api.call(reqwest::Method::GET, "/servers", None).await;
    assert_eq!(status, 500, "{body}");
    let drifts = sim.drifts();
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert!(drifts[0].contains("GET /servers"), "{drifts:?}");
    assert!(
        drifts[0].contains("required property is missing"),
        "{drifts:?}"
    );
}
