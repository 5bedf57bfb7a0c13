//! DAMM adapter for DigitalOcean: droplets as compute, reserved IPs as ingress front doors
//! and egress addresses, all owned through droplet tags. See README.md for the tag scheme,
//! the settings and the region table.

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Digitalocean};
pub use config::{DEFAULT_API_URL, DEFAULT_PROFILES, DEFAULT_REGIONS, DigitaloceanConfig, Profile};

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// The registry's entry for this adapter.
pub const ADAPTER: AdapterDescriptor = AdapterDescriptor {
    name: "digitalocean",
    summary: "DigitalOcean droplets (compute) and reserved IPs (ingress, egress)",
    capabilities: CAPABILITIES,
    build: |config: AdapterConfig| {
        Box::pin(async move {
            let provider: Arc<dyn Provider> = Arc::new(Digitalocean::from_config(&config)?);
            Ok(provider)
        })
    },
};
