//! Zonal instances (insert, get, list, delete, setLabels, addAccessConfig,
//! deleteAccessConfig), going `PROVISIONING` → `STAGING` → `RUNNING` over the boot delay.

use super::*;

/// The routes below `/projects/{project}/zones/{zone}`.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/instances", get(list_instances).post(insert_instance))
        .route(
            "/instances/{instance}",
            get(get_instance).delete(delete_instance),
        )
        .route("/instances/{instance}/{action}", post(instance_action))
}

fn zone_or_404(project: &str, zone: &str) -> Result<&'static str, Refusal> {
    region_of_zone(zone)
        .ok_or_else(|| Box::new(not_found(&format!("projects/{project}/zones/{zone}"))))
}

async fn list_instances(
    State(sh): S,
    Path((project, zone)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(e) = zone_or_404(&project, &zone) {
        return *e;
    }
    let world = lock(&sh.gce);
    let instances = world
        .instances
        .values()
        .filter(|i| i.project == project && i.zone == zone);
    list(
        "compute#instanceList",
        format!("projects/{project}/zones/{zone}/instances"),
        instances,
        &q,
    )
}

async fn get_instance(
    State(sh): S,
    Path((project, zone, name)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&sh.gce);
    match world.instance(&project, &zone, &name) {
        Some(i) => Json(instance_json(i)).into_response(),
        None => not_found(&format!("projects/{project}/zones/{zone}/instances/{name}")),
    }
}

/// The machine type named by a full or partial URL (`zones/z/machineTypes/e2-small`).
fn machine_type(value: &str, zone: &str) -> Result<String, String> {
    let (path, name) = value.rsplit_once("/machineTypes/").ok_or(format!(
        "Invalid value for field 'resource.machineType': '{value}'"
    ))?;
    if !path.ends_with(&format!("zones/{zone}")) {
        return Err(format!(
            "Invalid value for field 'resource.machineType': '{value}'. \
             Machine type must be in zone {zone}"
        ));
    }
    if !MACHINE_TYPES.contains(&name) {
        return Err(format!(
            "Invalid value for field 'resource.machineType': '{value}'. \
             Machine type with name '{name}' does not exist in zone '{zone}'"
        ));
    }
    Ok(name.to_owned())
}

/// The boot disk: exactly one disk marked `boot`, created from a `sourceImage`.
fn check_disks(body: &Value) -> Result<(), String> {
    let disks = body.get("disks").and_then(Value::as_array);
    let Some(disks) = disks.filter(|d| !d.is_empty()) else {
        return Err("Invalid value for field 'resource.disks': ''. \
                    At least one disk must be specified"
            .into());
    };
    let boot: Vec<&Value> = disks
        .iter()
        .filter(|d| d.get("boot").and_then(Value::as_bool) == Some(true))
        .collect();
    if boot.len() != 1 {
        return Err("Exactly one boot disk must be specified".into());
    }
    let image = boot[0]
        .pointer("/initializeParams/sourceImage")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !image.contains("/global/images/") {
        return Err(format!(
            "Invalid value for field 'resource.disks[0].initializeParams.sourceImage': '{image}'"
        ));
    }
    Ok(())
}

fn metadata_of(body: &Value) -> Result<Vec<(String, String)>, String> {
    let mut items = Vec::new();
    if let Some(list) = body.pointer("/metadata/items").and_then(Value::as_array) {
        for item in list {
            let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
            let value = item
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if key.is_empty() || key.len() > 128 {
                return Err("Invalid metadata key".into());
            }
            if value.len() > MAX_METADATA_VALUE {
                return Err(format!("Metadata value for key '{key}' exceeds 256 KiB"));
            }
            if items.iter().any(|(k, _)| k == key) {
                return Err(format!("Duplicate metadata key '{key}'"));
            }
            items.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(items)
}

async fn insert_instance(
    State(sh): S,
    Path((project, zone)): Path<(String, String)>,
    Query(q): Query<MutationQuery>,
    ProviderJson(body): ProviderJson<Value>,
) -> Response {
    let region = match zone_or_404(&project, &zone) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return invalid(format!(
            "Invalid value for field 'resource.name': '{name}'. Must be a match of regex \
             '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
        ));
    }
    let machine = match machine_type(
        body.get("machineType")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        &zone,
    ) {
        Ok(m) => m,
        Err(e) => return invalid(e),
    };
    if let Err(e) = check_disks(&body) {
        return invalid(e);
    }
    let labels = match labels_of(&body) {
        Ok(l) => l,
        Err(e) => return invalid(e),
    };
    let metadata = match metadata_of(&body) {
        Ok(m) => m,
        Err(e) => return invalid(e),
    };
    let nics = body
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if nics.len() != 1 {
        return invalid("Exactly one network interface must be specified");
    }
    let wanted_access = nics[0]
        .get("accessConfigs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if wanted_access.len() > 1 {
        return invalid("At most one access config currently supported.");
    }
    if sh.faults(Provider::Gce).quota_exhausted {
        return error(
            StatusCode::FORBIDDEN,
            "quotaExceeded",
            format!("Quota 'INSTANCES' exceeded.  Limit: 0.0 in region {region}."),
        );
    }
    let boot = sh.boot_delay(Provider::Gce);
    let mut world = lock(&sh.gce);
    if world.instance(&project, &zone, name).is_some() {
        return error(
            StatusCode::CONFLICT,
            "alreadyExists",
            format!(
                "The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists"
            ),
        );
    }
    let (seq, id) = world.next_id();
    let link = format!("{LINK_BASE}/projects/{project}/zones/{zone}/instances/{name}");
    let access = match wanted_access.first() {
        None => None,
        Some(config) => match attach_ip(&sh, &mut world, &project, region, config, &link) {
            Ok(access) => Some(access),
            Err(e) => return *e,
        },
    };
    let network_ip = Ipv4Addr::new(10, 128, (seq >> 8) as u8, seq as u8);
    let now = Instant::now();
    let instance = Instance {
        seq,
        id,
        project: project.clone(),
        zone: zone.clone(),
        name: name.to_owned(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        machine_type: machine,
        labels,
        metadata,
        network_ip,
        access,
        created: Utc::now(),
        created_at: now,
        ready_at: now + boot,
    };
    world.instances.insert(seq, instance);
    world.operation(
        &project,
        Scope::Zone(zone),
        "insert",
        link,
        id,
        q.request_id,
        boot,
    )
}

async fn delete_instance(
    State(sh): S,
    Path((project, zone, name)): Path<(String, String, String)>,
    Query(q): Query<MutationQuery>,
) -> Response {
    let span = short_span(&sh);
    let mut world = lock(&sh.gce);
    let Some(seq) = world.instance_seq(&project, &zone, &name) else {
        return not_found(&format!("projects/{project}/zones/{zone}/instances/{name}"));
    };
    let instance = world.instances.remove(&seq).expect("looked up");
    if let Some(access) = &instance.access {
        detach_ip(&sh, &mut world, &project, access);
    }
    world.operation(
        &project,
        Scope::Zone(zone),
        "delete",
        instance.link(),
        instance.id,
        q.request_id,
        span,
    )
}

async fn instance_action(
    State(sh): S,
    Path((project, zone, name, action)): Path<(String, String, String, String)>,
    Query(q): Query<MutationQuery>,
    body: Result<ProviderJson<Value>, Response>,
) -> Response {
    let body = match body {
        Ok(ProviderJson(body)) => body,
        // addAccessConfig and setLabels carry a body; deleteAccessConfig does not.
        Err(_) if action == "deleteAccessConfig" => Value::Null,
        Err(refusal) => return refusal,
    };
    let region = match zone_or_404(&project, &zone) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let span = short_span(&sh);
    let mut world = lock(&sh.gce);
    let Some(seq) = world.instance_seq(&project, &zone, &name) else {
        return not_found(&format!("projects/{project}/zones/{zone}/instances/{name}"));
    };
    let link = world.instances[&seq].link();
    let id = world.instances[&seq].id;
    let kind = match action.as_str() {
        "setLabels" => {
            let current = fingerprint(&world.instances[&seq].labels);
            let given = body.get("labelFingerprint").and_then(Value::as_str);
            if given != Some(current.as_str()) {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "conditionNotMet",
                    "Labels fingerprint either invalid or resource labels have changed",
                );
            }
            let labels = match labels_of(&body) {
                Ok(l) => l,
                Err(e) => return invalid(e),
            };
            world.instances.get_mut(&seq).expect("looked up").labels = labels;
            "setLabels"
        }
        "addAccessConfig" => {
            if q.network_interface.as_deref() != Some("nic0") {
                return invalid("Invalid value for field 'networkInterface'");
            }
            if world.instances[&seq].access.is_some() {
                return invalid("At most one access config currently supported.");
            }
            let access = match attach_ip(&sh, &mut world, &project, region, &body, &link) {
                Ok(a) => a,
                Err(e) => return *e,
            };
            world.instances.get_mut(&seq).expect("looked up").access = Some(access);
            "addAccessConfig"
        }
        "deleteAccessConfig" => {
            if q.network_interface.as_deref() != Some("nic0") {
                return invalid("Invalid value for field 'networkInterface'");
            }
            let wanted = q.access_config.unwrap_or_default();
            let current = world.instances[&seq].access.clone();
            match current {
                Some(access) if access.name == wanted => {
                    detach_ip(&sh, &mut world, &project, &access);
                    world.instances.get_mut(&seq).expect("looked up").access = None;
                }
                _ => {
                    return invalid(format!(
                        "Invalid value for field 'accessConfig': '{wanted}'. \
                         The access config does not exist on nic0"
                    ));
                }
            }
            "deleteAccessConfig"
        }
        other => {
            return not_found(&format!(
                "projects/{project}/zones/{zone}/instances/{name}/{other}"
            ));
        }
    };
    world.operation(
        &project,
        Scope::Zone(zone),
        kind,
        link,
        id,
        q.request_id,
        span,
    )
}
