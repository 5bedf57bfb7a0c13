//! Vultr API v2: instances (with halt, start and reboot) and reserved IPs (with attach
//! and detach), in Vultr's JSON shapes and cursor pagination. Responses follow Vultr's
//! published document (`vultr.subset.json` in the shared specs folder; not vendored, as
//! it states no licence) and are checked against it when that folder is present.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Provider;
use crate::server::{Api, ProviderJson, Shared, lock, provider_error};
use crate::world::Bucket;

type S = State<Arc<Shared>>;

/// Vultr's wiring: 30 requests per second, 429 past it, no rate-limit headers.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(30, Duration::from_secs(1))],
    admin: None,
    rate_headers: None,
    reject_body: Some(invalid_body),
};

/// The regions the simulator serves: id, city.
const REGIONS: &[(&str, &str)] = &[
    ("fra", "Frankfurt"),
    ("ams", "Amsterdam"),
    ("lhr", "London"),
    ("ewr", "New Jersey"),
    ("lax", "Los Angeles"),
    ("sgp", "Singapore"),
];

/// Plan id, vCPUs, RAM in MB, disk in GB, monthly bandwidth in GB. Their list prices
/// are $5, $10 and $20 a month (the adapter's price table carries them).
const PLANS: &[(&str, i64, i64, i64, i64)] = &[
    ("vc2-1c-1gb", 1, 1024, 25, 1024),
    ("vc2-1c-2gb", 1, 2048, 55, 2048),
    ("vc2-2c-4gb", 2, 4096, 80, 3072),
];

/// Operating system id and name.
const OPERATING_SYSTEMS: &[(i64, &str)] = &[(2136, "Debian 12 x64 (bookworm)")];

/// Page sizes: Vultr's default and its maximum.
const DEFAULT_PER_PAGE: usize = 100;
const MAX_PER_PAGE: usize = 500;

/// The largest user-data Vultr accepts, decoded.
const MAX_USER_DATA: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Instance {
    seq: u64,
    id: String,
    label: String,
    hostname: String,
    region: &'static str,
    plan: &'static str,
    os_id: i64,
    tags: Vec<String>,
    created: DateTime<Utc>,
    ready_at: Instant,
    powered: bool,
    main_ip: Ipv4Addr,
    v6_network: Ipv6Addr,
}

#[derive(Debug, Clone)]
struct ReservedIp {
    seq: u64,
    id: String,
    region: &'static str,
    ip: IpAddr,
    label: String,
    instance: Option<String>,
}

/// Vultr's world: instances and reserved IPs, each keyed by creation sequence (the
/// order lists and cursors follow).
#[derive(Debug, Default)]
pub(crate) struct World {
    next: u64,
    instances: BTreeMap<u64, Instance>,
    reserved: BTreeMap<u64, ReservedIp>,
}

impl World {
    /// The next sequence number and the UUID-shaped id derived from it (deterministic:
    /// the same run hands out the same ids).
    fn next_id(&mut self) -> (u64, String) {
        self.next += 1;
        (self.next, uuid_from(self.next))
    }

    fn instance_mut(&mut self, id: &str) -> Option<&mut Instance> {
        self.instances.values_mut().find(|i| i.id == id)
    }

    fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.values().find(|i| i.id == id)
    }

    fn reserved_mut(&mut self, id: &str) -> Option<&mut ReservedIp> {
        self.reserved.values_mut().find(|r| r.id == id)
    }
}

/// SplitMix64 finaliser: spreads a counter over 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID derived from `n`.
fn uuid_from(n: u64) -> String {
    let hi = mix(n);
    let lo = mix(n ^ 0xD1B5_4A32_D192_ED03);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        0x8000 | ((lo >> 48) & 0x3fff),
        lo & 0xffff_ffff_ffff,
    )
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/instances", get(list_instances).post(create_instance))
        .route(
            "/instances/{id}",
            get(get_instance)
                .patch(update_instance)
                .delete(delete_instance),
        )
        .route("/instances/{id}/{action}", post(instance_action))
        .route("/reserved-ips", get(list_reserved).post(create_reserved))
        .route(
            "/reserved-ips/{id}",
            get(get_reserved)
                .patch(update_reserved)
                .delete(delete_reserved),
        )
        .route("/reserved-ips/{id}/{action}", post(reserved_action))
}

/// Vultr's error body: `{"error": ..., "status": ...}`.
fn error_body(status: u16, _code: &str, message: &str) -> Value {
    json!({ "error": message, "status": status })
}

fn error(status: StatusCode, message: impl AsRef<str>) -> Response {
    provider_error(Provider::Vultr, status, "", message.as_ref())
}

fn bad_request(message: impl AsRef<str>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

/// Vultr's 400 for a body that does not parse into the request type.
fn invalid_body(rejection: JsonRejection) -> Response {
    bad_request(format!("Invalid request body: {}", rejection.body_text()))
}

fn time(t: DateTime<Utc>) -> String {
    // Vultr writes `2020-10-10T01:56:20+00:00`.
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn region(name: &str) -> Option<&'static str> {
    REGIONS.iter().find(|r| r.0 == name).map(|r| r.0)
}

fn instance_json(i: &Instance) -> Value {
    let booted = Instant::now() >= i.ready_at;
    let status = if booted { "active" } else { "pending" };
    let power = if i.powered { "running" } else { "stopped" };
    let server_status = match (booted, i.powered) {
        (false, _) => "installingbooting",
        (true, true) => "ok",
        (true, false) => "none",
    };
    let &(plan, vcpus, ram, disk, bandwidth) =
        PLANS.iter().find(|p| p.0 == i.plan).expect("known plan");
    let os = OPERATING_SYSTEMS
        .iter()
        .find(|o| o.0 == i.os_id)
        .map_or("", |o| o.1);
    let [a, b, c, _] = i.main_ip.octets();
    let s = i.v6_network.segments();
    let v6_main = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0x0200, 0x00ff, 0xfe00, 0);
    json!({
        "id": i.id, "os": os, "ram": ram, "disk": disk, "main_ip": i.main_ip.to_string(),
        "vcpu_count": vcpus, "region": i.region, "plan": plan, "date_created": time(i.created),
        "status": status, "allowed_bandwidth": bandwidth, "netmask_v4": "255.255.254.0",
        "gateway_v4": Ipv4Addr::new(a, b, c, 1).to_string(), "power_status": power,
        "server_status": server_status, "v6_network": i.v6_network.to_string(),
        "v6_main_ip": v6_main.to_string(), "v6_network_size": 64,
        "v6_networks": [{
            "network": i.v6_network.to_string(), "main_ip": v6_main.to_string(), "network_size": 64,
        }],
        "label": i.label, "internal_ip": "", "kvm": "", "hostname": i.hostname, "os_id": i.os_id,
        "app_id": 0, "image_id": "", "firewall_group_id": "", "features": ["ipv6"],
        "tags": i.tags, "user_scheme": "root",
    })
}

fn reserved_json(r: &ReservedIp) -> Value {
    let (ip_type, size) = if r.ip.is_ipv4() {
        ("v4", 32)
    } else {
        ("v6", 64)
    };
    json!({
        "id": r.id, "region": r.region, "ip_type": ip_type, "subnet": r.ip.to_string(),
        "subnet_size": size, "label": r.label,
        "instance_id": r.instance.clone().unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    per_page: Option<String>,
    cursor: Option<String>,
    tag: Option<String>,
    label: Option<String>,
    region: Option<String>,
    main_ip: Option<String>,
}

/// Where a cursor points: the page starting at the first item with sequence `>= seq`
/// (`next`), or the page ending just before it (`prev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Next(u64),
    Prev(u64),
}

impl Cursor {
    fn encode(self) -> String {
        let text = match self {
            Cursor::Next(seq) => format!("next__{seq}"),
            Cursor::Prev(seq) => format!("prev__{seq}"),
        };
        base64_encode(text.as_bytes())
    }

    fn decode(cursor: &str) -> Option<Cursor> {
        let text = String::from_utf8(base64_decode(cursor)?).ok()?;
        if let Some(seq) = text.strip_prefix("next__") {
            seq.parse().ok().map(Cursor::Next)
        } else if let Some(seq) = text.strip_prefix("prev__") {
            seq.parse().ok().map(Cursor::Prev)
        } else {
            None
        }
    }
}

/// One page of `items` (in sequence order) under `key`, with Vultr's `meta`: the total
/// and opaque `next`/`prev` cursors, `""` when there is no such page.
fn paged<T>(
    sh: &Shared,
    key: &str,
    items: Vec<(u64, T)>,
    q: &ListQuery,
    render: impl Fn(T) -> Value,
) -> Response {
    let per_page = match q.per_page.as_deref().map(str::parse::<usize>) {
        None => sh.page_size(DEFAULT_PER_PAGE),
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => sh.page_size(n),
        Some(_) => {
            return bad_request(format!(
                "per_page must be an integer from 1 to {MAX_PER_PAGE}"
            ));
        }
    };
    let (start, end) = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => (0, per_page.min(items.len())),
        Some(raw) => match Cursor::decode(raw) {
            Some(Cursor::Next(seq)) => {
                let start = items.partition_point(|(s, _)| *s < seq);
                (start, (start + per_page).min(items.len()))
            }
            Some(Cursor::Prev(seq)) => {
                let end = items.partition_point(|(s, _)| *s < seq);
                (end.saturating_sub(per_page), end)
            }
            None => return bad_request("Invalid cursor"),
        },
    };
    // A missing page: an empty page that ends the cursor chain early.
    let missing = sh.page_missing(Provider::Vultr, start > 0);
    let end = if missing { start } else { end };
    let next = items
        .get(end)
        .filter(|_| !missing)
        .map(|(seq, _)| Cursor::Next(*seq).encode())
        .unwrap_or_default();
    let prev = if start > 0 {
        Cursor::Prev(items[start].0).encode()
    } else {
        String::new()
    };
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(end - start)
        .map(|(_, v)| render(v))
        .collect();
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), Value::Array(page));
    body.insert(
        "meta".to_owned(),
        json!({ "total": total, "links": { "next": next, "prev": prev } }),
    );
    Json(Value::Object(body)).into_response()
}

async fn list_instances(State(sh): S, Query(q): Query<ListQuery>) -> Response {
    let world = lock(&sh.vultr);
    let items = world
        .instances
        .values()
        .filter(|i| {
            q.tag
                .as_deref()
                .is_none_or(|t| i.tags.iter().any(|x| x == t))
        })
        .filter(|i| q.label.as_deref().is_none_or(|l| i.label == l))
        .filter(|i| q.region.as_deref().is_none_or(|r| i.region == r))
        .filter(|i| {
            q.main_ip
                .as_deref()
                .is_none_or(|ip| i.main_ip.to_string() == ip)
        })
        .map(|i| (i.seq, i))
        .collect();
    paged(&sh, "instances", items, &q, instance_json)
}

#[derive(Debug, Deserialize)]
struct CreateInstance {
    region: String,
    plan: String,
    os_id: Option<i64>,
    label: Option<String>,
    hostname: Option<String>,
    user_data: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create_instance(
    State(sh): S,
    ProviderJson(req): ProviderJson<CreateInstance>,
) -> Response {
    let Some(region) = region(&req.region) else {
        return bad_request(format!("Invalid region: {}", req.region));
    };
    let Some(plan) = PLANS.iter().find(|p| p.0 == req.plan).map(|p| p.0) else {
        return bad_request(format!("Invalid plan: {}", req.plan));
    };
    let Some(os_id) = req.os_id else {
        return bad_request("An os_id, app_id, image_id, iso_id or snapshot_id is required");
    };
    if !OPERATING_SYSTEMS.iter().any(|o| o.0 == os_id) {
        return bad_request(format!("Invalid os_id: {os_id}"));
    }
    let user_data = match req.user_data.as_deref().map(base64_decode) {
        None => None,
        Some(Some(decoded)) if decoded.len() <= MAX_USER_DATA => {
            Some(String::from_utf8_lossy(&decoded).into_owned())
        }
        Some(Some(_)) => return bad_request("user_data is larger than 64 KiB"),
        Some(None) => return bad_request("user_data must be base64 encoded"),
    };
    if sh.faults(Provider::Vultr).quota_exhausted {
        return bad_request(
            "Server add failed: You have reached the maximum number of instances for \
             this account. Please contact support to raise the limit.",
        );
    }
    let boot = sh.boot_delay(Provider::Vultr);
    let (main_ip, v6_network) = {
        let mut pool = lock(&sh.addresses);
        let Some(v4) = pool.v4() else {
            return bad_request("No IPv4 addresses are available in this region");
        };
        (v4, pool.v6_network())
    };
    let mut world = lock(&sh.vultr);
    let (seq, id) = world.next_id();
    let label = req.label.unwrap_or_default();
    let instance = Instance {
        seq,
        id,
        hostname: req.hostname.unwrap_or_else(|| "vultr.guest".to_owned()),
        label,
        region,
        plan,
        os_id,
        tags: req.tags,
        created: Utc::now(),
        ready_at: Instant::now() + boot,
        powered: true,
        main_ip,
        v6_network,
    };
    let answer = json!({ "instance": instance_json(&instance) });
    sh.booted(crate::boot::Machine {
        provider: Provider::Vultr,
        id: instance.id.clone(),
        name: instance.label.clone(),
        ipv4: Some(instance.main_ip),
        user_data,
    });
    world.instances.insert(seq, instance);
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

async fn get_instance(State(sh): S, Path(id): Path<String>) -> Response {
    let world = lock(&sh.vultr);
    match world.instance(&id) {
        Some(i) => Json(json!({ "instance": instance_json(i) })).into_response(),
        None => not_found(),
    }
}

#[derive(Debug, Deserialize)]
struct UpdateInstance {
    label: Option<String>,
    tags: Option<Vec<String>>,
}

async fn update_instance(
    State(sh): S,
    Path(id): Path<String>,
    ProviderJson(req): ProviderJson<UpdateInstance>,
) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(instance) = world.instance_mut(&id) else {
        return not_found();
    };
    if let Some(label) = req.label {
        instance.label = label;
    }
    if let Some(tags) = req.tags {
        instance.tags = tags;
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "instance": instance_json(instance) })),
    )
        .into_response()
}

async fn delete_instance(State(sh): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(seq) = world.instance(&id).map(|i| i.seq) else {
        return not_found();
    };
    let instance = world.instances.remove(&seq).expect("found above");
    for r in world.reserved.values_mut() {
        if r.instance.as_deref() == Some(id.as_str()) {
            r.instance = None;
        }
    }
    lock(&sh.addresses).release(IpAddr::V4(instance.main_ip));
    sh.halted(Provider::Vultr, &instance.id);
    StatusCode::NO_CONTENT.into_response()
}

async fn instance_action(State(sh): S, Path((id, action)): Path<(String, String)>) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(instance) = world.instance_mut(&id) else {
        return not_found();
    };
    match action.as_str() {
        "halt" => instance.powered = false,
        "start" | "reboot" => instance.powered = true,
        _ => return not_found(),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_reserved(State(sh): S, Query(q): Query<ListQuery>) -> Response {
    let world = lock(&sh.vultr);
    let items = world
        .reserved
        .values()
        .filter(|r| q.region.as_deref().is_none_or(|x| r.region == x))
        .map(|r| (r.seq, r))
        .collect();
    paged(&sh, "reserved_ips", items, &q, reserved_json)
}

#[derive(Debug, Deserialize)]
struct CreateReserved {
    region: String,
    ip_type: String,
    label: Option<String>,
}

async fn create_reserved(
    State(sh): S,
    ProviderJson(req): ProviderJson<CreateReserved>,
) -> Response {
    let Some(region) = region(&req.region) else {
        return bad_request(format!("Invalid region: {}", req.region));
    };
    let ip = match req.ip_type.as_str() {
        "v4" => match lock(&sh.addresses).v4() {
            Some(ip) => IpAddr::V4(ip),
            None => return bad_request("No IPv4 addresses are available in this region"),
        },
        "v6" => IpAddr::V6(lock(&sh.addresses).v6_network()),
        other => return bad_request(format!("Invalid ip_type: {other}")),
    };
    let mut world = lock(&sh.vultr);
    let (seq, id) = world.next_id();
    let reserved = ReservedIp {
        seq,
        id,
        region,
        ip,
        label: req.label.unwrap_or_default(),
        instance: None,
    };
    let answer = json!({ "reserved_ip": reserved_json(&reserved) });
    world.reserved.insert(seq, reserved);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn get_reserved(State(sh): S, Path(id): Path<String>) -> Response {
    let world = lock(&sh.vultr);
    match world.reserved.values().find(|r| r.id == id) {
        Some(r) => Json(json!({ "reserved_ip": reserved_json(r) })).into_response(),
        None => not_found(),
    }
}

#[derive(Debug, Deserialize)]
struct UpdateReserved {
    label: String,
}

async fn update_reserved(
    State(sh): S,
    Path(id): Path<String>,
    ProviderJson(req): ProviderJson<UpdateReserved>,
) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(r) = world.reserved_mut(&id) else {
        return not_found();
    };
    r.label = req.label;
    Json(json!({ "reserved_ip": reserved_json(r) })).into_response()
}

async fn delete_reserved(State(sh): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(r) = world.reserved.values().find(|r| r.id == id).cloned() else {
        return not_found();
    };
    if r.instance.is_some() {
        return bad_request("Detach the reserved IP from its instance before deleting it");
    }
    world.reserved.remove(&r.seq);
    lock(&sh.addresses).release(r.ip);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct Attach {
    instance_id: String,
}

async fn reserved_action(
    State(sh): S,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut world = lock(&sh.vultr);
    let Some(reserved) = world.reserved.values().find(|r| r.id == id).cloned() else {
        return not_found();
    };
    match action.as_str() {
        "attach" => {
            let Ok(Attach { instance_id }) = serde_json::from_slice::<Attach>(&body) else {
                return bad_request("instance_id is required");
            };
            let Some(instance) = world.instance(&instance_id) else {
                return not_found();
            };
            if instance.region != reserved.region {
                return bad_request("The reserved IP and the instance must be in the same region");
            }
            match reserved.instance.as_deref() {
                Some(current) if current == instance_id => {}
                Some(_) => return bad_request("The reserved IP is already attached"),
                None => {
                    world.reserved_mut(&id).expect("found above").instance = Some(instance_id);
                }
            }
        }
        "detach" => {
            if reserved.instance.is_none() {
                return bad_request("The reserved IP is not attached");
            }
            world.reserved_mut(&id).expect("found above").instance = None;
        }
        _ => return not_found(),
    }
    StatusCode::NO_CONTENT.into_response()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (cursors).
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; padding is optional, whitespace (line breaks) is skipped,
/// anything else outside the alphabet is an error.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        let value = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sextet cannot end a valid encoding, nor can more than two `=`.
    (bits < 6 && padding <= 2).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert!(base64_decode("not base64!").is_none());
        assert!(base64_decode("Z").is_none());
        assert!(base64_decode("Zg==Zg").is_none());
    }

    #[test]
    fn ids_are_deterministic_uuids() {
        let id = uuid_from(1);
        assert_eq!(id, uuid_from(1));
        assert_ne!(id, uuid_from(2));
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn cursors_are_opaque_and_round_trip() {
        for cursor in [Cursor::Next(7), Cursor::Prev(12)] {
            let text = cursor.encode();
            assert!(!text.contains("__"), "{text}");
            assert_eq!(Cursor::decode(&text), Some(cursor));
        }
        assert_eq!(Cursor::decode("bogus"), None);
    }
}
