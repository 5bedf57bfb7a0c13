//! The API client (Tailscale API v2's endpoints over the shared
//! [`HttpClient`](damm_provider::http::HttpClient)) and the one place API failures become
//! [`Error`]s: [`parse_error`].
//!
//! Calls run under a client-side limit (Tailscale documents none; 20 calls per second
//! keeps a fleet polite). The shared client retries what is idempotent, never a create
//! (auth keys), and makes one attempt for probes. Tailscale's lists are not paged.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use damm_provider::http::reqwest::header::{HeaderMap, RETRY_AFTER};
use damm_provider::http::{
    Failure, HttpClient, Request, excerpt, found, gone_is_fine, null_as_empty, path_of,
    retry_after_seconds,
};
use damm_provider::retry::RateLimit;
use damm_provider::{Error, ErrorKind, Operation, Result, SecretString};
use serde::Deserialize;
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

// ----- the client -----

/// A typed client for the endpoints the adapter uses.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HttpClient,
    tailnet: String,
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
        let http = HttpClient::builder(provider, base, parse_error)
            .bearer(token)
            .limits(vec![RateLimit::per_second(20)])
            .timeout(timeout)
            .user_agent(concat!(
                "damm-adapter-tailscale/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Client {
            http,
            tailnet: tailnet.to_owned(),
        })
    }

    /// The path of `segments` below the tailnet: `/tailnet/<tailnet>/<segments>`.
    fn tailnet_path(&self, segments: &[&str]) -> String {
        let mut all = vec!["tailnet", self.tailnet.as_str()];
        all.extend_from_slice(segments);
        path_of(&all)
    }

    /// A cheap authenticated read (the key listing), for probes.
    pub(crate) async fn ping(&self, op: Operation) -> Result<()> {
        self.list_keys(op).await.map(drop)
    }

    /// Every auth key of the tailnet (no secrets).
    pub(crate) async fn list_keys(&self, op: Operation) -> Result<Vec<Key>> {
        let request = Request::get(self.tailnet_path(&["keys"]));
        Ok(self.http.json::<KeyList>(op, &request).await?.keys)
    }

    /// One auth key; `None` when it does not exist.
    pub(crate) async fn get_key(&self, op: Operation, id: &str) -> Result<Option<Key>> {
        let request = Request::get(self.tailnet_path(&["keys", id]));
        found(self.http.json(op, &request).await)
    }

    /// Mints an auth key. Never retried: a replay looks for the key tag first.
    pub(crate) async fn create_key(&self, op: Operation, body: Value) -> Result<Key> {
        let request = Request::post(self.tailnet_path(&["keys"]))
            .json(body)
            .not_idempotent();
        self.http.json(op, &request).await
    }

    /// Revokes an auth key; `false` when it was already gone.
    pub(crate) async fn delete_key(&self, op: Operation, id: &str) -> Result<bool> {
        let request = Request::delete(self.tailnet_path(&["keys", id]));
        gone_is_fine(self.http.empty(op, &request).await)
    }

    /// Every device of the tailnet.
    pub(crate) async fn list_devices(&self, op: Operation) -> Result<Vec<Device>> {
        let request = Request::get(self.tailnet_path(&["devices"])).query("fields", "all");
        Ok(self.http.json::<DeviceList>(op, &request).await?.devices)
    }

    /// One device; `None` when it does not exist.
    pub(crate) async fn get_device(&self, op: Operation, id: &str) -> Result<Option<Device>> {
        let request = Request::get(path_of(&["device", id]));
        found(self.http.json(op, &request).await)
    }

    /// Deletes a device; `false` when it was already gone.
    pub(crate) async fn delete_device(&self, op: Operation, id: &str) -> Result<bool> {
        let request = Request::delete(path_of(&["device", id]));
        gone_is_fine(self.http.empty(op, &request).await)
    }
}

// ----- errors -----

/// Maps a failed API answer to the shared error type: the status via
/// [`ErrorKind::from_http_status`], refined by Tailscale's `{"message": ...}` body; a 429
/// carries its `Retry-After`.
pub(crate) fn parse_error(failure: &Failure<'_>) -> Error {
    let status = failure.status;
    let wait = if status == 429 {
        retry_after(failure.headers, SystemTime::now())
    } else {
        None
    };
    let mut kind = ErrorKind::from_http_status(status, wait);
    let Some(message) = failure.body_as::<ApiError>().and_then(|e| e.message) else {
        return failure.error(kind).with_message(failure.status_text());
    };
    let lower = message.to_ascii_lowercase();
    if status == 400 && lower.contains("not found") {
        kind = ErrorKind::NotFound;
    } else if matches!(status, 400 | 403) && lower.contains("limit") && !lower.contains("rate") {
        kind = ErrorKind::QuotaExceeded;
    }
    let text = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", excerpt(&message, 200))
    };
    failure.error(kind).with_message(text)
}

/// The wait a 429 asks for: `Retry-After` in seconds or as an HTTP date, at least one
/// second.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let wait = match retry_after_seconds(headers) {
        Some(wait) => wait,
        None => {
            let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
            let at: SystemTime = DateTime::parse_from_rfc2822(value).ok()?.to_utc().into();
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.max(Duration::from_secs(1)))
}

/// Entry points for the fuzz targets in `fuzz/` (cargo fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use damm_provider::http::parse_fuzzed_answer;

    use super::*;

    /// [`parse_error`](super::parse_error) on an answer of `status` with these headers.
    pub fn parse_error(status: u16, pairs: &[(&str, &[u8])], body: &[u8]) -> Error {
        parse_fuzzed_answer(super::parse_error, status, pairs, body)
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
    use damm_provider::http::{header_map, parse_answer};

    use super::*;

    fn error(op: Operation, status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> Error {
        let headers = header_map(headers);
        parse_answer(parse_error, "tailscale", op, status, &headers, body)
    }

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let err = error(
            Operation::ListMemberships,
            404,
            &[],
            br#"{"message":"not found"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("not found"));
        let err = error(
            Operation::ListMemberships,
            401,
            &[],
            br#"{"message":"unable to authenticate"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = error(
            Operation::LeaveOverlay,
            400,
            &[],
            br#"{"message":"device not found"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = error(Operation::JoinOverlay, 503, &[], b"<html>");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        let err = error(Operation::JoinOverlay, 429, &[("retry-after", b"3")], b"{}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_temporary());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = "Tue, 14 Nov 2023 22:13:30 GMT"; // 10 s after `now`
        let wait = retry_after(&header_map(&[("retry-after", date.as_bytes())]), now);
        assert_eq!(wait, Some(Duration::from_secs(10)));
        let wait = retry_after(&header_map(&[("retry-after", b"0")]), now);
        assert_eq!(wait, Some(Duration::from_secs(1)), "at least a second");
        assert_eq!(retry_after(&header_map(&[]), now), None);
    }
}
