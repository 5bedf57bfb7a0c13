//! DAMM's WireGuard data plane.
//!
//! - [`agent`]: a gateway applies its verified [`damm_catalog::GatewayConfig`] to its WireGuard
//!   interfaces, idempotently (only the differences are sent; peers no longer listed are
//!   removed), plus the addresses, policy routing and nftables NAT an ingress → backbone →
//!   egress path needs.
//! - [`client`]: a client keeps its enrollment, connects through the best catalog path, watches
//!   the current peer and fails over to [`damm_catalog::next_after`] when it goes quiet, with the
//!   same key and tunnel address (no re-enrollment). The decision logic ([`client::PathMonitor`])
//!   is pure and unit-tested; it emits [`client::Report`]s for the orchestrator. Where a path
//!   offers several transports, they are raced at each switch, Happy-Eyeballs style, in the
//!   order [`networks`] remembers for the network the client is on.
//! - [`wg`]: how WireGuard is driven: [`wg::WgTool`] (the `wg` tool from wireguard-tools,
//!   always available) or, with the `wireguard-control` feature (LGPL, off by default),
//!   `wg::WgControl` (kernel netlink or the userspace UAPI socket
//!   `/var/run/wireguard/IFACE.sock`).
//!
//! Interfaces are created by the deployment (`ip link add wg0 type wireguard`, or
//! `wireguard-go wg0` for userspace); the agent configures them.

pub mod agent;
mod carriers;
pub mod client;
mod host;
pub mod listeners;
pub mod networks;
pub mod wg;

pub use host::{Host, WireguardLink};

/// A TLS client configuration trusting the PEM CA certificates given, for T3 fronts behind
/// a private or test CA (`damm client --transport-ca FILE`).
pub use damm_transport::t3::tls_trusting;

/// Why the agent could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// WireGuard refused or could not be reached.
    #[error("wireguard interface `{interface}`: {reason}")]
    WireGuard {
        /// The interface.
        interface: String,
        /// What happened.
        reason: String,
    },
    /// The configuration cannot be applied as given.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}
