//! Primary IPs and floating IPs: Hetzner's two address families, served by one set of
//! handlers that `floating` tells apart.

use super::*;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
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
    let action = state.actions.start(
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
    let action = state.actions.start(command, vec![(id, kind)], ACTION_TIME);
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
