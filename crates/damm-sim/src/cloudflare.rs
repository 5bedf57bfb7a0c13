//! Cloudflare API v4: zones, DNS records and Cloudflare Tunnels (cfd_tunnel).
//!
//! The world starts with one account ([`ACCOUNT_ID`]) holding one active zone,
//! [`ZONE_NAME`] ([`ZONE_ID`]). DNS record ids are 32 hex digits, tunnel ids UUIDs.
//! Deleted tunnels stay listed with `deleted_at` set (as Cloudflare keeps them), so a
//! second delete answers the deleted tunnel again. A tunnel has no connector until one
//! is simulated with `POST /_sim/cloudflare/tunnels/{tunnel_id}/connect` (and dropped
//! with `DELETE` on the same path).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
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
type Params = Query<HashMap<String, String>>;

/// The simulated account's id.
pub(crate) const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The seeded zone's id.
pub(crate) const ZONE_ID: &str = "fedcba9876543210fedcba9876543210";
/// The seeded zone's name.
pub(crate) const ZONE_NAME: &str = "damm.example";

/// Cloudflare's wiring: 1200 requests per 5 minutes, no rate-limit headers (429 with
/// `Retry-After` past it), error envelope `{success: false, errors: [...]}`.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(1200, Duration::from_secs(300))],
    rate_headers: None,
    admin: Some(admin),
    reject_body: None,
};

/// One DNS record.
#[derive(Debug, Clone)]
struct Record {
    id: String,
    kind: String,
    name: String,
    content: String,
    proxied: bool,
    ttl: u32,
    comment: Option<String>,
    created_on: DateTime<Utc>,
    modified_on: DateTime<Utc>,
}

/// One Cloudflare Tunnel.
#[derive(Debug, Clone)]
struct CfdTunnel {
    id: String,
    name: String,
    secret: String,
    remote_config: bool,
    config: Value,
    config_version: i64,
    created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    /// When a simulated connector attached, and its client id.
    connector: Option<(DateTime<Utc>, String)>,
}

/// Cloudflare's world.
#[derive(Debug, Default)]
pub(crate) struct World {
    next_id: u64,
    records: BTreeMap<String, Record>,
    tunnels: BTreeMap<String, CfdTunnel>,
}

impl World {
    /// A fresh 128-bit value, spread so ids do not look sequential.
    fn fresh(&mut self) -> u128 {
        self.next_id += 1;
        let x = u128::from(self.next_id);
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            ^ 0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f
    }

    fn hex_id(&mut self) -> String {
        format!("{:032x}", self.fresh())
    }

    fn uuid(&mut self) -> String {
        let hex = format!("{:032x}", self.fresh());
        // Version 4, variant 10xx, so the id is a well-formed UUID.
        let hex = format!("{}4{}a{}", &hex[..12], &hex[13..16], &hex[17..]);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

fn routes() -> Router<Arc<Shared>> {
    let records = Router::new()
        .route("/dns_records", get(list_records).post(create_record))
        .route(
            "/dns_records/{id}",
            get(get_record)
                .put(put_record)
                .patch(patch_record)
                .delete(delete_record),
        );
    let tunnels = Router::new()
        .route("/", get(list_tunnels).post(create_tunnel))
        .route("/{tunnel_id}", get(get_tunnel).delete(delete_tunnel))
        .route(
            "/{tunnel_id}/configurations",
            get(get_configuration).put(put_configuration),
        )
        .route("/{tunnel_id}/token", get(get_token))
        .route("/{tunnel_id}/connections", get(get_connections));
    Router::new()
        .route("/zones", get(list_zones))
        .nest("/zones/{zone_id}", records)
        .nest("/accounts/{account_id}/cfd_tunnel", tunnels)
}

/// Simulator-only routes under `/_sim/cloudflare`.
fn admin() -> Router<Arc<Shared>> {
    Router::new().route(
        "/tunnels/{tunnel_id}/connect",
        post(connect_tunnel).delete(disconnect_tunnel),
    )
}

/// Cloudflare's error envelope.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    let code = match code {
        "unauthorized" => 10000,
        "not_found" => 7003,
        "rate_limit_exceeded" => 10013,
        "invalid_input" => 1004,
        "conflict" => 1014,
        _ => 1000,
    };
    json!({ "success": false, "errors": [{ "code": code, "message": message }], "messages": [], "result": null })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn ok(result: Value) -> Response {
    Json(json!({ "success": true, "errors": [], "messages": [], "result": result })).into_response()
}

fn not_found(what: &str) -> Response {
    provider_error(
        Provider::Cloudflare,
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{what} not found"),
    )
}

fn invalid(message: &str) -> Response {
    provider_error(
        Provider::Cloudflare,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        message,
    )
}

/// A page of `items` in Cloudflare's collection envelope.
fn paged(
    sh: &Shared,
    items: Vec<Value>,
    q: &HashMap<String, String>,
    default_per_page: usize,
) -> Response {
    let number = |key: &str| q.get(key).and_then(|v| v.parse::<usize>().ok());
    let p = sh.numbered_page(
        Provider::Cloudflare,
        items,
        (number("page"), number("per_page")),
        (default_per_page, 5000),
    );
    Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result_info": {
            "page": p.page,
            "per_page": p.per_page,
            "count": p.items.len(),
            "total_count": p.total,
        },
        "result": p.items,
    }))
    .into_response()
}

fn zone_json() -> Value {
    json!({
        "id": ZONE_ID,
        "name": ZONE_NAME,
        "status": "active",
        "paused": false,
        "type": "full",
        "development_mode": 0,
        "owner": { "id": ACCOUNT_ID, "name": "DAMM", "type": "organization" },
        "account": { "id": ACCOUNT_ID, "name": "DAMM" },
        "meta": { "cdn_only": false, "dns_only": false, "foundation_dns": false, "page_rule_quota": 3, "phishing_detected": false, "step": 2, "custom_certificate_quota": 0 },
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": null,
        "original_registrar": null,
        "original_dnshost": null,
        "created_on": "2026-01-01T00:00:00.000000Z",
        "modified_on": "2026-01-01T00:00:00.000000Z",
        "activated_on": "2026-01-01T00:00:00.000000Z",
    })
}

async fn list_zones(State(sh): S, Query(q): Params) -> Response {
    let zones = if q.get("name").is_none_or(|n| n == ZONE_NAME) {
        vec![zone_json()]
    } else {
        vec![]
    };
    paged(&sh, zones, &q, 20)
}

fn record_json(r: &Record) -> Value {
    let mut v = json!({
        "id": r.id,
        "zone_id": ZONE_ID,
        "zone_name": ZONE_NAME,
        "type": r.kind,
        "name": r.name,
        "content": r.content,
        "proxiable": true,
        "proxied": r.proxied,
        "ttl": r.ttl,
        "tags": [],
        "meta": { "auto_added": false, "source": "primary" },
        "created_on": time(r.created_on),
        "modified_on": time(r.modified_on),
    });
    if let Some(comment) = &r.comment {
        v["comment"] = json!(comment);
    }
    v
}

/// The body of a record create, replace or patch.
#[derive(Debug, Deserialize)]
struct RecordBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    content: Option<String>,
    proxied: Option<bool>,
    ttl: Option<f64>,
    comment: Option<Option<String>>,
}

/// Checks a record's type and content, and qualifies its name within the zone.
fn checked(kind: &str, name: &str, content: &str) -> Result<String, String> {
    match kind {
        "A" if content.parse::<std::net::Ipv4Addr>().is_err() => {
            return Err("Content for A record must be a valid IPv4 address.".to_owned());
        }
        "AAAA" if content.parse::<std::net::Ipv6Addr>().is_err() => {
            return Err("Content for AAAA record must be a valid IPv6 address.".to_owned());
        }
        "A" | "AAAA" | "CNAME" | "TXT" => {}
        other => {
            return Err(format!("record type {other} is not supported here"));
        }
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let name = if name == "@" || name.is_empty() {
        ZONE_NAME.to_owned()
    } else if name == ZONE_NAME || name.ends_with(&format!(".{ZONE_NAME}")) {
        name
    } else {
        format!("{name}.{ZONE_NAME}")
    };
    Ok(name)
}

/// A TTL as Cloudflare stores it: whole seconds, `1` for automatic.
fn ttl(requested: Option<f64>) -> u32 {
    requested.map_or(1, |t| t.clamp(1.0, 86_400.0) as u32)
}

/// The refusal for an unknown zone, if `zone_id` is not the seeded zone.
fn unknown_zone(zone_id: &str) -> Option<Response> {
    if zone_id == ZONE_ID {
        None
    } else {
        Some(provider_error(
            Provider::Cloudflare,
            StatusCode::NOT_FOUND,
            "not_found",
            "Could not route to the zone: invalid zone identifier",
        ))
    }
}

fn matches_filters(r: &Record, q: &HashMap<String, String>) -> bool {
    let comment = r.comment.as_deref();
    q.get("name")
        .is_none_or(|n| r.name == n.to_ascii_lowercase())
        && q.get("type").is_none_or(|t| r.kind == *t)
        && q.get("content").is_none_or(|c| r.content == *c)
        && q.get("proxied")
            .is_none_or(|p| p.parse::<bool>().is_ok_and(|p| r.proxied == p))
        && q.get("comment").is_none_or(|c| comment == Some(c.as_str()))
        && q.get("comment.exact")
            .is_none_or(|c| comment == Some(c.as_str()))
        && q.get("comment.contains")
            .is_none_or(|c| comment.is_some_and(|v| v.contains(c.as_str())))
        && q.get("comment.startswith")
            .is_none_or(|c| comment.is_some_and(|v| v.starts_with(c.as_str())))
        && q.get("comment.endswith")
            .is_none_or(|c| comment.is_some_and(|v| v.ends_with(c.as_str())))
        && q.get("comment.present").is_none_or(|_| comment.is_some())
        && q.get("comment.absent").is_none_or(|_| comment.is_none())
}

async fn list_records(State(sh): S, Path(zone_id): Path<String>, Query(q): Params) -> Response {
    if let Some(e) = unknown_zone(&zone_id) {
        return e;
    }
    let world = lock(&sh.cloudflare);
    let mut records: Vec<&Record> = world
        .records
        .values()
        .filter(|r| matches_filters(r, &q))
        .collect();
    records.sort_by(|a, b| (a.created_on, &a.id).cmp(&(b.created_on, &b.id)));
    let items = records.into_iter().map(record_json).collect();
    paged(&sh, items, &q, 100)
}

async fn create_record(
    State(sh): S,
    Path(zone_id): Path<String>,
    Json(body): Json<RecordBody>,
) -> Response {
    if let Some(e) = unknown_zone(&zone_id) {
        return e;
    }
    let (Some(kind), Some(name), Some(content)) = (body.kind, body.name, body.content) else {
        return invalid("type, name and content are required");
    };
    let name = match checked(&kind, &name, &content) {
        Ok(name) => name,
        Err(m) => return invalid(&m),
    };
    let mut world = lock(&sh.cloudflare);
    if world
        .records
        .values()
        .any(|r| r.name == name && r.kind == kind && r.content == content)
    {
        return provider_error(
            Provider::Cloudflare,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "An identical record already exists.",
        );
    }
    let now = Utc::now();
    let record = Record {
        id: world.hex_id(),
        kind,
        name,
        content,
        proxied: body.proxied.unwrap_or(false),
        ttl: ttl(body.ttl),
        comment: body.comment.flatten().filter(|c| !c.is_empty()),
        created_on: now,
        modified_on: now,
    };
    let out = record_json(&record);
    world.records.insert(record.id.clone(), record);
    ok(out)
}

async fn get_record(State(sh): S, Path((zone_id, id)): Path<(String, String)>) -> Response {
    if let Some(e) = unknown_zone(&zone_id) {
        return e;
    }
    match lock(&sh.cloudflare).records.get(&id) {
        Some(r) => ok(record_json(r)),
        None => not_found("Record"),
    }
}

fn update_record(
    sh: &Shared,
    zone_id: &str,
    id: &str,
    body: RecordBody,
    replace: bool,
) -> Response {
    if let Some(e) = unknown_zone(zone_id) {
        return e;
    }
    let mut world = lock(&sh.cloudflare);
    let Some(current) = world.records.get(id).cloned() else {
        return not_found("Record");
    };
    let mut next = current.clone();
    if replace {
        let (Some(kind), Some(name), Some(content)) = (body.kind, body.name, body.content) else {
            return invalid("type, name and content are required");
        };
        next.kind = kind;
        next.name = name;
        next.content = content;
        next.proxied = body.proxied.unwrap_or(false);
        next.ttl = ttl(body.ttl);
        next.comment = body.comment.flatten().filter(|c| !c.is_empty());
    } else {
        if let Some(kind) = body.kind {
            next.kind = kind;
        }
        if let Some(name) = body.name {
            next.name = name;
        }
        if let Some(content) = body.content {
            next.content = content;
        }
        if let Some(proxied) = body.proxied {
            next.proxied = proxied;
        }
        if body.ttl.is_some() {
            next.ttl = ttl(body.ttl);
        }
        if let Some(comment) = body.comment {
            next.comment = comment.filter(|c| !c.is_empty());
        }
    }
    next.name = match checked(&next.kind, &next.name, &next.content) {
        Ok(name) => name,
        Err(m) => return invalid(&m),
    };
    next.modified_on = Utc::now();
    let out = record_json(&next);
    world.records.insert(id.to_owned(), next);
    ok(out)
}

async fn put_record(
    State(sh): S,
    Path((zone_id, id)): Path<(String, String)>,
    Json(body): Json<RecordBody>,
) -> Response {
    update_record(&sh, &zone_id, &id, body, true)
}

async fn patch_record(
    State(sh): S,
    Path((zone_id, id)): Path<(String, String)>,
    Json(body): Json<RecordBody>,
) -> Response {
    update_record(&sh, &zone_id, &id, body, false)
}

async fn delete_record(State(sh): S, Path((zone_id, id)): Path<(String, String)>) -> Response {
    if let Some(e) = unknown_zone(&zone_id) {
        return e;
    }
    match lock(&sh.cloudflare).records.remove(&id) {
        Some(r) => ok(json!({ "id": r.id })),
        None => not_found("Record"),
    }
}

/// The refusal for an account the token cannot see.
fn unknown_account(account_id: &str) -> Option<Response> {
    if account_id == ACCOUNT_ID {
        None
    } else {
        Some(provider_error(
            Provider::Cloudflare,
            StatusCode::FORBIDDEN,
            "unauthorized",
            "Authentication error: the token has no access to this account",
        ))
    }
}

fn connections_json(t: &CfdTunnel) -> Vec<Value> {
    match &t.connector {
        Some((at, client)) => vec![json!({
            "id": client,
            "uuid": client,
            "client_id": client,
            "client_version": "2026.1.0",
            "colo_name": "fra08",
            "is_pending_reconnect": false,
            "opened_at": time(*at),
            "origin_ip": "198.51.100.7",
        })],
        None => vec![],
    }
}

fn tunnel_json(t: &CfdTunnel) -> Value {
    let status = match (&t.connector, t.deleted_at) {
        (_, Some(_)) => "down",
        (Some(_), None) => "healthy",
        (None, None) => "inactive",
    };
    let mut v = json!({
        "id": t.id,
        "account_tag": ACCOUNT_ID,
        "name": t.name,
        "created_at": time(t.created_at),
        "connections": connections_json(t),
        "metadata": {},
        "remote_config": t.remote_config,
        "status": status,
        "tun_type": "cfd_tunnel",
    });
    if let Some(deleted) = t.deleted_at {
        v["deleted_at"] = json!(time(deleted));
    }
    if let Some((at, _)) = &t.connector {
        v["conns_active_at"] = json!(time(*at));
    }
    v
}

async fn list_tunnels(State(sh): S, Path(account_id): Path<String>, Query(q): Params) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    let world = lock(&sh.cloudflare);
    let mut tunnels: Vec<&CfdTunnel> = world
        .tunnels
        .values()
        .filter(|t| {
            q.get("name").is_none_or(|n| t.name == *n)
                && q.get("uuid").is_none_or(|u| t.id == *u)
                && q.get("include_prefix")
                    .is_none_or(|p| t.name.starts_with(p.as_str()))
                && q.get("exclude_prefix")
                    .is_none_or(|p| !t.name.starts_with(p.as_str()))
                && q.get("is_deleted")
                    .and_then(|d| d.parse::<bool>().ok())
                    .is_none_or(|d| t.deleted_at.is_some() == d)
        })
        .collect();
    tunnels.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let items = tunnels.into_iter().map(tunnel_json).collect();
    paged(&sh, items, &q, 20)
}

/// The body of a tunnel create.
#[derive(Debug, Deserialize)]
struct CreateTunnel {
    name: String,
    config_src: Option<String>,
    tunnel_secret: Option<String>,
}

async fn create_tunnel(
    State(sh): S,
    Path(account_id): Path<String>,
    Json(body): Json<CreateTunnel>,
) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    if body.name.is_empty() {
        return invalid("tunnel name must not be empty");
    }
    let mut world = lock(&sh.cloudflare);
    if world
        .tunnels
        .values()
        .any(|t| t.name == body.name && t.deleted_at.is_none())
    {
        return provider_error(
            Provider::Cloudflare,
            StatusCode::CONFLICT,
            "conflict",
            "You already have a tunnel with this name",
        );
    }
    let id = world.uuid();
    let secret = body.tunnel_secret.unwrap_or_else(|| world.hex_id());
    let tunnel = CfdTunnel {
        id: id.clone(),
        name: body.name,
        secret,
        remote_config: body.config_src.as_deref() == Some("cloudflare"),
        config: json!({ "ingress": [] }),
        config_version: 0,
        created_at: Utc::now(),
        deleted_at: None,
        connector: None,
    };
    let out = tunnel_json(&tunnel);
    world.tunnels.insert(id, tunnel);
    ok(out)
}

async fn get_tunnel(State(sh): S, Path((account_id, id)): Path<(String, String)>) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    match lock(&sh.cloudflare).tunnels.get(&id) {
        Some(t) => ok(tunnel_json(t)),
        None => not_found("Tunnel"),
    }
}

async fn delete_tunnel(
    State(sh): S,
    Path((account_id, id)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    // Connections are always dropped with the tunnel (as with `?cascade=true`): the
    // document's 4XX schema for this operation cannot be met, so no refusal is modelled.
    let _cascade = q.get("cascade");
    let mut world = lock(&sh.cloudflare);
    let Some(tunnel) = world.tunnels.get_mut(&id) else {
        return not_found("Tunnel");
    };
    if tunnel.deleted_at.is_none() {
        tunnel.connector = None;
        tunnel.deleted_at = Some(Utc::now());
    }
    ok(tunnel_json(tunnel))
}

fn configuration_json(t: &CfdTunnel) -> Value {
    json!({
        "tunnel_id": t.id,
        "account_id": ACCOUNT_ID,
        "version": t.config_version,
        "config": t.config,
        "source": if t.remote_config { "cloudflare" } else { "local" },
        "created_at": time(t.created_at),
    })
}

async fn get_configuration(
    State(sh): S,
    Path((account_id, id)): Path<(String, String)>,
) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    match lock(&sh.cloudflare).tunnels.get(&id) {
        Some(t) if t.deleted_at.is_none() => ok(configuration_json(t)),
        _ => not_found("Tunnel"),
    }
}

/// The body of a configuration update.
#[derive(Debug, Deserialize)]
struct PutConfiguration {
    config: Value,
}

async fn put_configuration(
    State(sh): S,
    Path((account_id, id)): Path<(String, String)>,
    Json(body): Json<PutConfiguration>,
) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    let mut world = lock(&sh.cloudflare);
    let Some(t) = world
        .tunnels
        .get_mut(&id)
        .filter(|t| t.deleted_at.is_none())
    else {
        return not_found("Tunnel");
    };
    t.config = body.config;
    t.config_version += 1;
    t.remote_config = true;
    ok(configuration_json(t))
}

/// The connector token: Cloudflare's base64 JSON `{a, t, s}`, hex-encoded here.
async fn get_token(State(sh): S, Path((account_id, id)): Path<(String, String)>) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    match lock(&sh.cloudflare).tunnels.get(&id) {
        Some(t) if t.deleted_at.is_none() => {
            let doc = json!({ "a": ACCOUNT_ID, "t": t.id, "s": t.secret }).to_string();
            let token: String = doc.bytes().map(|b| format!("{b:02x}")).collect();
            ok(json!(token))
        }
        _ => not_found("Tunnel"),
    }
}

async fn get_connections(State(sh): S, Path((account_id, id)): Path<(String, String)>) -> Response {
    if let Some(e) = unknown_account(&account_id) {
        return e;
    }
    match lock(&sh.cloudflare).tunnels.get(&id) {
        Some(t) => {
            let clients: Vec<Value> = match &t.connector {
                Some((at, client)) => vec![json!({
                    "id": client,
                    "arch": "linux_amd64",
                    "version": "2026.1.0",
                    "config_version": t.config_version,
                    "run_at": time(*at),
                    "features": ["ha-origin"],
                    "conns": connections_json(t),
                })],
                None => vec![],
            };
            ok(json!(clients))
        }
        None => not_found("Tunnel"),
    }
}

async fn connect_tunnel(State(sh): S, Path(id): Path<String>) -> Response {
    let mut world = lock(&sh.cloudflare);
    let client = world.uuid();
    match world.tunnels.get_mut(&id) {
        Some(t) if t.deleted_at.is_none() => {
            t.connector = Some((Utc::now(), client));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn disconnect_tunnel(State(sh): S, Path(id): Path<String>) -> Response {
    match lock(&sh.cloudflare).tunnels.get_mut(&id) {
        Some(t) => {
            t.connector = None;
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
