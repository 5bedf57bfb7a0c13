//! DigitalOcean API v2: droplets, droplet actions, reserved IPs and their actions, actions,
//! and tags, in DigitalOcean's JSON shapes.
//!
//! Every route but the tag routes is in the vendored document (`specs/digitalocean.json`),
//! so with validation on, their requests and responses are checked against it. The tag
//! endpoints (`/tags`, `/tags/{tag}`, `/tags/{tag}/resources`) are real DigitalOcean
//! endpoints that the vendored subset leaves out: their traffic is NOT schema-checked, and
//! their shapes follow DigitalOcean's API reference by hand.
//!
//! Behaviour modelled on the real API:
//! - a droplet is `new` until the boot delay passes, then `active`; `off` after
//!   `power_off`/`shutdown`; it gets a public IPv4 from the documentation ranges, a private
//!   IPv4, and an IPv6 only when created with `"ipv6": true`;
//! - droplet tags that do not exist yet are created by the droplet create; tagging an
//!   existing droplet (`POST /tags/{tag}/resources`) needs the tag to exist first;
//! - a droplet carries at most one reserved IP at a time, and a reserved IP is assigned
//!   only to a droplet in its own region; deleting a droplet leaves its reserved IP
//!   reserved but unassigned; an assigned reserved IP may be deleted (the document lists
//!   no error for it);
//! - lists page with `page`/`per_page` (default 20, at most 200) and answer absolute
//!   `links.pages` hrefs built from the request's `Host`, and `meta.total`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Provider;
use crate::server::{Api, ProviderJson, Shared, lock, provider_error};
use crate::world::{self, ActionLog, Bucket, NumberedPage};

mod reserved_ips;
mod tags;

type S = State<Arc<Shared>>;

/// DigitalOcean's wiring: 5000 requests per hour and 250 per minute,
/// `ratelimit-*` headers for the hourly limit.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || {
        vec![
            Bucket::new(5000, Duration::from_secs(3600)),
            Bucket::new(250, Duration::from_secs(60)),
        ]
    },
    admin: None,
    rate_headers: Some(["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]),
    reject_body: Some(rejected),
};

/// Region slug and name.
const REGIONS: &[(&str, &str)] = &[
    ("ams3", "Amsterdam 3"),
    ("fra1", "Frankfurt 1"),
    ("lon1", "London 1"),
    ("nyc3", "New York 3"),
    ("sfo3", "San Francisco 3"),
    ("sgp1", "Singapore 1"),
];

/// What every simulated region offers.
const REGION_FEATURES: &[&str] = &[
    "backups",
    "ipv6",
    "metadata",
    "install_agent",
    "storage",
    "image_transfer",
];

/// Size slug, memory (MiB), vCPUs, disk (GB), transfer (TB), monthly price (USD).
const SIZES: &[(&str, i64, i64, i64, f64, f64)] = &[
    ("s-1vcpu-1gb", 1024, 1, 25, 1.0, 6.0),
    ("s-1vcpu-2gb", 2048, 1, 50, 2.0, 12.0),
    ("s-2vcpu-2gb", 2048, 2, 60, 3.0, 18.0),
];

/// Image slug, id, name, distribution, minimum disk (GB), size (GB).
const IMAGES: &[(&str, i64, &str, &str, i64, f64)] =
    &[("debian-12-x64", 168_435_263, "12 x64", "Debian", 15, 2.36)];

/// DigitalOcean bills 672 hours a month.
const HOURS_PER_MONTH: f64 = 672.0;

/// How long actions other than a droplet create take.
const ACTION_TIME: Duration = Duration::from_millis(50);

/// The longest `user_data` DigitalOcean accepts.
const MAX_USER_DATA: usize = 64 * 1024;

/// The project every simulated resource belongs to.
const PROJECT_ID: &str = "4e1d0b4c-5b2a-4f7e-9d7a-0d6a11a5e0c1";

#[derive(Debug, Clone)]
struct Droplet {
    id: i64,
    name: String,
    region: &'static str,
    size: &'static str,
    image: &'static str,
    tags: Vec<String>,
    created: DateTime<Utc>,
    ready_at: Instant,
    powered: bool,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    #[allow(dead_code)] // kept like the real API keeps it; nothing reads it back yet
    user_data: Option<String>,
}

impl Droplet {
    fn status(&self) -> &'static str {
        if Instant::now() < self.ready_at {
            "new"
        } else if self.powered {
            "active"
        } else {
            "off"
        }
    }
}

#[derive(Debug, Clone)]
struct ReservedIp {
    ip: Ipv4Addr,
    region: &'static str,
    droplet: Option<i64>,
}

/// What a DigitalOcean action acts on.
#[derive(Debug, Clone)]
struct Target {
    resource_id: i64,
    resource_type: &'static str,
    region: &'static str,
}

/// DigitalOcean's state: droplets, reserved IPs, actions and tags.
#[derive(Debug, Default)]
pub(crate) struct World {
    droplets: BTreeMap<i64, Droplet>,
    reserved_ips: BTreeMap<Ipv4Addr, ReservedIp>,
    /// The actions, and the ids of everything.
    actions: ActionLog<Target, 3_000_000>,
    tags: BTreeSet<String>,
}

impl World {
    fn id(&mut self) -> i64 {
        self.actions.next_id()
    }

    /// Starts `kind` on `resource` (id and type) in `region`.
    fn action(
        &mut self,
        kind: &'static str,
        (resource_id, resource_type): (i64, &'static str),
        region: &'static str,
        takes: Duration,
    ) -> world::Action<Target> {
        let target = Target {
            resource_id,
            resource_type,
            region,
        };
        self.actions.start(kind, target, takes)
    }

    /// The reserved IP assigned to droplet `id`, if any.
    fn reserved_ip_of(&self, id: i64) -> Option<Ipv4Addr> {
        self.reserved_ips
            .values()
            .find(|r| r.droplet == Some(id))
            .map(|r| r.ip)
    }
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/droplets", get(list_droplets).post(create_droplet))
        .route("/droplets/{id}", get(get_droplet).delete(delete_droplet))
        .route("/droplets/{id}/actions", post(droplet_action))
        .route("/actions/{id}", get(get_action))
        .merge(reserved_ips::routes())
        .merge(tags::routes())
        .fallback(|| async { not_found() })
}

/// DigitalOcean's error body: `{"id": ..., "message": ..., "request_id": ...}`, with the
/// ids and wording DigitalOcean uses for the statuses the middleware produces.
fn error_body(status: u16, code: &str, message: &str) -> Value {
    let (id, message) = match status {
        400 => ("bad_request", message),
        401 => ("unauthorized", "Unable to authenticate you"),
        429 => ("too_many_requests", "API Rate limit exceeded."),
        _ => (code, message),
    };
    json!({ "id": id, "message": message, "request_id": request_id() })
}

/// A fresh request id, shaped like DigitalOcean's UUIDs.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "d0c5e1a2-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n
    )
}

fn error(status: StatusCode, id: &str, message: impl AsRef<str>) -> Response {
    provider_error(Provider::DigitalOcean, status, id, message.as_ref())
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn unprocessable(message: impl AsRef<str>) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
}

/// A body axum could not read as the expected JSON (only reachable with validation off,
/// or for the unchecked tag routes).
fn rejected(e: JsonRejection) -> Response {
    if e.status() == StatusCode::UNPROCESSABLE_ENTITY {
        unprocessable(e.body_text())
    } else {
        error(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `scheme://host/digitalocean/v2` as the client addressed us.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{}", Provider::DigitalOcean.base_path())
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// DigitalOcean's rule for tag names.
fn valid_tag(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
}

fn region_json(slug: &str) -> Value {
    let &(slug, name) = REGIONS.iter().find(|r| r.0 == slug).expect("known region");
    json!({
        "name": name, "slug": slug, "features": REGION_FEATURES, "available": true,
        "sizes": SIZES.iter().map(|s| s.0).collect::<Vec<_>>(),
    })
}

fn size_json(slug: &str) -> Value {
    let &(slug, memory, vcpus, disk, transfer, monthly) =
        SIZES.iter().find(|s| s.0 == slug).expect("known size");
    json!({
        "slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": transfer,
        "price_monthly": monthly, "price_hourly": monthly / HOURS_PER_MONTH,
        "regions": REGIONS.iter().map(|r| r.0).collect::<Vec<_>>(), "available": true,
        "description": "Basic",
        "disk_info": [{ "type": "local", "size": { "amount": disk, "unit": "gib" } }],
    })
}

fn image_json(slug: &str) -> Value {
    let &(slug, id, name, distribution, min_disk, size) =
        IMAGES.iter().find(|i| i.0 == slug).expect("known image");
    json!({
        "id": id, "name": name, "type": "base", "distribution": distribution, "slug": slug,
        "public": true, "regions": REGIONS.iter().map(|r| r.0).collect::<Vec<_>>(),
        "created_at": "2024-06-12T18:06:27Z", "min_disk_size": min_disk, "size_gigabytes": size,
        "description": format!("{distribution} {name}"), "tags": [], "status": "available",
        "error_message": "",
    })
}

fn vpc_uuid(region: &str) -> String {
    let index = REGIONS.iter().position(|r| r.0 == region).unwrap_or(0);
    format!("5a4981aa-9653-4bd1-bef5-{:012x}", index + 1)
}

fn droplet_json(d: &Droplet) -> Value {
    let &(_, memory, vcpus, disk, _, _) = SIZES.iter().find(|s| s.0 == d.size).expect("known size");
    let [a, b, c, _] = d.ipv4.octets();
    // A private address in the region's VPC, derived from the id.
    let private = Ipv4Addr::new(10, 110, ((d.id / 250) % 16) as u8, (d.id % 250) as u8 + 2);
    let v4 = vec![
        json!({ "ip_address": d.ipv4.to_string(), "netmask": "255.255.255.0",
                "gateway": Ipv4Addr::new(a, b, c, 1).to_string(), "type": "public" }),
        json!({ "ip_address": private.to_string(), "netmask": "255.255.240.0",
                "gateway": "10.110.0.1", "type": "private" }),
    ];
    let v6: Vec<Value> = d
        .ipv6
        .map(|net| {
            let s = net.segments();
            let host = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0x10);
            let gateway = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 1);
            json!({ "ip_address": host.to_string(), "netmask": 64,
                    "gateway": gateway.to_string(), "type": "public" })
        })
        .into_iter()
        .collect();
    let mut features = vec!["droplet_agent", "private_networking"];
    if d.ipv6.is_some() {
        features.push("ipv6");
    }
    json!({
        "id": d.id, "name": d.name, "memory": memory, "vcpus": vcpus, "disk": disk,
        "disk_info": [{ "type": "local", "size": { "amount": disk, "unit": "gib" } }],
        "locked": false, "status": d.status(), "kernel": null, "created_at": time(d.created),
        "features": features, "backup_ids": [], "next_backup_window": null, "snapshot_ids": [],
        "image": image_json(d.image), "volume_ids": [], "size": size_json(d.size),
        "size_slug": d.size, "networks": { "v4": v4, "v6": v6 }, "region": region_json(d.region),
        "tags": d.tags, "vpc_uuid": vpc_uuid(d.region),
    })
}

fn action_json(a: &world::Action<Target>) -> Value {
    let done = Instant::now() >= a.done_at;
    let completed =
        done.then(|| time(a.started + chrono::Duration::from_std(a.takes).unwrap_or_default()));
    json!({
        "id": a.id, "status": if done { "completed" } else { "in-progress" }, "type": a.kind,
        "started_at": time(a.started), "completed_at": completed, "resource_id": a.target.resource_id,
        "resource_type": a.target.resource_type, "region": region_json(a.target.region),
        "region_slug": a.target.region,
    })
}

fn action_link(base: &str, id: i64, rel: &str) -> Value {
    json!({ "id": id, "rel": rel, "href": format!("{base}/actions/{id}") })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    tag_name: Option<String>,
    name: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

/// One page of `items` in DigitalOcean's list shape: `{<key>: [...], links, meta}`.
fn paged<T>(
    sh: &Shared,
    key: &str,
    (items, render): (Vec<T>, impl Fn(T) -> Value),
    q: &ListQuery,
    base: &str,
    path: &str,
) -> Response {
    let NumberedPage {
        page,
        per_page,
        total,
        last,
        items,
    } = sh.numbered_page(
        Provider::DigitalOcean,
        items,
        (q.page, q.per_page),
        (20, 200),
    );
    let link = |p: usize| {
        let mut href = format!("{base}{path}?page={p}&per_page={per_page}");
        if let Some(tag) = &q.tag_name {
            href.push_str(&format!("&tag_name={}", encode(tag)));
        }
        if let Some(name) = &q.name {
            href.push_str(&format!("&name={}", encode(name)));
        }
        Value::String(href)
    };
    let mut pages = Map::new();
    if page > 1 {
        pages.insert("first".to_owned(), link(1));
        pages.insert("prev".to_owned(), link((page - 1).min(last)));
    }
    if page < last {
        pages.insert("last".to_owned(), link(last));
        pages.insert("next".to_owned(), link(page + 1));
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    let mut body = Map::new();
    body.insert(key.to_owned(), items.into_iter().map(render).collect());
    body.insert("links".to_owned(), links);
    body.insert("meta".to_owned(), json!({ "total": total }));
    Json(Value::Object(body)).into_response()
}

fn bad_query(e: QueryRejection) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
}

async fn list_droplets(
    State(sh): S,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let state = lock(&sh.digitalocean);
    let items = state
        .droplets
        .values()
        .filter(|d| q.tag_name.as_ref().is_none_or(|t| d.tags.contains(t)))
        .filter(|d| {
            q.name
                .as_ref()
                .is_none_or(|n| n.eq_ignore_ascii_case(&d.name))
        })
        .collect();
    paged(
        &sh,
        "droplets",
        (items, droplet_json),
        &q,
        &base_url(&headers),
        "/droplets",
    )
}

#[derive(Debug, Deserialize)]
struct CreateDroplet {
    name: String,
    region: Option<String>,
    size: String,
    image: Value,
    user_data: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default)]
    ipv6: bool,
}

async fn create_droplet(
    State(sh): S,
    headers: HeaderMap,
    ProviderJson(req): ProviderJson<CreateDroplet>,
) -> Response {
    let wanted = req.region.as_deref().unwrap_or("nyc3");
    let Some(region) = REGIONS.iter().find(|r| r.0 == wanted).map(|r| r.0) else {
        return unprocessable(format!("Region '{wanted}' is not available."));
    };
    let Some(size) = SIZES.iter().find(|s| s.0 == req.size).map(|s| s.0) else {
        return unprocessable(format!("Size '{}' is not available.", req.size));
    };
    let image = IMAGES
        .iter()
        .find(|i| match &req.image {
            Value::String(slug) => i.0 == slug,
            Value::Number(id) => id.as_i64() == Some(i.1),
            _ => false,
        })
        .map(|i| i.0);
    let Some(image) = image else {
        return unprocessable(format!("Image {} is not available.", req.image));
    };
    if req
        .user_data
        .as_ref()
        .is_some_and(|u| u.len() > MAX_USER_DATA)
    {
        return unprocessable("user_data is longer than 64 KiB.");
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in req.tags.unwrap_or_default() {
        if !valid_tag(&tag) {
            return unprocessable(format!(
                "Tag '{tag}' may contain only letters, numbers, colons, dashes and underscores (at most 255)."
            ));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if sh.faults(Provider::DigitalOcean).quota_exhausted {
        // DigitalOcean's wording for an account at its droplet limit.
        return unprocessable(
            "creating this/these droplet(s) will exceed your droplet limit. \
             Please contact support to raise it.",
        );
    }
    let boot = sh.boot_delay(Provider::DigitalOcean);
    let mut state = lock(&sh.digitalocean);
    let (ipv4, ipv6) = {
        let mut pool = lock(&sh.addresses);
        let Some(v4) = pool.v4() else {
            return unprocessable("No public IPv4 addresses are available in this region.");
        };
        (v4, req.ipv6.then(|| pool.v6_network()))
    };
    let id = state.id();
    // Creating a droplet creates the tags it names.
    state.tags.extend(tags.iter().cloned());
    let droplet = Droplet {
        id,
        name: req.name,
        region,
        size,
        image,
        tags,
        created: Utc::now(),
        ready_at: Instant::now() + boot,
        powered: true,
        ipv4,
        ipv6,
        user_data: req.user_data,
    };
    let action = state.action("create", (id, "droplet"), region, boot);
    let base = base_url(&headers);
    let body = json!({
        "droplet": droplet_json(&droplet),
        "links": { "actions": [action_link(&base, action.id, "create")] },
    });
    sh.booted(crate::boot::Machine {
        provider: Provider::DigitalOcean,
        id: id.to_string(),
        name: droplet.name.clone(),
        ipv4: Some(droplet.ipv4),
        user_data: droplet.user_data.clone(),
    });
    state.droplets.insert(id, droplet);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn get_droplet(State(sh): S, Path(id): Path<String>) -> Response {
    let state = lock(&sh.digitalocean);
    match id
        .parse::<i64>()
        .ok()
        .and_then(|id| state.droplets.get(&id))
    {
        Some(d) => Json(json!({ "droplet": droplet_json(d) })).into_response(),
        None => not_found(),
    }
}

async fn delete_droplet(State(sh): S, Path(id): Path<String>) -> Response {
    let mut state = lock(&sh.digitalocean);
    let Some(droplet) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| state.droplets.remove(&id))
    else {
        return not_found();
    };
    // Its reserved IP stays reserved, unassigned.
    for r in state.reserved_ips.values_mut() {
        if r.droplet == Some(droplet.id) {
            r.droplet = None;
        }
    }
    lock(&sh.addresses).release(droplet.ipv4.into());
    sh.halted(Provider::DigitalOcean, droplet.id);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct ActionRequest {
    #[serde(rename = "type")]
    kind: String,
    droplet_id: Option<i64>,
}

async fn droplet_action(
    State(sh): S,
    Path(id): Path<String>,
    ProviderJson(req): ProviderJson<ActionRequest>,
) -> Response {
    let mut state = lock(&sh.digitalocean);
    let Some(droplet) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| state.droplets.get_mut(&id))
    else {
        return not_found();
    };
    let kind: &'static str = match req.kind.as_str() {
        "power_off" => {
            droplet.powered = false;
            "power_off"
        }
        "shutdown" => {
            droplet.powered = false;
            "shutdown"
        }
        "power_on" => {
            droplet.powered = true;
            "power_on"
        }
        "reboot" => {
            droplet.powered = true;
            "reboot"
        }
        "power_cycle" => {
            droplet.powered = true;
            "power_cycle"
        }
        other => return unprocessable(format!("Action '{other}' is not simulated.")),
    };
    let (id, region) = (droplet.id, droplet.region);
    let action = state.action(kind, (id, "droplet"), region, ACTION_TIME);
    (
        StatusCode::CREATED,
        Json(json!({ "action": action_json(&action) })),
    )
        .into_response()
}

async fn get_action(State(sh): S, Path(id): Path<String>) -> Response {
    let state = lock(&sh.digitalocean);
    match id.parse::<i64>().ok().and_then(|id| state.actions.get(id)) {
        Some(a) => Json(json!({ "action": action_json(a) })).into_response(),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_follow_digitalocean_rules() {
        assert!(valid_tag("damm-fleet:prod"));
        assert!(valid_tag("damm-frontdoor:192-0-2-10:k_1"));
        assert!(!valid_tag("damm-fleet=prod"));
        assert!(!valid_tag(""));
        assert!(!valid_tag(&"a".repeat(256)));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("damm-fleet:prod"), "damm-fleet%3Aprod");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn error_bodies_use_digitalocean_ids() {
        let body = error_body(429, "rate_limit_exceeded", "limit");
        assert_eq!(body["id"], "too_many_requests");
        let body = error_body(404, "not_found", "gone");
        assert_eq!(body["message"], "gone");
        assert_ne!(error_body(500, "x", "y")["request_id"], body["request_id"]);
    }
}
