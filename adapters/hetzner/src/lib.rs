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

damm_provider::adapter!(
    "hetzner",
    "Hetzner Cloud: servers, primary IPs (front doors), floating IPs (egress)",
    CAPABILITIES,
    Hetzner::from_config
);
