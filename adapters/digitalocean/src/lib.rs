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

damm_provider::adapter!(
    "digitalocean",
    "DigitalOcean droplets (compute) and reserved IPs (ingress, egress)",
    CAPABILITIES,
    Digitalocean::from_config
);
