//! The transports a client carries its WireGuard datagrams on, past a censor.
//!
//! A catalog path may offer T1 (obfuscated UDP) and T3 (WebSocket over TLS through a CDN
//! front) besides bare WireGuard (T0). The client turns each such offer into a candidate
//! path of its own (`<path id>~t1`, `<path id>~t3`), ranked a little below the path's T0, so
//! T0 is used while it works, and the existing failover moves on to T1 and then T3 when
//! nothing comes back. Choosing a T1 or T3 candidate starts a local forwarder
//! ([`damm_transport`]) on a loopback port and points the WireGuard peer at it; leaving the
//! candidate stops it. The enrollment and keys stay the same whatever the transport.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use damm_catalog::{Catalog, Offer, Transport};
use damm_transport::{relay, t1, t3};

use crate::AgentError;

/// How much a candidate on T1 or T3 ranks below the same path's T0: T0 costs least (no CDN
/// bytes, no extra hop) and is used while it works.
const T1_FACTOR: f64 = 0.95;
const T2_FACTOR: f64 = 0.92;
const T3_FACTOR: f64 = 0.9;

/// How a candidate's datagrams travel when not bare.
#[derive(Clone)]
pub(crate) enum Carrier {
    /// Obfuscated UDP to `endpoint` under `key`.
    T1 { endpoint: String, key: [u8; 32] },
    /// WebSocket over TLS straight to the gateway: `url` (its host is the SNI) dialled at
    /// `endpoint`.
    T2 { url: String, endpoint: String },
    /// WebSocket over TLS: `url` dialled at `host`'s address (port from the URL, else 443).
    T3 { url: String, host: String },
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the URL's path are secrets.
        match self {
            Carrier::T1 { endpoint, .. } => write!(f, "T1({endpoint})"),
            Carrier::T2 { endpoint, .. } => write!(f, "T2({endpoint})"),
            Carrier::T3 { host, .. } => write!(f, "T3({host})"),
        }
    }
}

/// The candidates a client can carry: every bare (T0) path as it is, and one candidate per
/// T1 or T3 offer (of any path, a fronted one included), with its carrier by candidate id.
pub(crate) fn expand(mut catalog: Catalog) -> (Catalog, BTreeMap<String, Carrier>) {
    let mut carriers = BTreeMap::new();
    for region in catalog.regions.values_mut() {
        let mut out = Vec::new();
        for path in region.paths.drain(..) {
            for offer in &path.offers {
                let (suffix, factor, carrier, endpoint) = match offer {
                    Offer::T1(o) => {
                        let Some(key) = o.key.to_bytes() else {
                            continue;
                        };
                        let carrier = Carrier::T1 {
                            endpoint: o.endpoint.clone(),
                            key,
                        };
                        ("t1", T1_FACTOR, carrier, o.endpoint.clone())
                    }
                    Offer::T2(o) => {
                        let carrier = Carrier::T2 {
                            url: o.url.clone(),
                            endpoint: o.endpoint.clone(),
                        };
                        ("t2", T2_FACTOR, carrier, o.endpoint.clone())
                    }
                    Offer::T3(o) => {
                        let carrier = Carrier::T3 {
                            url: o.url.clone(),
                            host: o.host.clone(),
                        };
                        ("t3", T3_FACTOR, carrier, format!("{}:443", o.host))
                    }
                    _ => continue,
                };
                let id = format!("{}~{suffix}", path.path_id);
                let mut candidate = path.clone();
                candidate.path_id = id.clone();
                candidate.score = path.score * factor;
                candidate.endpoint = endpoint;
                candidate.offers = Vec::new();
                carriers.insert(id, carrier);
                out.push(candidate);
            }
            // Bare WireGuard is carried as it is; a fronted path only through its offers.
            if path.transports.contains(&Transport::WireguardUdp) {
                out.push(path);
            }
        }
        region.paths = out;
    }
    (catalog, carriers)
}

/// The transport a candidate is carried on: `T0` (bare), `T1` or `T3`, as reports and the
/// network memory name them.
pub(crate) fn kind(carrier: Option<&Carrier>) -> &'static str {
    match carrier {
        None => "T0",
        Some(Carrier::T1 { .. }) => "T1",
        Some(Carrier::T2 { .. }) => "T2",
        Some(Carrier::T3 { .. }) => "T3",
    }
}

/// The catalog path a candidate comes from (`a~t1` → `a`).
pub(crate) fn base_id(candidate: &str) -> &str {
    candidate
        .split_once('~')
        .map_or(candidate, |(base, _)| base)
}

/// A running local forwarder: stopped when dropped.
pub(crate) struct Forwarder {
    task: tokio::task::AbortHandle,
    /// Where WireGuard sends: the forwarder's loopback port.
    pub(crate) local: SocketAddr,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn resolve(endpoint: &str) -> Result<SocketAddr, AgentError> {
    endpoint
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| AgentError::Invalid(format!("cannot resolve `{endpoint}`")))
}

/// Starts the forwarder for `carrier` on a loopback port. T3 trusts `tls` (a test or
/// private CA) or else the public web's roots, and dials the address `fronts` pins for its
/// host, if any, else the host's DNS answer. Needs a tokio runtime.
pub(crate) fn start(
    carrier: &Carrier,
    tls: Option<Arc<rustls::ClientConfig>>,
    fronts: &BTreeMap<String, SocketAddr>,
) -> Result<Forwarder, AgentError> {
    let (runtime, socket, local) = loopback("a forwarder")?;
    let task = match carrier {
        Carrier::T1 { endpoint, key } => {
            let remote = resolve(endpoint)?;
            let key = t1::Key::new(key);
            let stats = Arc::default();
            runtime.spawn(async move {
                if let Err(e) =
                    relay::client(socket, remote, key, relay::Options::default(), stats).await
                {
                    tracing::warn!("T1 forwarder stopped: {e}");
                }
            })
        }
        Carrier::T2 { .. } | Carrier::T3 { .. } => {
            let (url, connect_to) = match carrier {
                // The gateway itself, at the catalog's address: no DNS asked.
                Carrier::T2 { url, endpoint, .. } => (url, resolve(endpoint)?),
                Carrier::T3 { url, host } => {
                    let port = http_port(url).unwrap_or(443);
                    // A front's edge may be pinned (DNS poisoned or absent): dial it, keep
                    // the SNI.
                    let connect_to = match fronts.get(host) {
                        Some(addr) => *addr,
                        None => resolve(&format!("{host}:{port}"))?,
                    };
                    (url, connect_to)
                }
                Carrier::T1 { .. } => unreachable!("matched above"),
            };
            let mut options = t3::ClientOptions::new(url.clone(), connect_to);
            options.tls = Some(tls.unwrap_or_else(t3::tls_public_roots));
            let stats = Arc::default();
            runtime.spawn(async move {
                if let Err(e) = t3::client(socket, options, stats).await {
                    tracing::warn!("WebSocket forwarder stopped: {e}");
                }
            })
        }
    };
    Ok(Forwarder {
        task: task.abort_handle(),
        local,
    })
}

/// A UDP socket on a free loopback port for WireGuard to send to, registered with the
/// current tokio runtime (which `what` needs).
pub(crate) fn loopback(
    what: &str,
) -> Result<(tokio::runtime::Handle, tokio::net::UdpSocket, SocketAddr), AgentError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| AgentError::Invalid(format!("{what} needs a tokio runtime")))?;
    let io = |e: std::io::Error| AgentError::Invalid(format!("{what}'s loopback port: {e}"));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    socket.set_nonblocking(true).map_err(io)?;
    let local = socket.local_addr().map_err(io)?;
    let socket = {
        let _guard = runtime.enter();
        tokio::net::UdpSocket::from_std(socket).map_err(io)?
    };
    Ok((runtime, socket, local))
}

/// The port in a `wss://host:port/...` URL, if it names one.
fn http_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let text = r#"{
          "schema": "damm-catalog/1", "fleet": "t", "version": 1,
          "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z",
          "validated_for": [],
          "regions": { "eu": { "paths": [
            { "path_id": "a", "score": 0.8, "transports": ["T0"], "endpoint": "192.0.2.1:51820",
              "gateway_public_key": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
              "composition": [{ "role": "ingress", "provider": "p", "component": "a" }],
              "offers": [
                { "kind": "T0", "endpoint": "192.0.2.1:51820" },
                { "kind": "T1", "endpoint": "192.0.2.1:4443", "key": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" }
              ] },
            { "path_id": "f", "score": 1.0, "transports": ["T3"], "endpoint": "front.example:443",
              "gateway_public_key": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
              "composition": [{ "role": "front", "provider": "cdn", "component": "f" },
                              { "role": "ingress", "provider": "p", "component": "a" }],
              "offers": [{ "kind": "T3", "url": "wss://front.example/s3cretPath",
                           "host": "front.example", "sni": "front.example" }] }
          ] } }
        }"#;
        Catalog::from_json(text.as_bytes()).unwrap()
    }

    #[test]
    fn offers_become_candidates_ranked_below_their_t0() {
        let (expanded, carriers) = expand(catalog());
        let paths = &expanded.regions["eu"].paths;
        let ids: Vec<(&str, f64)> = paths
            .iter()
            .map(|p| (p.path_id.as_str(), p.score))
            .collect();
        assert_eq!(
            ids,
            [
                ("a~t1", 0.8 * T1_FACTOR),
                ("a", 0.8),
                ("f~t3", 1.0 * T3_FACTOR)
            ]
        );
        assert_eq!(carriers.len(), 2);
        let shown = format!("{carriers:?}");
        assert!(
            !shown.contains("5a5a") && !shown.contains("s3cret"),
            "{shown}"
        );
        // The fronted path is only reachable through its forwarder, never as UDP to :443.
        assert!(paths.iter().all(|p| p.path_id != "f"));
    }

    #[test]
    fn candidates_name_their_path_and_transport() {
        let (_, carriers) = expand(catalog());
        assert_eq!(base_id("a~t1"), "a");
        assert_eq!(base_id("t0:in>eg"), "t0:in>eg");
        assert_eq!(kind(carriers.get("a~t1")), "T1");
        assert_eq!(kind(carriers.get("f~t3")), "T3");
        assert_eq!(kind(carriers.get("a")), "T0");
    }

    #[test]
    fn ports_in_urls() {
        assert_eq!(http_port("wss://front.example/abc"), None);
        assert_eq!(http_port("wss://front.example:8443/abc"), Some(8443));
    }
}
