//! What the per-provider tests share: a JSON client for one provider's API on the simulator,
//! and the checks every provider's faults and schema get.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use damm_sim::{Dark, Faults, Provider, SimHandle};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A client for one provider's API on the simulator, sending the simulator's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// The provider's base URL, e.g. `http://127.0.0.1:4321/hetzner/v1`.
    pub base: String,
    /// `http://ADDR` of the simulator itself, for its `/_sim/...` admin routes.
    admin: String,
    token: Option<String>,
    /// The `Authorization` scheme the provider takes its token in.
    scheme: &'static str,
}

impl Api {
    /// `provider`'s API on `sim`.
    pub fn new(sim: &SimHandle, provider: Provider) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: sim.url(provider),
            admin: format!("http://{}", sim.addr()),
            token: Some(sim.token().to_owned()),
            scheme: provider.auth_scheme(),
        }
    }

    /// The same API with another token, or none.
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// `path` relative to the base URL; an absolute URL (an href the API handed out) as it
    /// is; `/_sim/...` at the simulator's admin routes.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else if path.starts_with("/_sim/") {
            format!("{}{path}", self.admin)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends `method path` with `body` as JSON: the answer, or the transport's error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("{} {token}", self.scheme));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await
    }

    /// Status, headers and body: JSON, `Null` when empty, a string when not JSON.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        let response = self.send(method, path, body).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, json)
    }

    /// Status and body, as [`Api::call_with_headers`].
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, json) = self.call_with_headers(method, path, body).await;
        (status, json)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    /// `DELETE path` without a body.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// The body of `GET path`, as text.
    pub async fn text(&self, path: &str) -> String {
        self.send(Method::GET, path, None)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Under `Dark::Refuse` the connection drops before any answer.
pub async fn assert_refused(api: &Api, path: &str) {
    let err = api.send(Method::GET, path, None).await.unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err}");
}

/// Under a malformed-JSON fault the body does not parse.
pub async fn assert_malformed(api: &Api, path: &str) {
    let text = api.text(path).await;
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

/// Dropped connections and malformed JSON reach the client as such, and `path` answers 200
/// again once the faults clear.
pub async fn assert_refused_then_malformed(
    sim: &SimHandle,
    provider: Provider,
    api: &Api,
    path: &str,
) {
    sim.set_faults(provider, Faults::dark(Dark::Refuse));
    assert_refused(api, path).await;
    sim.set_faults(
        provider,
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    );
    assert_malformed(api, path).await;
    sim.clear_faults(provider);
    assert_eq!(
        api.get(path).await.0,
        200,
        "{path} after the faults cleared"
    );
}

/// Header `name` holds a Unix time in the future (a rate limit's reset).
pub fn assert_reset_in_future(headers: &HeaderMap, name: &str) {
    let reset: u64 = headers[name].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now, "reset {reset} is in the future of {now}");
}

/// The published document `provider`'s traffic is checked against, when it is not vendored
/// (see `damm_sim::shared_specs_dir`).
fn shared_document(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Vultr => Some("vultr.subset.json"),
        Provider::Tailscale => Some("tailscale.subset.json"),
        _ => None,
    }
}

/// No response drifted from `provider`'s published document, and the document was used:
/// always for a vendored one, whenever it is present for a shared one (a note otherwise).
pub fn assert_clean(sim: &SimHandle, provider: Provider) {
    assert!(sim.drifts().is_empty(), "{:#?}", sim.drifts());
    match shared_document(provider) {
        Some(name) if !damm_sim::shared_specs_dir().join(name).is_file() => eprintln!(
            "note: {} has no {name}; {provider} traffic was not checked against its schema",
            damm_sim::shared_specs_dir().display()
        ),
        _ => assert!(
            sim.schema_checked(provider),
            "{provider}'s document is there but was not used"
        ),
    }
}
