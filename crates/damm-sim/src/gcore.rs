//! Gcore CDN API: CDN resources and origin groups, under `/gcore` (the API's own paths,
//! `/cdn/resources`, `/cdn/origin_groups`, below it).
//!
//! The account ([`CLIENT_ID`]) holds the SSL certificates of [`CERTIFICATES`] and nothing
//! else. Requests carry `Authorization: APIKey <token>`. Resource and origin group ids are
//! integers. A resource is `processed` for the boot delay after its creation (Gcore: about
//! fifteen minutes while it propagates), then `active`; it must be deactivated (`active:
//! false`) before it can be deleted, and a deleted one stays listed as a tombstone with a few
//! fields (`deleted: true`, `status: "deleted"`), its CNAME free again. An origin group can
//! be deleted only when no live resource uses it. Origin sources are `host[:port]` with an
//! IPv4 address or a domain: IPv6 literals, private and reserved IPv4 ranges and bad ports
//! are refused as Gcore documents (the documentation ranges are accepted, as everywhere in
//! the simulator). Listings answer a plain list, or a page (`count`, `next`, `previous`,
//! `results`) when `limit` or `offset` is given.
//!
//! Errors: 400s in Gcore's CDN shapes (`{"errors": {field: [...]}}`, `{"errors": [...]}`,
//! `{"message": "JSON parse error - ..."}`); the rest in its general shape
//! `{"exception_class", "message", "request_id"}`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Provider;
use crate::server::{Api, ProviderJson, Shared, lock, provider_error};
use crate::world::Bucket;

type S = State<Arc<Shared>>;
type Params = Query<HashMap<String, String>>;

/// The simulated account's id (`client` on every resource).
pub(crate) const CLIENT_ID: i64 = 170;

/// The SSL certificates the account holds: id and the name it covers. Certificate 4101 is
/// the wildcard for DAMM's subdomain of the simulator's zone (`damm.example`, as
/// Cloudflare's).
pub(crate) const CERTIFICATES: &[(i64, &str)] =
    &[(4101, "*.damm.damm.example"), (4102, "*.cdn.damm.example")];

/// Listings' page size when `offset` comes without `limit`.
const DEFAULT_LIMIT: usize = 25;

/// Gcore's wiring: no documented limit (a generous 100/s bucket, 429 with `Retry-After`
/// past it), the error shapes above.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(100, Duration::from_secs(1))],
    rate_headers: None,
    admin: None,
    reject_body: Some(reject_body),
};

/// One origin source (a host).
#[derive(Debug, Clone, PartialEq)]
struct Source {
    source: String,
    backup: bool,
    enabled: bool,
}

/// One origin group.
#[derive(Debug, Clone)]
struct OriginGroup {
    id: i64,
    name: String,
    use_next: bool,
    proxy_next_upstream: Vec<String>,
    sources: Vec<Source>,
}

/// One CDN resource.
#[derive(Debug, Clone)]
struct Resource {
    id: i64,
    cname: String,
    active: bool,
    name: Option<String>,
    description: String,
    origin_group: i64,
    origin_protocol: String,
    secondary: Vec<String>,
    ssl_enabled: bool,
    ssl_data: Option<i64>,
    options: Map<String, Value>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    /// When it leaves `processed`.
    ready_at: Instant,
    deleted: bool,
}

/// Gcore's world.
#[derive(Debug, Default)]
pub(crate) struct World {
    last_resource: i64,
    last_group: i64,
    resources: BTreeMap<i64, Resource>,
    groups: BTreeMap<i64, OriginGroup>,
}

impl World {
    fn live(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values().filter(|r| !r.deleted)
    }

    fn group_in_use(&self, id: i64) -> bool {
        self.live().any(|r| r.origin_group == id)
    }

    /// A free origin group name: `name`, else `name-2`, `name-3`, ...
    fn free_group_name(&self, name: &str) -> String {
        let taken = |n: &str| self.groups.values().any(|g| g.name == n);
        if !taken(name) {
            return name.to_owned();
        }
        (2..)
            .map(|i| format!("{name}-{i}"))
            .find(|n| !taken(n))
            .expect("an unused suffix exists")
    }
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/cdn/resources", get(list_resources).post(create_resource))
        .route(
            "/cdn/resources/{resource_id}",
            get(get_resource)
                .patch(patch_resource)
                .delete(delete_resource),
        )
        .route("/cdn/origin_groups", get(list_groups).post(create_group))
        .route(
            "/cdn/origin_groups/{origin_group_id}",
            get(get_group).patch(patch_group).delete(delete_group),
        )
}

/// A request id as Gcore's error bodies carry one: 32 hex digits, never twice the same.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}{:016x}",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        n ^ 0x5851_f42d_4c95_7f2d
    )
}

/// Gcore's error bodies. `invalid_input` (a request the document refuses) names the field
/// the first schema error points at; `json_error` is the parse error's own shape.
fn error_body(status: u16, code: &str, message: &str) -> Value {
    match code {
        "json_error" => json!({ "message": format!("JSON parse error - {message}") }),
        "invalid_input" if status == 400 => {
            json!({ "errors": { field_of(message): [message] } })
        }
        _ => {
            let (class, text) = match (status, code) {
                (401, _) => ("token_not_valid", "Token is invalid or expired".to_owned()),
                (404, _) => ("NotFoundError", message.to_owned()),
                _ => (
                    "HTTPError",
                    format!(
                        "HTTP {status}: {}",
                        StatusCode::from_u16(status)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or(message)
                    ),
                ),
            };
            json!({ "exception_class": class, "message": text, "request_id": request_id() })
        }
    }
}

/// The first JSON pointer's top-level member in a schema refusal (`...: /cname: ...`),
/// else `non_field_errors`.
fn field_of(message: &str) -> String {
    message
        .split(": /")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|f| !f.is_empty() && !f.contains(' '))
        .unwrap_or("non_field_errors")
        .to_owned()
}

/// A body that is not what a handler takes: not JSON at all (Gcore's parse error), or JSON
/// of the wrong shape (a field error).
fn reject_body(rejection: JsonRejection) -> Response {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => field_errors(json!({ field_of(&text): [text] })),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "message": format!("JSON parse error - {text}") })),
        )
            .into_response(),
    }
}

/// 400 with `{"errors": errors}`.
fn field_errors(errors: Value) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "errors": errors }))).into_response()
}

/// 400 with one message for `field`.
fn field_error(field: &str, message: impl Into<String>) -> Response {
    field_errors(refusal(field, message))
}

/// The `errors` of a refusal: one message for `field`.
fn refusal(field: &str, message: impl Into<String>) -> Value {
    json!({ field: [message.into()] })
}

fn not_found(what: &str) -> Response {
    provider_error(
        Provider::Gcore,
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{what} not found"),
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

// ----- listings -----

/// A listing as Gcore answers it: the plain list, or (with `limit` or `offset`) one page
/// with the URLs of its neighbours. A later page loses its items when
/// [`Faults::missing_page`](crate::Faults::missing_page) strikes; `count` still counts them.
fn listing(
    sh: &Shared,
    items: Vec<Value>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    let number = |key: &str| q.get(key).and_then(|v| v.parse::<usize>().ok());
    if !q.contains_key("limit") && !q.contains_key("offset") {
        return Json(Value::Array(items)).into_response();
    }
    let limit = sh.page_size(number("limit").unwrap_or(DEFAULT_LIMIT).clamp(1, 1000));
    let offset = number("offset").unwrap_or(0);
    let count = items.len();
    let results: Vec<Value> = if sh.page_missing(Provider::Gcore, offset > 0) {
        Vec::new()
    } else {
        items.into_iter().skip(offset).take(limit).collect()
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let url = |at: usize| {
        let mut pairs: Vec<(&str, String)> = q
            .iter()
            .filter(|(k, _)| *k != "limit" && *k != "offset")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("limit", limit.to_string()));
        if at > 0 {
            pairs.push(("offset", at.to_string()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!(
            "http://{host}{}{path}?{}",
            Provider::Gcore.base_path(),
            query.join("&")
        )
    };
    let next = (offset + limit < count).then(|| url(offset + limit));
    let previous = (offset > 0).then(|| url(offset.saturating_sub(limit)));
    Json(json!({ "count": count, "next": next, "previous": previous, "results": results }))
        .into_response()
}

/// Percent-encodes a query component (unreserved characters kept).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A boolean query filter: `None` when absent or not a boolean (ignored, as unknown
/// filters are).
fn flag(q: &HashMap<String, String>, key: &str) -> Option<bool> {
    q.get(key).and_then(|v| match v.as_str() {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    })
}

// ----- origin sources -----

/// Checks one origin source (`host[:port]`, host an IPv4 address or a domain) the way
/// Gcore's documented refusals read; the message when it is refused.
fn check_source(source: &str) -> Result<(), String> {
    if source.is_empty() || source.len() > 255 {
        return Err(
            "The origin source value is invalid. Specify an IP address or a domain name.".into(),
        );
    }
    if source.contains("://") || source.contains('/') {
        return Err("The origin source must be a host, without a scheme or a path.".into());
    }
    let (host, port) = match source.rsplit_once(':') {
        // More than one colon: an IPv6 literal (with or without brackets).
        Some((host, _)) if host.contains(':') || host.starts_with('[') => {
            return Err("The origin source is not IPv4. Use an IPv4 address or a domain name with an IPv4 address.".into());
        }
        Some((host, port)) => (host, Some(port)),
        None => (source, None),
    };
    if let Some(port) = port
        && !port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
    {
        return Err("The port must be a number from 1 to 65535.".into());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        let [a, b, ..] = ip.octets();
        if ip.is_private() || ip.is_loopback() || ip.is_link_local() {
            return Err("The IP address belongs to a private network. Use a public one.".into());
        }
        if a == 0 || (a == 100 && (64..128).contains(&b)) || ip.is_broadcast() || a >= 224 {
            return Err("This IP address cannot be used as an origin source.".into());
        }
        return Ok(());
    }
    let domain = host.trim_end_matches('.');
    let valid = !domain.is_empty()
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(())
    } else {
        Err("The origin source value is invalid. Specify an IP address or a domain name.".into())
    }
}

/// A source as a create or change names it.
#[derive(Debug, Deserialize)]
struct SourceBody {
    source: String,
    #[serde(default)]
    backup: Option<bool>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// Checks the sources of a group; the `errors` of the refusal when refused.
fn checked_sources(sources: Vec<SourceBody>) -> Result<Vec<Source>, Value> {
    if sources.is_empty() {
        return Err(refusal(
            "source",
            "An origin group needs at least one origin source.",
        ));
    }
    let mut out: Vec<Source> = Vec::new();
    let mut errors = Map::new();
    for s in sources {
        if let Err(message) = check_source(&s.source) {
            errors.insert(s.source.clone(), json!({ "source": [message] }));
            continue;
        }
        if out.iter().any(|o| o.source == s.source) {
            errors.insert(
                s.source.clone(),
                json!({ "source": ["Each origin source may appear once in a group."] }),
            );
            continue;
        }
        out.push(Source {
            source: s.source,
            backup: s.backup.unwrap_or(false),
            enabled: s.enabled.unwrap_or(true),
        });
    }
    if !errors.is_empty() {
        return Err(json!({ "sources": errors }));
    }
    if out.iter().all(|s| s.backup || !s.enabled) {
        return Err(refusal(
            "sources",
            "At least one enabled origin source must not be a backup.",
        ));
    }
    Ok(out)
}

// ----- origin groups -----

fn group_json(world: &World, g: &OriginGroup) -> Value {
    let sources: Vec<Value> = g
        .sources
        .iter()
        .map(|s| {
            json!({
                "source": s.source,
                "backup": s.backup,
                "enabled": s.enabled,
                "tag": "default",
                "host_header_override": null,
            })
        })
        .collect();
    json!({
        "id": g.id,
        "name": g.name,
        "use_next": g.use_next,
        "proxy_next_upstream": g.proxy_next_upstream,
        "auth_type": "none",
        "sources": sources,
        "path": "",
        "has_related_resources": world.group_in_use(g.id),
    })
}

async fn list_groups(State(sh): S, Query(q): Params, headers: HeaderMap) -> Response {
    let items = {
        let world = lock(&sh.gcore);
        world
            .groups
            .values()
            .filter(|g| {
                q.get("name").is_none_or(|n| g.name == *n)
                    && q.get("sources")
                        .is_none_or(|s| g.sources.iter().any(|x| x.source == *s))
                    && flag(&q, "has_related_resources")
                        .is_none_or(|used| world.group_in_use(g.id) == used)
            })
            .map(|g| group_json(&world, g))
            .collect()
    };
    listing(&sh, items, &q, &headers, "/cdn/origin_groups")
}

/// The body of an origin group create or change.
#[derive(Debug, Deserialize)]
struct GroupBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    use_next: Option<bool>,
    #[serde(default)]
    proxy_next_upstream: Option<Vec<String>>,
    #[serde(default)]
    sources: Option<Vec<SourceBody>>,
}

fn check_group_name(world: &World, name: &str, except: Option<i64>) -> Result<(), Value> {
    if name.is_empty() {
        return Err(refusal("name", "This field may not be blank."));
    }
    if name.chars().count() > 255 {
        return Err(refusal(
            "name",
            "Ensure this field has no more than 255 characters.",
        ));
    }
    if world
        .groups
        .values()
        .any(|g| g.name == name && Some(g.id) != except)
    {
        return Err(refusal("name", "Origin group name must be unique."));
    }
    Ok(())
}

async fn create_group(State(sh): S, ProviderJson(body): ProviderJson<GroupBody>) -> Response {
    let Some(name) = body.name else {
        return field_error("name", "This field is required.");
    };
    let Some(sources) = body.sources else {
        return field_error("sources", "This field is required.");
    };
    let sources = match checked_sources(sources) {
        Ok(s) => s,
        Err(errors) => return field_errors(errors),
    };
    let mut world = lock(&sh.gcore);
    if let Err(errors) = check_group_name(&world, &name, None) {
        return field_errors(errors);
    }
    world.last_group += 1;
    let group = OriginGroup {
        id: world.last_group,
        name,
        use_next: body.use_next.unwrap_or(false),
        proxy_next_upstream: body
            .proxy_next_upstream
            .unwrap_or_else(|| vec!["error".into(), "timeout".into()]),
        sources,
    };
    let out = group_json(&world, &group);
    world.groups.insert(group.id, group);
    (StatusCode::CREATED, Json(out)).into_response()
}

/// An integer id from the path; `None` (answered 404) when it is not one.
fn id_of(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

async fn get_group(State(sh): S, Path(id): Path<String>) -> Response {
    let world = lock(&sh.gcore);
    match id_of(&id).and_then(|id| world.groups.get(&id)) {
        Some(g) => Json(group_json(&world, g)).into_response(),
        None => not_found("Origin group"),
    }
}

async fn patch_group(
    State(sh): S,
    Path(id): Path<String>,
    ProviderJson(body): ProviderJson<GroupBody>,
) -> Response {
    let mut world = lock(&sh.gcore);
    let Some(id) = id_of(&id).filter(|id| world.groups.contains_key(id)) else {
        return not_found("Origin group");
    };
    let Some(name) = body.name else {
        return field_error("name", "This field is required.");
    };
    if let Err(errors) = check_group_name(&world, &name, Some(id)) {
        return field_errors(errors);
    }
    let sources = match body.sources.map(checked_sources).transpose() {
        Ok(s) => s,
        Err(errors) => return field_errors(errors),
    };
    let group = world.groups.get_mut(&id).expect("checked above");
    group.name = name;
    if let Some(use_next) = body.use_next {
        group.use_next = use_next;
    }
    if let Some(upstream) = body.proxy_next_upstream {
        group.proxy_next_upstream = upstream;
    }
    if let Some(sources) = sources {
        group.sources = sources;
    }
    let group = group.clone();
    Json(group_json(&world, &group)).into_response()
}

async fn delete_group(State(sh): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&sh.gcore);
    let Some(id) = id_of(&id).filter(|id| world.groups.contains_key(id)) else {
        return not_found("Origin group");
    };
    if world.group_in_use(id) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "name": ["Resources use this origin group."] })),
        )
            .into_response();
    }
    world.groups.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

// ----- resources -----

fn resource_json(world: &World, r: &Resource) -> Value {
    if r.deleted {
        return json!({
            "id": r.id,
            "cname": r.cname,
            "client": CLIENT_ID,
            "deleted": true,
            "status": "deleted",
            "updated": time(r.updated),
        });
    }
    let status = if Instant::now() < r.ready_at {
        "processed"
    } else {
        "active"
    };
    let group_name = world
        .groups
        .get(&r.origin_group)
        .map(|g| g.name.clone())
        .unwrap_or_default();
    json!({
        "id": r.id,
        "cname": r.cname,
        "active": r.active,
        "enabled": true,
        "status": status,
        "deleted": false,
        "client": CLIENT_ID,
        "name": r.name,
        "description": r.description,
        "created": time(r.created),
        "updated": time(r.updated),
        "originGroup": r.origin_group,
        "originGroup_name": group_name,
        "originProtocol": r.origin_protocol,
        "secondaryHostnames": r.secondary,
        "shielded": false,
        "shield_dc": null,
        "shield_enabled": false,
        "shield_routing_map": null,
        "sslEnabled": r.ssl_enabled,
        "sslData": r.ssl_data,
        "proxy_ssl_enabled": false,
        "proxy_ssl_ca": null,
        "proxy_ssl_data": null,
        "preset_applied": false,
        "vp_enabled": false,
        "full_custom_enabled": false,
        "can_purge_by_urls": true,
        "suspend_date": null,
        "suspended": false,
        "primary_resource": null,
        "is_primary": null,
        "waap_domain_id": null,
        "rules": [],
        "options": r.options,
    })
}

async fn list_resources(State(sh): S, Query(q): Params, headers: HeaderMap) -> Response {
    let items = {
        let world = lock(&sh.gcore);
        world
            .resources
            .values()
            .filter(|r| {
                let status = if r.deleted {
                    "deleted"
                } else if Instant::now() < r.ready_at {
                    "processed"
                } else {
                    "active"
                };
                flag(&q, "deleted").is_none_or(|d| r.deleted == d)
                    && flag(&q, "enabled").is_none_or(|e| e)
                    && q.get("cname")
                        .is_none_or(|c| r.cname.eq_ignore_ascii_case(c))
                    && q.get("status").is_none_or(|s| status == s)
                    && q.get("originGroup").is_none_or(|g| {
                        !r.deleted && g.parse::<i64>().is_ok_and(|g| g == r.origin_group)
                    })
            })
            .map(|r| resource_json(&world, r))
            .collect()
    };
    listing(&sh, items, &q, &headers, "/cdn/resources")
}

/// Whether `name` is a domain a resource can deliver under.
fn valid_domain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// The body of a resource create or change.
#[derive(Debug, Deserialize)]
struct ResourceBody {
    #[serde(default)]
    cname: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default, rename = "originGroup")]
    origin_group: Option<i64>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, rename = "originProtocol")]
    origin_protocol: Option<String>,
    #[serde(default)]
    name: Option<Option<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "secondaryHostnames")]
    secondary: Option<Vec<String>>,
    #[serde(default, rename = "sslEnabled")]
    ssl_enabled: Option<bool>,
    #[serde(default, rename = "sslData")]
    ssl_data: Option<Option<i64>>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// Seconds of a timeout option's value (`"20s"`).
fn seconds(option: &Value) -> Option<u64> {
    option["value"].as_str()?.strip_suffix('s')?.parse().ok()
}

/// Checks what a resource would become: origin protocol, certificate, options, and that
/// every delivery domain is free. `id` is the resource itself on a change.
fn check_resource(world: &World, r: &Resource, id: Option<i64>) -> Result<(), Value> {
    if !matches!(r.origin_protocol.as_str(), "HTTP" | "HTTPS" | "MATCH") {
        return Err(refusal(
            "originProtocol",
            format!("\"{}\" is not a valid choice.", r.origin_protocol),
        ));
    }
    if !world.groups.contains_key(&r.origin_group) {
        return Err(refusal(
            "originGroup",
            format!("Origin group {} does not exist.", r.origin_group),
        ));
    }
    match (r.ssl_enabled, r.ssl_data) {
        (_, Some(cert)) if !CERTIFICATES.iter().any(|(c, _)| *c == cert) => {
            return Err(refusal(
                "sslData",
                format!("SSL certificate {cert} does not exist in this account."),
            ));
        }
        (false, Some(_)) => {
            return Err(refusal(
                "sslData",
                "A certificate can be linked only with sslEnabled set to true.",
            ));
        }
        _ => {}
    }
    let websockets = r
        .options
        .get("websockets")
        .is_some_and(|w| w["enabled"] == true && w["value"] == true);
    if let Some(read) = r
        .options
        .get("proxy_read_timeout")
        .filter(|o| o["enabled"] == true)
    {
        let most = if websockets { 20 } else { 30 };
        if !seconds(read).is_some_and(|s| (1..=most).contains(&s)) {
            return Err(json!({ "options": { "proxy_read_timeout": [
                format!("The value must be from 1s to {most}s{}.", if websockets { " with WebSockets" } else { "" })
            ] } }));
        }
    }
    for domain in std::iter::once(&r.cname).chain(&r.secondary) {
        if !valid_domain(domain) {
            return Err(refusal(
                "cname",
                format!("{domain} is not a valid domain name."),
            ));
        }
        let taken = world.live().any(|other| {
            Some(other.id) != id
                && (other.cname == *domain || other.secondary.iter().any(|s| s == domain))
        });
        if taken {
            return Err(refusal(
                "cname",
                format!(
                    "CNAME {domain} is already used by another resource. Try another CNAME or contact support."
                ),
            ));
        }
    }
    Ok(())
}

async fn create_resource(State(sh): S, ProviderJson(body): ProviderJson<ResourceBody>) -> Response {
    let Some(cname) = body
        .cname
        .map(|c| c.trim_end_matches('.').to_ascii_lowercase())
    else {
        return field_error("cname", "This field is required.");
    };
    let delay = sh.boot_delay(Provider::Gcore);
    let mut world = lock(&sh.gcore);
    let auto_group = body.origin.is_some();
    let group = match (body.origin, body.origin_group) {
        (Some(_), Some(_)) | (None, None) => {
            return field_error(
                "origin",
                "Exactly one of origin and originGroup must be given.",
            );
        }
        (None, Some(group)) => group,
        (Some(origin), None) => {
            // A bare origin gets an origin group of its own, named after the resource.
            let sources = match checked_sources(vec![SourceBody {
                source: origin,
                backup: None,
                enabled: None,
            }]) {
                Ok(s) => s,
                Err(errors) => return field_errors(errors),
            };
            world.last_group += 1;
            let group = OriginGroup {
                id: world.last_group,
                name: world.free_group_name(&cname),
                use_next: false,
                proxy_next_upstream: vec!["error".into(), "timeout".into()],
                sources,
            };
            let id = group.id;
            world.groups.insert(id, group);
            id
        }
    };
    let now = Utc::now();
    let resource = Resource {
        id: world.last_resource + 1,
        cname,
        active: body.active.unwrap_or(true),
        name: body.name.flatten(),
        description: body.description.unwrap_or_default(),
        origin_group: group,
        origin_protocol: body.origin_protocol.unwrap_or_else(|| "HTTP".into()),
        secondary: body.secondary.unwrap_or_default(),
        ssl_enabled: body.ssl_enabled.unwrap_or(false),
        ssl_data: body.ssl_data.flatten(),
        options: body.options.unwrap_or_default(),
        created: now,
        updated: now,
        ready_at: Instant::now() + delay,
        deleted: false,
    };
    if let Err(errors) = check_resource(&world, &resource, None) {
        // A group made for a bare origin goes with the refused resource.
        if auto_group {
            world.groups.remove(&group);
        }
        return field_errors(errors);
    }
    world.last_resource = resource.id;
    let out = resource_json(&world, &resource);
    world.resources.insert(resource.id, resource);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn get_resource(State(sh): S, Path(id): Path<String>) -> Response {
    let world = lock(&sh.gcore);
    match id_of(&id)
        .and_then(|id| world.resources.get(&id))
        .filter(|r| !r.deleted)
    {
        Some(r) => Json(resource_json(&world, r)).into_response(),
        None => not_found("CDN resource"),
    }
}

async fn patch_resource(
    State(sh): S,
    Path(id): Path<String>,
    ProviderJson(body): ProviderJson<ResourceBody>,
) -> Response {
    let mut world = lock(&sh.gcore);
    let Some(current) = id_of(&id)
        .and_then(|id| world.resources.get(&id))
        .filter(|r| !r.deleted)
        .cloned()
    else {
        return not_found("CDN resource");
    };
    // `cname` and `origin` are not fields of a change: Gcore leaves them as they are.
    let mut next = current.clone();
    if let Some(active) = body.active {
        next.active = active;
    }
    if let Some(name) = body.name {
        next.name = name;
    }
    if let Some(description) = body.description {
        next.description = description;
    }
    if let Some(group) = body.origin_group {
        next.origin_group = group;
    }
    if let Some(protocol) = body.origin_protocol {
        next.origin_protocol = protocol;
    }
    if let Some(secondary) = body.secondary {
        next.secondary = secondary;
    }
    if let Some(enabled) = body.ssl_enabled {
        next.ssl_enabled = enabled;
    }
    if let Some(data) = body.ssl_data {
        next.ssl_data = data;
    }
    if let Some(options) = body.options {
        for (key, value) in options {
            next.options.insert(key, value);
        }
    }
    if let Err(errors) = check_resource(&world, &next, Some(current.id)) {
        return field_errors(errors);
    }
    next.updated = Utc::now();
    let out = resource_json(&world, &next);
    world.resources.insert(next.id, next);
    Json(out).into_response()
}

async fn delete_resource(State(sh): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&sh.gcore);
    let Some(resource) = id_of(&id)
        .and_then(|id| world.resources.get_mut(&id))
        .filter(|r| !r.deleted)
    else {
        return not_found("CDN resource");
    };
    if resource.active {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "errors": [
                "The resource is active and cannot be deleted. Deactivate it (active: false) and delete it again."
            ] })),
        )
            .into_response();
    }
    resource.deleted = true;
    resource.updated = Utc::now();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_checked_as_gcore_documents() {
        for ok in [
            "192.0.2.10",
            "192.0.2.10:80",
            "203.0.113.7:8080",
            "origin.example.com:80",
        ] {
            assert_eq!(check_source(ok), Ok(()), "{ok}");
        }
        for bad in [
            "[2001:db8::1]:80",
            "2001:db8::1",
            "10.0.0.1",
            "192.168.1.1:80",
            "127.0.0.1",
            "100.64.0.1",
            "192.0.2.10:0",
            "192.0.2.10:99999",
            "http://192.0.2.10",
            "",
            "no_dots",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schema_refusals_name_their_field() {
        assert_eq!(
            field_of(
                "request does not match POST /cdn/resources: /cname: required property is missing"
            ),
            "cname"
        );
        assert_eq!(
            field_of(
                "request does not match PATCH /cdn/resources/{resource_id}: /options/websockets: expected object"
            ),
            "options"
        );
        assert_eq!(
            field_of("request does not match X: : bad"),
            "non_field_errors"
        );
        let body = error_body(401, "unauthorized", "x");
        assert_eq!(body["exception_class"], "token_not_valid");
        assert_eq!(body["request_id"].as_str().unwrap().len(), 32);
        assert_ne!(
            error_body(500, "server_error", "x")["request_id"],
            body["request_id"]
        );
        assert_eq!(
            error_body(429, "rate_limit_exceeded", "x")["message"],
            "HTTP 429: Too Many Requests"
        );
    }
}
