//! The API client (a small typed reqwest client over DigitalOcean API v2) and the one
//! place API failures become [`Error`]s: [`parse_error`].
//!
//! Every call goes through the shared [`RetryPolicy`] under DigitalOcean's documented
//! limits (5000 requests per hour and 250 per minute), with a timeout per request. Calls
//! that create something are never retried blindly; reads, deletes and tag changes are.
//! Probes and metrics make one attempt: the orchestrator probes again next tick.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use damm_provider::retry::{RateLimit, RetryPolicy};
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, Result, SecretString};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long [`Client::wait_action`] waits for an action before going on anyway.
const ACTION_WAIT: Duration = Duration::from_secs(5);

/// Pages followed at most in one listing (a guard against a server that never ends).
const MAX_PAGES: u32 = 10_000;

// ----- wire types: the parts of DigitalOcean's JSON the adapter reads -----

/// A droplet.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Droplet {
    pub(crate) id: u64,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) tags: Vec<String>,
    pub(crate) region: RegionRef,
    #[serde(default)]
    pub(crate) networks: Networks,
}

impl Droplet {
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A region as embedded in droplets and reserved IPs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RegionRef {
    pub(crate) slug: String,
}

/// A droplet's addresses.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Networks {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) v4: Vec<Network>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) v6: Vec<Network>,
}

/// One address of a droplet.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Network {
    pub(crate) ip_address: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

/// A reserved IP, with the droplet it is assigned to.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReservedIp {
    pub(crate) ip: Ipv4Addr,
    #[serde(default)]
    pub(crate) droplet: Option<Droplet>,
}

/// An action (a power change, an IP assignment, ...).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Action {
    pub(crate) id: u64,
    pub(crate) status: String,
}

#[derive(Debug, Default, Deserialize)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Debug, Default, Deserialize)]
struct Pages {
    #[serde(default)]
    next: Option<String>,
}

/// A list's `meta`: how many items the whole listing holds.
#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct DropletPage {
    droplets: Vec<Droplet>,
    #[serde(default)]
    links: Links,
    #[serde(default)]
    meta: ListMeta,
}

#[derive(Debug, Deserialize)]
struct ReservedIpPage {
    reserved_ips: Vec<ReservedIp>,
    #[serde(default)]
    links: Links,
    #[serde(default)]
    meta: ListMeta,
}

#[derive(Debug, Deserialize)]
struct DropletEnvelope {
    droplet: Droplet,
}

#[derive(Debug, Deserialize)]
struct ReservedIpEnvelope {
    reserved_ip: ReservedIp,
}

#[derive(Debug, Deserialize)]
struct ActionEnvelope {
    action: Action,
}

/// DigitalOcean's error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    id: Option<String>,
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
    token: SecretString,
    http: reqwest::Client,
    limits: [RateLimit; 2],
    retry: RetryPolicy,
    once: RetryPolicy,
    timeout: Duration,
    page_size: u32,
}

/// What a call expects back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A JSON document.
    Json,
    /// Nothing worth reading (204 or an ignored body).
    Nothing,
}

/// One API call: an idempotent request answered with JSON unless told otherwise.
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<&'a Value>,
    idempotent: bool,
    expect: Expect,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Call {
            method,
            path,
            query: &[],
            body: None,
            idempotent: true,
            expect: Expect::Json,
        }
    }

    fn query(mut self, query: &'a [(&'a str, String)]) -> Self {
        self.query = query;
        self
    }

    fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }

    /// A create: never retried blindly.
    fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// The answer's body is not read.
    fn no_answer(mut self) -> Self {
        self.expect = Expect::Nothing;
        self
    }
}

impl Client {
    /// A client for `base` (up to and including `/v2`) acting as `provider`.
    pub(crate) fn new(
        provider: &str,
        base: &str,
        token: SecretString,
        timeout: Duration,
        page_size: u32,
    ) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            // Never follow a redirect with the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "damm-adapter-digitalocean/",
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
            token,
            http,
            limits: [RateLimit::per_hour(5000), RateLimit::per_minute(250)],
            retry: RetryPolicy::default(),
            once: RetryPolicy::none(),
            timeout,
            page_size,
        })
    }

    /// Probes and metrics make one attempt; everything else retries temporary failures.
    fn policy(&self, op: Operation) -> &RetryPolicy {
        match op {
            Operation::ProbeHealth | Operation::GetMetrics => &self.once,
            _ => &self.retry,
        }
    }

    /// One call under the rate limits and the retry policy; the answer's body as JSON
    /// (or `Value::Null` for [`Expect::Nothing`]).
    async fn call(&self, op: Operation, call: Call<'_>) -> Result<Value> {
        self.policy(op)
            .run(&self.limits, call.idempotent, async || {
                let bytes = self.once(op, &call).await?;
                match call.expect {
                    Expect::Nothing => Ok(Value::Null),
                    Expect::Json => serde_json::from_slice(&bytes).map_err(|e| {
                        Error::new(ErrorKind::Unexpected, &self.provider, op)
                            .with_message(format!(
                                "the answer to {} {} is not JSON",
                                call.method, call.path
                            ))
                            .with_source(e)
                            .set_temporary(true)
                    }),
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
    async fn once(&self, op: Operation, call: &Call<'_>) -> Result<Vec<u8>> {
        let mut request = self
            .http
            .request(call.method.clone(), format!("{}{}", self.base, call.path))
            .bearer_auth(self.token.expose_secret())
            .timeout(self.timeout);
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = call.body {
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

    async fn get(&self, op: Operation, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(op, Call::new(Method::GET, path).query(query))
            .await
    }

    /// Every page of a listing, following `links.pages.next` by page number (the token
    /// is only ever sent to the configured base URL, never to an href from an answer).
    /// `items` answers a page's items, whether a next page is linked, and `meta.total`.
    /// A listing that ends short of its total (a page lost mid-pagination) is an error,
    /// never a truncated inventory: the orchestrator would take the missing resources for
    /// vanished ones.
    async fn all_pages<P: DeserializeOwned, T>(
        &self,
        op: Operation,
        path: &str,
        filter: &[(&str, String)],
        items: impl Fn(P) -> (Vec<T>, bool, Option<u64>),
    ) -> Result<Vec<T>> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = filter.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", self.page_size.to_string()));
            let value = self.get(op, path, &query).await?;
            let (found, more, total) = items(self.decode(op, "listing", value)?);
            let empty = found.is_empty();
            all.extend(found);
            if !more || empty {
                if let Some(total) = total
                    && (all.len() as u64) < total
                {
                    return Err(Error::new(ErrorKind::Unexpected, &self.provider, op)
                        .with_message(format!(
                            "GET {path}: the listing ended at page {page} with {} of its {total} items",
                            all.len()
                        ))
                        .set_temporary(true));
                }
                return Ok(all);
            }
        }
        Err(Error::new(ErrorKind::Unexpected, &self.provider, op)
            .with_message(format!("GET {path} did not end after {MAX_PAGES} pages")))
    }

    /// Droplets carrying `tag` (every page).
    pub(crate) async fn list_droplets(&self, op: Operation, tag: &str) -> Result<Vec<Droplet>> {
        self.all_pages(
            op,
            "/droplets",
            &[("tag_name", tag.to_owned())],
            |p: DropletPage| (p.droplets, has_next(&p.links), p.meta.total),
        )
        .await
    }

    /// One droplet; `None` when it does not exist.
    pub(crate) async fn get_droplet(&self, op: Operation, id: u64) -> Result<Option<Droplet>> {
        match self.get(op, &format!("/droplets/{id}"), &[]).await {
            Ok(value) => Ok(Some(
                self.decode::<DropletEnvelope>(op, "droplet", value)?
                    .droplet,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a droplet. Never retried: a replay finds it by its key tag instead.
    pub(crate) async fn create_droplet(&self, op: Operation, body: &Value) -> Result<Droplet> {
        let value = self
            .call(
                op,
                Call::new(Method::POST, "/droplets")
                    .body(body)
                    .not_idempotent(),
            )
            .await?;
        Ok(self
            .decode::<DropletEnvelope>(op, "droplet", value)?
            .droplet)
    }

    /// Deletes a droplet; `false` when it was already gone.
    pub(crate) async fn delete_droplet(&self, op: Operation, id: u64) -> Result<bool> {
        self.delete(op, &format!("/droplets/{id}"), None).await
    }

    async fn delete(&self, op: Operation, path: &str, body: Option<&Value>) -> Result<bool> {
        let mut call = Call::new(Method::DELETE, path).no_answer();
        if let Some(body) = body {
            call = call.body(body);
        }
        match self.call(op, call).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates tag `name` (an existing one is fine).
    pub(crate) async fn ensure_tag(&self, op: Operation, name: &str) -> Result<()> {
        let body = json!({ "name": name });
        self.call(op, Call::new(Method::POST, "/tags").body(&body).no_answer())
            .await
            .map(drop)
    }

    /// Tags droplet `id` with `tag`, creating the tag first.
    pub(crate) async fn tag_droplet(&self, op: Operation, tag: &str, id: u64) -> Result<()> {
        self.ensure_tag(op, tag).await?;
        let body = tag_resources(id);
        let path = format!("/tags/{tag}/resources");
        self.call(op, Call::new(Method::POST, &path).body(&body).no_answer())
            .await
            .map(drop)
    }

    /// Removes `tag` from droplet `id`; a tag or droplet that is gone is fine.
    pub(crate) async fn untag_droplet(&self, op: Operation, tag: &str, id: u64) -> Result<()> {
        let body = tag_resources(id);
        self.delete(op, &format!("/tags/{tag}/resources"), Some(&body))
            .await
            .map(drop)
    }

    /// Deletes tag `name` from the account; one that is gone is fine.
    pub(crate) async fn delete_tag(&self, op: Operation, name: &str) -> Result<()> {
        self.delete(op, &format!("/tags/{name}"), None)
            .await
            .map(drop)
    }

    /// Every reserved IP of the account (every page).
    pub(crate) async fn list_reserved_ips(&self, op: Operation) -> Result<Vec<ReservedIp>> {
        self.all_pages(op, "/reserved_ips", &[], |p: ReservedIpPage| {
            (p.reserved_ips, has_next(&p.links), p.meta.total)
        })
        .await
    }

    /// One reserved IP; `None` when it does not exist.
    pub(crate) async fn get_reserved_ip(
        &self,
        op: Operation,
        ip: Ipv4Addr,
    ) -> Result<Option<ReservedIp>> {
        match self.get(op, &format!("/reserved_ips/{ip}"), &[]).await {
            Ok(value) => Ok(Some(
                self.decode::<ReservedIpEnvelope>(op, "reserved IP", value)?
                    .reserved_ip,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reserves an IP assigned to droplet `id`. Never retried.
    pub(crate) async fn create_reserved_ip(&self, op: Operation, id: u64) -> Result<ReservedIp> {
        let body = json!({ "droplet_id": id });
        let value = self
            .call(
                op,
                Call::new(Method::POST, "/reserved_ips")
                    .body(&body)
                    .not_idempotent(),
            )
            .await?;
        Ok(self
            .decode::<ReservedIpEnvelope>(op, "reserved IP", value)?
            .reserved_ip)
    }

    /// Assigns `ip` to droplet `id` (`Some`) or unassigns it (`None`).
    pub(crate) async fn reserved_ip_action(
        &self,
        op: Operation,
        ip: Ipv4Addr,
        droplet: Option<u64>,
    ) -> Result<Action> {
        let body = match droplet {
            Some(id) => json!({ "type": "assign", "droplet_id": id }),
            None => json!({ "type": "unassign" }),
        };
        let path = format!("/reserved_ips/{ip}/actions");
        let value = self
            .call(op, Call::new(Method::POST, &path).body(&body))
            .await?;
        Ok(self.decode::<ActionEnvelope>(op, "action", value)?.action)
    }

    /// Deletes reserved IP `ip`; `false` when it was already gone.
    pub(crate) async fn delete_reserved_ip(&self, op: Operation, ip: Ipv4Addr) -> Result<bool> {
        self.delete(op, &format!("/reserved_ips/{ip}"), None).await
    }

    /// Waits (a few seconds at most) until `action` is no longer in progress. It goes on
    /// without an error after that: the next step reports what is wrong, if anything.
    pub(crate) async fn wait_action(&self, op: Operation, action: &Action) {
        let deadline = tokio::time::Instant::now() + ACTION_WAIT;
        let mut status = action.status.clone();
        while status == "in-progress" && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = match self.get(op, &format!("/actions/{}", action.id), &[]).await {
                Ok(value) => match self.decode::<ActionEnvelope>(op, "action", value) {
                    Ok(a) => a.action.status,
                    Err(_) => return,
                },
                Err(_) => return,
            };
        }
    }

    /// The cheapest authenticated read there is: one droplet of the fleet's listing.
    pub(crate) async fn ping(&self, op: Operation, tag: &str) -> Result<()> {
        self.get(
            op,
            "/droplets",
            &[("tag_name", tag.to_owned()), ("per_page", "1".to_owned())],
        )
        .await
        .map(drop)
    }
}

fn has_next(links: &Links) -> bool {
    links
        .pages
        .as_ref()
        .and_then(|p| p.next.as_deref())
        .is_some_and(|next| !next.is_empty())
}

fn tag_resources(id: u64) -> Value {
    json!({ "resources": [{ "resource_id": id.to_string(), "resource_type": "droplet" }] })
}

/// Maps a failed API answer to the shared error type: the kind from the HTTP status,
/// refined by DigitalOcean's error `id`; DigitalOcean's own message; for 429 the wait
/// from `Retry-After` or `ratelimit-reset`.
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
    let parsed = serde_json::from_slice::<ApiError>(body)
        .ok()
        .filter(|e| e.id.is_some() || e.message.is_some());
    let mut kind = ErrorKind::from_http_status(status, wait);
    let mut text = format!("HTTP {status}");
    match &parsed {
        Some(err) => {
            let id = err.id.as_deref().unwrap_or("");
            let message = err.message.as_deref().unwrap_or("");
            kind = match id {
                "not_found" => ErrorKind::NotFound,
                "unauthorized" | "Unauthorized" | "forbidden" => ErrorKind::Unauthenticated,
                "too_many_requests" => ErrorKind::RateLimited { retry_after: wait },
                _ => kind,
            };
            let lower = message.to_ascii_lowercase();
            if matches!(status, 403 | 422) && lower.contains("limit") && !lower.contains("rate") {
                kind = ErrorKind::QuotaExceeded;
            }
            if !id.is_empty() {
                text.push_str(&format!(" {id}"));
            }
            if !message.is_empty() {
                text.push_str(&format!(": {}", excerpt(message)));
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

/// The wait a 429 asks for: `Retry-After` (seconds), else `ratelimit-reset` (unix seconds
/// when the limit resets), at least one second.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| -> Option<u64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
    };
    let wait = if let Some(seconds) = number("retry-after") {
        Duration::from_secs(seconds)
    } else {
        let reset = UNIX_EPOCH + Duration::from_secs(number("ratelimit-reset")?);
        reset.duration_since(now).unwrap_or_default()
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

    /// Decodes `body` as each listing and envelope the adapter reads.
    pub fn decode(body: &[u8]) {
        if let Ok(page) = serde_json::from_slice::<DropletPage>(body) {
            let _ = (has_next(&page.links), page.meta.total, page.droplets.len());
        }
        let _ = serde_json::from_slice::<ReservedIpPage>(body);
        let _ = serde_json::from_slice::<DropletEnvelope>(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn statuses_and_ids_map_to_kinds() {
        let none = HeaderMap::new();
        let body = br#"{"id":"not_found","message":"The resource you were accessing could not be found.","request_id":"x"}"#;
        let err = parse_error("digitalocean", Operation::ListNodes, 404, &none, body);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!err.is_temporary());
        assert_eq!(
            err.message(),
            "HTTP 404 not_found: The resource you were accessing could not be found."
        );
        let err = parse_error(
            "digitalocean",
            Operation::ListNodes,
            401,
            &none,
            br#"{"id":"unauthorized","message":"Unable to authenticate you"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = parse_error(
            "digitalocean",
            Operation::CreateIngressNode,
            422,
            &none,
            br#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
        let err = parse_error(
            "digitalocean",
            Operation::ListNodes,
            503,
            &none,
            b"<html>oops</html>",
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        assert!(err.message().contains("oops"), "{}", err.message());
    }

    #[test]
    fn rate_limits_carry_the_wait() {
        let now = SystemTime::now();
        let err = parse_error(
            "digitalocean",
            Operation::ListNodes,
            429,
            &headers(&[("retry-after", "7")]),
            br#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.is_temporary());
        let reset = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 30;
        let wait = retry_after(&headers(&[("ratelimit-reset", &reset.to_string())]), now).unwrap();
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?}"
        );
        let past = retry_after(&headers(&[("ratelimit-reset", "1")]), now).unwrap();
        assert_eq!(
            past,
            Duration::from_secs(1),
            "a reset in the past waits a second"
        );
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
