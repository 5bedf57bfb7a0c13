//! Zonal and regional operations (get, wait): every mutation answers with one, moving
//! `PENDING` → `RUNNING` → `DONE`.

use super::*;

/// The operation `name` in `scope`, as JSON, and how long until it is done.
pub(super) fn find_operation(
    sh: &Shared,
    project: &str,
    scope: &Scope,
    name: &str,
) -> Option<(Value, Duration)> {
    let world = lock(&sh.gce);
    world
        .operations
        .get(name)
        .filter(|op| op.project == project && op.scope == *scope)
        .map(|op| {
            let left = op.done_at.saturating_duration_since(Instant::now());
            (operation_json(op), left)
        })
}

pub(super) fn operation_answer(
    sh: &Shared,
    project: &str,
    scope: Scope,
    name: &str,
    where_: String,
) -> Response {
    match find_operation(sh, project, &scope, name) {
        Some((json, _)) => Json(json).into_response(),
        None => not_found(&format!("projects/{project}/{where_}/operations/{name}")),
    }
}

/// `wait`: blocks until the operation is done (or [`MAX_WAIT`] passed), then answers it.
pub(super) async fn wait_answer(
    sh: &Shared,
    project: &str,
    scope: Scope,
    name: &str,
    where_: String,
) -> Response {
    let Some((_, left)) = find_operation(sh, project, &scope, name) else {
        return not_found(&format!("projects/{project}/{where_}/operations/{name}"));
    };
    if !left.is_zero() {
        tokio::time::sleep(left.min(MAX_WAIT)).await;
    }
    operation_answer(sh, project, scope, name, where_)
}

pub(super) async fn get_zone_operation(
    State(sh): S,
    Path((project, zone, name)): Path<(String, String, String)>,
) -> Response {
    let where_ = format!("zones/{zone}");
    operation_answer(&sh, &project, Scope::Zone(zone), &name, where_)
}

pub(super) async fn wait_zone_operation(
    State(sh): S,
    Path((project, zone, name)): Path<(String, String, String)>,
) -> Response {
    let where_ = format!("zones/{zone}");
    wait_answer(&sh, &project, Scope::Zone(zone), &name, where_).await
}

pub(super) async fn get_region_operation(
    State(sh): S,
    Path((project, region, name)): Path<(String, String, String)>,
) -> Response {
    let where_ = format!("regions/{region}");
    operation_answer(&sh, &project, Scope::Region(region), &name, where_)
}

pub(super) async fn wait_region_operation(
    State(sh): S,
    Path((project, region, name)): Path<(String, String, String)>,
) -> Response {
    let where_ = format!("regions/{region}");
    wait_answer(&sh, &project, Scope::Region(region), &name, where_).await
}
