//! Reserved IPs and their actions (assign, unassign): at most one per droplet, assigned
//! only within its region.

use super::*;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/reserved_ips",
            get(list_reserved_ips).post(create_reserved_ip),
        )
        .route(
            "/reserved_ips/{ip}",
            get(get_reserved_ip).delete(delete_reserved_ip),
        )
        .route("/reserved_ips/{ip}/actions", post(reserved_ip_action))
}

fn reserved_ip_json(state: &World, r: &ReservedIp) -> Value {
    let droplet = r
        .droplet
        .and_then(|id| state.droplets.get(&id))
        .map_or(Value::Null, droplet_json);
    json!({
        "ip": r.ip.to_string(), "region": region_json(r.region), "droplet": droplet,
        "locked": false, "project_id": PROJECT_ID,
    })
}

async fn list_reserved_ips(
    State(sh): S,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Query(mut q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    // Reserved IPs have no tag or name filter.
    q.tag_name = None;
    q.name = None;
    let state = lock(&sh.digitalocean);
    let items = state.reserved_ips.values().collect();
    paged(
        &sh,
        "reserved_ips",
        (items, |r| reserved_ip_json(&state, r)),
        &q,
        &base_url(&headers),
        "/reserved_ips",
    )
}

#[derive(Debug, Deserialize)]
struct CreateReservedIp {
    droplet_id: Option<i64>,
    region: Option<String>,
}

const ONE_PER_DROPLET: &str = "Droplets cannot have more than one reserved IP assigned at a time.";

async fn create_reserved_ip(
    State(sh): S,
    headers: HeaderMap,
    ProviderJson(req): ProviderJson<CreateReservedIp>,
) -> Response {
    let mut state = lock(&sh.digitalocean);
    let (region, droplet) = match (req.droplet_id, req.region.as_deref()) {
        (Some(id), _) => {
            let Some(d) = state.droplets.get(&id) else {
                return not_found();
            };
            if state.reserved_ip_of(id).is_some() {
                return unprocessable(ONE_PER_DROPLET);
            }
            (d.region, Some(id))
        }
        (None, Some(wanted)) => match REGIONS.iter().find(|r| r.0 == wanted) {
            Some(r) => (r.0, None),
            None => return unprocessable(format!("Region '{wanted}' is not available.")),
        },
        (None, None) => return unprocessable("Give either droplet_id or region."),
    };
    let Some(ip) = lock(&sh.addresses).v4() else {
        return unprocessable("No reserved IPs are available in this region.");
    };
    let reserved = ReservedIp {
        ip,
        region,
        droplet,
    };
    let base = base_url(&headers);
    let links = match droplet {
        Some(id) => {
            let action = state.action("assign_ip", (ip_id(ip), "reserved_ip"), region, ACTION_TIME);
            json!({
                "droplets": [{ "id": id, "rel": "droplet", "href": format!("{base}/droplets/{id}") }],
                "actions": [action_link(&base, action.id, "assign_ip")],
            })
        }
        None => json!({}),
    };
    let body = json!({ "reserved_ip": reserved_ip_json(&state, &reserved), "links": links });
    state.reserved_ips.insert(ip, reserved);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// DigitalOcean reports a reserved IP's actions with the address as a number.
fn ip_id(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

async fn get_reserved_ip(State(sh): S, Path(ip): Path<String>) -> Response {
    let state = lock(&sh.digitalocean);
    match ip
        .parse::<Ipv4Addr>()
        .ok()
        .and_then(|ip| state.reserved_ips.get(&ip))
    {
        Some(r) => Json(json!({ "reserved_ip": reserved_ip_json(&state, r) })).into_response(),
        None => not_found(),
    }
}

async fn delete_reserved_ip(State(sh): S, Path(ip): Path<String>) -> Response {
    let mut state = lock(&sh.digitalocean);
    match ip
        .parse::<Ipv4Addr>()
        .ok()
        .and_then(|ip| state.reserved_ips.remove(&ip))
    {
        Some(r) => {
            lock(&sh.addresses).release(r.ip.into());
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(),
    }
}

async fn reserved_ip_action(
    State(sh): S,
    Path(ip): Path<String>,
    ProviderJson(req): ProviderJson<ActionRequest>,
) -> Response {
    let mut state = lock(&sh.digitalocean);
    let Some(reserved) = ip
        .parse::<Ipv4Addr>()
        .ok()
        .and_then(|ip| state.reserved_ips.get(&ip))
        .cloned()
    else {
        return not_found();
    };
    let (kind, droplet) = match req.kind.as_str() {
        "assign" => {
            let Some(id) = req.droplet_id else {
                return unprocessable("droplet_id is required to assign a reserved IP.");
            };
            let Some(d) = state.droplets.get(&id) else {
                return not_found();
            };
            if d.region != reserved.region {
                return unprocessable(format!(
                    "The reserved IP is in {} and the droplet in {}; they must share a region.",
                    reserved.region, d.region
                ));
            }
            if state
                .reserved_ip_of(id)
                .is_some_and(|other| other != reserved.ip)
            {
                return unprocessable(ONE_PER_DROPLET);
            }
            ("assign_ip", Some(id))
        }
        "unassign" => {
            if reserved.droplet.is_none() {
                return unprocessable("The reserved IP is not assigned to a droplet.");
            }
            ("unassign_ip", None)
        }
        other => return unprocessable(format!("Action '{other}' is not valid for reserved IPs.")),
    };
    state
        .reserved_ips
        .get_mut(&reserved.ip)
        .expect("present")
        .droplet = droplet;
    let action = state.action(
        kind,
        (ip_id(reserved.ip), "reserved_ip"),
        reserved.region,
        ACTION_TIME,
    );
    let mut body = action_json(&action);
    body["project_id"] = json!(PROJECT_ID);
    (StatusCode::CREATED, Json(json!({ "action": body }))).into_response()
}
