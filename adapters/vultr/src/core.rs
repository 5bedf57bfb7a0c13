//! The Vultr API client (a small typed reqwest client) and the one place API failures
//! become [`Error`]s.
//!
//! Every call goes through the shared [`RetryPolicy`] under Vultr's documented limit of
//! 30 requests per second, each HTTP request with a timeout. Only idempotent calls are
//! retried; creates are not (the idempotency key makes a replay safe instead).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use damm_provider::retry::{RateLimit, RetryPolicy};
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, Result, SecretString};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Vultr's documented rate limit.
pub(crate) const REQUESTS_PER_SECOND: u32 = 30;

/// How long to hold back after a 429 that carries no `Retry-After` (Vultr sends none).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What several clients of one adapter instance share.
struct Shared {
    provider: String,
    base: Url,
    token: SecretString,
    http: reqwest::Client,
    timeout: Duration,
    limits: [RateLimit; 1],
}

/// The API client. Clones share the HTTP connection pool and the rate limit.
#[derive(Clone)]
pub(crate) struct Client {
    shared: Arc<Shared>,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.shared.base.as_str())
            .field("token", &"[redacted]")
            .field("timeout", &self.shared.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// An instance as the API describes it (the fields DAMM reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Instance {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) region: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) power_status: String,
    #[serde(default)]
    pub(crate) server_status: String,
    #[serde(default)]
    pub(crate) main_ip: String,
    #[serde(default)]
    pub(crate) v6_main_ip: String,
    #[serde(default)]
    pub(crate) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) date_created: String,
}

impl Instance {
    /// The tags, `[]` when the API sent none.
    pub(crate) fn tags(&self) -> &[String] {
        self.tags.as_deref().unwrap_or_default()
    }
}

/// A reserved IP as the API describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReservedIp {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) region: String,
    #[serde(default)]
    pub(crate) subnet: String,
    #[serde(default)]
    pub(crate) label: Option<String>,
    /// `""` (or absent) when unattached.
    #[serde(default)]
    pub(crate) instance_id: Option<String>,
}

impl ReservedIp {
    /// The instance it is attached to, if any.
    pub(crate) fn attached_to(&self) -> Option<&str> {
        self.instance_id.as_deref().filter(|id| !id.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    /// How many items the whole listing holds.
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    links: Links,
}

#[derive(Debug, Default, Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InstancePage {
    instances: Vec<Instance>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Deserialize)]
struct ReservedPage {
    reserved_ips: Vec<ReservedIp>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Deserialize)]
struct OneInstance {
    instance: Instance,
}

#[derive(Debug, Deserialize)]
struct OneReservedIp {
    reserved_ip: ReservedIp,
}

/// Vultr's error body.
#[derive(Debug, Deserialize)]
struct VultrError {
    error: String,
}

/// The most pages a listing follows (a guard against a cursor that never ends).
const MAX_PAGES: usize = 10_000;

impl Client {
    /// A client of the API at `base` (e.g. `https://api.vultr.com/v2`).
    pub(crate) fn new(
        provider: &str,
        base: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Client> {
        let configure = |message: String| {
            Error::new(ErrorKind::InvalidInput, provider, Operation::Configure)
                .with_message(message)
        };
        let mut url =
            Url::parse(base).map_err(|e| configure(format!("`api_url` `{base}`: {e}")))?;
        if url.cannot_be_a_base() {
            return Err(configure(format!(
                "`api_url` `{base}` cannot be a base URL"
            )));
        }
        url.path_segments_mut()
            .expect("checked: a base URL")
            .pop_if_empty();
        let base = url;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("damm-adapter-vultr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, provider, Operation::Configure)
                    .with_message("cannot build the HTTP client")
                    .with_source(e)
            })?;
        Ok(Client {
            shared: Arc::new(Shared {
                provider: provider.to_owned(),
                base,
                token,
                http,
                timeout,
                limits: [RateLimit::per_second(REQUESTS_PER_SECOND)],
            }),
            retry: RetryPolicy::default(),
        })
    }

    /// The same client, making one attempt per call (health probes measure one answer).
    pub(crate) fn single_attempt(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            retry: RetryPolicy::none(),
        }
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.shared.base.clone();
        url.path_segments_mut()
            .expect("checked in Client::new")
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One HTTP exchange: the status and body of a 2xx answer, or the mapped error.
    async fn exchange(
        &self,
        operation: Operation,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let shared = &self.shared;
        let mut request = shared
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(shared.token.expose_secret())
            .timeout(shared.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport =
            |e: reqwest::Error| transport_error(&shared.provider, operation, method, url, e);
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        tracing::debug!(
            provider = %shared.provider,
            %operation,
            %method,
            path = url.path(),
            status = status.as_u16(),
            "vultr API call"
        );
        if status.is_success() {
            Ok((status, bytes.to_vec()))
        } else {
            Err(parse_error(
                &shared.provider,
                operation,
                status.as_u16(),
                &headers,
                &bytes,
            ))
        }
    }

    /// Runs one call under the rate limit and retry policy, decoding its answer (a
    /// malformed answer is a temporary failure, retried like the others).
    async fn call<T>(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<Value>,
        idempotent: bool,
        decode: impl Fn(StatusCode, &[u8]) -> Result<T>,
    ) -> Result<T> {
        let (method, url, body, decode) = (&method, &url, body.as_ref(), &decode);
        self.retry
            .run(&self.shared.limits, idempotent, move || async move {
                let (status, bytes) = self.exchange(operation, method, url, body).await?;
                decode(status, &bytes)
            })
            .await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<T> {
        let provider = self.shared.provider.clone();
        let what = format!("{method} {}", url.path());
        self.call(operation, method, url, body, idempotent, |status, bytes| {
            serde_json::from_slice(bytes).map_err(|e| {
                Error::new(ErrorKind::Unexpected, &provider, operation)
                    .with_message(format!(
                        "HTTP {} from {what}: the answer is not the expected JSON: {e}",
                        status.as_u16()
                    ))
                    .set_temporary(true)
            })
        })
        .await
    }

    async fn empty(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<Value>,
        idempotent: bool,
    ) -> Result<()> {
        self.call(operation, method, url, body, idempotent, |_, _| Ok(()))
            .await
    }

    /// A listing whose cursor chain ended: short of its `meta.total` (a page lost
    /// mid-pagination, an expired cursor answered with an empty page) it is an error,
    /// never a truncated inventory the orchestrator would take for vanished resources.
    fn complete<T>(
        &self,
        operation: Operation,
        what: &str,
        all: Vec<T>,
        total: Option<u64>,
    ) -> Result<Vec<T>> {
        match total {
            Some(total) if (all.len() as u64) < total => {
                Err(
                    Error::new(ErrorKind::Unexpected, &self.shared.provider, operation)
                        .with_message(format!(
                            "{what}: the cursor chain ended with {} of its {total} items",
                            all.len()
                        ))
                        .set_temporary(true),
                )
            }
            _ => Ok(all),
        }
    }

    /// Every instance tagged `tag`, following the cursor through all pages.
    pub(crate) async fn list_instances(
        &self,
        operation: Operation,
        tag: &str,
        page_size: u32,
    ) -> Result<Vec<Instance>> {
        let per_page = page_size.to_string();
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("tag", tag), ("per_page", per_page.as_str())];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let url = self.url(&["instances"], &query);
            let page: InstancePage = self.json(operation, Method::GET, url, None, true).await?;
            all.extend(page.instances);
            match page
                .meta
                .links
                .next
                .filter(|n| !n.is_empty() && *n != cursor)
            {
                Some(next) => cursor = next,
                None => return self.complete(operation, "GET /instances", all, page.meta.total),
            }
        }
        Err(
            Error::new(ErrorKind::Unexpected, &self.shared.provider, operation).with_message(
                format!("GET /instances did not end after {MAX_PAGES} pages"),
            ),
        )
    }

    /// A cheap authenticated call: one instance of the page.
    pub(crate) async fn ping(&self, operation: Operation, tag: &str) -> Result<()> {
        let url = self.url(&["instances"], &[("tag", tag), ("per_page", "1")]);
        self.json::<InstancePage>(operation, Method::GET, url, None, true)
            .await
            .map(|_| ())
    }

    /// The instance, or `None` when it does not exist.
    pub(crate) async fn get_instance(
        &self,
        operation: Operation,
        id: &str,
    ) -> Result<Option<Instance>> {
        let url = self.url(&["instances", id], &[]);
        let answer = self
            .json::<OneInstance>(operation, Method::GET, url, None, true)
            .await;
        found(answer.map(|one| one.instance))
    }

    /// Creates an instance (never retried).
    pub(crate) async fn create_instance(
        &self,
        operation: Operation,
        body: Value,
    ) -> Result<Instance> {
        let url = self.url(&["instances"], &[]);
        self.json::<OneInstance>(operation, Method::POST, url, Some(body), false)
            .await
            .map(|one| one.instance)
    }

    /// Replaces an instance's tags.
    pub(crate) async fn set_instance_tags(
        &self,
        operation: Operation,
        id: &str,
        tags: &[String],
    ) -> Result<Instance> {
        let url = self.url(&["instances", id], &[]);
        let body = serde_json::json!({ "tags": tags });
        self.json::<OneInstance>(operation, Method::PATCH, url, Some(body), true)
            .await
            .map(|one| one.instance)
    }

    /// Deletes an instance; `false` when it was already gone.
    pub(crate) async fn delete_instance(&self, operation: Operation, id: &str) -> Result<bool> {
        let url = self.url(&["instances", id], &[]);
        gone_is_fine(self.empty(operation, Method::DELETE, url, None, true).await)
    }

    /// Every reserved IP of the account, following the cursor through all pages.
    pub(crate) async fn list_reserved_ips(
        &self,
        operation: Operation,
        page_size: u32,
    ) -> Result<Vec<ReservedIp>> {
        let per_page = page_size.to_string();
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("per_page", per_page.as_str())];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let url = self.url(&["reserved-ips"], &query);
            let page: ReservedPage = self.json(operation, Method::GET, url, None, true).await?;
            all.extend(page.reserved_ips);
            match page
                .meta
                .links
                .next
                .filter(|n| !n.is_empty() && *n != cursor)
            {
                Some(next) => cursor = next,
                None => return self.complete(operation, "GET /reserved-ips", all, page.meta.total),
            }
        }
        Err(
            Error::new(ErrorKind::Unexpected, &self.shared.provider, operation).with_message(
                format!("GET /reserved-ips did not end after {MAX_PAGES} pages"),
            ),
        )
    }

    /// The reserved IP, or `None` when it does not exist.
    pub(crate) async fn get_reserved_ip(
        &self,
        operation: Operation,
        id: &str,
    ) -> Result<Option<ReservedIp>> {
        let url = self.url(&["reserved-ips", id], &[]);
        let answer = self
            .json::<OneReservedIp>(operation, Method::GET, url, None, true)
            .await;
        found(answer.map(|one| one.reserved_ip))
    }

    /// Reserves an IPv4 address in `region` (never retried).
    pub(crate) async fn create_reserved_ip(
        &self,
        operation: Operation,
        region: &str,
        label: &str,
    ) -> Result<ReservedIp> {
        let url = self.url(&["reserved-ips"], &[]);
        let body = serde_json::json!({ "region": region, "ip_type": "v4", "label": label });
        self.json::<OneReservedIp>(operation, Method::POST, url, Some(body), false)
            .await
            .map(|one| one.reserved_ip)
    }

    /// Attaches a reserved IP to an instance.
    pub(crate) async fn attach_reserved_ip(
        &self,
        operation: Operation,
        id: &str,
        instance_id: &str,
    ) -> Result<()> {
        let url = self.url(&["reserved-ips", id, "attach"], &[]);
        let body = serde_json::json!({ "instance_id": instance_id });
        self.empty(operation, Method::POST, url, Some(body), true)
            .await
    }

    /// Detaches a reserved IP; `false` when it was already gone.
    pub(crate) async fn detach_reserved_ip(&self, operation: Operation, id: &str) -> Result<bool> {
        let url = self.url(&["reserved-ips", id, "detach"], &[]);
        gone_is_fine(self.empty(operation, Method::POST, url, None, true).await)
    }

    /// Deletes a reserved IP; `false` when it was already gone.
    pub(crate) async fn delete_reserved_ip(&self, operation: Operation, id: &str) -> Result<bool> {
        let url = self.url(&["reserved-ips", id], &[]);
        gone_is_fine(self.empty(operation, Method::DELETE, url, None, true).await)
    }
}

/// A lookup's answer, `None` on 404.
fn found<T>(answer: Result<T>) -> Result<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A removal's answer: `true` when done now, `false` when it was already gone.
fn gone_is_fine(answer: Result<()>) -> Result<bool> {
    found(answer).map(|done| done.is_some())
}

/// Maps a failed API answer to the shared error type: Vultr's `{"error", "status"}`
/// message, the kind from the HTTP status (refined from the message), and for 429 the
/// `Retry-After` hint, or one second when there is none (Vultr sends none).
pub(crate) fn parse_error(
    provider: &str,
    operation: Operation,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let retry_after = (status == 429).then(|| retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER));
    let said = serde_json::from_slice::<VultrError>(body)
        .ok()
        .map(|e| e.error.trim().to_owned())
        .filter(|m| !m.is_empty());
    let mut kind = match status {
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::from_http_status(status, retry_after),
    };
    if let (ErrorKind::InvalidInput | ErrorKind::Unauthenticated, Some(message)) = (kind, &said) {
        let lower = message.to_ascii_lowercase();
        if lower.contains("quota")
            || lower.contains("maximum number")
            || lower.contains("limit reached")
        {
            kind = ErrorKind::QuotaExceeded;
        }
    }
    let message = match said {
        Some(message) => format!("HTTP {status}: {message}"),
        None if body.is_empty() => format!("HTTP {status}"),
        None => {
            // Not Vultr's shape (a proxy's page, a cut-off answer): a short excerpt.
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.chars().take(120).collect();
            format!("HTTP {status}: {}", excerpt.trim())
        }
    };
    Error::new(kind, provider, operation).with_message(message)
}

/// A request that got no HTTP answer: unreachable, timed out or cut off. Temporary.
fn transport_error(
    provider: &str,
    operation: Operation,
    method: &Method,
    url: &Url,
    error: reqwest::Error,
) -> Error {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    Error::new(ErrorKind::Unavailable, provider, operation)
        .with_message(format!("{method} {}: {what}", url.path()))
        .with_source(error)
        .set_temporary(true)
}

/// Reads `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Vultr wants `user_data`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        for (i, s) in sextets.into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(s & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

    /// Decodes `body` as each listing and envelope the adapter reads.
    pub fn decode(body: &[u8]) {
        if let Ok(page) = serde_json::from_slice::<InstancePage>(body) {
            let _ = (page.meta.total, page.meta.links.next, page.instances.len());
        }
        let _ = serde_json::from_slice::<ReservedPage>(body);
        let _ = serde_json::from_slice::<OneInstance>(body);
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn error(status: u16, headers: &HeaderMap, body: &str) -> Error {
        parse_error(
            "vultr",
            Operation::ListNodes,
            status,
            headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let none = HeaderMap::new();
        let err = error(404, &none, r#"{"error":"Not found","status":404}"#);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), "HTTP 404: Not found");
        assert!(!err.is_temporary());
        let err = error(401, &none, r#"{"error":"Invalid API token.","status":401}"#);
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = error(
            400,
            &none,
            r#"{"error":"Invalid region: mars","status":400}"#,
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = error(
            400,
            &none,
            r#"{"error":"You have reached the maximum number of active instances","status":400}"#,
        );
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
        let err = error(503, &none, "<html>gateway</html>");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        assert_eq!(err.message(), "HTTP 503: <html>gateway</html>");
        assert_eq!(error(522, &none, "").kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn rate_limits_carry_a_wait() {
        let err = error(
            429,
            &HeaderMap::new(),
            r#"{"error":"Rate limit","status":429}"#,
        );
        assert_eq!(err.retry_after(), Some(DEFAULT_RETRY_AFTER));
        assert!(err.is_temporary());
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            error(429, &headers, "").retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn base64_follows_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[tokio::test]
    async fn creates_are_tried_once_and_reads_are_retried() {
        let sim = damm_sim::start(
            damm_sim::SimConfig::default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        sim.set_faults(
            damm_sim::Provider::Vultr,
            damm_sim::Faults {
                error_rate: 1.0,
                ..damm_sim::Faults::default()
            },
        );
        let client = Client::new(
            "vultr",
            &sim.url(damm_sim::Provider::Vultr),
            SecretString::from(sim.token().to_owned()),
            Duration::from_secs(5),
        )
        .unwrap();
        let op = Operation::CreateIngressNode;
        let before = sim.requests();
        let body = serde_json::json!({ "region": "fra", "plan": "vc2-1c-1gb", "os_id": 2136 });
        let err = client.create_instance(op, body).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert_eq!(
            sim.requests() - before,
            1,
            "a create is never retried blindly"
        );
        let err = client.create_reserved_ip(op, "fra", "x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert_eq!(sim.requests() - before, 2);
        let err = client.get_instance(op, "i-1").await.unwrap_err();
        assert!(err.is_temporary(), "{err}");
        let attempts = RetryPolicy::default().max_attempts;
        assert_eq!(sim.requests() - before, 2 + u64::from(attempts));
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(
            "vultr",
            "http://127.0.0.1:9/v2/",
            SecretString::from("s3cret-token"),
            Duration::from_secs(1),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert_eq!(
            client
                .url(&["instances", "a/b"], &[("tag", "damm-fleet:x")])
                .as_str(),
            "http://127.0.0.1:9/v2/instances/a%2Fb?tag=damm-fleet%3Ax"
        );
    }
}
