//! DAMM adapter for Gcore CDN: `cdn_front`, a front being a CDN resource that serves
//! `<name>.<subdomain>.<zone>` over HTTPS and passes WebSocket upgrades through to the
//! gateway's T3 listener (plain HTTP on `origin_port`), on the shared HTTP layer.
//!
//! See README.md for the settings, the ownership scheme and what the operator sets up once
//! (a wildcard CNAME and a wildcard certificate).

mod backend;
mod config;
mod core;

#[doc(hidden)]
pub use crate::core::fuzzing;

pub use backend::{CAPABILITIES, Gcore};
pub use config::{DEFAULT_API_URL, GcoreConfig};

damm_provider::adapter!(
    "gcore",
    "Gcore CDN (cdn_front: CDN resources passing WebSockets to the gateways)",
    CAPABILITIES,
    Gcore::from_config
);
