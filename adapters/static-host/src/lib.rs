//! DAMM adapter for hand-provisioned hosts: a friend's Raspberry Pi, a rented box with
//! no API. Hosts come from an inventory file; the orchestrator can include them in (and
//! exclude them from) the fleet's ingress and egress sets, but cannot create or destroy
//! them. Health is a real probe of each host: its HTTP heartbeat URL, or its WireGuard
//! UDP port.

mod backend;
mod config;
mod core;

pub use backend::{CAPABILITIES, StaticHost};
pub use config::{Host, Inventory, StaticHostConfig};

damm_provider::adapter!(
    "static-host",
    "hand-provisioned hosts from an inventory file (include/exclude only)",
    CAPABILITIES,
    StaticHost::from_config
);
