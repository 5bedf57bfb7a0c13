//! DAMM adapter for Cloudflare: `cdn_front` (proxied DNS records under DAMM's subdomain)
//! and `tunnel_term` (Cloudflare Tunnels), on the `cloudflare` crate's client.
//!
//! See README.md for the settings and the ownership scheme.

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Cloudflare};
pub use config::{CloudflareConfig, DEFAULT_API_URL};

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// The registry's entry for this adapter.
pub const ADAPTER: AdapterDescriptor = AdapterDescriptor {
    name: "cloudflare",
    summary: "Cloudflare (cdn_front: proxied DNS records, tunnel_term: Cloudflare Tunnels)",
    capabilities: CAPABILITIES,
    build: |config: AdapterConfig| {
        Box::pin(async move {
            let provider: Arc<dyn Provider> = Arc::new(Cloudflare::from_config(&config)?);
            Ok(provider)
        })
    },
};
