//! The HTTP layer under every adapter that speaks a provider's REST API itself (feature
//! `http`): an adapter keeps only its endpoints, its wire types and its one `parse_error`.
//!
//! [`HttpClient`] holds the base URL, a [`Credential`] (a bearer token, or a signer for
//! APIs that sign each request), the provider's rate limits and retry policy ([`Calls`]),
//! and the adapter's error mapping ([`ParseError`]). A call is a [`Request`]:
//!
//! - it waits for a token from every bucket of the provider's documented limits;
//! - it is retried on temporary failures unless it is a create ([`Request::not_idempotent`]);
//!   probes and metrics make one attempt;
//! - a non-2xx answer goes through the adapter's `parse_error`, then gets the request id
//!   the provider sent (`x-request-id`, `cf-ray`, ...) and has any echoed secret cut out;
//! - a failure below HTTP (refused, timed out, cut off) is a temporary `Unavailable`;
//! - redirects are never followed: a token must not go wherever a 3xx points.
//!
//! Listings go through [`HttpClient::pages`], which adds the page parameters of a
//! [`PageStyle`] and drives [`collect_pages`]: the adapter only says how to read a page.
//! Cursors and `links.next` hrefs are sent as query parameters to the configured base URL,
//! never followed as URLs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> damm_provider::Result<()> {
//! use damm_provider::http::{HttpClient, Request, ParseError, Failure};
//! use damm_provider::{Error, ErrorKind, Operation, SecretString};
//! use damm_provider::retry::RateLimit;
//!
//! fn parse_error(failure: &Failure<'_>) -> Error {
//!     failure.error(ErrorKind::from_http_status(failure.status, failure.retry_after_seconds()))
//! }
//! let client = HttpClient::builder("demo", "http://127.0.0.1:9/v2", parse_error as ParseError)
//!     .bearer(SecretString::from("t0ken"))
//!     .limits(vec![RateLimit::per_second(30)])
//!     .build()?;
//! let request = Request::get("/servers").query("label", "damm-fleet=f1");
//! assert_eq!(request.path(), "/servers");
//! # let _ = client; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Calls, NextPage, Page, Paging, collect_pages};
use crate::retry::RateLimit;
use crate::{Error, ErrorKind, ExposeSecret, Operation, Result, SecretString};

pub use reqwest;

/// The adapter's one place where a failed answer becomes an [`Error`].
pub type ParseError = fn(&Failure<'_>) -> Error;

/// A non-2xx answer, as the adapter's [`ParseError`] sees it.
#[derive(Debug)]
pub struct Failure<'a> {
    /// The provider instance's id.
    pub provider: &'a str,
    /// The operation that failed.
    pub operation: Operation,
    /// The request's method.
    pub method: &'a Method,
    /// The request's path below the base URL (no query: it may carry names).
    pub path: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// The answer's headers.
    pub headers: &'a HeaderMap,
    /// The answer's body.
    pub body: &'a [u8],
}

impl Failure<'_> {
    /// An error of `kind` for this failure, with no message yet.
    pub fn error(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.provider, self.operation)
    }

    /// The body parsed as the provider's error shape, when it is one.
    pub fn body_as<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.body).ok()
    }

    /// `HTTP <status>: <an excerpt of the body>`, for answers not in the provider's shape.
    pub fn status_text(&self) -> String {
        let text = excerpt(&String::from_utf8_lossy(self.body), 200);
        if text.trim().is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, text.trim())
        }
    }

    /// The `Retry-After` header in seconds (see [`retry_after_seconds`]).
    pub fn retry_after_seconds(&self) -> Option<Duration> {
        retry_after_seconds(self.headers)
    }
}

/// The `Retry-After` header as a number of seconds, when present and numeric.
pub fn retry_after_seconds(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "retry-after").map(Duration::from_secs)
}

/// The wait until `header` (unix seconds at which a rate limit resets, e.g.
/// `ratelimit-reset`), at least one second; `None` without the header.
pub fn reset_at(headers: &HeaderMap, header: &str, now: SystemTime) -> Option<Duration> {
    let reset = UNIX_EPOCH.checked_add(Duration::from_secs(header_u64(headers, header)?))?;
    Some(
        reset
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(1)),
    )
}

/// A header's value as an unsigned number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The first `max` characters of `text`, on one line (control characters become spaces).
pub fn excerpt(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub use crate::api::{found, gone_is_fine};

/// Checks an `api_url` setting the way [`HttpClientBuilder::build`] does: an http(s) URL
/// with a host. The error names the setting and the value (for a config's `validate`,
/// which runs before any client is built).
///
/// ```
/// use damm_provider::http::check_base_url;
/// assert!(check_base_url("https://api.vultr.com/v2").is_ok());
/// assert!(check_base_url("ftp://x/").unwrap_err().contains("http(s)"));
/// ```
pub fn check_base_url(base: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(base.trim()).map_err(|e| format!("api_url `{base}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("api_url `{base}` must be an http(s) URL"));
    }
    Ok(url)
}

/// A request path of `segments`, each percent-encoded as one path segment: an id that
/// holds `/`, `?`, `#` or `%` cannot reach another endpoint. `.` and `..` segments are
/// dropped (as [`Url`] drops them), never resolved against the path.
///
/// ```
/// use damm_provider::http::path_of;
/// assert_eq!(path_of(&["instances", "a/b?c"]), "/instances/a%2Fb%3Fc");
/// ```
pub fn path_of(segments: &[&str]) -> String {
    let mut url = Url::parse("http://localhost/").expect("a valid URL");
    url.path_segments_mut()
        .expect("an http URL is a base")
        .clear()
        .extend(segments);
    url.path().to_owned()
}

/// A header map of the pairs that are valid HTTP headers (for fuzz targets and tests that
/// feed a `parse_error` arbitrary answers).
pub fn header_map(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// Runs `parse` on an answer of `status` with `headers` and `body` to a GET of `/fuzz`
/// (for fuzz targets and unit tests of a `parse_error`).
pub fn parse_answer(
    parse: ParseError,
    provider: &str,
    operation: Operation,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    parse(&Failure {
        provider,
        operation,
        method: &Method::GET,
        path: "/fuzz",
        status,
        headers,
        body,
    })
}

/// A JSON list that the provider may send as `null`, read as empty. Use as
/// `#[serde(default, deserialize_with = "null_as_empty")]`.
pub fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(<Option<Vec<T>> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// [`parse_answer`] on an answer to a [`Operation::ListNodes`] of provider `fuzz`, with the
/// pairs that are valid HTTP headers ([`header_map`]): the whole of an adapter's
/// `fuzzing::parse_error(status, pairs, body)` entry point.
pub fn parse_fuzzed_answer(
    parse: ParseError,
    status: u16,
    pairs: &[(&str, &[u8])],
    body: &[u8],
) -> Error {
    let headers = header_map(pairs);
    parse_answer(parse, "fuzz", Operation::ListNodes, status, &headers, body)
}

/// How a request is authorized: a bearer token, or a signature over the request (OVH's
/// application signature, an OAuth2 token fetched and cached by the credential).
#[async_trait::async_trait]
pub trait Credential: Send + Sync + fmt::Debug {
    /// Adds the credential to `request`, just before it is sent (each attempt again).
    async fn authorize(
        &self,
        provider: &str,
        operation: Operation,
        request: &mut reqwest::Request,
    ) -> Result<()>;

    /// The secrets this credential could leak into an answer echoed in an error message;
    /// they are cut out of every error's text.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Bearer(SecretString);

impl Bearer {
    /// A bearer credential of `token`.
    pub fn new(token: SecretString) -> Bearer {
        Bearer(token)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

#[async_trait::async_trait]
impl Credential for Bearer {
    async fn authorize(
        &self,
        provider: &str,
        operation: Operation,
        request: &mut reqwest::Request,
    ) -> Result<()> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0.expose_secret()))
            .map_err(|_| {
                Error::new(ErrorKind::InvalidInput, provider, operation)
                    .with_message("the API token holds characters a header cannot carry")
            })?;
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        Ok(())
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.0.expose_secret()]
    }
}

/// No credential (public endpoints, tests).
#[derive(Debug, Clone, Copy)]
pub struct Anonymous;

#[async_trait::async_trait]
impl Credential for Anonymous {
    async fn authorize(&self, _: &str, _: Operation, _: &mut reqwest::Request) -> Result<()> {
        Ok(())
    }
}

/// The headers providers put their request id in, in the order they are looked for.
pub const REQUEST_ID_HEADERS: &[&str] = &[
    "x-request-id",
    "request-id",
    "x-amz-request-id",
    "x-ms-request-id",
    "x-ovh-queryid",
    "cf-ray",
];

/// Builds an [`HttpClient`].
#[must_use]
pub struct HttpClientBuilder {
    provider: String,
    base: String,
    parse_error: ParseError,
    credential: Arc<dyn Credential>,
    limits: Vec<RateLimit>,
    timeout: Duration,
    user_agent: String,
    headers: HeaderMap,
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("provider", &self.provider)
            .field("base", &self.base)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl HttpClientBuilder {
    /// Sends `Authorization: Bearer <token>`.
    pub fn bearer(self, token: SecretString) -> Self {
        self.credential(Arc::new(Bearer::new(token)))
    }

    /// Authorizes each request with `credential`.
    pub fn credential(mut self, credential: Arc<dyn Credential>) -> Self {
        self.credential = credential;
        self
    }

    /// The provider's documented rate limits, one bucket each.
    pub fn limits(mut self, limits: Vec<RateLimit>) -> Self {
        self.limits = limits;
        self
    }

    /// The timeout of each request (and of connecting); 10 s by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The `User-Agent` (the adapter's crate name and version by convention).
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// A header sent with every request (an API version, a content type).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// The client; an unusable base URL is an [`ErrorKind::InvalidInput`] naming it.
    pub fn build(self) -> Result<HttpClient> {
        let configure = |kind: ErrorKind, message: String| {
            Error::new(kind, &self.provider, Operation::Configure).with_message(message)
        };
        let mut base = check_base_url(&self.base)
            .map_err(|message| configure(ErrorKind::InvalidInput, message))?;
        base.set_query(None);
        base.set_fragment(None);
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        let http = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.user_agent)
            .default_headers(self.headers)
            .build()
            .map_err(|e| {
                configure(ErrorKind::Unexpected, "cannot build the HTTP client".into())
                    .with_source(e)
            })?;
        Ok(HttpClient {
            shared: Arc::new(Shared {
                calls: Calls::new(&self.provider, self.limits),
                base,
                credential: self.credential,
                http,
                timeout: self.timeout,
                parse_error: self.parse_error,
            }),
        })
    }
}

struct Shared {
    calls: Calls,
    base: Url,
    credential: Arc<dyn Credential>,
    http: reqwest::Client,
    timeout: Duration,
    parse_error: ParseError,
}

/// A provider's REST API: base URL, credential, limits, retries and error mapping.
/// Clones share the connection pool and the rate limits.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.shared.calls.provider())
            .field("base", &self.shared.base.as_str())
            .field("credential", &self.shared.credential)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// One request: a method, a path below the base URL, query pairs, an optional JSON body.
/// Idempotent unless told otherwise.
#[derive(Debug, Clone)]
#[must_use]
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    idempotent: bool,
}

impl Request {
    /// A request of `method` to `path` (below the base URL, starting with `/`).
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            idempotent: true,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Request {
        Request::new(Method::GET, path)
    }

    /// `POST path`; idempotent unless [`Request::not_idempotent`] (a create) is called.
    pub fn post(path: impl Into<String>) -> Request {
        Request::new(Method::POST, path)
    }

    /// `PUT path`.
    pub fn put(path: impl Into<String>) -> Request {
        Request::new(Method::PUT, path)
    }

    /// `PATCH path`.
    pub fn patch(path: impl Into<String>) -> Request {
        Request::new(Method::PATCH, path)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Request {
        Request::new(Method::DELETE, path)
    }

    /// Adds a query pair.
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Request {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Request {
        self.body = Some(body);
        self
    }

    /// A create: never retried blindly (its idempotency key makes a replay safe).
    pub fn not_idempotent(mut self) -> Request {
        self.idempotent = false;
        self
    }

    /// The path below the base URL.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// Where a listing's page parameters go.
#[derive(Debug, Clone)]
pub enum PageStyle {
    /// `page=N&<per_page>=M`, numbered from 1 (Hetzner, DigitalOcean, Cloudflare).
    Numbered {
        /// The page-size parameter's name (`per_page`).
        per_page: &'static str,
        /// Items per page.
        size: u32,
    },
    /// `<cursor>=TOKEN&<per_page>=M`, the token from the previous page (Vultr's
    /// `meta.links.next`, a `nextPageToken`).
    Cursor {
        /// The cursor parameter's name (`cursor`, `pageToken`).
        cursor: &'static str,
        /// The page-size parameter's name (`per_page`, `maxResults`).
        per_page: &'static str,
        /// Items per page.
        size: u32,
    },
}

impl PageStyle {
    /// `page` and `per_page`.
    pub fn numbered(size: u32) -> PageStyle {
        PageStyle::Numbered {
            per_page: "per_page",
            size,
        }
    }

    /// `cursor` and `per_page`.
    pub fn cursor(size: u32) -> PageStyle {
        PageStyle::Cursor {
            cursor: "cursor",
            per_page: "per_page",
            size,
        }
    }

    fn apply(&self, request: Request, at: &NextPage) -> Request {
        match (self, at) {
            (PageStyle::Numbered { per_page, size }, NextPage::Number(n)) => request
                .query("page", n.to_string())
                .query(per_page, size.to_string()),
            (PageStyle::Numbered { per_page, size }, _) => {
                request.query("page", "1").query(per_page, size.to_string())
            }
            (
                PageStyle::Cursor {
                    cursor,
                    per_page,
                    size,
                },
                NextPage::Token(token),
            ) => request
                .query(per_page, size.to_string())
                .query(cursor, token.clone()),
            (PageStyle::Cursor { per_page, size, .. }, _) => {
                request.query(per_page, size.to_string())
            }
        }
    }
}

impl HttpClient {
    /// A client of the API at `base` (e.g. `https://api.vultr.com/v2`) for `provider`,
    /// mapping failures with `parse_error`. Anonymous until a credential is set.
    pub fn builder(provider: &str, base: &str, parse_error: ParseError) -> HttpClientBuilder {
        HttpClientBuilder {
            provider: provider.to_owned(),
            base: base.to_owned(),
            parse_error,
            credential: Arc::new(Anonymous),
            limits: Vec::new(),
            timeout: Duration::from_secs(10),
            user_agent: concat!("damm/", env!("CARGO_PKG_VERSION")).to_owned(),
            headers: HeaderMap::new(),
        }
    }

    /// The provider instance's id.
    pub fn provider(&self) -> &str {
        self.shared.calls.provider()
    }

    /// The rate limits and retry policies.
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &Url {
        &self.shared.base
    }

    /// Sends `request` under the rate limits and retry policy.
    pub async fn send(&self, operation: Operation, request: &Request) -> Result<Answer> {
        self.shared
            .calls
            .run(operation, request.idempotent, || {
                self.exchange(operation, request)
            })
            .await
    }

    /// Sends `request` and decodes its JSON answer (an answer that is not the expected
    /// JSON is a temporary [`ErrorKind::Unexpected`]: retried like a 5xx).
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: Operation,
        request: &Request,
    ) -> Result<T> {
        self.shared
            .calls
            .run(operation, request.idempotent, || async move {
                let answer = self.exchange(operation, request).await?;
                self.decode(operation, request, &answer.body)
            })
            .await
    }

    /// Sends `request`, ignoring the answer's body.
    pub async fn empty(&self, operation: Operation, request: &Request) -> Result<()> {
        self.send(operation, request).await.map(drop)
    }

    /// Decodes a JSON `body` answered to `request`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        operation: Operation,
        request: &Request,
        body: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| {
            Error::new(ErrorKind::Unexpected, self.provider(), operation)
                .with_message(format!(
                    "{}: the answer is not the expected JSON: {e}",
                    request.label()
                ))
                .set_temporary(true)
        })
    }

    /// Every item of a listing: `request` with the page parameters of `style` added, each
    /// answer decoded as `P` and read by `page` (its items, where the next page is, the
    /// total when the API tells it). See [`collect_pages`] for what ends a listing and
    /// what makes it an error.
    pub async fn pages<P, T>(
        &self,
        operation: Operation,
        request: Request,
        style: PageStyle,
        paging: Paging,
        page: impl Fn(P) -> Page<T>,
    ) -> Result<Vec<T>>
    where
        P: DeserializeOwned,
    {
        let label = request.label();
        let (request, style, page) = (&request, &style, &page);
        collect_pages(
            self.provider(),
            operation,
            &label,
            paging,
            |at| async move {
                let paged = style.apply(request.clone(), &at);
                let answer: P = self.json(operation, &paged).await?;
                Ok(page(answer))
            },
        )
        .await
    }

    /// One exchange, no retry: the 2xx answer, or the mapped error.
    async fn exchange(&self, operation: Operation, request: &Request) -> Result<Answer> {
        let shared = &*self.shared;
        let provider = shared.calls.provider();
        let mut url = shared.base.clone();
        url.set_path(&format!(
            "{}{}",
            shared.base.path().trim_end_matches('/'),
            request.path
        ));
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let mut builder = shared
            .http
            .request(request.method.clone(), url)
            .timeout(shared.timeout);
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let mut built = builder.build().map_err(|e| {
            Error::new(ErrorKind::Unexpected, provider, operation)
                .with_message(format!("{}: cannot build the request", request.label()))
                .with_source(e.without_url())
        })?;
        shared
            .credential
            .authorize(provider, operation, &mut built)
            .await?;
        let transport = |e: reqwest::Error| self.transport(operation, request, e);
        let response = shared.http.execute(built).await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(
            provider,
            %operation,
            method = %request.method,
            path = %request.path,
            status,
            "API call"
        );
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        let failure = Failure {
            provider,
            operation,
            method: &request.method,
            path: &request.path,
            status,
            headers: &headers,
            body: &body,
        };
        let mut err = (shared.parse_error)(&failure);
        if err.request_id().is_none()
            && let Some(id) = request_id(&headers)
        {
            err = err.with_request_id(id);
        }
        Err(self.redact(err))
    }

    /// Cuts the credential's secrets out of an error's text (a provider that echoes the
    /// request's headers in its error body must not put the token in a log).
    fn redact(&self, err: Error) -> Error {
        let mut message = err.message().to_owned();
        for secret in self.shared.credential.secrets() {
            if !secret.is_empty() && message.contains(secret) {
                message = message.replace(secret, "[redacted]");
            }
        }
        if message == err.message() {
            err
        } else {
            err.with_message(message)
        }
    }

    /// A failure below HTTP: no connection, a timeout, a connection closed mid-answer.
    fn transport(&self, operation: Operation, request: &Request, e: reqwest::Error) -> Error {
        let e = e.without_url();
        let what = if e.is_timeout() {
            format!("no answer within {:?}", self.shared.timeout)
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection broke while reading the answer".to_owned()
        } else {
            "the connection failed or was closed".to_owned()
        };
        Error::new(ErrorKind::Unavailable, self.provider(), operation)
            .with_message(format!("{}: transport: {what}", request.label()))
            .with_source(e)
    }
}

/// The request id of an answer, from the first of [`REQUEST_ID_HEADERS`] it carries.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        (!value.is_empty()).then(|| excerpt(value, 100))
    })
}

#[cfg(test)]
mod tests;
