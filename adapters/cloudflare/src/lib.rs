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

damm_provider::adapter!(
    "cloudflare",
    "Cloudflare (cdn_front: proxied DNS records, tunnel_term: Cloudflare Tunnels)",
    CAPABILITIES,
    Cloudflare::from_config
);
