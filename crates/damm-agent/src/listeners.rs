//! The gateway's transport listeners: what its signed config asks for beside WireGuard (T1
//! obfuscated UDP, T3 WebSocket tunnels behind a CDN front, T2 the same tunnels over TLS
//! with the gateway's own certificate), started, restarted when their settings change (a new
//! key, a front moved here or away, a renewed certificate) and stopped when they are no
//! longer asked for. Each hands what it carries to WireGuard on loopback.
//!
//! T2's certificate never travels in the config: the gateway holds it (a wildcard for the
//! fleet's `t2_domain`, from the operator's CA or ACME client) in the files given to
//! [`TransportListeners::with_t2_certificate`].

use std::net::SocketAddr;
use std::sync::Arc;

use std::path::PathBuf;

use damm_catalog::{GatewayT1, GatewayT2, GatewayT3, GatewayTransports};
use damm_transport::{relay, t1, t3};
use tokio::task::JoinHandle;

use crate::AgentError;

/// A listener task: stopped when dropped.
struct Running<S> {
    settings: S,
    wireguard_port: u16,
    task: JoinHandle<()>,
}

impl<S> Running<S> {
    /// Stops it and waits until its socket is closed, so that the port can be taken again
    /// (an abort alone ends the task only at its next poll).
    async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The listeners running now.
#[derive(Default)]
pub struct TransportListeners {
    t1: Option<Running<GatewayT1>>,
    t2: Option<Running<(GatewayT2, Certificate)>>,
    t3: Option<Running<GatewayT3>>,
    /// What they did (shared by every listener started).
    t1_stats: Arc<relay::Stats>,
    t2_stats: Arc<t3::Stats>,
    t3_stats: Arc<t3::Stats>,
    /// T2's certificate chain and key files (PEM).
    t2_files: Option<(PathBuf, PathBuf)>,
}

/// T2's certificate as read from its files: compared to notice a renewal, never shown.
#[derive(Clone, PartialEq, Eq)]
struct Certificate {
    chain: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for TransportListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportListeners")
            .field("t1", &self.t1.as_ref().map(|r| r.settings.port))
            .field("t2", &self.t2.as_ref().map(|r| r.settings.0.port))
            .field("t3", &self.t3.as_ref().map(|r| r.settings.port))
            .finish()
    }
}

/// Whether `running` is what `wanted` asks for, in front of the same WireGuard port.
fn unchanged<S: PartialEq>(
    running: &Option<Running<S>>,
    wanted: Option<&S>,
    wireguard_port: u16,
) -> bool {
    match (running, wanted) {
        (Some(r), Some(w)) => r.settings == *w && r.wireguard_port == wireguard_port,
        (None, None) => true,
        _ => false,
    }
}

fn wireguard(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn bind_error(what: &str, port: u16) -> impl Fn(std::io::Error) -> AgentError + '_ {
    move |e| AgentError::Invalid(format!("{what} listener on port {port}: {e}"))
}

impl TransportListeners {
    /// None running.
    pub fn new() -> Self {
        Self::default()
    }

    /// The T1 listeners' counters.
    pub fn t1_stats(&self) -> &relay::Stats {
        &self.t1_stats
    }

    /// Gives T2 its certificate chain and key (PEM files, read again at every apply so a
    /// renewal restarts the listener).
    pub fn with_t2_certificate(
        mut self,
        chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.t2_files = Some((chain.into(), key.into()));
        self
    }

    /// What the T2 listener did.
    pub fn t2_stats(&self) -> &t3::Stats {
        &self.t2_stats
    }

    /// The T3 listeners' counters.
    pub fn t3_stats(&self) -> &t3::Stats {
        &self.t3_stats
    }

    /// Makes the running listeners match `wanted`, WireGuard being on loopback at
    /// `wireguard_port`. A listener whose settings did not change keeps running (and its
    /// tunnels). Needs a tokio runtime. On an error the listeners that could start run.
    pub async fn apply(
        &mut self,
        wanted: &GatewayTransports,
        wireguard_port: u16,
    ) -> Result<(), AgentError> {
        let mut result = Ok(());
        if !unchanged(&self.t1, wanted.t1.as_ref(), wireguard_port) {
            // Stopped first: the new one may take the same port.
            if let Some(old) = self.t1.take() {
                old.stop().await;
            }
            if let Some(w) = &wanted.t1 {
                match self.start_t1(w, wireguard_port).await {
                    Ok(running) => self.t1 = Some(running),
                    Err(e) => result = Err(e),
                }
            }
        }
        let t2 = match (&wanted.t2, &self.t2_files) {
            (Some(w), Some((chain, key))) => match read_certificate(chain, key) {
                Ok(certificate) => Some((w.clone(), certificate)),
                Err(e) => {
                    result = result.and(Err(e));
                    None
                }
            },
            (Some(_), None) => {
                result = result.and(Err(AgentError::Invalid(
                    "the config asks for T2 but this gateway has no certificate \
                     (--t2-certificate and --t2-key)"
                        .into(),
                )));
                None
            }
            (None, _) => None,
        };
        if !unchanged(&self.t2, t2.as_ref(), wireguard_port) {
            if let Some(old) = self.t2.take() {
                old.stop().await;
            }
            if let Some(w) = t2 {
                match self.start_t2(w, wireguard_port).await {
                    Ok(running) => self.t2 = Some(running),
                    Err(e) => result = result.and(Err(e)),
                }
            }
        }
        if !unchanged(&self.t3, wanted.t3.as_ref(), wireguard_port) {
            if let Some(old) = self.t3.take() {
                old.stop().await;
            }
            if let Some(w) = &wanted.t3 {
                match self.start_t3(w, wireguard_port).await {
                    Ok(running) => self.t3 = Some(running),
                    Err(e) => result = result.and(Err(e)),
                }
            }
        }
        result
    }

    async fn start_t1(
        &self,
        wanted: &GatewayT1,
        wireguard_port: u16,
    ) -> Result<Running<GatewayT1>, AgentError> {
        let key = wanted
            .key
            .to_bytes()
            .ok_or_else(|| AgentError::Invalid("the T1 key is not 64 hex digits".into()))?;
        let socket = tokio::net::UdpSocket::bind(("0.0.0.0", wanted.port))
            .await
            .map_err(bind_error("T1", wanted.port))?;
        let stats = Arc::clone(&self.t1_stats);
        let upstream = wireguard(wireguard_port);
        let task = tokio::spawn(async move {
            let options = relay::Options::default();
            if let Err(e) =
                relay::gateway(socket, upstream, t1::Key::new(&key), options, stats).await
            {
                tracing::warn!("T1 listener stopped: {e}");
            }
        });
        tracing::info!(port = wanted.port, "T1 listener started");
        Ok(Running {
            settings: wanted.clone(),
            wireguard_port,
            task,
        })
    }

    async fn start_t3(
        &self,
        wanted: &GatewayT3,
        wireguard_port: u16,
    ) -> Result<Running<GatewayT3>, AgentError> {
        let task = tunnels(
            "T3",
            wanted.port,
            &wanted.paths,
            None,
            wireguard_port,
            Arc::clone(&self.t3_stats),
        )
        .await?;
        Ok(Running {
            settings: wanted.clone(),
            wireguard_port,
            task,
        })
    }

    async fn start_t2(
        &self,
        wanted: (GatewayT2, Certificate),
        wireguard_port: u16,
    ) -> Result<Running<(GatewayT2, Certificate)>, AgentError> {
        let (t2, certificate) = &wanted;
        let tls = t3::tls_server(&certificate.chain, &certificate.key)
            .map_err(|e| AgentError::Invalid(format!("T2 certificate: {e}")))?;
        let task = tunnels(
            "T2",
            t2.port,
            &t2.paths,
            Some(tls),
            wireguard_port,
            Arc::clone(&self.t2_stats),
        )
        .await?;
        Ok(Running {
            settings: wanted,
            wireguard_port,
            task,
        })
    }
}

/// Reads T2's certificate files.
fn read_certificate(chain: &PathBuf, key: &PathBuf) -> Result<Certificate, AgentError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| AgentError::Invalid(format!("T2 certificate: {}: {e}", path.display())))
    };
    Ok(Certificate {
        chain: read(chain)?,
        key: read(key)?,
    })
}

/// Starts a WebSocket tunnel listener (T3 behind a CDN, or T2 with `tls`) on `port`.
async fn tunnels(
    name: &'static str,
    port: u16,
    paths: &[String],
    tls: Option<Arc<rustls::ServerConfig>>,
    wireguard_port: u16,
    stats: Arc<t3::Stats>,
) -> Result<JoinHandle<()>, AgentError> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(bind_error(name, port))?;
    let paths = paths.iter().map(|p| format!("/{p}")).collect();
    let mut options = t3::GatewayOptions::new(paths, wireguard(wireguard_port));
    options.tls = tls;
    let task = tokio::spawn(async move {
        if let Err(e) = t3::gateway(listener, options, stats).await {
            tracing::warn!("{name} listener stopped: {e}");
        }
    });
    tracing::info!(port, "{name} listener started");
    Ok(task)
}
