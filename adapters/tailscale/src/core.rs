//! The API client (a small typed reqwest client over Tailscale API v2) and the one place
//! API failures become [`Error`]s: [`parse_error`].
//!
//! Every call goes through the shared [`RetryPolicy`] under a client-side limit (Tailscale
//! documents none; 20 calls per second keeps a fleet polite), with a timeout per request.
//! Creates (auth keys) are never retried blindly; reads and deletes are. Probes make one
//! attempt: the orchestrator probes again next tick.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use damm_provider::retry::{RateLimit, RetryPolicy};
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, Result, SecretString};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

// ----- wire types: the parts of Tailscale's JSON the adapter reads -----

/// An auth key. `secret` is only present in the answer to a create.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Key {
    pub(crate) id: String,
    /// The secret; `SecretString` keeps it out of Debug output.
    #[serde(default, rename = "key")]
    pub(crate) secret: Option<SecretString>,
    #[serde(default)]
    pub(crate) expires: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) revoked: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) invalid: bool,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) capabilities: Option<KeyCapabilities>,
}

impl Key {
    /// The tags devices registered with this key get.
    pub(crate) fn tags(&self) -> &[String] {
        self.capabilities
            .as_ref()
            .map(|c| c.devices.create.tags.as_slice())
            .unwrap_or_default()
    }

    /// Whether a gateway could still join with it.
    pub(crate) fn usable(&self, now: DateTime<Utc>) -> bool {
        !self.invalid && self.revoked.is_none() && self.expires.is_none_or(|e| e > now)
    }
}

/// `capabilities` of an auth key.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct KeyCapabilities {
    #[serde(default)]
    pub(crate) devices: DeviceCapabilities,
}

/// `capabilities.devices`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DeviceCapabilities {
    #[serde(default)]
    pub(crate) create: CreateCapabilities,
}

/// `capabilities.devices.create`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CreateCapabilities {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) tags: Vec<String>,
}

/// A device (node) of the tailnet.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Device {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) hostname: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) addresses: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) connected_to_control: Option<bool>,
}

impl Device {
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The device's Tailscale IPv4 (100.64.0.0/10), typed.
    pub(crate) fn ipv4(&self) -> Option<std::net::IpAddr> {
        self.addresses
            .iter()
            .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .next()
            .map(std::net::IpAddr::V4)
    }
}

#[derive(Debug, Deserialize)]
struct DeviceList {
    #[serde(default, deserialize_with = "null_as_empty")]
    devices: Vec<Device>,
}

#[derive(Debug, Deserialize)]
struct KeyList {
    #[serde(default, deserialize_with = "null_as_empty")]
    keys: Vec<Key>,
}

/// Tailscale's error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: Option<String>,
}

fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

// ----- the client -----

/// A typed client for the endpoints the adapter uses.
#[derive(Debug)]
pub(crate) struct Client {
    provider: String,
    base: String,
    tailnet: String,
    token: SecretString,
    http: reqwest::Client,
    limits: [RateLimit; 1],
    retry: RetryPolicy,
    once: RetryPolicy,
    timeout: Duration,
}

impl Client {
    /// A client for `base` (up to and including `/api/v2`) acting as `provider`.
    pub(crate) fn new(
        provider: &str,
        base: &str,
        tailnet: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            // Never follow a redirect with the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "damm-adapter-tailscale/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, provider, Operation::Configure)
                    .with_message("cannot build the HTTP client")
                    .with_source(e)
            })?;
        Ok(Client {
            provider: provider.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            tailnet: tailnet.to_owned(),
            token,
            http,
            limits: [RateLimit::per_second(20)],
            retry: RetryPolicy::default(),
            once: RetryPolicy::none(),
            timeout,
        })
    }

    fn policy(&self, op: Operation) -> &RetryPolicy {
        match op {
            Operation::ProbeHealth | Operation::GetMetrics => &self.once,
            _ => &self.retry,
        }
    }

    /// One call under the rate limit and the retry policy; the body as JSON, or
    /// `Value::Null` when `json` is false or the body is empty.
    async fn call(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value> {
        let expect_json = method == Method::GET || method == Method::POST;
        self.policy(op)
            .run(&self.limits, idempotent, || {
                let method = method.clone();
                async move {
                    let bytes = self.once(op, method.clone(), path, body).await?;
                    if !expect_json || bytes.is_empty() && method != Method::GET {
                        return Ok(Value::Null);
                    }
                    serde_json::from_slice(&bytes).map_err(|e| {
                        Error::new(ErrorKind::Unexpected, &self.provider, op)
                            .with_message(format!("the answer to {method} {path} is not JSON"))
                            .with_source(e)
                            .set_temporary(true)
                    })
                }
            })
            .await
    }

    /// Decodes `value` into `T`; a shape the adapter does not expect is `Unexpected`.
    fn decode<T: DeserializeOwned>(&self, op: Operation, what: &str, value: Value) -> Result<T> {
        serde_json::from_value(value).map_err(|e| {
            Error::new(ErrorKind::Unexpected, &self.provider, op)
                .with_message(format!("unexpected {what} from the API"))
                .with_source(e)
                .set_temporary(true)
        })
    }

    /// One HTTP exchange: success bodies come back, everything else is an [`Error`].
    async fn once(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose_secret())
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport(op, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.transport(op, e))?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let err = parse_error(&self.provider, op, status, &headers, &bytes);
        // Belt and braces: an error message never carries the token, even echoed.
        let token = self.token.expose_secret();
        if !token.is_empty() && err.message().contains(token) {
            let message = err.message().replace(token, "[redacted]");
            return Err(err.with_message(message));
        }
        Err(err)
    }

    /// A failure below HTTP: no connection, a timeout, a connection closed mid-answer.
    fn transport(&self, op: Operation, e: reqwest::Error) -> Error {
        let e = e.without_url();
        let what = if e.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection broke while reading the answer".to_owned()
        } else if e.is_builder() {
            return Error::new(ErrorKind::Unexpected, &self.provider, op)
                .with_message("cannot build the request")
                .with_source(e);
        } else {
            "the connection failed or was closed".to_owned()
        };
        Error::new(ErrorKind::Unavailable, &self.provider, op)
            .with_message(format!("transport: {what}"))
            .with_source(e)
    }

    async fn get(&self, op: Operation, path: &str) -> Result<Value> {
        self.call(op, Method::GET, path, None, true).await
    }

    /// `Ok(false)` when the thing was already gone.
    async fn delete(&self, op: Operation, path: &str) -> Result<bool> {
        match self.call(op, Method::DELETE, path, None, true).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A cheap authenticated read (the key listing), for probes.
    pub(crate) async fn ping(&self, op: Operation) -> Result<()> {
        self.get(op, &format!("/tailnet/{}/keys", self.tailnet))
            .await
            .map(|_| ())
    }

    /// Every auth key of the tailnet (no secrets).
    pub(crate) async fn list_keys(&self, op: Operation) -> Result<Vec<Key>> {
        let value = self
            .get(op, &format!("/tailnet/{}/keys", self.tailnet))
            .await?;
        Ok(self.decode::<KeyList>(op, "key listing", value)?.keys)
    }

    /// One auth key; `None` when it does not exist.
    pub(crate) async fn get_key(&self, op: Operation, id: &str) -> Result<Option<Key>> {
        match self
            .get(op, &format!("/tailnet/{}/keys/{id}", self.tailnet))
            .await
        {
            Ok(value) => Ok(Some(self.decode(op, "key", value)?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Mints an auth key. Never retried: a replay looks for the key tag first.
    pub(crate) async fn create_key(&self, op: Operation, body: &Value) -> Result<Key> {
        let value = self
            .call(
                op,
                Method::POST,
                &format!("/tailnet/{}/keys", self.tailnet),
                Some(body),
                false,
            )
            .await?;
        self.decode(op, "key", value)
    }

    /// Revokes an auth key; `false` when it was already gone.
    pub(crate) async fn delete_key(&self, op: Operation, id: &str) -> Result<bool> {
        self.delete(op, &format!("/tailnet/{}/keys/{id}", self.tailnet))
            .await
    }

    /// Every device of the tailnet.
    pub(crate) async fn list_devices(&self, op: Operation) -> Result<Vec<Device>> {
        let value = self
            .get(op, &format!("/tailnet/{}/devices?fields=all", self.tailnet))
            .await?;
        Ok(self
            .decode::<DeviceList>(op, "device listing", value)?
            .devices)
    }

    /// One device; `None` when it does not exist.
    pub(crate) async fn get_device(&self, op: Operation, id: &str) -> Result<Option<Device>> {
        match self.get(op, &format!("/device/{id}")).await {
            Ok(value) => Ok(Some(self.decode(op, "device", value)?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a device; `false` when it was already gone.
    pub(crate) async fn delete_device(&self, op: Operation, id: &str) -> Result<bool> {
        self.delete(op, &format!("/device/{id}")).await
    }
}

// ----- errors -----

/// Maps a failed API answer to the shared error type: the status via
/// [`ErrorKind::from_http_status`], refined by Tailscale's `{"message": ...}` body; a 429
/// carries its `Retry-After`.
pub(crate) fn parse_error(
    provider: &str,
    operation: Operation,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let wait = if status == 429 {
        retry_after(headers, SystemTime::now())
    } else {
        None
    };
    let mut kind = ErrorKind::from_http_status(status, wait);
    let mut text = format!("HTTP {status}");
    match serde_json::from_slice::<ApiError>(body)
        .ok()
        .and_then(|e| e.message)
    {
        Some(message) => {
            let lower = message.to_ascii_lowercase();
            if status == 400 && lower.contains("not found") {
                kind = ErrorKind::NotFound;
            } else if matches!(status, 400 | 403)
                && lower.contains("limit")
                && !lower.contains("rate")
            {
                kind = ErrorKind::QuotaExceeded;
            }
            if !message.is_empty() {
                text.push_str(&format!(": {}", excerpt(&message)));
            }
        }
        None if !body.is_empty() => {
            text.push_str(&format!(": {}", excerpt(&String::from_utf8_lossy(body))));
        }
        None => {}
    }
    Error::new(kind, provider, operation).with_message(text)
}

/// The first 200 characters of `text`, on one line.
fn excerpt(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The wait a 429 asks for: `Retry-After` in seconds or as an HTTP date, at least one
/// second.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at: SystemTime = DateTime::parse_from_rfc2822(value).ok()?.to_utc().into();
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.max(Duration::from_secs(1)))
}

/// Entry points for the fuzz targets in `fuzz/` (cargo fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// A header map of the pairs that are valid HTTP headers.
    fn headers(pairs: &[(&str, &[u8])]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    /// [`parse_error`](super::parse_error) on an answer of `status` with these headers.
    pub fn parse_error(status: u16, pairs: &[(&str, &[u8])], body: &[u8]) -> Error {
        super::parse_error("fuzz", Operation::ListNodes, status, &headers(pairs), body)
    }

    /// Decodes `body` as each listing the adapter reads, and looks at what it uses.
    pub fn decode(body: &[u8]) {
        if let Ok(list) = serde_json::from_slice::<DeviceList>(body) {
            for device in &list.devices {
                let _ = device.ipv4();
            }
        }
        let _ = serde_json::from_slice::<KeyList>(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let none = HeaderMap::new();
        let err = parse_error(
            "tailscale",
            Operation::ListMemberships,
            404,
            &none,
            br#"{"message":"not found"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("not found"));
        let err = parse_error(
            "tailscale",
            Operation::ListMemberships,
            401,
            &none,
            br#"{"message":"unable to authenticate"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = parse_error(
            "tailscale",
            Operation::LeaveOverlay,
            400,
            &none,
            br#"{"message":"device not found"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = parse_error("tailscale", Operation::JoinOverlay, 503, &none, b"<html>");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        let err = parse_error(
            "tailscale",
            Operation::JoinOverlay,
            429,
            &headers(&[("retry-after", "3")]),
            b"{}",
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_temporary());
    }
}
