//! Tags: `/tags`, `/tags/{tag}` and `/tags/{tag}/resources`. Not in the vendored
//! document, so their traffic is not schema-checked (see the parent module's docs).

use super::*;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/tags", post(create_tag))
        .route("/tags/{tag}", get(get_tag).delete(delete_tag))
        .route(
            "/tags/{tag}/resources",
            post(tag_resources).delete(untag_resources),
        )
}

fn tag_json(state: &World, name: &str) -> Value {
    let tagged: Vec<&Droplet> = state
        .droplets
        .values()
        .filter(|d| d.tags.iter().any(|t| t == name))
        .collect();
    let last = tagged
        .last()
        .map(|d| format!("/v2/droplets/{}", d.id))
        .unwrap_or_default();
    json!({
        "name": name,
        "resources": {
            "count": tagged.len(), "last_tagged_uri": last,
            "droplets": { "count": tagged.len(), "last_tagged_uri": last },
        },
    })
}

#[derive(Debug, Deserialize)]
struct CreateTag {
    name: String,
}

/// `POST /tags`: creates a tag; naming an existing tag answers it again.
async fn create_tag(State(sh): S, ProviderJson(req): ProviderJson<CreateTag>) -> Response {
    if !valid_tag(&req.name) {
        return unprocessable(
            "Tag names may contain only letters, numbers, colons, dashes and underscores (at most 255).",
        );
    }
    let mut state = lock(&sh.digitalocean);
    state.tags.insert(req.name.clone());
    (
        StatusCode::CREATED,
        Json(json!({ "tag": tag_json(&state, &req.name) })),
    )
        .into_response()
}

async fn get_tag(State(sh): S, Path(tag): Path<String>) -> Response {
    let state = lock(&sh.digitalocean);
    if !state.tags.contains(&tag) {
        return not_found();
    }
    Json(json!({ "tag": tag_json(&state, &tag) })).into_response()
}

/// `DELETE /tags/{tag}`: removes the tag from every resource and from the account.
async fn delete_tag(State(sh): S, Path(tag): Path<String>) -> Response {
    let mut state = lock(&sh.digitalocean);
    if !state.tags.remove(&tag) {
        return not_found();
    }
    for d in state.droplets.values_mut() {
        d.tags.retain(|t| *t != tag);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct TagResource {
    /// DigitalOcean sends and takes it as a string; a number is taken too.
    resource_id: Value,
    resource_type: String,
}

#[derive(Debug, Deserialize)]
struct TagResources {
    resources: Vec<TagResource>,
}

/// The droplet ids a tag-resources body names, or the error to answer.
fn tagged_droplets(state: &World, req: &TagResources) -> Result<Vec<i64>, Box<Response>> {
    let mut ids = Vec::new();
    for r in &req.resources {
        if r.resource_type != "droplet" {
            return Err(Box::new(unprocessable(format!(
                "Resource type '{}' is not simulated; only droplets.",
                r.resource_type
            ))));
        }
        let id = match &r.resource_id {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match id.filter(|id| state.droplets.contains_key(id)) {
            Some(id) => ids.push(id),
            None => return Err(Box::new(not_found())),
        }
    }
    Ok(ids)
}

/// `POST /tags/{tag}/resources`: tags droplets; the tag must exist.
async fn tag_resources(
    State(sh): S,
    Path(tag): Path<String>,
    ProviderJson(req): ProviderJson<TagResources>,
) -> Response {
    retag(&sh, &tag, &req, |tags| {
        if !tags.contains(&tag) {
            tags.push(tag.clone());
        }
    })
}

/// `DELETE /tags/{tag}/resources`: untags droplets.
async fn untag_resources(
    State(sh): S,
    Path(tag): Path<String>,
    ProviderJson(req): ProviderJson<TagResources>,
) -> Response {
    retag(&sh, &tag, &req, |tags| tags.retain(|t| *t != tag))
}

/// Changes the tags of every droplet `req` names, once all of them and `tag` exist.
fn retag(
    sh: &Shared,
    tag: &str,
    req: &TagResources,
    change: impl Fn(&mut Vec<String>),
) -> Response {
    let mut state = lock(&sh.digitalocean);
    if !state.tags.contains(tag) {
        return not_found();
    }
    let ids = match tagged_droplets(&state, req) {
        Ok(ids) => ids,
        Err(response) => return *response,
    };
    for id in ids {
        change(&mut state.droplets.get_mut(&id).expect("checked").tags);
    }
    StatusCode::NO_CONTENT.into_response()
}
