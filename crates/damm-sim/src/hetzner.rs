//! Hetzner Cloud API v1: servers, primary IPs, floating IPs and actions, in Hetzner's
//! JSON shapes (checked against the published document when validation is on).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use crate::world::{Bucket, last_page, page_of};

type S = State<Arc<Shared>>;

/// Location name, city, country, network zone, latitude, longitude.
const LOCATIONS: &[(&str, &str, &str, &str, f64, f64)] = &[
    (
        "fsn1",
        "Falkenstein",
        "DE",
        "eu-central",
        50.47612,
        12.370071,
    ),
    (
        "nbg1",
        "Nuremberg",
        "DE",
        "eu-central",
        49.452102,
        11.076665,
    ),
    ("hel1", "Helsinki", "FI", "eu-central", 60.169855, 24.938379),
    ("ash", "Ashburn, VA", "US", "us-east", 39.045821, -77.487073),
    (
        "hil",
        "Hillsboro, OR",
        "US",
        "us-west",
        45.54222,
        -122.951924,
    ),
    (
        "sin",
        "Singapore",
        "SG",
        "ap-southeast",
        1.283333,
        103.833333,
    ),
];

/// Server type name, cores, memory GB, disk GB, monthly net price in EUR.
const SERVER_TYPES: &[(&str, i64, f64, f64, f64)] = &[
    ("cpx11", 2, 2.0, 40.0, 4.35),
    ("cx22", 2, 4.0, 40.0, 3.79),
    ("cpx21", 3, 4.0, 80.0, 7.55),
    ("cx32", 4, 8.0, 80.0, 6.80),
];

/// Image name, id, OS flavour, OS version.
const IMAGES: &[(&str, i64, &str, &str)] = &[
    ("debian-12", 114_690_387, "debian", "12"),
    ("ubuntu-24.04", 161_547_269, "ubuntu", "24.04"),
];

/// How long actions other than a server create take.
const ACTION_TIME: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
struct Server {
    id: i64,
    name: String,
    server_type: &'static str,
    location: &'static str,
    image: &'static str,
    labels: BTreeMap<String, String>,
    created: DateTime<Utc>,
    ready_at: Instant,
    powered: bool,
    ipv4: Option<(i64, IpAddr)>,
    ipv6: Option<(i64, IpAddr)>,
    user_data: Option<String>,
}

#[derive(Debug, Clone)]
struct Address {
    id: i64,
    name: String,
    floating: bool,
    ip: IpAddr,
    location: &'static str,
    server: Option<i64>,
    auto_delete: bool,
    labels: BTreeMap<String, String>,
    created: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Action {
    id: i64,
    command: &'static str,
    started: DateTime<Utc>,
    done_at: Instant,
    resources: Vec<(i64, &'static str)>,
}

/// Hetzner's world: servers, addresses, actions.
#[derive(Debug, Default)]
pub(crate) struct World {
    next_id: i64,
    servers: BTreeMap<i64, Server>,
    addresses: BTreeMap<i64, Address>,
    actions: BTreeMap<i64, Action>,
}

impl World {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        1_000 + self.next_id
    }

    fn action(
        &mut self,
        command: &'static str,
        resources: Vec<(i64, &'static str)>,
        takes: Duration,
    ) -> Action {
        let action = Action {
            id: self.id(),
            command,
            started: Utc::now(),
            done_at: Instant::now() + takes,
            resources,
        };
        self.actions.insert(action.id, action.clone());
        action
    }
}

/// Hetzner's wiring: 3600 requests per hour, `RateLimit-*` headers.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(3600, Duration::from_secs(3600))],
    admin: None,
    rate_headers: Some(["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]),
};

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/servers", get(list_servers).post(create_server))
        .route(
            "/servers/{id}",
            get(get_server).put(update_server).delete(delete_server),
        )
        .route("/servers/{id}/actions/{command}", post(server_action))
        .route("/actions/{id}", get(get_action))
        .route(
            "/primary_ips",
            get(list_primary_ips).post(create_primary_ip),
        )
        .route(
            "/primary_ips/{id}",
            get(get_primary_ip)
                .put(update_primary_ip)
                .delete(delete_address),
        )
        .route(
            "/primary_ips/{id}/actions/{command}",
            post(primary_ip_action),
        )
        .route(
            "/floating_ips",
            get(list_floating_ips).post(create_floating_ip),
        )
        .route(
            "/floating_ips/{id}",
            get(get_floating_ip)
                .put(update_floating_ip)
                .delete(delete_address),
        )
        .route(
            "/floating_ips/{id}/actions/{command}",
            post(floating_ip_action),
        )
}

/// Hetzner's error body.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "details": {} } })
}

fn error(status: StatusCode, code: &str, message: impl AsRef<str>) -> Response {
    provider_error(Provider::Hetzner, status, code, message.as_ref())
}

fn not_found(what: &str, id: i64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{what} with ID '{id}' not found"),
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn location_json(name: &str) -> Value {
    let (i, &(name, city, country, zone, lat, lon)) = LOCATIONS
        .iter()
        .enumerate()
        .find(|(_, l)| l.0 == name)
        .expect("known location");
    json!({
        "id": i as i64 + 1, "name": name, "description": format!("{city} DC Park 1"),
        "country": country, "city": city, "latitude": lat, "longitude": lon, "network_zone": zone,
    })
}

fn price(eur: f64) -> Value {
    json!({ "net": format!("{eur:.10}"), "gross": format!("{:.10}", eur * 1.19) })
}

fn server_type_json(name: &str) -> Value {
    let (i, &(name, cores, memory, disk, monthly)) = SERVER_TYPES
        .iter()
        .enumerate()
        .find(|(_, t)| t.0 == name)
        .expect("known server type");
    let prices: Vec<Value> = LOCATIONS
        .iter()
        .map(|l| {
            json!({
                "location": l.0, "price_hourly": price(monthly / 730.0), "price_monthly": price(monthly),
                "included_traffic": 21_990_232_555_520i64, "price_per_tb_traffic": price(1.0),
            })
        })
        .collect();
    let locations: Vec<Value> = LOCATIONS
        .iter()
        .enumerate()
        .map(|(i, l)| json!({ "id": i as i64 + 1, "name": l.0, "deprecation": null }))
        .collect();
    json!({
        "id": i as i64 + 1, "name": name, "description": name.to_uppercase(), "cores": cores,
        "memory": memory, "disk": disk, "deprecated": false, "prices": prices, "storage_type": "local",
        "cpu_type": "shared", "architecture": "x86", "locations": locations,
    })
}

fn datacenter_json(location: &str) -> Value {
    let (i, _) = LOCATIONS
        .iter()
        .enumerate()
        .find(|(_, l)| l.0 == location)
        .expect("known location");
    let types: Vec<i64> = (1..=SERVER_TYPES.len() as i64).collect();
    json!({
        "id": i as i64 + 1, "name": format!("{location}-dc1"), "description": format!("{location} virtual DC 1"),
        "location": location_json(location),
        "server_types": { "supported": types, "available": types, "available_for_migration": types },
    })
}

fn image_json(name: &str) -> Value {
    let &(name, id, flavor, version) = IMAGES.iter().find(|i| i.0 == name).expect("known image");
    json!({
        "id": id, "type": "system", "status": "available", "name": name, "description": name,
        "image_size": null, "disk_size": 5, "created": "2023-06-13T06:00:02Z", "created_from": null,
        "bound_to": null, "os_flavor": flavor, "os_version": version, "rapid_deploy": true,
        "protection": { "delete": false }, "deprecated": null, "deleted": null, "labels": {},
        "architecture": "x86",
    })
}

fn action_json(a: &Action) -> Value {
    let done = Instant::now() >= a.done_at;
    let finished = done.then(|| {
        time(
            a.started
                + chrono::Duration::from_std(a.done_at.saturating_duration_since(Instant::now()))
                    .unwrap_or_default(),
        )
    });
    json!({
        "id": a.id, "command": a.command, "status": if done { "success" } else { "running" },
        "progress": if done { 100 } else { 0 }, "started": time(a.started), "finished": finished,
        "resources": a.resources.iter().map(|(id, kind)| json!({ "id": id, "type": kind })).collect::<Vec<_>>(),
        "error": null,
    })
}

fn server_json(state: &World, s: &Server) -> Value {
    let status = if Instant::now() < s.ready_at {
        "initializing"
    } else if s.powered {
        "running"
    } else {
        "off"
    };
    let floating: Vec<i64> = state
        .addresses
        .values()
        .filter(|a| a.floating && a.server == Some(s.id))
        .map(|a| a.id)
        .collect();
    let ipv4 = s.ipv4.map(|(id, ip)| json!({ "id": id, "ip": ip.to_string(), "blocked": false, "dns_ptr": format!("static.{ip}.clients.your-server.de") }));
    let ipv6 = s.ipv6.map(
        |(id, ip)| json!({ "id": id, "ip": format!("{ip}/64"), "blocked": false, "dns_ptr": [] }),
    );
    json!({
        "id": s.id, "name": s.name, "status": status, "created": time(s.created),
        "public_net": { "ipv4": ipv4, "ipv6": ipv6, "floating_ips": floating, "firewalls": [] },
        "private_net": [], "server_type": server_type_json(s.server_type),
        "datacenter": datacenter_json(s.location), "location": location_json(s.location),
        "image": image_json(s.image), "iso": null, "rescue_enabled": false, "locked": false,
        "backup_window": null, "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": 21_990_232_555_520i64, "protection": { "delete": false, "rebuild": false },
        "labels": s.labels, "volumes": [], "load_balancers": [], "primary_disk_size": 40,
        "placement_group": null,
    })
}

fn address_json(a: &Address) -> Value {
    let v4 = a.ip.is_ipv4();
    let ip = if v4 {
        a.ip.to_string()
    } else {
        format!("{}/64", a.ip)
    };
    let kind = if v4 { "ipv4" } else { "ipv6" };
    if a.floating {
        json!({
            "id": a.id, "name": a.name, "description": null, "ip": ip, "type": kind, "server": a.server,
            "dns_ptr": [], "home_location": location_json(a.location), "blocked": false,
            "protection": { "delete": false }, "labels": a.labels, "created": time(a.created),
        })
    } else {
        json!({
            "id": a.id, "name": a.name, "ip": ip, "type": kind, "assignee_id": a.server,
            "assignee_type": "server", "auto_delete": a.auto_delete, "blocked": false, "dns_ptr": [],
            "datacenter": datacenter_json(a.location), "location": location_json(a.location),
            "protection": { "delete": false }, "labels": a.labels, "created": time(a.created),
        })
    }
}

/// A Hetzner label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated (all must hold).
fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(term)
            }
        })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    label_selector: Option<String>,
    name: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

/// One page of `items` with Hetzner's page metadata; only the page's items are rendered.
fn paged<T>(
    sh: &Shared,
    key: &str,
    items: Vec<T>,
    q: &ListQuery,
    render: impl Fn(T) -> Value,
) -> Response {
    let per_page = sh.page_size(q.per_page.unwrap_or(25).clamp(1, 50));
    let page = q.page.unwrap_or(1).max(1);
    let total = items.len();
    let last = last_page(total, per_page);
    let slice = if sh.page_missing(Provider::Hetzner, page > 1) {
        Vec::new()
    } else {
        page_of(items, page, per_page).map(render).collect()
    };
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), Value::Array(slice));
    body.insert(
        "meta".to_owned(),
        json!({ "pagination": {
            "page": page, "per_page": per_page, "total_entries": total, "last_page": last,
            "previous_page": (page > 1).then(|| page - 1), "next_page": (page < last).then(|| page + 1),
        }}),
    );
    Json(Value::Object(body)).into_response()
}

async fn list_servers(State(sh): S, Query(q): Query<ListQuery>) -> Response {
    let state = lock(&sh.hetzner);
    let items = state
        .servers
        .values()
        .filter(|s| {
            q.label_selector
                .as_deref()
                .is_none_or(|sel| selects(sel, &s.labels))
        })
        .filter(|s| q.name.as_deref().is_none_or(|n| n == s.name))
        .collect();
    paged(&sh, "servers", items, &q, |s| server_json(&state, s))
}

#[derive(Debug, Deserialize)]
struct PublicNet {
    enable_ipv4: Option<bool>,
    enable_ipv6: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CreateServer {
    name: String,
    server_type: String,
    image: String,
    location: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    user_data: Option<String>,
    start_after_create: Option<bool>,
    public_net: Option<PublicNet>,
}

async fn create_server(
    State(sh): S,
    body: Result<Json<CreateServer>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_input", e.body_text()),
    };
    let Some(server_type) = SERVER_TYPES
        .iter()
        .find(|t| t.0 == req.server_type)
        .map(|t| t.0)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("server type {} not found", req.server_type),
        );
    };
    let Some(image) = IMAGES.iter().find(|i| i.0 == req.image).map(|i| i.0) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("image {} not found", req.image),
        );
    };
    let location = req.location.as_deref().unwrap_or("fsn1");
    let Some(location) = LOCATIONS.iter().find(|l| l.0 == location).map(|l| l.0) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("location {location} not found"),
        );
    };
    if req.user_data.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "user_data is longer than 32 KiB",
        );
    }
    let boot = sh.boot_delay(Provider::Hetzner);
    let mut state = lock(&sh.hetzner);
    if state.servers.values().any(|s| s.name == req.name) {
        return error(
            StatusCode::CONFLICT,
            "uniqueness_error",
            "server name is already used",
        );
    }
    let (enable_v4, enable_v6) = req
        .public_net
        .as_ref()
        .map(|p| (p.enable_ipv4.unwrap_or(true), p.enable_ipv6.unwrap_or(true)))
        .unwrap_or((true, true));
    let id = state.id();
    let now = Utc::now();
    let primary = |state: &mut World, ip: Option<IpAddr>| -> Option<(i64, IpAddr)> {
        let ip = ip?;
        let pid = state.id();
        state.addresses.insert(
            pid,
            Address {
                id: pid,
                name: format!("primary_ip-{pid}"),
                floating: false,
                ip,
                location,
                server: Some(id),
                auto_delete: true,
                labels: BTreeMap::new(),
                created: now,
            },
        );
        Some((pid, ip))
    };
    let (v4, v6) = {
        let mut pool = lock(&sh.addresses);
        (
            enable_v4.then(|| pool.v4()).flatten().map(IpAddr::V4),
            enable_v6.then(|| IpAddr::V6(pool.v6_network())),
        )
    };
    if enable_v4 && v4.is_none() {
        return error(
            StatusCode::CONFLICT,
            "resource_unavailable",
            "no free IPv4 addresses",
        );
    }
    let ipv4 = primary(&mut state, v4);
    let ipv6 = primary(&mut state, v6);
    let server = Server {
        id,
        name: req.name,
        server_type,
        location,
        image,
        labels: req.labels,
        created: now,
        ready_at: Instant::now() + boot,
        powered: req.start_after_create.unwrap_or(true),
        ipv4,
        ipv6,
        user_data: req.user_data,
    };
    let action = state.action("create_server", vec![(id, "server")], boot);
    let start = state.action("start_server", vec![(id, "server")], boot);
    let body = json!({
        "server": server_json(&state, &server), "action": action_json(&action),
        "next_actions": [action_json(&start)], "root_password": null,
    });
    state.servers.insert(id, server);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn get_server(State(sh): S, Path(id): Path<i64>) -> Response {
    let state = lock(&sh.hetzner);
    match state.servers.get(&id) {
        Some(s) => Json(json!({ "server": server_json(&state, s) })).into_response(),
        None => not_found("server", id),
    }
}

#[derive(Debug, Deserialize)]
struct Update {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

async fn update_server(State(sh): S, Path(id): Path<i64>, Json(req): Json<Update>) -> Response {
    let mut state = lock(&sh.hetzner);
    let Some(server) = state.servers.get_mut(&id) else {
        return not_found("server", id);
    };
    if let Some(labels) = req.labels {
        server.labels = labels;
    }
    if let Some(name) = req.name {
        server.name = name;
    }
    let server = server.clone();
    Json(json!({ "server": server_json(&state, &server) })).into_response()
}

async fn delete_server(State(sh): S, Path(id): Path<i64>) -> Response {
    let mut state = lock(&sh.hetzner);
    let Some(server) = state.servers.remove(&id) else {
        return not_found("server", id);
    };
    let mut pool = lock(&sh.addresses);
    let owned: Vec<i64> = state
        .addresses
        .values()
        .filter(|a| a.server == Some(id))
        .map(|a| a.id)
        .collect();
    for aid in owned {
        let a = state.addresses.get_mut(&aid).expect("listed");
        if !a.floating && a.auto_delete {
            pool.release(a.ip);
            state.addresses.remove(&aid);
        } else {
            a.server = None;
        }
    }
    let _ = server.user_data;
    let action = state.action("delete_server", vec![(id, "server")], ACTION_TIME);
    Json(json!({ "action": action_json(&action) })).into_response()
}

async fn server_action(State(sh): S, Path((id, command)): Path<(i64, String)>) -> Response {
    let mut state = lock(&sh.hetzner);
    let Some(server) = state.servers.get_mut(&id) else {
        return not_found("server", id);
    };
    let command: &'static str = match command.as_str() {
        "poweroff" => {
            server.powered = false;
            "stop_server"
        }
        "shutdown" => {
            server.powered = false;
            "shutdown_server"
        }
        "poweron" => {
            server.powered = true;
            "start_server"
        }
        "reboot" => "reboot_server",
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("action {other} is not simulated"),
            );
        }
    };
    let action = state.action(command, vec![(id, "server")], ACTION_TIME);
    (
        StatusCode::CREATED,
        Json(json!({ "action": action_json(&action) })),
    )
        .into_response()
}

async fn get_action(State(sh): S, Path(id): Path<i64>) -> Response {
    let state = lock(&sh.hetzner);
    match state.actions.get(&id) {
        Some(a) => Json(json!({ "action": action_json(a) })).into_response(),
        None => not_found("action", id),
    }
}

/// `floating_ip` or `primary_ip`: the resource's name in bodies and errors.
fn address_kind(floating: bool) -> &'static str {
    if floating {
        "floating_ip"
    } else {
        "primary_ip"
    }
}

/// The address `id` of that kind, or Hetzner's 404 for it.
fn address_mut(world: &mut World, floating: bool, id: i64) -> Result<&mut Address, Box<Response>> {
    world
        .addresses
        .get_mut(&id)
        .filter(|a| a.floating == floating)
        .ok_or_else(|| Box::new(not_found(address_kind(floating), id)))
}

fn list_addresses(sh: &Shared, floating: bool, q: &ListQuery) -> Response {
    let state = lock(&sh.hetzner);
    let items = state
        .addresses
        .values()
        .filter(|a| a.floating == floating)
        .filter(|a| {
            q.label_selector
                .as_deref()
                .is_none_or(|sel| selects(sel, &a.labels))
        })
        .filter(|a| q.name.as_deref().is_none_or(|n| n == a.name))
        .collect();
    paged(
        sh,
        if floating {
            "floating_ips"
        } else {
            "primary_ips"
        },
        items,
        q,
        address_json,
    )
}

async fn list_primary_ips(State(sh): S, Query(q): Query<ListQuery>) -> Response {
    list_addresses(&sh, false, &q)
}

async fn list_floating_ips(State(sh): S, Query(q): Query<ListQuery>) -> Response {
    list_addresses(&sh, true, &q)
}

#[derive(Debug, Deserialize)]
struct CreateAddress {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    assignee_id: Option<i64>,
    server: Option<i64>,
    location: Option<String>,
    datacenter: Option<String>,
    home_location: Option<String>,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn create_address(sh: &Shared, floating: bool, req: CreateAddress) -> Response {
    let mut state = lock(&sh.hetzner);
    let target = if floating {
        req.server
    } else {
        req.assignee_id
    };
    let server_location = match target {
        Some(sid) => match state.servers.get(&sid) {
            Some(s) => Some(s.location),
            None => return not_found("server", sid),
        },
        None => None,
    };
    let wanted = req.home_location.or(req.location).or(req
        .datacenter
        .map(|d| d.split('-').next().unwrap_or_default().to_owned()));
    let location = match (server_location, wanted.as_deref()) {
        (Some(l), _) => l,
        (None, Some(w)) => match LOCATIONS.iter().find(|l| l.0 == w) {
            Some(l) => l.0,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    format!("location {w} not found"),
                );
            }
        },
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "give a location or an assignee",
            );
        }
    };
    let ip = match req.kind.as_str() {
        "ipv4" => match lock(&sh.addresses).v4() {
            Some(ip) => IpAddr::V4(ip),
            None => {
                return error(
                    StatusCode::CONFLICT,
                    "resource_unavailable",
                    "no free IPv4 addresses",
                );
            }
        },
        "ipv6" => IpAddr::V6(lock(&sh.addresses).v6_network()),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                format!("type {other} is invalid"),
            );
        }
    };
    let id = state.id();
    let name = req
        .name
        .unwrap_or_else(|| format!("{}-{id}", address_kind(floating)));
    let kind = if floating {
        "floating_ips"
    } else {
        "primary_ips"
    };
    if state
        .addresses
        .values()
        .any(|a| a.floating == floating && a.name == name)
    {
        return error(
            StatusCode::CONFLICT,
            "uniqueness_error",
            "name is already used",
        );
    }
    if !floating && let Some(sid) = target {
        let v4 = ip.is_ipv4();
        let server = state.servers.get(&sid).expect("checked");
        if (v4 && server.ipv4.is_some()) || (!v4 && server.ipv6.is_some()) {
            return error(
                StatusCode::CONFLICT,
                "primary_ip_already_assigned",
                "the server already has a primary IP of this type",
            );
        }
    }
    let address = Address {
        id,
        name,
        floating,
        ip,
        location,
        server: target,
        auto_delete: req.auto_delete,
        labels: req.labels,
        created: Utc::now(),
    };
    if !floating && let Some(sid) = target {
        let server = state.servers.get_mut(&sid).expect("checked");
        if ip.is_ipv4() {
            server.ipv4 = Some((id, ip))
        } else {
            server.ipv6 = Some((id, ip))
        }
    }
    let action = state.action(
        if floating {
            "create_floating_ip"
        } else {
            "create_primary_ip"
        },
        vec![(id, address_kind(floating))],
        ACTION_TIME,
    );
    let key = address_kind(floating);
    let body = json!({ key: address_json(&address), "action": action_json(&action) });
    let _ = kind;
    state.addresses.insert(id, address);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn create_primary_ip(State(sh): S, Json(req): Json<CreateAddress>) -> Response {
    create_address(&sh, false, req)
}

async fn create_floating_ip(State(sh): S, Json(req): Json<CreateAddress>) -> Response {
    create_address(&sh, true, req)
}

fn get_address(sh: &Shared, floating: bool, id: i64) -> Response {
    let state = lock(&sh.hetzner);
    match state.addresses.get(&id).filter(|a| a.floating == floating) {
        Some(a) if floating => Json(json!({ "floating_ip": address_json(a) })).into_response(),
        Some(a) => Json(json!({ "primary_ip": address_json(a) })).into_response(),
        None => not_found(address_kind(floating), id),
    }
}

async fn get_primary_ip(State(sh): S, Path(id): Path<i64>) -> Response {
    get_address(&sh, false, id)
}

async fn get_floating_ip(State(sh): S, Path(id): Path<i64>) -> Response {
    get_address(&sh, true, id)
}

fn update_address(sh: &Shared, floating: bool, id: i64, req: Update) -> Response {
    {
        let mut state = lock(&sh.hetzner);
        let a = match address_mut(&mut state, floating, id) {
            Ok(a) => a,
            Err(response) => return *response,
        };
        if let Some(labels) = req.labels {
            a.labels = labels;
        }
        if let Some(name) = req.name {
            a.name = name;
        }
    }
    get_address(sh, floating, id)
}

async fn update_primary_ip(State(sh): S, Path(id): Path<i64>, Json(req): Json<Update>) -> Response {
    update_address(&sh, false, id, req)
}

async fn update_floating_ip(
    State(sh): S,
    Path(id): Path<i64>,
    Json(req): Json<Update>,
) -> Response {
    update_address(&sh, true, id, req)
}

async fn delete_address(State(sh): S, uri: axum::http::Uri, Path(id): Path<i64>) -> Response {
    let floating = uri.path().contains("floating_ips");
    let mut state = lock(&sh.hetzner);
    let a = match address_mut(&mut state, floating, id) {
        Ok(a) => a.clone(),
        Err(response) => return *response,
    };
    if !floating && a.server.is_some() {
        return error(
            StatusCode::CONFLICT,
            "must_be_unassigned",
            "the primary IP must be unassigned before it can be deleted",
        );
    }
    state.addresses.remove(&id);
    lock(&sh.addresses).release(a.ip);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct Assign {
    assignee_id: Option<i64>,
    server: Option<i64>,
}

fn address_action(
    sh: &Shared,
    floating: bool,
    id: i64,
    command: &str,
    body: Option<Assign>,
) -> Response {
    let mut state = lock(&sh.hetzner);
    let a = match address_mut(&mut state, floating, id) {
        Ok(a) => a.clone(),
        Err(response) => return *response,
    };
    let kind = address_kind(floating);
    let (command, server): (&'static str, Option<i64>) = match command {
        "assign" => {
            let Some(sid) = body.and_then(|b| if floating { b.server } else { b.assignee_id })
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    "give the server to assign to",
                );
            };
            let Some(server) = state.servers.get(&sid) else {
                return not_found("server", sid);
            };
            if server.location != a.location {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    "server and address are in different locations",
                );
            }
            if !floating
                && ((a.ip.is_ipv4() && server.ipv4.is_some())
                    || (a.ip.is_ipv6() && server.ipv6.is_some()))
            {
                return error(
                    StatusCode::CONFLICT,
                    "primary_ip_already_assigned",
                    "the server already has a primary IP of this type",
                );
            }
            (
                if floating {
                    "assign_floating_ip"
                } else {
                    "assign_primary_ip"
                },
                Some(sid),
            )
        }
        "unassign" => (
            if floating {
                "unassign_floating_ip"
            } else {
                "unassign_primary_ip"
            },
            None,
        ),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("action {other} is not simulated"),
            );
        }
    };
    if !floating {
        for s in state.servers.values_mut() {
            if s.ipv4.is_some_and(|(pid, _)| pid == id) {
                s.ipv4 = None;
            }
            if s.ipv6.is_some_and(|(pid, _)| pid == id) {
                s.ipv6 = None;
            }
        }
        if let Some(sid) = server {
            let s = state.servers.get_mut(&sid).expect("checked");
            if a.ip.is_ipv4() {
                s.ipv4 = Some((id, a.ip))
            } else {
                s.ipv6 = Some((id, a.ip))
            }
        }
    }
    state.addresses.get_mut(&id).expect("present").server = server;
    let action = state.action(command, vec![(id, kind)], ACTION_TIME);
    (
        StatusCode::CREATED,
        Json(json!({ "action": action_json(&action) })),
    )
        .into_response()
}

async fn primary_ip_action(
    State(sh): S,
    Path((id, command)): Path<(i64, String)>,
    body: Option<Json<Assign>>,
) -> Response {
    address_action(&sh, false, id, &command, body.map(|b| b.0))
}

async fn floating_ip_action(
    State(sh): S,
    Path((id, command)): Path<(i64, String)>,
    body: Option<Json<Assign>>,
) -> Response {
    address_action(&sh, true, id, &command, body.map(|b| b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels: BTreeMap<String, String> = [
            ("damm-fleet".to_owned(), "prod".to_owned()),
            ("damm-role".to_owned(), "ingress".to_owned()),
        ]
        .into();
        assert!(selects("damm-fleet=prod", &labels));
        assert!(selects("damm-fleet==prod,damm-role", &labels));
        assert!(!selects("damm-fleet=test", &labels));
        assert!(selects("damm-fleet!=test,!damm-draining", &labels));
        assert!(!selects("damm-role,!damm-fleet", &labels));
    }
}
