//! Vultr API v2: instances and reserved IPs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

use crate::server::{Api, Shared};
use crate::world::Bucket;

/// Vultr's wiring: 30 requests per second, 429 past it, no rate-limit headers.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(30, Duration::from_secs(1))],
    rate_headers: None,
};

/// Vultr's state.
#[derive(Debug, Default)]
#[allow(dead_code)] // filled in with the provider's routes
pub(crate) struct World {}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
}

/// Vultr's error body: `{"error": ..., "status": ...}`.
fn error_body(status: u16, _code: &str, message: &str) -> Value {
    json!({ "error": message, "status": status })
}
