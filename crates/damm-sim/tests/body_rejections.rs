//! Request bodies that do not parse as what a handler takes, with schema validation off (so
//! the handler's own extractor sees them): each provider refuses them in its own error shape.

use damm_sim::testing::start;
use damm_sim::{Provider, SimConfig};
use reqwest::Method;
use serde_json::Value;

/// One refused body: where it goes, what it is, and the answer it gets.
struct Case {
    provider: Provider,
    method: Method,
    path: &'static str,
    /// Sent as `application/json`; `None` sends no body and no content type.
    body: Option<&'static str>,
    status: u16,
    /// Checks the answer's body: JSON, or a string when it is not JSON.
    check: fn(&Value) -> bool,
}

fn text_starting(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(prefix))
}

const CASES: &[Case] = &[
    Case {
        provider: Provider::Hetzner,
        method: Method::POST,
        path: "/servers",
        body: Some(r#"{"name": 3}"#),
        status: 400,
        check: |b| b["error"]["code"] == "invalid_input" && b["error"]["message"].is_string(),
    },
    Case {
        provider: Provider::DigitalOcean,
        method: Method::POST,
        path: "/droplets",
        body: Some(r#"{"name": 3}"#),
        status: 422,
        check: |b| b["id"] == "unprocessable_entity" && b["request_id"].is_string(),
    },
    Case {
        provider: Provider::DigitalOcean,
        method: Method::POST,
        path: "/tags",
        body: Some("{not json"),
        status: 400,
        check: |b| b["id"] == "bad_request" && b["message"].is_string(),
    },
    Case {
        provider: Provider::Vultr,
        method: Method::POST,
        path: "/instances",
        body: Some(r#"{"region": 3}"#),
        status: 400,
        check: |b| text_starting(&b["error"], "Invalid request body: ") && b["status"] == 400,
    },
    Case {
        provider: Provider::Gce,
        method: Method::POST,
        path: "/projects/p1/zones/europe-west3-a/instances",
        body: Some("{not json"),
        status: 400,
        check: |b| {
            b["error"]["errors"][0]["reason"] == "parseError"
                && text_starting(&b["error"]["message"], "Invalid JSON payload received. ")
        },
    },
    // deleteAccessConfig takes no body: the missing one is not refused, the instance is
    // looked up (and is not there).
    Case {
        provider: Provider::Gce,
        method: Method::POST,
        path: "/projects/p1/zones/europe-west3-a/instances/none/deleteAccessConfig",
        body: None,
        status: 404,
        check: |b| b["error"]["errors"][0]["reason"] == "notFound",
    },
    // Cloudflare's handlers answer axum's own refusal, as text.
    Case {
        provider: Provider::Cloudflare,
        method: Method::POST,
        path: "/zones/fedcba9876543210fedcba9876543210/dns_records",
        body: Some(r#"{"type": 3}"#),
        status: 422,
        check: |b| b.is_string(),
    },
];

#[tokio::test]
async fn unparsable_bodies_are_refused_in_each_providers_shape() {
    let sim = start(SimConfig {
        validate: false,
        ..SimConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    for case in CASES {
        let url = format!("{}{}", sim.url(case.provider), case.path);
        let mut request = http
            .request(case.method.clone(), &url)
            .bearer_auth(sim.token());
        if let Some(body) = case.body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let what = format!("{} {} {}", case.provider, case.method, case.path);
        assert_eq!(status, case.status, "{what}: {body}");
        assert!((case.check)(&body), "{what}: {body}");
    }
}
