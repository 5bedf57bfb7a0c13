//! DAMM adapter for Tailscale: overlay.
//!
//! Gateways join the fleet's tailnet with pre-authorised, tagged, one-off auth keys the
//! adapter mints through a small typed client for Tailscale API v2; ownership lives in
//! ACL tags (`tag:damm-fleet-<fleet>`, `tag:damm-key-<key>`). See README.md.

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Tailscale};
pub use config::{DEFAULT_API_URL, TailscaleConfig};

damm_provider::adapter!(
    "tailscale",
    "Tailscale (overlay: tagged auth keys, devices)",
    CAPABILITIES,
    Tailscale::from_config
);
