//! The probes (HTTP heartbeat, WireGuard UDP port) and the include/exclude store.
//!
//! A WireGuard endpoint stays silent to packets from unknown peers, so a UDP probe can
//! prove a port *closed* (the host answers ICMP port unreachable) but not *open*. A
//! positive check needs the host's heartbeat URL; without one, silence is reported as
//! `unknown`, never as healthy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use damm_provider::{HealthStatus, Labels, NodeRole};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::config::Host;

/// The outcome of probing one host.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) status: HealthStatus,
    pub(crate) rtt: Option<Duration>,
    pub(crate) detail: String,
    /// The heartbeat's JSON body, when it sent one (for metrics).
    pub(crate) body: Option<serde_json::Value>,
}

pub(crate) async fn probe_host(http: &reqwest::Client, host: &Host, timeout: Duration) -> Probe {
    match &host.heartbeat_url {
        Some(url) => probe_http(http, url, timeout).await,
        None => probe_udp(SocketAddr::new(host.address, host.wireguard_port), timeout).await,
    }
}

async fn probe_http(http: &reqwest::Client, url: &reqwest::Url, timeout: Duration) -> Probe {
    let started = Instant::now();
    let down = |detail: String| Probe {
        status: HealthStatus::Down,
        rtt: None,
        detail,
        body: None,
    };
    let response = match tokio::time::timeout(timeout, http.get(url.clone()).send()).await {
        Err(_) => return down(format!("heartbeat timed out after {timeout:?}")),
        Ok(Err(e)) => return down(format!("heartbeat failed: {}", without_url(&e))),
        Ok(Ok(r)) => r,
    };
    let rtt = started.elapsed();
    let status = response.status();
    // Bodies are small status documents; cap what is read.
    let body = match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(bytes)) if bytes.len() <= 64 * 1024 => serde_json::from_slice(&bytes).ok(),
        _ => None,
    };
    let verdict = if status.is_success() {
        HealthStatus::Healthy
    } else if status.is_server_error() {
        HealthStatus::Down
    } else {
        HealthStatus::Degraded
    };
    Probe {
        status: verdict,
        rtt: Some(rtt),
        detail: format!("heartbeat answered HTTP {}", status.as_u16()),
        body,
    }
}

/// reqwest errors print the URL, which may carry a token in its query.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request error"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Sends one datagram to the WireGuard port and reads the answer, if any.
async fn probe_udp(target: SocketAddr, timeout: Duration) -> Probe {
    let started = Instant::now();
    let result: std::io::Result<Option<usize>> = async {
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(target).await?;
        socket.send(b"damm-probe/1").await?;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
            Ok(received) => received.map(Some),
            Err(_elapsed) => Ok(None),
        }
    }
    .await;
    let (status, rtt, detail) = match result {
        Ok(Some(_)) => (
            HealthStatus::Healthy,
            Some(started.elapsed()),
            format!("udp {target} answered"),
        ),
        Ok(None) => (
            HealthStatus::Unknown,
            None,
            format!(
                "udp {target} stayed silent for {timeout:?}, as WireGuard does to unknown peers; set heartbeat_url for a positive check"
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            HealthStatus::Down,
            None,
            format!("udp {target} refused (port unreachable)"),
        ),
        Err(e) => (HealthStatus::Down, None, format!("udp {target}: {e}")),
    };
    Probe {
        status,
        rtt,
        detail,
        body: None,
    }
}

/// One inclusion: a host serving a role for the fleet, with the key it was included under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Inclusion {
    pub(crate) host: String,
    pub(crate) role: NodeRole,
    pub(crate) labels: Labels,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    included: Vec<Inclusion>,
}

/// The include/exclude decisions, persisted atomically so they survive restarts.
#[derive(Debug)]
pub(crate) struct Inclusions {
    path: PathBuf,
    by_host_role: BTreeMap<(String, NodeRole), Inclusion>,
}

impl Inclusions {
    pub(crate) fn load(path: &Path) -> Result<Inclusions, String> {
        let by_host_role = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
            Ok(bytes) => {
                let file: StateFile = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: line {}: {e}", path.display(), e.line()))?;
                file.included
                    .into_iter()
                    .map(|i| ((i.host.clone(), i.role), i))
                    .collect()
            }
        };
        Ok(Inclusions {
            path: path.to_owned(),
            by_host_role,
        })
    }

    pub(crate) fn get(&self, host: &str, role: NodeRole) -> Option<&Inclusion> {
        self.by_host_role.get(&(host.to_owned(), role))
    }

    pub(crate) fn iter(&self, role: NodeRole) -> impl Iterator<Item = &Inclusion> {
        self.by_host_role.values().filter(move |i| i.role == role)
    }

    /// Applies `change` and persists; on a write failure the change is undone.
    pub(crate) fn update(
        &mut self,
        change: impl FnOnce(&mut BTreeMap<(String, NodeRole), Inclusion>),
    ) -> std::io::Result<()> {
        let before = self.by_host_role.clone();
        change(&mut self.by_host_role);
        if before == self.by_host_role {
            return Ok(());
        }
        let file = StateFile {
            version: 1,
            included: self.by_host_role.values().cloned().collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("state serialises");
        let result = damm_provider::fs::write_atomic(&self.path, &json);
        if result.is_err() {
            self.by_host_role = before;
        }
        result
    }
}
