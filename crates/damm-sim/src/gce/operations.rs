//! Zonal and regional operations (get, wait): every mutation answers with one, moving
//! `PENDING` → `RUNNING` → `DONE`.

use super::*;

/// The operation `name` in `scope`, as JSON, and how long until it is done.
fn find_operation(
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

/// The routes below a zone's or a region's path: its operations, in the scope `scope`
/// makes of the zone's or region's name.
pub(super) fn routes(scope: fn(String) -> Scope) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/operations/{operation}",
            get(move |State(sh): S, Path((project, place, name)): Path<(String, String, String)>| async move {
                operation_answer(&sh, &project, scope(place), &name)
            }),
        )
        .route(
            "/operations/{operation}/wait",
            post(move |State(sh): S, Path((project, place, name)): Path<(String, String, String)>| async move {
                wait_answer(&sh, &project, scope(place), &name).await
            }),
        )
}

fn operation_answer(sh: &Shared, project: &str, scope: Scope, name: &str) -> Response {
    match find_operation(sh, project, &scope, name) {
        Some((json, _)) => Json(json).into_response(),
        None => not_found(&format!(
            "projects/{project}/{}/operations/{name}",
            scope.path()
        )),
    }
}

/// `wait`: blocks until the operation is done (or [`MAX_WAIT`] passed), then answers it.
async fn wait_answer(sh: &Shared, project: &str, scope: Scope, name: &str) -> Response {
    let Some((_, left)) = find_operation(sh, project, &scope, name) else {
        return not_found(&format!(
            "projects/{project}/{}/operations/{name}",
            scope.path()
        ));
    };
    if !left.is_zero() {
        tokio::time::sleep(left.min(MAX_WAIT)).await;
    }
    operation_answer(sh, project, scope, name)
}
