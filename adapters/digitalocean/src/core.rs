//! The API client (DigitalOcean API v2's endpoints over the shared
//! [`HttpClient`](damm_provider::http::HttpClient)) and the one place API failures become
//! [`Error`]s: [`parse_error`].
//!
//! Calls run under DigitalOcean's documented limits (5000 requests per hour and 250 per
//! minute). The shared client retries what is idempotent, never a create, and makes one
//! attempt for probes and metrics. Listings are numbered (`links.pages.next` says there is
//! another page, `meta.total` how many items there are), so once the first page has told
//! the total the rest are fetched four at a time.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use damm_provider::api::{NextPage, Page, Paging};
use damm_provider::http::reqwest::Url;
use damm_provider::http::{
    Failure, HttpClient, PageStyle, Request, excerpt, found, gone_is_fine, null_as_empty, reset_at,
    retry_after_seconds,
};
use damm_provider::retry::RateLimit;
use damm_provider::{Error, ErrorKind, Operation, Result, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// How long [`Client::wait_action`] waits for an action before going on anyway.
const ACTION_WAIT: Duration = Duration::from_secs(5);

/// Listing pages fetched side by side once the first page has told the total.
const PAGES_AT_ONCE: usize = 4;

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

// ----- the client -----

/// A typed client for the endpoints the adapter uses.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HttpClient,
    page_size: u32,
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
        let http = HttpClient::builder(provider, base, parse_error)
            .bearer(token)
            .limits(vec![RateLimit::per_hour(5000), RateLimit::per_minute(250)])
            .timeout(timeout)
            .user_agent(concat!(
                "damm-adapter-digitalocean/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Client { http, page_size })
    }

    /// Every page of a listing (page numbers are only ever sent to the configured base
    /// URL, never to an href from an answer).
    async fn all_pages<P, T>(
        &self,
        op: Operation,
        request: Request,
        page: impl Fn(P) -> Page<T>,
    ) -> Result<Vec<T>>
    where
        P: serde::de::DeserializeOwned,
    {
        let paging = Paging::default().concurrent(PAGES_AT_ONCE);
        let style = PageStyle::numbered(self.page_size);
        self.http.pages(op, request, style, paging, page).await
    }

    /// Droplets carrying `tag` (every page).
    pub(crate) async fn list_droplets(&self, op: Operation, tag: &str) -> Result<Vec<Droplet>> {
        let request = Request::get("/droplets").query("tag_name", tag);
        self.all_pages(op, request, |p: DropletPage| Page {
            next: next_page(&p.links),
            total: p.meta.total,
            items: p.droplets,
        })
        .await
    }

    /// One droplet; `None` when it does not exist.
    pub(crate) async fn get_droplet(&self, op: Operation, id: u64) -> Result<Option<Droplet>> {
        let request = Request::get(format!("/droplets/{id}"));
        let answer = self.http.json::<DropletEnvelope>(op, &request).await;
        found(answer.map(|one| one.droplet))
    }

    /// Creates a droplet. Never retried: a replay finds it by its key tag instead.
    pub(crate) async fn create_droplet(&self, op: Operation, body: Value) -> Result<Droplet> {
        let request = Request::post("/droplets").json(body).not_idempotent();
        let answer = self.http.json::<DropletEnvelope>(op, &request).await?;
        Ok(answer.droplet)
    }

    /// Deletes a droplet; `false` when it was already gone.
    pub(crate) async fn delete_droplet(&self, op: Operation, id: u64) -> Result<bool> {
        let request = Request::delete(format!("/droplets/{id}"));
        gone_is_fine(self.http.empty(op, &request).await)
    }

    /// Creates tag `name` (an existing one is fine).
    pub(crate) async fn ensure_tag(&self, op: Operation, name: &str) -> Result<()> {
        let request = Request::post("/tags").json(json!({ "name": name }));
        self.http.empty(op, &request).await
    }

    /// Tags droplet `id` with `tag`, creating the tag first.
    pub(crate) async fn tag_droplet(&self, op: Operation, tag: &str, id: u64) -> Result<()> {
        self.ensure_tag(op, tag).await?;
        let request = Request::post(format!("/tags/{tag}/resources")).json(tag_resources(id));
        self.http.empty(op, &request).await
    }

    /// Removes `tag` from droplet `id`; a tag or droplet that is gone is fine.
    pub(crate) async fn untag_droplet(&self, op: Operation, tag: &str, id: u64) -> Result<()> {
        let request = Request::delete(format!("/tags/{tag}/resources")).json(tag_resources(id));
        gone_is_fine(self.http.empty(op, &request).await).map(drop)
    }

    /// Deletes tag `name` from the account; one that is gone is fine.
    pub(crate) async fn delete_tag(&self, op: Operation, name: &str) -> Result<()> {
        let request = Request::delete(format!("/tags/{name}"));
        gone_is_fine(self.http.empty(op, &request).await).map(drop)
    }

    /// Every reserved IP of the account (every page).
    pub(crate) async fn list_reserved_ips(&self, op: Operation) -> Result<Vec<ReservedIp>> {
        self.all_pages(op, Request::get("/reserved_ips"), |p: ReservedIpPage| {
            Page {
                next: next_page(&p.links),
                total: p.meta.total,
                items: p.reserved_ips,
            }
        })
        .await
    }

    /// One reserved IP; `None` when it does not exist.
    pub(crate) async fn get_reserved_ip(
        &self,
        op: Operation,
        ip: Ipv4Addr,
    ) -> Result<Option<ReservedIp>> {
        let request = Request::get(format!("/reserved_ips/{ip}"));
        let answer = self.http.json::<ReservedIpEnvelope>(op, &request).await;
        found(answer.map(|one| one.reserved_ip))
    }

    /// Reserves an IP assigned to droplet `id`. Never retried.
    pub(crate) async fn create_reserved_ip(&self, op: Operation, id: u64) -> Result<ReservedIp> {
        let request = Request::post("/reserved_ips")
            .json(json!({ "droplet_id": id }))
            .not_idempotent();
        let answer = self.http.json::<ReservedIpEnvelope>(op, &request).await?;
        Ok(answer.reserved_ip)
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
        let request = Request::post(format!("/reserved_ips/{ip}/actions")).json(body);
        let answer = self.http.json::<ActionEnvelope>(op, &request).await?;
        Ok(answer.action)
    }

    /// Deletes reserved IP `ip`; `false` when it was already gone.
    pub(crate) async fn delete_reserved_ip(&self, op: Operation, ip: Ipv4Addr) -> Result<bool> {
        let request = Request::delete(format!("/reserved_ips/{ip}"));
        gone_is_fine(self.http.empty(op, &request).await)
    }

    /// Waits (a few seconds at most) until `action` is no longer in progress. It goes on
    /// without an error after that: the next step reports what is wrong, if anything.
    pub(crate) async fn wait_action(&self, op: Operation, action: &Action) {
        let deadline = tokio::time::Instant::now() + ACTION_WAIT;
        let request = Request::get(format!("/actions/{}", action.id));
        let mut status = action.status.clone();
        while status == "in-progress" && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = match self.http.json::<ActionEnvelope>(op, &request).await {
                Ok(answer) => answer.action.status,
                Err(_) => return,
            };
        }
    }

    /// The cheapest authenticated read there is: one droplet of the fleet's listing.
    pub(crate) async fn ping(&self, op: Operation, tag: &str) -> Result<()> {
        let request = Request::get("/droplets")
            .query("tag_name", tag)
            .query("per_page", "1");
        self.http.json::<DropletPage>(op, &request).await.map(drop)
    }
}

/// The page `links.pages.next` names, by its `page` parameter (the href itself is never
/// followed); `None` on the last page.
fn next_page(links: &Links) -> Option<NextPage> {
    let href = links.pages.as_ref()?.next.as_deref()?;
    let base = Url::parse("http://localhost/").expect("a valid URL");
    let url = base.join(href).ok()?;
    let (_, page) = url.query_pairs().find(|(name, _)| name == "page")?;
    page.parse().ok().map(NextPage::Number)
}

fn tag_resources(id: u64) -> Value {
    json!({ "resources": [{ "resource_id": id.to_string(), "resource_type": "droplet" }] })
}

/// Maps a failed API answer to the shared error type: the kind from the HTTP status,
/// refined by DigitalOcean's error `id`; DigitalOcean's own message; for 429 the wait
/// from `Retry-After` or `ratelimit-reset`.
pub(crate) fn parse_error(failure: &Failure<'_>) -> Error {
    let status = failure.status;
    let wait = if status == 429 {
        retry_after(failure.headers, SystemTime::now())
    } else {
        None
    };
    let parsed = failure
        .body_as::<ApiError>()
        .filter(|e| e.id.is_some() || e.message.is_some());
    let Some(err) = parsed else {
        let kind = ErrorKind::from_http_status(status, wait);
        return failure.error(kind).with_message(failure.status_text());
    };
    let id = err.id.as_deref().unwrap_or("");
    let message = err.message.as_deref().unwrap_or("");
    let mut kind = match id {
        "not_found" => ErrorKind::NotFound,
        "unauthorized" | "Unauthorized" | "forbidden" => ErrorKind::Unauthenticated,
        "too_many_requests" => ErrorKind::RateLimited { retry_after: wait },
        _ => ErrorKind::from_http_status(status, wait),
    };
    let lower = message.to_ascii_lowercase();
    if matches!(status, 403 | 422) && lower.contains("limit") && !lower.contains("rate") {
        kind = ErrorKind::QuotaExceeded;
    }
    let mut text = format!("HTTP {status}");
    if !id.is_empty() {
        text.push_str(&format!(" {id}"));
    }
    if !message.is_empty() {
        text.push_str(&format!(": {}", excerpt(message, 200)));
    }
    failure.error(kind).with_message(text)
}

/// The wait a 429 asks for: `Retry-After` (seconds), else `ratelimit-reset` (unix seconds
/// when the limit resets), at least one second.
pub(crate) fn retry_after(
    headers: &damm_provider::http::reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    match retry_after_seconds(headers) {
        Some(wait) => Some(wait.max(Duration::from_secs(1))),
        None => reset_at(headers, "ratelimit-reset", now),
    }
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
        if let Ok(page) = serde_json::from_slice::<DropletPage>(body) {
            let _ = (next_page(&page.links), page.meta.total, page.droplets.len());
        }
        let _ = serde_json::from_slice::<ReservedIpPage>(body);
        let _ = serde_json::from_slice::<DropletEnvelope>(body);
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use damm_provider::http::{header_map, parse_answer};

    use super::*;

    fn error(op: Operation, status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> Error {
        let headers = header_map(headers);
        parse_answer(parse_error, "digitalocean", op, status, &headers, body)
    }

    #[test]
    fn statuses_and_ids_map_to_kinds() {
        let body = br#"{"id":"not_found","message":"The resource you were accessing could not be found.","request_id":"x"}"#;
        let err = error(Operation::ListNodes, 404, &[], body);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!err.is_temporary());
        assert_eq!(
            err.message(),
            "HTTP 404 not_found: The resource you were accessing could not be found."
        );
        let err = error(
            Operation::ListNodes,
            401,
            &[],
            br#"{"id":"unauthorized","message":"Unable to authenticate you"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let err = error(
            Operation::CreateIngressNode,
            422,
            &[],
            br#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit"}"#,
        );
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
        let err = error(Operation::ListNodes, 503, &[], b"<html>oops</html>");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        assert!(err.message().contains("oops"), "{}", err.message());
    }

    #[test]
    fn rate_limits_carry_the_wait() {
        let now = SystemTime::now();
        let err = error(
            Operation::ListNodes,
            429,
            &[("retry-after", b"7")],
            br#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.is_temporary());
        let reset = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 30;
        let reset = reset.to_string();
        let wait = retry_after(&header_map(&[("ratelimit-reset", reset.as_bytes())]), now).unwrap();
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?}"
        );
        let past = retry_after(&header_map(&[("ratelimit-reset", b"1")]), now).unwrap();
        assert_eq!(
            past,
            Duration::from_secs(1),
            "a reset in the past waits a second"
        );
        assert_eq!(retry_after(&header_map(&[]), now), None);
    }

    #[test]
    fn the_next_page_is_read_from_links_pages_next() {
        let page = |links: &str| -> DropletPage {
            serde_json::from_str(&format!(r#"{{"droplets":[],"links":{links}}}"#)).unwrap()
        };
        let next = page(
            r#"{"pages":{"next":"https://api.digitalocean.com/v2/droplets?page=3&per_page=2"}}"#,
        );
        assert_eq!(next_page(&next.links), Some(NextPage::Number(3)));
        assert_eq!(next_page(&page("{}").links), None);
        assert_eq!(next_page(&page(r#"{"pages":{"next":""}}"#).links), None);
        assert_eq!(
            next_page(&page(r#"{"pages":{"last":"/v2/droplets?page=1"}}"#).links),
            None
        );
    }
}
