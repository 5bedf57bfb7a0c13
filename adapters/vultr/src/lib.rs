//! DAMM adapter for Vultr: compute instances as nodes, reserved IPs as ingress front
//! doors and egress addresses, through a small typed client of Vultr's API v2.
//!
//! See README.md for the configuration keys, the region table and how ownership is
//! recorded in tags and labels.

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Vultr};
pub use config::{Profile, VultrConfig};

damm_provider::adapter!(
    "vultr",
    "Vultr instances, and reserved IPs as front doors and egress (compute, ingress, egress)",
    CAPABILITIES,
    Vultr::from_config
);
