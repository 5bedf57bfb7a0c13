//! DAMM adapter for Hetzner Cloud on the `hcloud` crate: servers as nodes (compute),
//! primary IPs as ingress front doors, floating IPs as egress addresses. Everything it
//! creates carries the `damm-fleet` and `damm-key` labels; it never touches a resource
//! without the fleet label.

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Hetzner};
pub use config::{HetznerConfig, PROFILES, Profile, REGIONS};

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// The registry's entry for this adapter.
pub const ADAPTER: AdapterDescriptor = AdapterDescriptor {
    name: "hetzner",
    summary: "Hetzner Cloud: servers, primary IPs (front doors), floating IPs (egress)",
    capabilities: CAPABILITIES,
    build: |config: AdapterConfig| {
        Box::pin(async move {
            let provider: Arc<dyn Provider> = Arc::new(Hetzner::from_config(&config)?);
            Ok(provider)
        })
    },
};
