//! The gateway agent: applies a verified [`GatewayConfig`] to the gateway's interfaces.
//!
//! What one [`GatewayAgent::apply`] does, every step idempotent:
//!
//! 1. WireGuard: the private key, port and exactly the listed peers ([`crate::wg::plan`] sends
//!    only the differences, and removes peers no longer listed).
//! 2. `ip address replace` the tunnel address, `ip link set up`, IPv4 forwarding on.
//! 3. Ingress: the backbone interface gets its own port, address and single peer (the egress,
//!    `AllowedIPs 0.0.0.0/0`); policy routing sends what arrives on the client interface into
//!    the backbone (`ip rule iif MAIN lookup 7877`, `default dev BACKBONE table 7877`) while
//!    the main table keeps the client prefix on the client interface for the way back; nftables
//!    masquerades client traffic to the ingress's backbone address, so the egress needs one
//!    `/32` per ingress and never a client prefix (two ingresses could not both own it).
//! 4. Egress: nftables masquerades what comes from the backbone and leaves another way.
//!
//! The nftables rules live in their own table (`ip damm`), replaced atomically in one
//! `nft -f` transaction, so nothing else on the host is touched.

use damm_catalog::{GatewayConfig, GatewayRole, PrivateKey};

use crate::wg::{DeviceState, PeerSpec, WireGuard, normalise, plan};
use crate::{AgentError, Host};

/// Routing table and rule priority of the ingress's client → backbone policy route.
pub const BACKBONE_TABLE: u32 = 7877;

/// The gateway's interfaces (created beforehand by the deployment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInterfaces {
    /// The main interface: client-facing on an ingress, the backbone end on an egress.
    pub main: String,
    /// The ingress's backbone interface (unused on an egress).
    pub backbone: Option<String>,
}

/// What an apply changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// WireGuard peers added, updated or removed (0 when the config was already applied).
    pub peer_changes: usize,
    /// Whether a key or port changed.
    pub interface_changed: bool,
}

/// A gateway: its private key (which never leaves it), interfaces, host and WireGuard backend.
pub struct GatewayAgent {
    host: Host,
    wireguard: Box<dyn WireGuard>,
    private_key: PrivateKey,
    interfaces: GatewayInterfaces,
}

impl std::fmt::Debug for GatewayAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAgent")
            .field("host", &self.host)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl GatewayAgent {
    /// An agent running commands on `host` and driving WireGuard through `wireguard`.
    pub fn new(
        host: Host,
        wireguard: Box<dyn WireGuard>,
        private_key: PrivateKey,
        interfaces: GatewayInterfaces,
    ) -> Self {
        Self {
            host,
            wireguard,
            private_key,
            interfaces,
        }
    }

    /// Applies a config that [`damm_catalog::verify_gateway_config`] accepted (the caller also
    /// checks `config.gateway` is this gateway). Re-applying the same config changes nothing.
    pub fn apply(&self, config: &GatewayConfig) -> Result<ApplyOutcome, AgentError> {
        let mut outcome = ApplyOutcome::default();
        let peers = config
            .peers
            .iter()
            .map(PeerSpec::from_gateway_peer)
            .collect::<Result<Vec<_>, _>>()?;
        let main = &self.interfaces.main;
        self.apply_wireguard(main, config.listen_port, &peers, &mut outcome)?;
        self.address(main, &config.address)?;
        self.sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;

        let nft = match (config.role, &config.backbone) {
            (GatewayRole::Ingress, Some(backbone)) => {
                let bb = self.interfaces.backbone.as_deref().ok_or_else(|| {
                    AgentError::Invalid("an ingress config needs a backbone interface".into())
                })?;
                let peer = PeerSpec::from_gateway_peer(&backbone.peer)?;
                self.apply_wireguard(bb, backbone.listen_port, &[peer], &mut outcome)?;
                self.address(bb, &backbone.address)?;
                // Replies come back on the backbone from addresses the main table routes
                // elsewhere (the internet is behind the uplink): strict reverse-path filtering
                // would drop them, loose mode keeps its anti-spoofing value.
                self.sysctl(&format!("/proc/sys/net/ipv4/conf/{bb}/rp_filter"), "2")?;
                let table = BACKBONE_TABLE.to_string();
                self.host.run(
                    "ip",
                    &[
                        "-4", "route", "replace", "default", "dev", bb, "table", &table,
                    ],
                )?;
                let rules = self
                    .host
                    .run("ip", &["-4", "rule", "show", "pref", &table])?;
                if !rules.contains(&format!("iif {main} lookup {table}")) {
                    // A stale rule from another interface name is replaced, not stacked.
                    while self
                        .host
                        .run("ip", &["-4", "rule", "del", "pref", &table])
                        .is_ok()
                    {}
                    self.host.run(
                        "ip",
                        &[
                            "-4", "rule", "add", "pref", &table, "iif", main, "lookup", &table,
                        ],
                    )?;
                }
                format!(
                    "table ip damm {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    iifname \"{main}\" oifname \"{bb}\" masquerade\n  }}\n}}\n"
                )
            }
            (GatewayRole::Egress, _) => {
                let (ip, prefix) = normalise(&config.address)?;
                let net = network(ip, prefix);
                format!(
                    "table ip damm {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {net} oifname != \"{main}\" masquerade\n  }}\n}}\n"
                )
            }
            (GatewayRole::Ingress, None) => {
                return Err(AgentError::Invalid(
                    "an ingress config without backbone".into(),
                ));
            }
        };
        // Create-then-delete makes the delete safe on the first run; the whole file is one
        // transaction, so the table is never seen half-built.
        let script = format!("table ip damm {{}}\ndelete table ip damm\n{nft}");
        self.host
            .run_with_stdin("nft", &["-f", "-"], Some(script.as_bytes()))?;
        tracing::info!(
            gateway = %config.gateway,
            version = config.version,
            peer_changes = outcome.peer_changes,
            "gateway config applied"
        );
        Ok(outcome)
    }

    fn apply_wireguard(
        &self,
        interface: &str,
        port: u16,
        peers: &[PeerSpec],
        outcome: &mut ApplyOutcome,
    ) -> Result<(), AgentError> {
        let current: DeviceState = self.wireguard.get(interface)?;
        let update = plan(&current, &self.private_key, Some(port), peers);
        outcome.peer_changes += update.remove.len() + update.upsert.len();
        outcome.interface_changed |= update.private_key.is_some() || update.listen_port.is_some();
        self.wireguard.apply(interface, &update)
    }

    /// Writes a `/proc/sys` value through `tee` (no shell: interface names stay data).
    fn sysctl(&self, path: &str, value: &str) -> Result<(), AgentError> {
        self.host
            .run_with_stdin("tee", &[path], Some(format!("{value}\n").as_bytes()))
            .map(drop)
    }

    fn address(&self, interface: &str, address: &str) -> Result<(), AgentError> {
        let (ip, prefix) = normalise(address)?;
        let cidr = format!("{ip}/{prefix}");
        self.host
            .run("ip", &["address", "replace", &cidr, "dev", interface])?;
        self.host
            .run("ip", &["link", "set", "dev", interface, "up"])?;
        Ok(())
    }
}

/// The network of `ip/prefix` (`10.78.0.1/24` → `10.78.0.0/24`).
fn network(ip: std::net::IpAddr, prefix: u8) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            format!(
                "{}/{prefix}",
                std::net::Ipv4Addr::from(u32::from(v4) & mask)
            )
        }
        std::net::IpAddr::V6(_) => format!("{ip}/{prefix}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn network_masks_host_bits() {
        assert_eq!(
            super::network("10.78.0.7".parse().unwrap(), 24),
            "10.78.0.0/24"
        );
        assert_eq!(super::network("10.78.0.7".parse().unwrap(), 0), "0.0.0.0/0");
        assert_eq!(
            super::network("10.78.0.7".parse().unwrap(), 32),
            "10.78.0.7/32"
        );
    }
}
