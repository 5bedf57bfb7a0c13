//! DAMM adapter for Google Compute Engine: instances (compute) and static external
//! addresses (ingress front doors, egress addresses), on `google-cloud-compute-v1`.
//!
//! See README.md for the capability checklist, the settings and the region table.

mod backend;
mod config;
mod core;

pub use backend::{CAPABILITIES, Gce};
pub use config::{DEFAULT_API_URL, DEFAULT_PROFILES, DEFAULT_REGIONS, GceConfig, Profile};

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// The registry's entry for this adapter.
pub const ADAPTER: AdapterDescriptor = AdapterDescriptor {
    name: "gce",
    summary: "Google Compute Engine: instances (compute), static addresses (ingress, egress)",
    capabilities: CAPABILITIES,
    build: |config: AdapterConfig| {
        Box::pin(async move {
            let provider: Arc<dyn Provider> = Arc::new(Gce::from_config(&config).await?);
            Ok(provider)
        })
    },
};
