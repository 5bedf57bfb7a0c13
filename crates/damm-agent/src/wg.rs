//! Reading and changing a WireGuard interface: the state, the pure diff ([`plan`]) and two
//! backends behind [`WireGuard`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use damm_catalog::{GatewayPeer, PrivateKey, WgKey};

use crate::{AgentError, Host};

/// One peer as the interface reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// The peer's key.
    pub public_key: WgKey,
    /// Its current endpoint (configured or learned from its packets).
    pub endpoint: Option<SocketAddr>,
    /// Its prefixes, normalised `ip/prefix`.
    pub allowed_ips: Vec<String>,
    /// Keepalive interval, seconds.
    pub persistent_keepalive: Option<u16>,
    /// Last completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// An interface as WireGuard reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// The interface's public key, if a private key is set.
    pub public_key: Option<WgKey>,
    /// Its UDP port.
    pub listen_port: Option<u16>,
    /// Its peers.
    pub peers: Vec<PeerState>,
}

/// A peer to add or update: every listed field replaces what the interface has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's key.
    pub public_key: WgKey,
    /// Prefixes, `ip/prefix` (replace the current ones).
    pub allowed_ips: Vec<String>,
    /// Endpoint to set, if any (an unset endpoint keeps whatever the peer roamed to).
    pub endpoint: Option<SocketAddr>,
    /// Keepalive, seconds (`None` turns it off).
    pub persistent_keepalive: Option<u16>,
}

impl PeerSpec {
    /// The spec of a gateway config peer.
    pub fn from_gateway_peer(peer: &GatewayPeer) -> Result<Self, AgentError> {
        let endpoint = peer
            .endpoint
            .as_deref()
            .map(|e| {
                e.parse::<SocketAddr>().map_err(|_| {
                    AgentError::Invalid(format!(
                        "peer `{}`: endpoint `{e}` is not ip:port",
                        peer.name
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            public_key: peer.public_key,
            allowed_ips: normalise_all(&peer.allowed_ips)?,
            endpoint,
            persistent_keepalive: peer.persistent_keepalive,
        })
    }
}

/// The changes to send to an interface. Empty means nothing to do.
#[derive(Debug, Clone, Default)]
pub struct DeviceUpdate {
    /// Set the private key.
    pub private_key: Option<PrivateKey>,
    /// Set the listen port.
    pub listen_port: Option<u16>,
    /// Peers to remove.
    pub remove: Vec<WgKey>,
    /// Peers to add or update.
    pub upsert: Vec<PeerSpec>,
}

impl DeviceUpdate {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.private_key.is_none()
            && self.listen_port.is_none()
            && self.remove.is_empty()
            && self.upsert.is_empty()
    }
}

/// What must change for `current` to become (`private_key`, `listen_port`, exactly `peers`).
/// Pure: re-planning against the result gives an empty update.
pub fn plan(
    current: &DeviceState,
    private_key: &PrivateKey,
    listen_port: Option<u16>,
    peers: &[PeerSpec],
) -> DeviceUpdate {
    let mut update = DeviceUpdate::default();
    if current.public_key != Some(private_key.public_key()) {
        update.private_key = Some(private_key.clone());
    }
    if listen_port.is_some() && current.listen_port != listen_port {
        update.listen_port = listen_port;
    }
    for peer in &current.peers {
        if !peers.iter().any(|p| p.public_key == peer.public_key) {
            update.remove.push(peer.public_key);
        }
    }
    for want in peers {
        let same = current.peers.iter().any(|have| {
            have.public_key == want.public_key
                && sorted(&have.allowed_ips) == sorted(&want.allowed_ips)
                && have.persistent_keepalive == want.persistent_keepalive
                && (want.endpoint.is_none() || have.endpoint == want.endpoint)
        });
        if !same {
            update.upsert.push(want.clone());
        }
    }
    update
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
    out.sort_unstable();
    out
}

/// `ip/prefix` with the address in canonical form (what `wg` prints back).
pub(crate) fn normalise(cidr: &str) -> Result<(IpAddr, u8), AgentError> {
    let bad = || AgentError::Invalid(format!("`{cidr}` is not ip/prefix"));
    let (ip, prefix) = cidr.trim().split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix > if ip.is_ipv4() { 32 } else { 128 } {
        return Err(bad());
    }
    Ok((ip, prefix))
}

fn normalise_all(list: &[String]) -> Result<Vec<String>, AgentError> {
    list.iter()
        .map(|c| normalise(c).map(|(ip, p)| format!("{ip}/{p}")))
        .collect()
}

/// A way to read and change WireGuard interfaces.
pub trait WireGuard: Send + Sync {
    /// The interface's current state.
    fn get(&self, interface: &str) -> Result<DeviceState, AgentError>;
    /// Sends `update` (nothing is sent when it is empty).
    fn apply(&self, interface: &str, update: &DeviceUpdate) -> Result<(), AgentError>;
}

/// The `wg` tool (wireguard-tools), run on a [`Host`]. Works with kernel interfaces and with
/// userspace ones (it finds `/var/run/wireguard/IFACE.sock`).
#[derive(Debug, Clone, Default)]
pub struct WgTool {
    host: Host,
}

impl WgTool {
    /// `wg` run on `host`.
    pub fn new(host: Host) -> Self {
        Self { host }
    }
}

impl WireGuard for WgTool {
    fn get(&self, interface: &str) -> Result<DeviceState, AgentError> {
        let dump = self.host.run("wg", &["show", interface, "dump"])?;
        parse_dump(&dump).map_err(|reason| AgentError::WireGuard {
            interface: interface.to_owned(),
            reason,
        })
    }

    fn apply(&self, interface: &str, update: &DeviceUpdate) -> Result<(), AgentError> {
        if update.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = vec!["set".into(), interface.into()];
        let mut stdin = None;
        if let Some(port) = update.listen_port {
            args.extend(["listen-port".into(), port.to_string()]);
        }
        if let Some(key) = &update.private_key {
            // The secret goes through a pipe, never the command line.
            args.extend(["private-key".into(), "/dev/stdin".into()]);
            stdin = Some(format!("{}\n", key.expose_base64()));
        }
        for key in &update.remove {
            args.extend(["peer".into(), key.to_string(), "remove".into()]);
        }
        for peer in &update.upsert {
            args.extend(["peer".into(), peer.public_key.to_string()]);
            if let Some(endpoint) = peer.endpoint {
                args.extend(["endpoint".into(), endpoint.to_string()]);
            }
            args.extend([
                "persistent-keepalive".into(),
                peer.persistent_keepalive
                    .map_or_else(|| "off".to_owned(), |k| k.to_string()),
            ]);
            args.extend(["allowed-ips".into(), peer.allowed_ips.join(",")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.host
            .run_with_stdin("wg", &args, stdin.as_deref().map(str::as_bytes))
            .map(drop)
    }
}

/// Parses `wg show IFACE dump`.
pub(crate) fn parse_dump(dump: &str) -> Result<DeviceState, String> {
    let mut lines = dump.lines();
    let head: Vec<&str> = lines
        .next()
        .ok_or("empty `wg show dump`")?
        .split('\t')
        .collect();
    if head.len() < 4 {
        return Err(format!(
            "unexpected interface line with {} fields",
            head.len()
        ));
    }
    let mut state = DeviceState {
        public_key: head[1].parse().ok(),
        listen_port: head[2].parse().ok().filter(|p| *p != 0),
        peers: Vec::new(),
    };
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            return Err(format!("unexpected peer line with {} fields", f.len()));
        }
        let handshake: u64 = f[4].parse().map_err(|_| "bad latest-handshake")?;
        state.peers.push(PeerState {
            public_key: f[0].parse().map_err(|_| "bad peer key")?,
            endpoint: f[2].parse().ok(),
            allowed_ips: if f[3] == "(none)" {
                Vec::new()
            } else {
                f[3].split(',').map(str::to_owned).collect()
            },
            last_handshake: (handshake != 0)
                .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(handshake)),
            rx_bytes: f[5].parse().map_err(|_| "bad rx")?,
            tx_bytes: f[6].parse().map_err(|_| "bad tx")?,
            persistent_keepalive: f[7].parse().ok(),
        });
    }
    Ok(state)
}

#[cfg(feature = "wireguard-control")]
pub use control::WgControl;

#[cfg(feature = "wireguard-control")]
mod control {
    use wireguard_control::{Backend, Device, InterfaceName, Key, PeerConfigBuilder};

    use super::{DeviceState, DeviceUpdate, PeerState, WireGuard, normalise};
    use crate::AgentError;

    /// WireGuard through the `wireguard-control` crate: [`WgControl::userspace`] talks to the
    /// UAPI socket `/var/run/wireguard/IFACE.sock` (wireguard-go), [`WgControl::kernel`] to the
    /// kernel over netlink (in the caller's network namespace).
    #[derive(Debug, Clone, Copy)]
    pub struct WgControl {
        backend: Backend,
    }

    impl WgControl {
        /// The userspace backend (UAPI socket).
        pub fn userspace() -> Self {
            Self {
                backend: Backend::Userspace,
            }
        }

        /// The kernel backend (netlink).
        pub fn kernel() -> Self {
            Self {
                backend: Backend::Kernel,
            }
        }
    }

    fn name(interface: &str) -> Result<InterfaceName, AgentError> {
        interface.parse().map_err(|e| AgentError::WireGuard {
            interface: interface.to_owned(),
            reason: format!("{e:?}"),
        })
    }

    fn io(interface: &str, e: std::io::Error) -> AgentError {
        AgentError::WireGuard {
            interface: interface.to_owned(),
            reason: e.to_string(),
        }
    }

    impl WireGuard for WgControl {
        fn get(&self, interface: &str) -> Result<DeviceState, AgentError> {
            let device =
                Device::get(&name(interface)?, self.backend).map_err(|e| io(interface, e))?;
            Ok(DeviceState {
                public_key: device
                    .public_key
                    .map(|k| damm_catalog::WgKey::from_bytes(k.0)),
                listen_port: device.listen_port.filter(|p| *p != 0),
                peers: device
                    .peers
                    .into_iter()
                    .map(|p| PeerState {
                        public_key: damm_catalog::WgKey::from_bytes(p.config.public_key.0),
                        endpoint: p.config.endpoint,
                        allowed_ips: p
                            .config
                            .allowed_ips
                            .iter()
                            .map(|a| format!("{}/{}", a.address, a.cidr))
                            .collect(),
                        persistent_keepalive: p
                            .config
                            .persistent_keepalive_interval
                            .filter(|k| *k != 0),
                        last_handshake: p
                            .stats
                            .last_handshake_time
                            .filter(|t| *t > std::time::SystemTime::UNIX_EPOCH),
                        rx_bytes: p.stats.rx_bytes,
                        tx_bytes: p.stats.tx_bytes,
                    })
                    .collect(),
            })
        }

        fn apply(&self, interface: &str, update: &DeviceUpdate) -> Result<(), AgentError> {
            if update.is_empty() {
                return Ok(());
            }
            let mut builder = wireguard_control::DeviceUpdate::new();
            if let Some(key) = &update.private_key {
                let secret = Key::from_base64(&key.expose_base64()).map_err(|_| {
                    AgentError::Invalid("the private key is not a WireGuard key".into())
                })?;
                builder = builder.set_private_key(secret);
            }
            if let Some(port) = update.listen_port {
                builder = builder.set_listen_port(port);
            }
            for key in &update.remove {
                builder = builder.remove_peer_by_key(&Key(*key.as_bytes()));
            }
            for peer in &update.upsert {
                let mut p =
                    PeerConfigBuilder::new(&Key(*peer.public_key.as_bytes())).replace_allowed_ips();
                for cidr in &peer.allowed_ips {
                    let (ip, prefix) = normalise(cidr)?;
                    p = p.add_allowed_ip(ip, prefix);
                }
                if let Some(endpoint) = peer.endpoint {
                    p = p.set_endpoint(endpoint);
                }
                p = match peer.persistent_keepalive {
                    Some(k) => p.set_persistent_keepalive_interval(k),
                    None => p.unset_persistent_keepalive(),
                };
                builder = builder.add_peer(p);
            }
            builder
                .apply(&name(interface)?, self.backend)
                .map_err(|e| io(interface, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use damm_catalog::KeyPair;

    use super::*;

    fn spec(key: WgKey, ip: &str) -> PeerSpec {
        PeerSpec {
            public_key: key,
            allowed_ips: vec![ip.into()],
            endpoint: None,
            persistent_keepalive: Some(1),
        }
    }

    fn state_of(private: &PrivateKey, port: u16, peers: &[PeerSpec]) -> DeviceState {
        DeviceState {
            public_key: Some(private.public_key()),
            listen_port: Some(port),
            peers: peers
                .iter()
                .map(|p| PeerState {
                    public_key: p.public_key,
                    endpoint: p.endpoint.or(Some("192.0.2.9:4000".parse().unwrap())),
                    allowed_ips: p.allowed_ips.clone(),
                    persistent_keepalive: p.persistent_keepalive,
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn plan_is_idempotent_and_removes_unlisted_peers() {
        let me = KeyPair::generate();
        let (a, b, c) = (
            KeyPair::generate().public_key(),
            KeyPair::generate().public_key(),
            KeyPair::generate().public_key(),
        );
        let fresh = plan(
            &DeviceState::default(),
            me.private_key(),
            Some(51820),
            &[spec(a, "10.77.0.2/32")],
        );
        assert!(fresh.private_key.is_some());
        assert_eq!(fresh.listen_port, Some(51820));
        assert_eq!(fresh.upsert.len(), 1);

        let want = [spec(a, "10.77.0.2/32"), spec(b, "10.77.0.3/32")];
        let applied = state_of(me.private_key(), 51820, &want);
        // Same config again: nothing to do (a learned endpoint is not a difference).
        assert!(plan(&applied, me.private_key(), Some(51820), &want).is_empty());

        // `b` dropped, `c` added, `a` changed.
        let next = [spec(a, "10.77.0.9/32"), spec(c, "10.77.0.4/32")];
        let update = plan(&applied, me.private_key(), Some(51820), &next);
        assert_eq!(update.remove, vec![b]);
        let upserted: Vec<WgKey> = update.upsert.iter().map(|p| p.public_key).collect();
        assert_eq!(upserted, vec![a, c]);
        assert!(update.private_key.is_none() && update.listen_port.is_none());
    }

    #[test]
    fn parses_wg_dump() {
        let k1 = KeyPair::generate();
        let k2 = KeyPair::generate().public_key();
        let dump = format!(
            "{}\t{}\t51820\toff\n{k2}\t(none)\t172.31.0.10:40000\t10.77.0.2/32,10.77.1.0/24\t1700000000\t1234\t5678\t1\n",
            k1.private_key().expose_base64(),
            k1.public_key()
        );
        let state = parse_dump(&dump).unwrap();
        assert_eq!(state.public_key, Some(k1.public_key()));
        assert_eq!(state.listen_port, Some(51820));
        let p = &state.peers[0];
        assert_eq!(p.public_key, k2);
        assert_eq!(p.allowed_ips, vec!["10.77.0.2/32", "10.77.1.0/24"]);
        assert_eq!(p.rx_bytes, 1234);
        assert_eq!(p.persistent_keepalive, Some(1));
        assert!(p.last_handshake.is_some());
        let none = format!(
            "{}\t{}\t51820\toff\n{k2}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n",
            k1.private_key().expose_base64(),
            k1.public_key()
        );
        let p = &parse_dump(&none).unwrap().peers[0];
        assert!(
            p.endpoint.is_none() && p.last_handshake.is_none() && p.persistent_keepalive.is_none()
        );
    }
}
