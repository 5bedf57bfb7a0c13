//! The API client (the `cloudflare` crate's async client plus the endpoints it lacks,
//! added through its public `EndpointSpec` trait) and the one place API failures become
//! [`Error`]s.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use cloudflare::framework::Environment;
use cloudflare::framework::auth::Credentials;
use cloudflare::framework::client::ClientConfig;
use cloudflare::framework::client::async_api::Client as CfClient;
use cloudflare::framework::endpoint::spec::EndpointSpec;
use cloudflare::framework::endpoint::{Method, RequestBody};
use cloudflare::framework::response::{ApiFailure, ApiResult, ApiSuccess};
use damm_provider::api::{Calls, NextPage, Page, Paging, collect_pages};
use damm_provider::retry::RateLimit;
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::CloudflareConfig;

/// A zone as `GET /zones` lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Zone {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) account: ZoneAccount,
}

/// The account a zone belongs to.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ZoneAccount {
    pub(crate) id: String,
}

/// A DNS record (the fields DAMM reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DnsRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) content: String,
    #[serde(default)]
    pub(crate) proxied: Option<bool>,
    #[serde(default)]
    pub(crate) comment: Option<String>,
}

/// A Cloudflare Tunnel (the fields DAMM reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CfdTunnel {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) deleted_at: Option<String>,
    #[serde(default)]
    pub(crate) connections: Vec<serde_json::Value>,
}

/// The id a delete answers with.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Deleted {
    #[allow(dead_code)] // only deserialised: checks the answer has the documented shape
    pub(crate) id: String,
}

/// Any JSON result DAMM reads (the crate implements `ApiResult` only for its own types).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct Res<T>(pub(crate) T);

impl<T: DeserializeOwned + fmt::Debug> ApiResult for Res<T> {}

/// One call: method, path relative to the base URL, query and JSON body. Implements the
/// crate's `EndpointSpec`, which is how the endpoints the crate lacks (tunnel
/// configurations, token, connections, record comments) are reached on its client.
pub(crate) struct Call<T> {
    method: Method,
    path: String,
    query: Option<String>,
    body: Option<String>,
    result: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            query: None,
            body: None,
            result: PhantomData,
        }
    }

    /// Adds query parameters (encoded here).
    pub(crate) fn query(mut self, pairs: &[(&str, String)]) -> Self {
        let encoded = serde_urlencoded_pairs(pairs);
        self.query = (!encoded.is_empty()).then_some(encoded);
        self
    }

    /// Adds a JSON body.
    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string());
        self
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("static URL parses");
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_owned()
}

impl<T: DeserializeOwned + fmt::Debug> EndpointSpec for Call<T> {
    type JsonResponse = Res<T>;
    type ResponseType = ApiSuccess<Res<T>>;

    fn method(&self) -> Method {
        self.method.clone()
    }

    fn path(&self) -> String {
        self.path.clone()
    }

    fn query(&self) -> Option<String> {
        self.query.clone()
    }

    fn body(&self) -> Option<RequestBody<'_>> {
        self.body.clone().map(RequestBody::Json)
    }
}

/// Pages of one listing at most (a guard against a server that never ends one).
const MAX_PAGES: u64 = 1000;

/// The Cloudflare client: the crate's async client under Cloudflare's documented limit
/// (1200 requests per 5 minutes) and the shared retry policy.
pub(crate) struct Api {
    client: CfClient,
    calls: Calls,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The crate's client holds the credentials: never printed.
        f.debug_struct("Api")
            .field("provider", &self.calls.provider())
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(provider: &str, settings: &CloudflareConfig) -> Result<Self> {
        let configure = |message: String| {
            Error::new(ErrorKind::InvalidInput, provider, Operation::Configure)
                .with_message(message)
        };
        let mut base = settings.api_url.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        reqwest::Url::parse(&base)
            .map_err(|e| configure(format!("api_url `{base}` is not a URL: {e}")))?;
        let token = settings.token.expose_secret().trim();
        if token.is_empty() {
            return Err(configure("token is empty".to_owned()));
        }
        let config = ClientConfig {
            http_timeout: Duration::from_millis(settings.request_timeout_ms.unwrap_or(30_000)),
            ..ClientConfig::default()
        };
        let client = CfClient::new(
            Credentials::UserAuthToken {
                token: token.to_owned(),
            },
            config,
            Environment::Custom(base),
        )
        .map_err(|e| {
            // The crate's error carries no credentials; keep only its text.
            Error::new(ErrorKind::Unexpected, provider, Operation::Configure)
                .with_message(format!("building the HTTP client: {e}"))
        })?;
        Ok(Api {
            client,
            calls: Calls::new(
                provider,
                vec![RateLimit::new(1200, Duration::from_secs(300))],
            ),
        })
    }

    /// Sends `call`, retrying temporary failures when it is idempotent (everything but
    /// POST, which creates: never retried blindly).
    pub(crate) async fn send<T: DeserializeOwned + fmt::Debug>(
        &self,
        operation: Operation,
        call: Call<T>,
    ) -> Result<ApiSuccess<Res<T>>> {
        let parse = |provider: &str, operation, failure: ApiFailure| {
            parse_error(provider, operation, &failure)
        };
        let idempotent = call.method != Method::POST;
        self.calls
            .run_mapped(operation, idempotent, parse, || self.client.request(&call))
            .await
    }

    /// Sends `call` and keeps only its result.
    pub(crate) async fn result<T: DeserializeOwned + fmt::Debug>(
        &self,
        operation: Operation,
        call: Call<T>,
    ) -> Result<T> {
        Ok(self.send(operation, call).await?.result.0)
    }

    /// Every page of a paginated listing (`page`/`per_page` and `result_info`). One that
    /// ends short of its `total_count` (a page lost mid-pagination) fails: a truncated
    /// listing would make its missing records look deleted.
    pub(crate) async fn all_pages<T: DeserializeOwned + fmt::Debug>(
        &self,
        operation: Operation,
        path: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<T>> {
        let paging = Paging {
            max_pages: MAX_PAGES,
            ..Paging::default()
        };
        let what = format!("GET {path}");
        collect_pages(self.calls.provider(), operation, &what, paging, |at| {
            let page = match at {
                NextPage::Number(n) => n,
                NextPage::First | NextPage::Token(_) => 1,
            };
            let mut pairs = query.to_vec();
            pairs.push(("page", page.to_string()));
            pairs.push(("per_page", per_page.to_string()));
            let call = Call::<Vec<T>>::new(Method::GET, path).query(&pairs);
            async move {
                let answer = self.send(operation, call).await?;
                let info = answer.result_info.as_ref();
                let items = answer.result.0;
                Ok(Page {
                    next: next_page(info, page, items.len(), per_page),
                    total: info_number(info, "total_count"),
                    items,
                })
            }
        })
        .await
    }
}

/// A number of Cloudflare's `result_info`.
fn info_number(info: Option<&serde_json::Value>, field: &str) -> Option<u64> {
    info?.get(field)?.as_u64()
}

/// The page after `page`, which held `got` items, when the listing goes on: by
/// `result_info.total_pages`, else by `total_count` over the answered `per_page`, else
/// (no `result_info`) while pages come back full.
fn next_page(
    info: Option<&serde_json::Value>,
    page: u64,
    got: usize,
    per_page: u32,
) -> Option<NextPage> {
    let answered_per_page = info_number(info, "per_page").unwrap_or(u64::from(per_page));
    let more = match (
        info_number(info, "total_pages"),
        info_number(info, "total_count"),
    ) {
        (Some(pages), _) => page < pages,
        (None, Some(total)) => page.saturating_mul(answered_per_page) < total,
        (None, None) => got as u64 >= u64::from(per_page),
    };
    more.then_some(NextPage::Number(page + 1))
}

/// Maps a failed call to the shared error type: the HTTP status through
/// [`ErrorKind::from_http_status`], refined by Cloudflare's error codes; transport
/// failures are temporary `Unavailable`, unreadable answers `Unexpected`.
pub(crate) fn parse_error(provider: &str, operation: Operation, failure: &ApiFailure) -> Error {
    match failure {
        ApiFailure::Error(status, errors) => {
            let status = status.as_u16();
            let codes: Vec<u16> = errors.errors.iter().map(|e| e.code).collect();
            let mut kind = ErrorKind::from_http_status(status, None);
            for code in &codes {
                kind = match code {
                    // Authentication errors, invalid or expired token.
                    9103 | 9106 | 9109 | 10000 | 10001 => ErrorKind::Unauthenticated,
                    // Rate limited.
                    971 | 10013 | 10429 => ErrorKind::RateLimited { retry_after: None },
                    // Route / tunnel not found. (The DNS codes, 81xxx, do not fit the
                    // crate's `u16` code: such bodies arrive empty and the status decides.)
                    7003 | 1003 => ErrorKind::NotFound,
                    // Tunnel name taken, conflicting state.
                    1013 | 1014 => ErrorKind::Conflict,
                    _ => continue,
                };
                break;
            }
            let messages: Vec<String> = errors
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, excerpt(&e.message)))
                .collect();
            let mut message = format!("HTTP {status}");
            if !messages.is_empty() {
                message.push_str(": ");
                message.push_str(&messages.join("; "));
            }
            Error::new(kind, provider, operation).with_message(message)
        }
        ApiFailure::Invalid(e) if e.is_decode() || e.is_body() => {
            Error::new(ErrorKind::Unexpected, provider, operation)
                .with_message(format!("unreadable answer: {}", without_url(e)))
        }
        ApiFailure::Invalid(e) => Error::new(ErrorKind::Unavailable, provider, operation)
            .with_message(format!("transport: {}", without_url(e))),
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// A reqwest error's text without the URL (which could carry query values).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Entry points for the fuzz targets in `fuzz/` (cargo fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// [`parse_error`](super::parse_error) on an error answer of `status` whose body is
    /// `body`, as the `cloudflare` crate hands it over.
    pub fn parse_error(status: u16, body: &[u8]) -> Option<Error> {
        let status = reqwest::StatusCode::from_u16(status).ok()?;
        let errors = serde_json::from_slice(body).ok()?;
        Some(super::parse_error(
            "fuzz",
            Operation::ListNodes,
            &ApiFailure::Error(status, errors),
        ))
    }

    /// Decodes `body` as each result the adapter reads.
    pub fn decode(body: &[u8]) {
        let _ = serde_json::from_slice::<Res<Vec<DnsRecord>>>(body);
        let _ = serde_json::from_slice::<Res<Vec<CfdTunnel>>>(body);
        let _ = serde_json::from_slice::<Res<Vec<Zone>>>(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudflare::framework::response::{ApiErrors, ResponseInfo};

    fn failure(status: u16, code: u16) -> ApiFailure {
        ApiFailure::Error(
            reqwest::StatusCode::from_u16(status).unwrap(),
            ApiErrors {
                other: Default::default(),
                errors: vec![ResponseInfo {
                    code,
                    message: "m".into(),
                    other: Default::default(),
                }],
            },
        )
    }

    #[test]
    fn statuses_and_codes_map_to_kinds() {
        let op = Operation::PublishFront;
        assert_eq!(
            parse_error("cloudflare", op, &failure(404, 7003)).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            parse_error("cloudflare", op, &failure(400, 1014)).kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            parse_error("cloudflare", op, &failure(403, 10000)).kind(),
            ErrorKind::Unauthenticated
        );
        let limited = parse_error("cloudflare", op, &failure(429, 10013));
        assert!(matches!(limited.kind(), ErrorKind::RateLimited { .. }));
        assert!(limited.is_temporary());
        let down = parse_error("cloudflare", op, &failure(502, 1000));
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert!(down.is_temporary());
        assert_eq!(
            parse_error("cloudflare", op, &failure(400, 1004)).kind(),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn result_info_says_whether_a_next_page_follows() {
        let next = |i: Option<&serde_json::Value>, page, got| next_page(i, page, got, 100);
        // total_pages decides when present.
        let paged = serde_json::json!({"page": 1, "total_pages": 2, "total_count": 150});
        assert_eq!(next(Some(&paged), 1, 100), Some(NextPage::Number(2)));
        assert_eq!(next(Some(&paged), 2, 50), None);
        // Else total_count over the per_page the server answered with (it may cap it).
        let capped = serde_json::json!({"page": 1, "per_page": 2, "total_count": 5});
        assert_eq!(next(Some(&capped), 2, 2), Some(NextPage::Number(3)));
        assert_eq!(next(Some(&capped), 3, 1), None);
        // Without result_info, while pages come back full.
        assert_eq!(next(None, 1, 100), Some(NextPage::Number(2)));
        assert_eq!(next(None, 2, 99), None);
    }

    #[test]
    fn queries_are_encoded() {
        let q = serde_urlencoded_pairs(&[("comment", "damm-fleet=a;damm-key=b".into())]);
        assert_eq!(q, "comment=damm-fleet%3Da%3Bdamm-key%3Db");
    }
}
