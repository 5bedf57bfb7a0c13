//! The Vultr API client (Vultr API v2's endpoints over the shared
//! [`HttpClient`](damm_provider::http::HttpClient)) and the one place API failures become
//! [`Error`]s: [`parse_error`].
//!
//! Calls run under Vultr's documented limit of 30 requests per second. The shared client
//! retries what is idempotent, never a create (the idempotency key makes a replay safe
//! instead), and makes one attempt for probes and metrics. Listings follow the cursor in
//! `meta.links.next` and are checked against `meta.total`.

use std::time::Duration;

use damm_provider::api::{NextPage, Page, Paging};
use damm_provider::http::{Failure, HttpClient, PageStyle, Request, found, gone_is_fine, path_of};
use damm_provider::retry::RateLimit;
use damm_provider::{Error, ErrorKind, Operation, Result, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// Vultr's documented rate limit.
pub(crate) const REQUESTS_PER_SECOND: u32 = 30;

/// How long to hold back after a 429 that carries no `Retry-After` (Vultr sends none).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The API client. Clones share the HTTP connection pool and the rate limit.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HttpClient,
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

impl Client {
    /// A client of the API at `base` (e.g. `https://api.vultr.com/v2`).
    pub(crate) fn new(
        provider: &str,
        base: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Client> {
        let http = HttpClient::builder(provider, base, parse_error)
            .bearer(token)
            .limits(vec![RateLimit::per_second(REQUESTS_PER_SECOND)])
            .timeout(timeout)
            .user_agent(concat!("damm-adapter-vultr/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { http })
    }

    /// Every item of a listing, following the cursor through all pages.
    async fn all_pages<P, T>(
        &self,
        operation: Operation,
        request: Request,
        page_size: u32,
        page: impl Fn(P) -> Page<T>,
    ) -> Result<Vec<T>>
    where
        P: serde::de::DeserializeOwned,
    {
        let style = PageStyle::cursor(page_size);
        let paging = Paging::default();
        self.http
            .pages(operation, request, style, paging, page)
            .await
    }

    /// Every instance tagged `tag`, following the cursor through all pages.
    pub(crate) async fn list_instances(
        &self,
        operation: Operation,
        tag: &str,
        page_size: u32,
    ) -> Result<Vec<Instance>> {
        let request = Request::get("/instances").query("tag", tag);
        self.all_pages(operation, request, page_size, |p: InstancePage| {
            p.meta.page(p.instances)
        })
        .await
    }

    /// A cheap authenticated call: one instance of the page.
    pub(crate) async fn ping(&self, operation: Operation, tag: &str) -> Result<()> {
        let request = Request::get("/instances")
            .query("tag", tag)
            .query("per_page", "1");
        self.http
            .json::<InstancePage>(operation, &request)
            .await
            .map(drop)
    }

    /// The instance, or `None` when it does not exist.
    pub(crate) async fn get_instance(
        &self,
        operation: Operation,
        id: &str,
    ) -> Result<Option<Instance>> {
        let request = Request::get(path_of(&["instances", id]));
        let answer = self.http.json::<OneInstance>(operation, &request).await;
        found(answer.map(|one| one.instance))
    }

    /// Creates an instance (never retried).
    pub(crate) async fn create_instance(
        &self,
        operation: Operation,
        body: Value,
    ) -> Result<Instance> {
        let request = Request::post("/instances").json(body).not_idempotent();
        let answer = self.http.json::<OneInstance>(operation, &request).await?;
        Ok(answer.instance)
    }

    /// Replaces an instance's tags.
    pub(crate) async fn set_instance_tags(
        &self,
        operation: Operation,
        id: &str,
        tags: &[String],
    ) -> Result<Instance> {
        let request = Request::patch(path_of(&["instances", id])).json(json!({ "tags": tags }));
        let answer = self.http.json::<OneInstance>(operation, &request).await?;
        Ok(answer.instance)
    }

    /// Deletes an instance; `false` when it was already gone.
    pub(crate) async fn delete_instance(&self, operation: Operation, id: &str) -> Result<bool> {
        let request = Request::delete(path_of(&["instances", id]));
        gone_is_fine(self.http.empty(operation, &request).await)
    }

    /// Every reserved IP of the account, following the cursor through all pages.
    pub(crate) async fn list_reserved_ips(
        &self,
        operation: Operation,
        page_size: u32,
    ) -> Result<Vec<ReservedIp>> {
        let request = Request::get("/reserved-ips");
        self.all_pages(operation, request, page_size, |p: ReservedPage| {
            p.meta.page(p.reserved_ips)
        })
        .await
    }

    /// The reserved IP, or `None` when it does not exist.
    pub(crate) async fn get_reserved_ip(
        &self,
        operation: Operation,
        id: &str,
    ) -> Result<Option<ReservedIp>> {
        let request = Request::get(path_of(&["reserved-ips", id]));
        let answer = self.http.json::<OneReservedIp>(operation, &request).await;
        found(answer.map(|one| one.reserved_ip))
    }

    /// Reserves an IPv4 address in `region` (never retried).
    pub(crate) async fn create_reserved_ip(
        &self,
        operation: Operation,
        region: &str,
        label: &str,
    ) -> Result<ReservedIp> {
        let body = json!({ "region": region, "ip_type": "v4", "label": label });
        let request = Request::post("/reserved-ips").json(body).not_idempotent();
        let answer = self.http.json::<OneReservedIp>(operation, &request).await?;
        Ok(answer.reserved_ip)
    }

    /// Attaches a reserved IP to an instance.
    pub(crate) async fn attach_reserved_ip(
        &self,
        operation: Operation,
        id: &str,
        instance_id: &str,
    ) -> Result<()> {
        let request = Request::post(path_of(&["reserved-ips", id, "attach"]))
            .json(json!({ "instance_id": instance_id }));
        self.http.empty(operation, &request).await
    }

    /// Detaches a reserved IP; `false` when it was already gone.
    pub(crate) async fn detach_reserved_ip(&self, operation: Operation, id: &str) -> Result<bool> {
        let request = Request::post(path_of(&["reserved-ips", id, "detach"]));
        gone_is_fine(self.http.empty(operation, &request).await)
    }

    /// Deletes a reserved IP; `false` when it was already gone.
    pub(crate) async fn delete_reserved_ip(&self, operation: Operation, id: &str) -> Result<bool> {
        let request = Request::delete(path_of(&["reserved-ips", id]));
        gone_is_fine(self.http.empty(operation, &request).await)
    }
}

impl Meta {
    /// A page of `items` as this `meta` describes it: the cursor of the next page (none
    /// when empty) and the listing's total.
    fn page<T>(self, items: Vec<T>) -> Page<T> {
        Page {
            items,
            next: self
                .links
                .next
                .filter(|next| !next.is_empty())
                .map(NextPage::Token),
            total: self.total,
        }
    }
}

/// Maps a failed API answer to the shared error type: Vultr's `{"error", "status"}`
/// message, the kind from the HTTP status (refined from the message), and for 429 the
/// `Retry-After` hint, or one second when there is none (Vultr sends none).
pub(crate) fn parse_error(failure: &Failure<'_>) -> Error {
    let status = failure.status;
    let retry_after =
        (status == 429).then(|| failure.retry_after_seconds().unwrap_or(DEFAULT_RETRY_AFTER));
    let said = failure
        .body_as::<VultrError>()
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
        // Not Vultr's shape (a proxy's page, a cut-off answer): a short excerpt.
        None => failure.status_text(),
    };
    failure.error(kind).with_message(message)
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
    use damm_provider::http::parse_fuzzed_answer;

    use super::*;

    /// [`parse_error`](super::parse_error) on an answer of `status` with these headers.
    pub fn parse_error(status: u16, pairs: &[(&str, &[u8])], body: &[u8]) -> Error {
        parse_fuzzed_answer(super::parse_error, status, pairs, body)
    }

    /// Decodes `body` as each listing and envelope the adapter reads.
    pub fn decode(body: &[u8]) {
        if let Ok(page) = serde_json::from_slice::<InstancePage>(body) {
            let page = page.meta.page(page.instances);
            let _ = (page.total, page.next, page.items.len());
        }
        let _ = serde_json::from_slice::<ReservedPage>(body);
        let _ = serde_json::from_slice::<OneInstance>(body);
    }
}

#[cfg(test)]
mod tests {
    use damm_provider::http::{header_map, parse_answer};
    use damm_provider::retry::RetryPolicy;

    use super::*;

    fn error(status: u16, headers: &[(&str, &[u8])], body: &str) -> Error {
        let headers = header_map(headers);
        let body = body.as_bytes();
        parse_answer(
            parse_error,
            "vultr",
            Operation::ListNodes,
            status,
            &headers,
            body,
        )
    }

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let none: &[(&str, &[u8])] = &[];
        let err = error(404, none, r#"{"error":"Not found","status":404}"#);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), "HTTP 404: Not found");
        assert!(!err.is_temporary());
        let err = error(401, none, r#"{"error":"Invalid API token.","status":401}"#);
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = error(
            400,
            none,
            r#"{"error":"Invalid region: mars","status":400}"#,
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = error(
            400,
            none,
            r#"{"error":"You have reached the maximum number of active instances","status":400}"#,
        );
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
        let err = error(503, none, "<html>gateway</html>");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        assert_eq!(err.message(), "HTTP 503: <html>gateway</html>");
        assert_eq!(error(522, none, "").kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn rate_limits_carry_a_wait() {
        let err = error(429, &[], r#"{"error":"Rate limit","status":429}"#);
        assert_eq!(err.retry_after(), Some(DEFAULT_RETRY_AFTER));
        assert!(err.is_temporary());
        assert_eq!(
            error(429, &[("retry-after", b"7")], "").retry_after(),
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
        assert!(shown.contains("http://127.0.0.1:9/v2"), "{shown}");
        // An id is one path segment, whatever it holds.
        assert_eq!(path_of(&["instances", "a/b"]), "/instances/a%2Fb");
    }
}
