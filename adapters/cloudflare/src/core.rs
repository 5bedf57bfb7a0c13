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
use damm_provider::retry::{RateLimit, RetryPolicy};
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

/// The Cloudflare client: the crate's async client under Cloudflare's documented limit
/// (1200 requests per 5 minutes) and the shared retry policy.
pub(crate) struct Api {
    provider: String,
    client: CfClient,
    limits: [RateLimit; 1],
    retry: RetryPolicy,
    once: RetryPolicy,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The crate's client holds the credentials: never printed.
        f.debug_struct("Api")
            .field("provider", &self.provider)
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
            provider: provider.to_owned(),
            client,
            limits: [RateLimit::new(1200, Duration::from_secs(300))],
            retry: RetryPolicy::default(),
            once: RetryPolicy::none(),
        })
    }

    /// Sends `call`, retrying temporary failures when it is idempotent (everything but
    /// POST).
    pub(crate) async fn send<T: DeserializeOwned + fmt::Debug>(
        &self,
        operation: Operation,
        call: Call<T>,
    ) -> Result<ApiSuccess<Res<T>>> {
        let policy = if call.method == Method::POST {
            &self.once
        } else {
            &self.retry
        };
        policy
            .run(&self.limits, call.method != Method::POST, || {
                let call = &call;
                async move {
                    self.client
                        .request(call)
                        .await
                        .map_err(|e| parse_error(&self.provider, operation, &e))
                }
            })
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

    /// Every page of a paginated listing (`page`/`per_page` and `result_info`).
    pub(crate) async fn all_pages<T: DeserializeOwned + fmt::Debug>(
        &self,
        operation: Operation,
        path: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for page in 1u32.. {
            let mut pairs = query.to_vec();
            pairs.push(("page", page.to_string()));
            pairs.push(("per_page", per_page.to_string()));
            let answer = self
                .send(
                    operation,
                    Call::<Vec<T>>::new(Method::GET, path).query(&pairs),
                )
                .await?;
            let got = answer.result.0.len();
            out.extend(answer.result.0);
            let total = answer
                .result_info
                .as_ref()
                .and_then(|i| i.get("total_count"))
                .and_then(serde_json::Value::as_u64);
            let done = match total {
                Some(total) => out.len() as u64 >= total,
                None => got < per_page as usize,
            };
            if done {
                break;
            }
            // An empty page short of the total (a page lost mid-pagination) fails the
            // listing: a truncated one would make its missing records look deleted.
            if got == 0 || page >= 1000 {
                return Err(Error::new(ErrorKind::Unexpected, &self.provider, operation)
                    .with_message(format!(
                        "GET {path}: the listing ended at page {page} with {} of its {} items",
                        out.len(),
                        total.map_or_else(|| "?".to_owned(), |t| t.to_string())
                    ))
                    .set_temporary(true));
            }
        }
        Ok(out)
    }
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
    fn queries_are_encoded() {
        let q = serde_urlencoded_pairs(&[("comment", "damm-fleet=a;damm-key=b".into())]);
        assert_eq!(q, "comment=damm-fleet%3Da%3Bdamm-key%3Db");
    }
}
