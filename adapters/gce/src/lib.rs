//! DAMM adapter for Google Compute Engine: instances (compute) and static external
//! addresses (ingress front doors, egress addresses), on `google-cloud-compute-v1`.
//!
//! See README.md for the capability checklist, the settings and the region table.

mod backend;
mod config;
mod core;

pub use backend::{CAPABILITIES, Gce};
pub use config::{DEFAULT_API_URL, DEFAULT_PROFILES, DEFAULT_REGIONS, GceConfig, Profile};

damm_provider::adapter!(
    "gce",
    "Google Compute Engine: instances (compute), static addresses (ingress, egress)",
    CAPABILITIES,
    async Gce::from_config
);
