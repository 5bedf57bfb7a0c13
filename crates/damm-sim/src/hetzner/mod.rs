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
use crate::server::{Api, ProviderJson, Shared, lock, provider_error};
use crate::world::{self, ActionLog, Bucket};

mod addresses;

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

/// What a Hetzner action acts on: resources, by id and type.
type Resources = Vec<(i64, &'static str)>;

/// Hetzner's world: servers, addresses, actions.
#[derive(Debug, Default)]
pub(crate) struct World {
    servers: BTreeMap<i64, Server>,
    addresses: BTreeMap<i64, Address>,
    /// The actions, and the ids of everything.
    actions: ActionLog<Resources, 1_000>,
}

impl World {
    fn id(&mut self) -> i64 {
        self.actions.next_id()
    }
}

/// Hetzner's wiring: 3600 requests per hour, `RateLimit-*` headers.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(3600, Duration::from_secs(3600))],
    admin: None,
    rate_headers: Some(["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]),
    reject_body: Some(|rejection| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            rejection.body_text(),
        )
    }),
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
        .merge(addresses::routes())
}

/// Hetzner's error body.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "details": {} } })
}

fn error(status: StatusCode, code: &str, message: impl AsRef<str>) -> Response {
    provider_error(Provider::Hetzner, status, code, message.as_ref())
}

/// Hetzner's answer to a create past the project's server limit
/// ([`Faults::quota_exhausted`](crate::Faults::quota_exhausted)).
fn server_limit_exceeded() -> Response {
    let body = json!({ "error": {
        "code": "resource_limit_exceeded",
        "message": "server limit exceeded",
        "details": { "limits": [{ "name": "server_limit" }] },
    }});
    (StatusCode::FORBIDDEN, Json(body)).into_response()
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

fn action_json(a: &world::Action<Resources>) -> Value {
    let done = Instant::now() >= a.done_at;
    let finished = done.then(|| {
        time(
            a.started
                + chrono::Duration::from_std(a.done_at.saturating_duration_since(Instant::now()))
                    .unwrap_or_default(),
        )
    });
    json!({
        "id": a.id, "command": a.kind, "status": if done { "success" } else { "running" },
        "progress": if done { 100 } else { 0 }, "started": time(a.started), "finished": finished,
        "resources": a.target.iter().map(|(id, kind)| json!({ "id": id, "type": kind })).collect::<Vec<_>>(),
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
    let p = sh.numbered_page(Provider::Hetzner, items, (q.page, q.per_page), (25, 50));
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), p.items.into_iter().map(render).collect());
    body.insert(
        "meta".to_owned(),
        json!({ "pagination": {
            "page": p.page, "per_page": p.per_page, "total_entries": p.total, "last_page": p.last,
            "previous_page": (p.page > 1).then(|| p.page - 1),
            "next_page": (p.page < p.last).then(|| p.page + 1),
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

async fn create_server(State(sh): S, ProviderJson(req): ProviderJson<CreateServer>) -> Response {
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
    if sh.faults(Provider::Hetzner).quota_exhausted {
        return server_limit_exceeded();
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
    let action = state
        .actions
        .start("create_server", vec![(id, "server")], boot);
    let start = state
        .actions
        .start("start_server", vec![(id, "server")], boot);
    let body = json!({
        "server": server_json(&state, &server), "action": action_json(&action),
        "next_actions": [action_json(&start)], "root_password": null,
    });
    if server.powered {
        sh.booted(crate::boot::Machine {
            provider: Provider::Hetzner,
            id: id.to_string(),
            name: server.name.clone(),
            ipv4: match server.ipv4 {
                Some((_, IpAddr::V4(ip))) => Some(ip),
                _ => None,
            },
            user_data: server.user_data.clone(),
        });
    }
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
    let Some(_) = state.servers.remove(&id) else {
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
    sh.halted(Provider::Hetzner, id);
    let action = state
        .actions
        .start("delete_server", vec![(id, "server")], ACTION_TIME);
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
    let action = state
        .actions
        .start(command, vec![(id, "server")], ACTION_TIME);
    (
        StatusCode::CREATED,
        Json(json!({ "action": action_json(&action) })),
    )
        .into_response()
}

async fn get_action(State(sh): S, Path(id): Path<i64>) -> Response {
    let state = lock(&sh.hetzner);
    match state.actions.get(id) {
        Some(a) => Json(json!({ "action": action_json(a) })).into_response(),
        None => not_found("action", id),
    }
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
