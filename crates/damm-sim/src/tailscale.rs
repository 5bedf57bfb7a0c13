//! Tailscale API v2: devices, auth keys and tailnet settings; a simulated gateway
//! redeems an auth key through `/_sim/tailscale/...` to join.
//!
//! Routes (relative to `/tailscale/api/v2`, as the document writes them):
//! - `GET/POST /tailnet/{tailnet}/keys`, `GET/DELETE /tailnet/{tailnet}/keys/{keyId}`:
//!   auth keys. The secret (`key`) is only in the create answer. A deleted key is revoked:
//!   it leaves the listing, and reading it answers it with `revoked` and `invalid: true`;
//!   expired keys and used one-off keys are listed with `invalid: true`.
//! - `GET /tailnet/{tailnet}/devices` (`?fields=all` adds routes and connectivity),
//!   `GET/DELETE /device/{deviceId}`, `POST /device/{deviceId}/tags`,
//!   `POST /device/{deviceId}/authorized`, `GET/POST /device/{deviceId}/routes`. A device
//!   is found by its `id` or its `nodeId`.
//!
//! Simplifications: one tailnet (any `{tailnet}` segment, `-` included, names it); tags
//! must be declared by the tailnet policy in reality, here any `tag:`-prefixed tag is
//! accepted; ephemeral devices stay until deleted (nothing goes offline here).
//!
//! Simulator-only routes (no bearer token, like `/_sim/faults`):
//! - `POST /_sim/tailscale/join` `{key, hostname, advertiseRoutes?}`: a gateway redeems an
//!   auth key. 404 for an unknown key, 400 for a revoked, expired or used one-off key;
//!   otherwise a device carrying the key's tags (ephemeral per the key, authorised when
//!   the key is pre-authorised) with the next 100.64.0.0/10 and fd7a:115c:a1e0::/48
//!   addresses, answered as device JSON.
//! - `POST /_sim/tailscale/device/{deviceId}/seen` `{secondsAgo}`: sets `lastSeen`, to
//!   model a member going quiet.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Provider;
use crate::server::{Api, Shared, lock, provider_error};
use crate::world::Bucket;

type S = State<Arc<Shared>>;

/// Tailscale's wiring: no documented limit (a generous 100/s bucket), error body
/// `{message}`, and the simulator-only join route.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(100, Duration::from_secs(1))],
    rate_headers: None,
    admin: Some(admin),
    reject_body: None,
};

/// Default auth-key lifetime when `expirySeconds` is absent (90 days, as Tailscale).
const DEFAULT_EXPIRY: i64 = 90 * 24 * 3600;

/// Node key lifetime of a new device (180 days, Tailscale's default).
const NODE_KEY_DAYS: i64 = 180;

/// The tailnet's MagicDNS domain when the path names it `-`.
const DEFAULT_TAILNET_DNS: &str = "tail5im0.ts.net";

#[derive(Debug, Clone)]
struct AuthKey {
    id: String,
    secret: String,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
    revoked: Option<DateTime<Utc>>,
    reusable: bool,
    ephemeral: bool,
    preauthorized: bool,
    tags: Vec<String>,
    description: String,
    uses: u32,
}

impl AuthKey {
    fn invalid(&self, now: DateTime<Utc>) -> bool {
        self.revoked.is_some() || self.expires <= now || (!self.reusable && self.uses > 0)
    }

    fn json(&self, secret: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "created": ts(self.created),
            "expires": ts(self.expires),
            "capabilities": { "devices": { "create": {
                "reusable": self.reusable,
                "ephemeral": self.ephemeral,
                "preauthorized": self.preauthorized,
                "tags": self.tags,
            }}},
            "description": self.description,
        });
        if secret {
            v["key"] = json!(self.secret);
        }
        if let Some(revoked) = self.revoked {
            v["revoked"] = json!(ts(revoked));
        }
        if self.invalid(Utc::now()) {
            v["invalid"] = json!(true);
        }
        v
    }
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    node_id: String,
    hostname: String,
    name: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    tags: Vec<String>,
    authorized: bool,
    ephemeral: bool,
    created: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    expires: DateTime<Utc>,
    advertised_routes: Vec<String>,
    enabled_routes: Vec<String>,
}

impl Device {
    fn json(&self, all: bool) -> Value {
        let mut v = json!({
            "addresses": [self.v4.to_string(), self.v6.to_string()],
            "id": self.id,
            "nodeId": self.node_id,
            "user": if self.tags.is_empty() { "damm-sim@example.com" } else { "tagged-devices" },
            "name": self.name,
            "hostname": self.hostname,
            "clientVersion": "1.76.1-t0123456789-g0123456789",
            "updateAvailable": false,
            "os": "linux",
            "created": ts(self.created),
            "lastSeen": ts(self.last_seen),
            "keyExpiryDisabled": !self.tags.is_empty(),
            "expires": ts(self.expires),
            "authorized": self.authorized,
            "isExternal": false,
            "isEphemeral": self.ephemeral,
            "machineKey": format!("mkey:{:064x}", self.seed()),
            "nodeKey": format!("nodekey:{:064x}", self.seed() + 1),
            "blocksIncomingConnections": false,
            "tags": self.tags,
            "tailnetLockError": "",
            "tailnetLockKey": format!("tlpub:{:064x}", self.seed() + 2),
        });
        if all {
            v["enabledRoutes"] = json!(self.enabled_routes);
            v["advertiseRoutes"] = json!(self.advertised_routes);
            v["clientConnectivity"] = json!({
                "endpoints": ["192.0.2.10:41641"],
                "mappingVariesByDestIP": false,
                "latency": { "Frankfurt": { "preferred": true, "latencyMs": 12.5 } },
                "clientSupports": {
                    "hairPinning": false, "ipv6": true, "pcp": false,
                    "pmp": false, "udp": true, "upnp": false
                }
            });
        }
        v
    }

    fn seed(&self) -> u128 {
        u128::from(self.v4.to_bits())
    }

    fn routes(&self) -> Value {
        json!({
            "advertisedRoutes": self.advertised_routes,
            "enabledRoutes": self.enabled_routes,
        })
    }
}

/// Tailscale's world: one tailnet's auth keys and devices.
#[derive(Debug, Default)]
pub(crate) struct World {
    next_id: u64,
    next_address: u32,
    dns: Option<String>,
    keys: BTreeMap<String, AuthKey>,
    devices: BTreeMap<String, Device>,
}

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next overlay addresses: 100.64.0.0/10 and fd7a:115c:a1e0::/48, in order.
    fn addresses(&mut self) -> (Ipv4Addr, Ipv6Addr) {
        self.next_address += 1;
        let n = self.next_address % (1 << 22);
        let v4 = Ipv4Addr::from_bits(Ipv4Addr::new(100, 64, 0, 0).to_bits() + n);
        let v6 = Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, (n >> 16) as u16, n as u16);
        (v4, v6)
    }

    fn device_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.devices
            .values_mut()
            .find(|d| d.id == id || d.node_id == id)
    }

    fn device_key(&self, id: &str) -> Option<String> {
        self.devices
            .iter()
            .find(|(_, d)| d.id == id || d.node_id == id)
            .map(|(k, _)| k.clone())
    }

    fn remember_tailnet(&mut self, tailnet: &str) {
        if self.dns.is_none() && tailnet != "-" {
            let label: String = tailnet
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            self.dns = Some(format!("{label}.ts.net"));
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fresh secret: unguessable enough for a simulator, never reused.
fn secret_part() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mixed = (nanos ^ n.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{mixed:016x}{:08x}", n)
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/tailnet/{tailnet}/keys", get(list_keys).post(create_key))
        .route(
            "/tailnet/{tailnet}/keys/{key_id}",
            get(get_key).delete(delete_key),
        )
        .route("/tailnet/{tailnet}/devices", get(list_devices))
        .route("/device/{id}", get(get_device).delete(delete_device))
        .route("/device/{id}/tags", post(set_tags))
        .route("/device/{id}/authorized", post(authorize))
        .route("/device/{id}/routes", get(get_routes).post(set_routes))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
}

fn admin() -> Router<Arc<Shared>> {
    Router::new()
        .route("/join", post(join))
        .route("/device/{id}/seen", post(seen))
}

/// Tailscale's error body.
fn error_body(_status: u16, _code: &str, message: &str) -> Value {
    json!({ "message": message })
}

fn error(status: StatusCode, message: &str) -> Response {
    provider_error(Provider::Tailscale, status, "", message)
}

fn bad_request(message: impl AsRef<str>) -> Response {
    error(StatusCode::BAD_REQUEST, message.as_ref())
}

fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

/// Reads a request body; the error is the 400 answer's message.
fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))
}

/// Checks tags' shape; the error is the 400 answer's message.
fn check_tags(tags: &[String]) -> Result<(), String> {
    for tag in tags {
        let name = tag.strip_prefix("tag:").unwrap_or_default();
        let valid = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "tag {tag:?} is invalid: tags are \"tag:\" followed by letters, digits and dashes"
            ));
        }
    }
    Ok(())
}

// ----- keys -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateKey {
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    expiry_seconds: Option<f64>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Capabilities {
    #[serde(default)]
    devices: DeviceCaps,
}

#[derive(Debug, Default, Deserialize)]
struct DeviceCaps {
    #[serde(default)]
    create: CreateCaps,
}

#[derive(Debug, Default, Deserialize)]
struct CreateCaps {
    #[serde(default)]
    reusable: bool,
    #[serde(default)]
    ephemeral: bool,
    #[serde(default)]
    preauthorized: bool,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create_key(State(shared): S, Path(tailnet): Path<String>, body: Bytes) -> Response {
    let req: CreateKey = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let caps = req.capabilities.devices.create;
    if let Err(e) = check_tags(&caps.tags) {
        return bad_request(e);
    }
    let expiry = match req.expiry_seconds {
        None => DEFAULT_EXPIRY,
        Some(s) if s >= 0.0 && s.is_finite() => {
            if s == 0.0 {
                DEFAULT_EXPIRY
            } else {
                s as i64
            }
        }
        Some(_) => return bad_request("expirySeconds must not be negative"),
    };
    if let Some(d) = &req.description
        && d.chars().count() > 50
    {
        return bad_request("description must be at most 50 characters");
    }
    let mut world = lock(&shared.tailscale);
    world.remember_tailnet(&tailnet);
    let n = world.id();
    let id = format!("k{n:06}CNTRL");
    let now = Utc::now();
    let key = AuthKey {
        secret: format!("tskey-auth-{id}-{}", secret_part()),
        id: id.clone(),
        created: now,
        expires: now + chrono::Duration::seconds(expiry),
        revoked: None,
        reusable: caps.reusable,
        ephemeral: caps.ephemeral,
        preauthorized: caps.preauthorized,
        tags: caps.tags,
        description: req.description.unwrap_or_default(),
        uses: 0,
    };
    let answer = key.json(true);
    world.keys.insert(id, key);
    axum::Json(answer).into_response()
}

async fn list_keys(State(shared): S, Path(_tailnet): Path<String>) -> Response {
    let world = lock(&shared.tailscale);
    let keys: Vec<Value> = world
        .keys
        .values()
        .filter(|k| k.revoked.is_none())
        .map(|k| k.json(false))
        .collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

async fn get_key(State(shared): S, Path((_tailnet, id)): Path<(String, String)>) -> Response {
    let world = lock(&shared.tailscale);
    match world.keys.get(&id) {
        Some(k) => axum::Json(k.json(false)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn delete_key(State(shared): S, Path((_tailnet, id)): Path<(String, String)>) -> Response {
    let mut world = lock(&shared.tailscale);
    match world.keys.get_mut(&id) {
        Some(k) if k.revoked.is_none() => {
            k.revoked = Some(Utc::now());
            ok_empty()
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

// ----- devices -----

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(default)]
    fields: Option<String>,
}

async fn list_devices(
    State(shared): S,
    Path(_tailnet): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let all = match q.fields.as_deref() {
        None | Some("default") => false,
        Some("all") => true,
        Some(other) => return bad_request(format!("unknown fields option {other:?}")),
    };
    let world = lock(&shared.tailscale);
    let devices: Vec<Value> = world.devices.values().map(|d| d.json(all)).collect();
    axum::Json(json!({ "devices": devices })).into_response()
}

async fn get_device(State(shared): S, Path(id): Path<String>, Query(q): Query<Fields>) -> Response {
    let all = q.fields.as_deref() == Some("all");
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => axum::Json(d.json(all)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Deleting an unknown device answers 404 like the real API, although the document lists
/// no 404 for this operation (so with validation on it is recorded as a drift).
async fn delete_device(State(shared): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&shared.tailscale);
    match world.device_key(&id) {
        Some(k) => {
            world.devices.remove(&k);
            ok_empty()
        }
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

#[derive(Debug, Deserialize)]
struct SetTags {
    tags: Vec<String>,
}

async fn set_tags(State(shared): S, Path(id): Path<String>, body: Bytes) -> Response {
    let req: SetTags = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if let Err(e) = check_tags(&req.tags) {
        return bad_request(e);
    }
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => {
            let mut tags = req.tags;
            tags.sort();
            tags.dedup();
            d.tags = tags;
            ok_empty()
        }
        // The document lists no 404 here; Tailscale answers 400 for an unknown device.
        None => bad_request("device not found"),
    }
}

#[derive(Debug, Deserialize)]
struct Authorize {
    authorized: bool,
}

async fn authorize(State(shared): S, Path(id): Path<String>, body: Bytes) -> Response {
    let req: Authorize = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => {
            d.authorized = req.authorized;
            ok_empty()
        }
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn get_routes(State(shared): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => axum::Json(d.routes()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

#[derive(Debug, Deserialize)]
struct SetRoutes {
    #[serde(default)]
    routes: Vec<String>,
}

async fn set_routes(State(shared): S, Path(id): Path<String>, body: Bytes) -> Response {
    let req: SetRoutes = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if let Some(bad) = req.routes.iter().find(|r| !is_cidr(r)) {
        return bad_request(format!("route {bad:?} is not a CIDR prefix"));
    }
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => {
            d.enabled_routes = req.routes;
            axum::Json(d.routes()).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn is_cidr(route: &str) -> bool {
    let Some((addr, bits)) = route.split_once('/') else {
        return false;
    };
    match (addr.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}

// ----- simulator-only -----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Join {
    key: String,
    hostname: String,
    #[serde(default)]
    advertise_routes: Vec<String>,
}

fn sim_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// A gateway redeems an auth key and joins the tailnet.
async fn join(State(shared): S, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Join>(&body) else {
        return sim_error(
            StatusCode::BAD_REQUEST,
            "expected {\"key\": string, \"hostname\": string}",
        );
    };
    let hostname = req.hostname.trim().to_owned();
    if hostname.is_empty()
        || !hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return sim_error(StatusCode::BAD_REQUEST, "invalid hostname");
    }
    let now = Utc::now();
    let mut world = lock(&shared.tailscale);
    let Some(key_id) = world
        .keys
        .values()
        .find(|k| k.secret == req.key)
        .map(|k| k.id.clone())
    else {
        return sim_error(StatusCode::NOT_FOUND, "invalid key: unknown auth key");
    };
    let key = world.keys[&key_id].clone();
    if key.revoked.is_some() {
        return sim_error(StatusCode::BAD_REQUEST, "invalid key: revoked");
    }
    if key.expires <= now {
        return sim_error(StatusCode::BAD_REQUEST, "invalid key: expired");
    }
    if !key.reusable && key.uses > 0 {
        return sim_error(StatusCode::BAD_REQUEST, "invalid key: already used");
    }
    if let Some(k) = world.keys.get_mut(&key_id) {
        k.uses += 1;
    }
    let dns = world
        .dns
        .clone()
        .unwrap_or_else(|| DEFAULT_TAILNET_DNS.to_owned());
    let base = hostname.to_ascii_lowercase();
    let mut label = base.clone();
    let mut n = 0;
    while world
        .devices
        .values()
        .any(|d| d.name == format!("{label}.{dns}"))
    {
        n += 1;
        label = format!("{base}-{n}");
    }
    let (v4, v6) = world.addresses();
    let id_number = 90_000_000_000 + world.id();
    let device = Device {
        id: id_number.to_string(),
        node_id: format!("n{id_number:x}CNTRL"),
        name: format!("{label}.{dns}"),
        hostname,
        v4,
        v6,
        tags: key.tags.clone(),
        authorized: key.preauthorized,
        ephemeral: key.ephemeral,
        created: now,
        last_seen: now,
        expires: now + chrono::Duration::days(NODE_KEY_DAYS),
        advertised_routes: req.advertise_routes,
        enabled_routes: Vec::new(),
    };
    let answer = device.json(true);
    world.devices.insert(device.id.clone(), device);
    axum::Json(answer).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seen {
    seconds_ago: i64,
}

/// Moves a device's `lastSeen` into the past.
async fn seen(State(shared): S, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Seen>(&body) else {
        return sim_error(StatusCode::BAD_REQUEST, "expected {\"secondsAgo\": number}");
    };
    let mut world = lock(&shared.tailscale);
    match world.device_mut(&id) {
        Some(d) => {
            d.last_seen = Utc::now() - chrono::Duration::seconds(req.seconds_ago.max(0));
            StatusCode::NO_CONTENT.into_response()
        }
        None => sim_error(StatusCode::NOT_FOUND, "no such device"),
    }
}
