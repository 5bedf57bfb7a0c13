//! DigitalOcean API v2: droplets, droplet actions, reserved IPs and actions.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

use crate::server::{Api, Shared};
use crate::world::Bucket;

/// DigitalOcean's wiring: 5000 requests per hour and 250 per minute,
/// `ratelimit-*` headers for the hourly limit.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || {
        vec![
            Bucket::new(5000, Duration::from_secs(3600)),
            Bucket::new(250, Duration::from_secs(60)),
        ]
    },
    rate_headers: Some(["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]),
};

/// DigitalOcean's state.
#[derive(Debug, Default)]
#[allow(dead_code)] // filled in with the provider's routes
pub(crate) struct World {}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
}

/// DigitalOcean's error body: `{"id": ..., "message": ..., "request_id": ...}`.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    json!({ "id": code, "message": message, "request_id": "damm-sim" })
}
