//! The contract between DAMM and the providers it stitches together.
//!
//! A *provider* hands DAMM pieces of the path client → destination as typed
//! *capabilities*. Each capability is its own async trait; [`Provider`] hands out the
//! ones an adapter implements and `None` for the rest, so the orchestrator cannot even
//! call a method a provider lacks:
//!
//! | capability | trait | resources |
//! |---|---|---|
//! | `compute` | [`Compute`] | VMs ([`Node`]) |
//! | `ingress` | [`Ingress`] | public front doors ([`Frontdoor`]) |
//! | `egress` | [`Egress`] | outbound NAT addresses ([`EgressIp`]) |
//! | `overlay` | [`Overlay`] | overlay memberships ([`OverlayMembership`]) |
//! | `cdn_front` | [`CdnFront`] | CDN-fronted hostnames ([`Front`]) |
//! | `tunnel_term` | [`TunnelTerm`] | managed tunnels ([`Tunnel`]) |
//!
//! Inventory ([`Provider::list_nodes`]), health ([`Provider::probe_health`]) and metrics
//! ([`Provider::get_metrics`]) belong to every provider.
//!
//! Every resource DAMM creates carries the labels [`LABEL_FLEET`] and [`LABEL_KEY`];
//! adapters never touch a resource without the fleet label.
//!
//! With the `testkit` feature, [`testkit`] holds the conformance suite every adapter
//! runs against a live endpoint.

pub mod addresses;
pub mod api;
mod capability;
pub mod config;
mod error;
pub mod fs;
#[cfg(feature = "http")]
pub mod http;
mod provider;
pub mod retry;
pub mod tables;
mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use capability::{Capabilities, Capability, ParseCapabilityError};
pub use error::{Error, ErrorKind, Operation, Result};
pub use provider::{
    AdapterDescriptor, BuildFuture, CdnFront, Compute, Egress, Ingress, Overlay, Provider,
    TunnelTerm, build_future,
};
pub use types::*;

/// Re-exported so adapters implement the capability traits with the same macro.
pub use async_trait::async_trait;
/// Re-exported so adapters and the orchestrator share one secret type.
pub use secrecy::{ExposeSecret, SecretString};

/// Label (tag) naming the fleet that owns a resource: `damm-fleet=<fleet id>`.
pub const LABEL_FLEET: &str = "damm-fleet";
/// Label carrying the idempotency key the planner chose before the create call.
pub const LABEL_KEY: &str = "damm-key";
/// Label carrying a node's role (`ingress` or `egress`).
pub const LABEL_ROLE: &str = "damm-role";
/// Label set on a node that is draining: no new sessions, existing ones finish.
pub const LABEL_DRAINING: &str = "damm-draining";
