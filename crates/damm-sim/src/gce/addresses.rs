//! Regional static external addresses (insert, get, list, delete), and attaching and
//! detaching addresses through instances' access configs.

use super::*;

/// The routes below `/projects/{project}/regions/{region}`.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/addresses", get(list_addresses).post(insert_address))
        .route(
            "/addresses/{address}",
            get(get_address).delete(delete_address),
        )
}

/// Resolves an access config's `natIP`: a reserved address of the region (now used by
/// `user`), or an ephemeral one from the pool when none is named.
pub(super) fn attach_ip(
    sh: &Shared,
    world: &mut World,
    project: &str,
    region: &str,
    config: &Value,
    user: &str,
) -> Result<AccessConfig, Refusal> {
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("External NAT")
        .to_owned();
    if let Some(kind) = config.get("type").and_then(Value::as_str)
        && kind != "ONE_TO_ONE_NAT"
    {
        return Err(Box::new(invalid(format!(
            "Invalid value for field 'resource.type': '{kind}'"
        ))));
    }
    let Some(wanted) = config.get("natIP").and_then(Value::as_str) else {
        let ip = lock(&sh.addresses).v4().ok_or_else(|| {
            Box::new(error(
                StatusCode::FORBIDDEN,
                "quotaExceeded",
                "Quota 'IN_USE_ADDRESSES' exceeded",
            ))
        })?;
        return Ok(AccessConfig {
            name,
            nat_ip: ip,
            reserved: false,
        });
    };
    let ip: Ipv4Addr = wanted.parse().map_err(|_| {
        Box::new(invalid(format!(
            "Invalid value for field 'natIP': '{wanted}'"
        )))
    })?;
    let Some(address) = world.address_by_ip_mut(project, ip) else {
        return Err(Box::new(invalid(format!(
            "Invalid value for field 'natIP': '{wanted}'. \
             Specified IP address is not reserved in this project"
        ))));
    };
    if address.region != region {
        return Err(Box::new(invalid(format!(
            "Invalid value for field 'natIP': '{wanted}'. \
             Specified IP address is not in the instance's region"
        ))));
    }
    if address.user.as_deref().is_some_and(|u| u != user) {
        return Err(Box::new(invalid(format!(
            "Invalid value for field 'natIP': '{wanted}'. \
             Specified IP address is in-use and would result in a conflict"
        ))));
    }
    address.user = Some(user.to_owned());
    Ok(AccessConfig {
        name,
        nat_ip: ip,
        reserved: true,
    })
}

/// Gives an access config's address back: a reserved one becomes `RESERVED` again, an
/// ephemeral one returns to the pool.
pub(super) fn detach_ip(sh: &Shared, world: &mut World, project: &str, access: &AccessConfig) {
    if access.reserved {
        if let Some(address) = world.address_by_ip_mut(project, access.nat_ip) {
            address.user = None;
        }
    } else {
        lock(&sh.addresses).release(access.nat_ip.into());
    }
}

pub(super) async fn list_addresses(
    State(sh): S,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    if !known_region(&region) {
        return not_found(&format!("projects/{project}/regions/{region}"));
    }
    let world = lock(&sh.gce);
    let addresses = world
        .addresses
        .values()
        .filter(|a| a.project == project && a.region == region);
    list(
        "compute#addressList",
        format!("projects/{project}/regions/{region}/addresses"),
        addresses,
        &q,
    )
}

pub(super) async fn get_address(
    State(sh): S,
    Path((project, region, name)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&sh.gce);
    match world.address(&project, &region, &name) {
        Some(a) => Json(address_json(a)).into_response(),
        None => not_found(&format!(
            "projects/{project}/regions/{region}/addresses/{name}"
        )),
    }
}

pub(super) async fn insert_address(
    State(sh): S,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<MutationQuery>,
    ProviderJson(body): ProviderJson<Value>,
) -> Response {
    if !known_region(&region) {
        return not_found(&format!("projects/{project}/regions/{region}"));
    }
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return invalid(format!("Invalid value for field 'resource.name': '{name}'"));
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    if text("addressType").is_some_and(|t| t != "EXTERNAL") {
        return invalid("Only EXTERNAL addresses are simulated");
    }
    if text("ipVersion").is_some_and(|v| v != "IPV4") {
        return invalid("Only IPV4 addresses are simulated");
    }
    if text("address").is_some() {
        return invalid("Reserving a chosen address is not simulated");
    }
    let network_tier = text("networkTier").unwrap_or("PREMIUM").to_owned();
    let labels = match labels_of(&body) {
        Ok(l) => l,
        Err(e) => return invalid(e),
    };
    let span = short_span(&sh);
    let mut world = lock(&sh.gce);
    if world.address(&project, &region, name).is_some() {
        return error(
            StatusCode::CONFLICT,
            "alreadyExists",
            format!(
                "The resource 'projects/{project}/regions/{region}/addresses/{name}' already exists"
            ),
        );
    }
    let Some(ip) = lock(&sh.addresses).v4() else {
        return error(
            StatusCode::FORBIDDEN,
            "quotaExceeded",
            "Quota 'STATIC_ADDRESSES' exceeded",
        );
    };
    let (seq, id) = world.next_id();
    let address = Address {
        seq,
        id,
        project: project.clone(),
        region: region.clone(),
        name: name.to_owned(),
        description: text("description").unwrap_or_default().to_owned(),
        ip,
        labels,
        network_tier,
        user: None,
        created: Utc::now(),
    };
    let link = address.link();
    world.addresses.insert(seq, address);
    world.operation(
        &project,
        Scope::Region(region),
        "insert",
        link,
        id,
        q.request_id,
        span,
    )
}

pub(super) async fn delete_address(
    State(sh): S,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<MutationQuery>,
) -> Response {
    let span = short_span(&sh);
    let mut world = lock(&sh.gce);
    let Some(address) = world.address(&project, &region, &name).cloned() else {
        return not_found(&format!(
            "projects/{project}/regions/{region}/addresses/{name}"
        ));
    };
    if let Some(user) = &address.user {
        return error(
            StatusCode::BAD_REQUEST,
            "resourceInUseByAnotherResource",
            format!(
                "The address resource '{}' is already being used by '{user}'",
                address.link()
            ),
        );
    }
    world.addresses.remove(&address.seq);
    lock(&sh.addresses).release(address.ip.into());
    world.operation(
        &project,
        Scope::Region(region),
        "delete",
        address.link(),
        address.id,
        q.request_id,
        span,
    )
}
