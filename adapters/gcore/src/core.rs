//! The API client (Gcore's CDN resources and origin groups over the shared
//! [`HttpClient`](damm_provider::http::HttpClient)) and the one place API failures become
//! [`Error`]s: [`parse_error`].
//!
//! Gcore takes the token as `Authorization: APIKey <token>` ([`ApiKey`]). It documents no
//! request rate for the CDN API, only that a 429 may come (with `Retry-After`): calls run
//! under a polite client-side 10 per second, and a 429's `Retry-After` holds every caller
//! back. Listings are paged with `limit`/`offset` (`{count, next, previous, results}`);
//! the offset of the next page is read from `next`, never followed as a URL.

use std::fmt;
use std::time::Duration;

use damm_provider::api::{NextPage, Page, Paging};
use damm_provider::http::reqwest::Url;
use damm_provider::http::reqwest::header::{AUTHORIZATION, HeaderValue};
use damm_provider::http::{
    Credential, Failure, HttpClient, PageStyle, Request, excerpt, found, gone_is_fine, path_of,
};
use damm_provider::retry::RateLimit;
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, Result, SecretString, async_trait};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

// ----- wire types: the parts of Gcore's JSON the adapter reads -----

/// A CDN resource. A deleted one is listed with `id`, `cname`, `deleted` and `status` only.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Resource {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) cname: String,
    #[serde(default)]
    pub(crate) active: bool,
    #[serde(default)]
    pub(crate) deleted: bool,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default, rename = "originGroup")]
    pub(crate) origin_group: Option<i64>,
    #[serde(default, rename = "sslEnabled")]
    pub(crate) ssl_enabled: bool,
    #[serde(default)]
    pub(crate) options: Option<Options>,
}

impl Resource {
    /// Whether the `websockets` option is on.
    pub(crate) fn websockets(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.websockets.as_ref())
            .is_some_and(|w| w.enabled && w.value)
    }
}

/// The resource options the adapter reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Options {
    #[serde(default)]
    pub(crate) websockets: Option<Toggle>,
}

/// An on/off option: `{enabled, value}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Toggle {
    #[serde(default)]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) value: bool,
}

/// An origin group.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OriginGroup {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) sources: Vec<Source>,
}

/// One origin source: `host[:port]`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Source {
    #[serde(default)]
    pub(crate) source: String,
    #[serde(default)]
    pub(crate) backup: bool,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

fn yes() -> bool {
    true
}

impl OriginGroup {
    /// The group's one primary source: enabled and not a backup (DAMM's groups have one).
    pub(crate) fn primary(&self) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.enabled && !s.backup)
            .map(|s| s.source.as_str())
    }
}

/// A page of a listing.
#[derive(Debug, Deserialize)]
struct Listing<T> {
    count: u64,
    #[serde(default)]
    next: Option<String>,
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

/// The offset a `next` URL asks for.
fn next_offset(next: Option<&str>) -> Option<String> {
    let url = Url::parse(next?).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "offset")
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.parse::<u64>().is_ok())
}

// ----- the credential -----

/// `Authorization: APIKey <token>`, as Gcore's API takes its permanent tokens.
#[derive(Clone)]
pub(crate) struct ApiKey(SecretString);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[async_trait]
impl Credential for ApiKey {
    async fn authorize(
        &self,
        provider: &str,
        operation: Operation,
        request: &mut damm_provider::http::reqwest::Request,
    ) -> Result<()> {
        let mut value = HeaderValue::from_str(&format!("APIKey {}", self.0.expose_secret()))
            .map_err(|_| {
                Error::new(ErrorKind::InvalidInput, provider, operation)
                    .with_message("the API token holds characters a header cannot carry")
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.0.expose_secret()]
    }
}

// ----- the client -----

/// Items per listing page.
const PAGE_SIZE: u32 = 100;

/// A typed client for the endpoints the adapter uses.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HttpClient,
}

impl Client {
    /// A client for `base` (without `/cdn`) acting as `provider`.
    pub(crate) fn new(
        provider: &str,
        base: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Client> {
        let http = HttpClient::builder(provider, base, parse_error)
            .credential(std::sync::Arc::new(ApiKey(token)))
            .limits(vec![RateLimit::per_second(10)])
            .timeout(timeout)
            .user_agent(concat!("damm-adapter-gcore/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { http })
    }

    /// Every item of a listing of `request`, page by page.
    async fn all<T: DeserializeOwned>(&self, op: Operation, request: Request) -> Result<Vec<T>> {
        let style = PageStyle::Cursor {
            cursor: "offset",
            per_page: "limit",
            size: PAGE_SIZE,
        };
        self.http
            .pages(op, request, style, Paging::default(), |p: Listing<T>| {
                Page {
                    next: next_offset(p.next.as_deref()).map(NextPage::Token),
                    total: Some(p.count),
                    items: p.results,
                }
            })
            .await
    }

    /// A cheap authenticated read (one resource at most), for probes.
    pub(crate) async fn ping(&self, op: Operation) -> Result<()> {
        let request = Request::get("/cdn/resources").query("limit", "1");
        self.http
            .json::<Listing<Value>>(op, &request)
            .await
            .map(drop)
    }

    /// The account's live resources, every page; only those serving `cname` when given.
    pub(crate) async fn resources(
        &self,
        op: Operation,
        cname: Option<&str>,
    ) -> Result<Vec<Resource>> {
        let mut request = Request::get("/cdn/resources").query("deleted", "false");
        if let Some(cname) = cname {
            request = request.query("cname", cname);
        }
        let all: Vec<Resource> = self.all(op, request).await?;
        Ok(all.into_iter().filter(|r| !r.deleted).collect())
    }

    /// One resource; `None` when it does not exist (any more).
    pub(crate) async fn resource(&self, op: Operation, id: i64) -> Result<Option<Resource>> {
        let request = Request::get(path_of(&["cdn", "resources", &id.to_string()]));
        Ok(found(self.http.json::<Resource>(op, &request).await)?.filter(|r| !r.deleted))
    }

    /// Creates a resource. Never retried: a replay finds it by its CNAME first.
    pub(crate) async fn create_resource(&self, op: Operation, body: Value) -> Result<Resource> {
        let request = Request::post("/cdn/resources").json(body).not_idempotent();
        self.http.json(op, &request).await
    }

    /// Changes some fields of a resource.
    pub(crate) async fn patch_resource(
        &self,
        op: Operation,
        id: i64,
        body: Value,
    ) -> Result<Resource> {
        let request = Request::patch(path_of(&["cdn", "resources", &id.to_string()])).json(body);
        self.http.json(op, &request).await
    }

    /// Deletes a (deactivated) resource; `false` when it was already gone.
    pub(crate) async fn delete_resource(&self, op: Operation, id: i64) -> Result<bool> {
        let request = Request::delete(path_of(&["cdn", "resources", &id.to_string()]));
        gone_is_fine(self.http.empty(op, &request).await)
    }

    /// Every origin group of the account; only those named `name` when given.
    pub(crate) async fn groups(
        &self,
        op: Operation,
        name: Option<&str>,
    ) -> Result<Vec<OriginGroup>> {
        let mut request = Request::get("/cdn/origin_groups");
        if let Some(name) = name {
            request = request.query("name", name);
        }
        let all: Vec<OriginGroup> = self.all(op, request).await?;
        Ok(all
            .into_iter()
            .filter(|g| name.is_none_or(|n| g.name == n))
            .collect())
    }

    /// One origin group; `None` when it does not exist.
    pub(crate) async fn group(&self, op: Operation, id: i64) -> Result<Option<OriginGroup>> {
        let request = Request::get(path_of(&["cdn", "origin_groups", &id.to_string()]));
        found(self.http.json(op, &request).await)
    }

    /// Creates an origin group. Never retried: a replay finds it by its name first.
    pub(crate) async fn create_group(&self, op: Operation, body: Value) -> Result<OriginGroup> {
        let request = Request::post("/cdn/origin_groups")
            .json(body)
            .not_idempotent();
        self.http.json(op, &request).await
    }

    /// Changes an origin group (the body names it).
    pub(crate) async fn patch_group(
        &self,
        op: Operation,
        id: i64,
        body: Value,
    ) -> Result<OriginGroup> {
        let request =
            Request::patch(path_of(&["cdn", "origin_groups", &id.to_string()])).json(body);
        self.http.json(op, &request).await
    }

    /// Deletes an origin group no resource uses; `false` when it was already gone.
    pub(crate) async fn delete_group(&self, op: Operation, id: i64) -> Result<bool> {
        let request = Request::delete(path_of(&["cdn", "origin_groups", &id.to_string()]));
        gone_is_fine(self.http.empty(op, &request).await)
    }
}

// ----- errors -----

/// What an error body says: its kind, when the body decides it, and its text.
fn read_body(status: u16, body: &Value) -> Option<(Option<ErrorKind>, String)> {
    let object = body.as_object()?;
    // The general shape: {exception_class, message, request_id}.
    if let Some(class) = object.get("exception_class").and_then(Value::as_str) {
        let kind = match class {
            "NotFoundError" => Some(ErrorKind::NotFound),
            "QuotaLimitExceed" => Some(ErrorKind::QuotaExceeded),
            "ValidationError" => Some(ErrorKind::InvalidInput),
            "ConflictError" => Some(ErrorKind::Conflict),
            "not_authenticated" | "token_not_valid" | "authentication_failed" => {
                Some(ErrorKind::Unauthenticated)
            }
            _ => None,
        };
        let message = object.get("message").and_then(Value::as_str).unwrap_or("");
        return Some((kind, format!("{class}: {}", excerpt(message, 200))));
    }
    // Field errors: {"errors": {field: [...]}} (`sources` nests by source).
    if let Some(fields) = object.get("errors").and_then(Value::as_object) {
        let mut lines = Vec::new();
        flatten("", &Value::Object(fields.clone()), &mut lines);
        let taken = lines.iter().any(|(field, message)| {
            let lower = message.to_ascii_lowercase();
            let hostname = field.starts_with("cname") || field.starts_with("secondaryHostnames");
            (hostname && (lower.contains("already") || lower.contains("used")))
                || (field == "name" && lower.contains("unique"))
        });
        let text = lines
            .iter()
            .take(5)
            .map(|(field, message)| format!("{field}: {}", excerpt(message, 200)))
            .collect::<Vec<_>>()
            .join("; ");
        return Some((taken.then_some(ErrorKind::Conflict), text));
    }
    // Errors of the request as a whole (an active resource cannot be deleted), and a group
    // still in use ({"name": [...]}): the object's state refuses the call.
    if let Some(list) = object
        .get("errors")
        .or_else(|| object.get("name"))
        .and_then(Value::as_array)
    {
        let text = list
            .iter()
            .filter_map(Value::as_str)
            .map(|m| excerpt(m, 200))
            .collect::<Vec<_>>()
            .join("; ");
        return Some(((status == 400).then_some(ErrorKind::Conflict), text));
    }
    // A body that is not JSON: {"message": "JSON parse error - ..."}.
    let message = object.get("message").and_then(Value::as_str)?;
    Some((None, excerpt(message, 200)))
}

/// `(field path, message)` of every message in a field-error object.
fn flatten(at: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(message) => out.push((at.to_owned(), message.clone())),
        Value::Array(items) => items.iter().for_each(|v| flatten(at, v, out)),
        Value::Object(members) => {
            for (key, v) in members {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                flatten(&path, v, out);
            }
        }
        _ => {}
    }
}

/// Maps a failed answer to the shared error type: the status through
/// [`ErrorKind::from_http_status`] (a 429 with its `Retry-After`), refined by Gcore's
/// bodies: the general `exception_class`, a CNAME or name already taken (`Conflict`), a
/// refusal by the object's state (`Conflict`). The request id of the body is kept.
pub(crate) fn parse_error(failure: &Failure<'_>) -> Error {
    let status = failure.status;
    let wait = if status == 429 {
        Some(
            failure
                .retry_after_seconds()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1)),
        )
    } else {
        None
    };
    let mut kind = ErrorKind::from_http_status(status, wait);
    let body: Option<Value> = failure.body_as();
    let read = body.as_ref().and_then(|b| read_body(status, b));
    let Some((refined, text)) = read else {
        return failure.error(kind).with_message(failure.status_text());
    };
    // The status decides rate limits, outages and authentication; the body the rest.
    if !matches!(
        kind,
        ErrorKind::RateLimited { .. } | ErrorKind::Unavailable | ErrorKind::Unauthenticated
    ) && let Some(refined) = refined
    {
        kind = refined;
    }
    let mut error = failure.error(kind).with_message(if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    });
    if let Some(id) = body
        .as_ref()
        .and_then(|b| b.get("request_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        error = error.with_request_id(excerpt(id, 64));
    }
    error
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

    /// Decodes `body` as each answer the adapter reads, and looks at what it uses.
    pub fn decode(body: &[u8]) {
        if let Ok(page) = serde_json::from_slice::<Listing<Resource>>(body) {
            let _ = next_offset(page.next.as_deref());
            for resource in &page.results {
                let _ = resource.websockets();
            }
        }
        if let Ok(group) = serde_json::from_slice::<OriginGroup>(body) {
            let _ = group.primary();
        }
    }
}

#[cfg(test)]
mod tests {
    use damm_provider::http::{header_map, parse_answer};

    use super::*;

    fn error(status: u16, headers: &[(&str, &[u8])], body: &str) -> Error {
        let headers = header_map(headers);
        parse_answer(
            parse_error,
            "gcore",
            Operation::PublishFront,
            status,
            &headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let taken = error(
            400,
            &[],
            r#"{"errors": {"cname": ["CNAME w1.cdn.example.org is already used by another resource."]}}"#,
        );
        assert_eq!(taken.kind(), ErrorKind::Conflict);
        assert!(taken.message().contains("cname: CNAME"), "{taken}");
        let name = error(
            400,
            &[],
            r#"{"errors": {"name": ["Origin group name must be unique."]}}"#,
        );
        assert_eq!(name.kind(), ErrorKind::Conflict);
        let bad = error(
            400,
            &[],
            r#"{"errors": {"sources": {"[2001:db8::1]:80": {"source": ["not IPv4"]}}}}"#,
        );
        assert_eq!(bad.kind(), ErrorKind::InvalidInput);
        assert!(
            bad.message()
                .contains("sources.[2001:db8::1]:80.source: not IPv4"),
            "{bad}"
        );
        let active = error(400, &[], r#"{"errors": ["Deactivate it first."]}"#);
        assert_eq!(active.kind(), ErrorKind::Conflict);
        let in_use = error(
            400,
            &[],
            r#"{"name": ["Resources use this origin group."]}"#,
        );
        assert_eq!(in_use.kind(), ErrorKind::Conflict);
        let parse = error(400, &[], r#"{"message": "JSON parse error - x"}"#);
        assert_eq!(parse.kind(), ErrorKind::InvalidInput);

        let missing = error(
            404,
            &[],
            r#"{"exception_class": "NotFoundError", "message": "CDN resource not found", "request_id": "abc123"}"#,
        );
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert_eq!(missing.request_id(), Some("abc123"));
        let token = error(
            401,
            &[],
            r#"{"exception_class": "token_not_valid", "message": "Token is invalid or expired", "request_id": "r"}"#,
        );
        assert_eq!(token.kind(), ErrorKind::Unauthenticated);
        assert!(!token.is_temporary());
        let quota = error(
            400,
            &[],
            r#"{"exception_class": "QuotaLimitExceed", "message": "limit", "request_id": "r"}"#,
        );
        assert_eq!(quota.kind(), ErrorKind::QuotaExceeded);

        let limited = error(
            429,
            &[("retry-after", b"7")],
            r#"{"exception_class": "HTTPError", "message": "HTTP 429: Too Many Requests", "request_id": "r"}"#,
        );
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert!(limited.is_temporary());
        let limited = error(429, &[], "");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
        let down = error(503, &[], "<html>busy</html>");
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert!(down.is_temporary());
    }

    #[test]
    fn next_pages_are_offsets_read_from_the_url() {
        assert_eq!(
            next_offset(Some(
                "https://api.gcore.com/cdn/resources?deleted=false&limit=100&offset=200"
            )),
            Some("200".to_owned())
        );
        assert_eq!(
            next_offset(Some("https://api.gcore.com/cdn/resources?limit=100")),
            None
        );
        assert_eq!(next_offset(Some("not a url")), None);
        assert_eq!(next_offset(None), None);
    }

    #[test]
    fn a_group_points_at_its_enabled_primary_source() {
        let group: OriginGroup = serde_json::from_str(
            r#"{"id": 1, "name": "g", "sources": [
                {"source": "192.0.2.1:80", "backup": true, "enabled": true},
                {"source": "192.0.2.2:80", "enabled": false},
                {"source": "192.0.2.3:80"}]}"#,
        )
        .unwrap();
        assert_eq!(group.primary(), Some("192.0.2.3:80"));
    }
}
