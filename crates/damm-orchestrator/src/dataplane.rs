//! The data plane's side of the `damm` tool, kept thin over `damm-agent`:
//!
//! - `damm agent`: a gateway pulls its signed configuration from the orchestrator
//!   (`GET /v1/gateways/{id}/config`), verifies it against the trusted catalog key (signature,
//!   gateway id, expiry, no version older than the last applied) and applies it with
//!   [`GatewayAgent`];
//! - `damm client`: a client keeps a verified catalog (the last accepted version is kept on disk,
//!   so a rolled-back catalog is refused across restarts too), runs [`ClientAgent`] and posts its
//!   reports to `POST /v1/reports` with its report token.
//!
//! WireGuard is driven with the `wg` tool; builds with the `wireguard-control` feature (LGPL,
//! off by default) may use that crate instead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use damm_agent::Host;
use damm_agent::agent::{GatewayAgent, GatewayInterfaces};
use damm_agent::client::{ClientAgent, ClientSettings, Report};
use damm_agent::wg::{WgTool, WireGuard};
use damm_catalog::{Catalog, GatewayConfig, PrivateKey, PublicKey};
use serde::Deserialize;
use tracing::{info, warn};

use crate::enroll::EnrollmentFile;

/// Timeout of every request to the orchestrator or the catalog source.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client for the orchestrator and the catalog source.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// Sends `request` (`what` names it in errors: `GET <url>`) and fails on a status other than
/// success, with the server's reply when it gave one.
async fn send(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        match text.trim() {
            "" => bail!("{what}: {status}"),
            text => bail!("{what}: {status}: {text}"),
        }
    }
    Ok(response)
}

/// Waits for the next of `ticks`; false once `stop` reads true or its sender is gone. A change
/// of `stop` that leaves it false starts a round at once.
async fn next_round(
    ticks: &mut tokio::time::Interval,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = ticks.tick() => true,
        changed = stop.changed() => changed.is_ok() && !*stop.borrow(),
    }
}

/// Reads a trusted catalog public key (minisign format, e.g. `keys/catalog.pub`).
pub fn trusted_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the trusted key {}", path.display()))?;
    PublicKey::from_minisign(&text).with_context(|| path.display().to_string())
}

/// Reads a one-line secret (a gateway credential) from `path`; the error names the file,
/// never its content.
pub fn secret_file(path: &Path) -> anyhow::Result<damm_provider::SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {}", path.display()))?;
    let line = text.trim();
    if line.is_empty() || line.contains('\n') {
        anyhow::bail!("{}: expected one line holding the secret", path.display());
    }
    Ok(line.to_owned().into())
}

/// Reads a WireGuard private key file (base64, as `wg genkey` writes and cloud-init installs).
pub fn private_key_file(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the private key {}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| {
            format!(
                "{}: not a WireGuard key (32 bytes of base64)",
                path.display()
            )
        })?;
    Ok(PrivateKey::from_bytes(bytes))
}

/// How WireGuard is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The `wg` tool (kernel or userspace interfaces).
    WgTool,
    /// `wireguard-control` over the userspace UAPI socket (wireguard-go).
    #[cfg(feature = "wireguard-control")]
    ControlUserspace,
    /// `wireguard-control` over kernel netlink.
    #[cfg(feature = "wireguard-control")]
    ControlKernel,
}

impl Backend {
    /// The backend on `host`.
    pub fn build(self, host: &Host) -> Box<dyn WireGuard> {
        match self {
            Backend::WgTool => Box::new(WgTool::new(host.clone())),
            #[cfg(feature = "wireguard-control")]
            Backend::ControlUserspace => Box::new(damm_agent::wg::WgControl::userspace()),
            #[cfg(feature = "wireguard-control")]
            Backend::ControlKernel => Box::new(damm_agent::wg::WgControl::kernel()),
        }
    }
}

/// The orchestrator's HTTP API, as gateways and clients use it.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    base: String,
    http: reqwest::Client,
    gateway_token: Option<damm_provider::SecretString>,
}

#[derive(Deserialize)]
struct SignedConfigBody {
    json: String,
    signature: String,
}

impl Orchestrator {
    /// The orchestrator at `base` (`http://127.0.0.1:9477`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Orchestrator {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client()?,
            gateway_token: None,
        })
    }

    /// Presents `token` (the gateway's credential, `damm gateway-token`) when fetching a
    /// gateway config.
    pub fn with_gateway_token(mut self, token: damm_provider::SecretString) -> Self {
        self.gateway_token = Some(token);
        self
    }

    /// Fetches and verifies gateway `id`'s configuration: signed by a trusted key, for this
    /// gateway, not expired, not older than `last_version`.
    pub async fn gateway_config(
        &self,
        id: &str,
        trusted: &[PublicKey],
        last_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<GatewayConfig> {
        let url = format!("{}/v1/gateways/{id}/config", self.base);
        let mut request = self.http.get(&url);
        if let Some(token) = &self.gateway_token {
            use damm_provider::ExposeSecret as _;
            request = request.bearer_auth(token.expose_secret());
        }
        let response = send(request, &format!("GET {url}")).await?;
        let body: SignedConfigBody = response
            .json()
            .await
            .with_context(|| format!("GET {url}: not a signed gateway config"))?;
        let config = damm_catalog::verify_gateway_config(
            body.json.as_bytes(),
            &body.signature,
            trusted,
            last_version,
            now,
        )
        .with_context(|| format!("GET {url}: rejected"))?;
        if config.gateway != id {
            bail!(
                "GET {url}: rejected: the config is for gateway `{}`",
                config.gateway
            );
        }
        Ok(config)
    }

    /// Posts one report with the client's token. The token never appears in errors.
    pub async fn post_report(&self, token: &str, report: &Report) -> anyhow::Result<()> {
        let url = format!("{}/v1/reports", self.base);
        let request = self.http.post(&url).bearer_auth(token).json(report);
        send(request, &format!("POST {url}")).await?;
        Ok(())
    }
}

/// Where a client gets its catalog: a file (its signature is `FILE.minisig`) or a URL (its
/// signature is `URL.minisig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogSource {
    /// A local file.
    File(PathBuf),
    /// An `http(s)://` URL.
    Url(String),
}

impl CatalogSource {
    /// A URL when it starts with `http://` or `https://`, else a file.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            CatalogSource::Url(text.to_owned())
        } else {
            CatalogSource::File(PathBuf::from(text))
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> anyhow::Result<(Vec<u8>, String)> {
        match self {
            CatalogSource::File(path) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let sig_path = PathBuf::from(format!("{}.minisig", path.display()));
                let sig = std::fs::read_to_string(&sig_path)
                    .with_context(|| format!("reading {}", sig_path.display()))?;
                Ok((bytes, sig))
            }
            CatalogSource::Url(url) => {
                let get = |url: String| async move {
                    let what = format!("GET {url}");
                    let response = send(http.get(&url), &what).await?;
                    anyhow::Ok(response.bytes().await.context(what)?.to_vec())
                };
                let bytes = get(url.clone()).await?;
                let sig = get(format!("{url}.minisig")).await?;
                Ok((bytes, String::from_utf8_lossy(&sig).into_owned()))
            }
        }
    }
}

/// The last catalog version a client accepted, kept in a file so a restart cannot be rolled
/// back either.
#[derive(Debug, Clone)]
pub struct VersionFile(pub PathBuf);

impl VersionFile {
    /// The version stored, if any.
    pub fn load(&self) -> anyhow::Result<Option<u64>> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .with_context(|| format!("{}: not a catalog version", self.0.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.0.display())),
        }
    }

    /// Stores `version` atomically.
    pub fn store(&self, version: u64) -> anyhow::Result<()> {
        damm_provider::fs::write_atomic(&self.0, format!("{version}\n").as_bytes())
            .with_context(|| format!("writing {}", self.0.display()))
    }
}

/// Fetches the catalog from `source` and verifies it against `trusted` and the version in
/// `versions` (refusing an older one); stores the accepted version.
pub async fn fetch_catalog(
    source: &CatalogSource,
    trusted: &[PublicKey],
    versions: &VersionFile,
    now: DateTime<Utc>,
) -> anyhow::Result<Catalog> {
    let (bytes, signature) = source.fetch(&http_client()?).await?;
    let last = versions.load()?;
    let catalog = damm_catalog::verify(&bytes, &signature, trusted, last, now)
        .with_context(|| format!("catalog from {source:?}: rejected"))?;
    if last != Some(catalog.version) {
        versions.store(catalog.version)?;
    }
    Ok(catalog)
}

/// `damm agent`'s settings.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The gateway's id (its node key).
    pub gateway: String,
    /// The orchestrator's base URL.
    pub orchestrator: String,
    /// The trusted catalog key.
    pub trusted: PublicKey,
    /// The gateway's config credential, when the orchestrator asks for one.
    pub token: Option<damm_provider::SecretString>,
    /// The gateway's WireGuard private key.
    pub private_key_file: PathBuf,
    /// T2's certificate chain and key (PEM), used where the config asks for T2.
    pub t2_certificate: Option<(PathBuf, PathBuf)>,
    /// Its interfaces.
    pub interfaces: GatewayInterfaces,
    /// How WireGuard is driven.
    pub backend: Backend,
    /// How often the config is pulled.
    pub interval: Duration,
}

/// Pulls, verifies and applies the gateway's config every `interval` until `stop`; a failed
/// round is logged and retried (the last applied config keeps running).
pub async fn run_gateway(
    options: GatewayOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let host = Host::local();
    // The unit makes the interfaces in the kernel where it can; where it could not (no
    // WireGuard module), they are made in userspace here.
    let interfaces = &options.interfaces;
    for iface in std::iter::once(&interfaces.main).chain(&interfaces.backbone) {
        match host.ensure_wireguard(iface)? {
            damm_agent::WireguardLink::Existing => {}
            made => info!(interface = %iface, "made the WireGuard interface: {made:?}"),
        }
    }
    let agent = GatewayAgent::new(
        host.clone(),
        options.backend.build(&host),
        private_key_file(&options.private_key_file)?,
        options.interfaces.clone(),
    );
    let mut orchestrator = Orchestrator::new(&options.orchestrator)?;
    if let Some(token) = options.token {
        orchestrator = orchestrator.with_gateway_token(token);
    }
    let trusted = [options.trusted];
    let mut applied: Option<u64> = None;
    let mut listeners = damm_agent::listeners::TransportListeners::new();
    if let Some((chain, key)) = &options.t2_certificate {
        listeners = listeners.with_t2_certificate(chain, key);
    }
    let mut ticks = tokio::time::interval(options.interval);
    while next_round(&mut ticks, &mut stop).await {
        let config = match orchestrator
            .gateway_config(&options.gateway, &trusted, applied, Utc::now())
            .await
        {
            Ok(config) => config,
            Err(e) => {
                warn!("gateway config: {e:#}");
                continue;
            }
        };
        match agent.apply(&config) {
            Ok(outcome) => {
                if applied != Some(config.version) || outcome.peer_changes > 0 {
                    info!(
                        version = config.version,
                        peers = config.peers.len(),
                        peer_changes = outcome.peer_changes,
                        "gateway config applied"
                    );
                }
                applied = Some(config.version);
                // The transports' listeners follow the config that WireGuard took.
                if let Err(e) = listeners
                    .apply(&config.transports, config.listen_port)
                    .await
                {
                    warn!(version = config.version, "transport listeners: {e}");
                }
            }
            Err(e) => warn!(version = config.version, "applying the gateway config: {e}"),
        }
    }
    Ok(())
}

/// `damm client`'s settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The enrollment bundle file.
    pub enrollment: PathBuf,
    /// Where the catalog comes from.
    pub catalog: CatalogSource,
    /// The trusted catalog key.
    pub trusted: PublicKey,
    /// The orchestrator's base URL, for reports.
    pub orchestrator: String,
    /// The client's WireGuard interface (created beforehand).
    pub interface: String,
    /// Prefixes routed into the tunnel.
    pub routes: Vec<String>,
    /// How WireGuard is driven.
    pub backend: Backend,
    /// How often the peer is sampled.
    pub poll: Duration,
    /// How often the catalog is fetched again.
    pub refresh: Duration,
    /// Where the last accepted catalog version is kept.
    pub version_file: PathBuf,
    /// Where the client remembers which transports worked on which network.
    pub networks_file: PathBuf,
    /// CA certificates T3 fronts are checked against instead of the public web's roots.
    pub transport_ca: Option<PathBuf>,
    /// Edge addresses dialled for T3 fronts instead of their DNS answers.
    pub front_addresses: Vec<(String, std::net::SocketAddr)>,
}

/// Runs the client until `stop`: connects through the best path, fails over when it goes
/// quiet, refreshes the catalog, posts reports.
pub async fn run_client(
    options: ClientOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(&options.enrollment)
        .with_context(|| format!("reading {}", options.enrollment.display()))?;
    let file = EnrollmentFile::from_json(&bytes)
        .with_context(|| options.enrollment.display().to_string())?;
    let trusted = [options.trusted];
    let versions = VersionFile(options.version_file.clone());
    let catalog = fetch_catalog(&options.catalog, &trusted, &versions, Utc::now()).await?;
    let mut settings = ClientSettings::new(&options.interface, file.keepalive_s);
    settings.routes = options.routes.clone();
    let host = Host::local();
    let mut agent = ClientAgent::new(
        host.clone(),
        options.backend.build(&host),
        file.enrollment()?,
        settings,
        catalog,
    );
    if let Some(ca) = &options.transport_ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let tls =
            damm_agent::tls_trusting(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        agent.set_transport_tls(tls);
    }
    for (host, edge) in &options.front_addresses {
        agent.pin_front(host.clone(), *edge);
    }
    damm_agent::networks::check_file(&options.networks_file)?;
    agent.set_network_memory(damm_agent::networks::NetworkMemory::load(
        &options.networks_file,
    ));
    let path = agent.connect(Instant::now())?;
    info!(client = %file.client, path = %path.path_id, "connected");
    let orchestrator = Orchestrator::new(&options.orchestrator)?;
    let mut ticks = tokio::time::interval(options.poll);
    let mut refreshed = Instant::now();
    while next_round(&mut ticks, &mut stop).await {
        match agent.tick(Instant::now()) {
            Ok(reports) => {
                for report in reports {
                    if let Err(e) = orchestrator.post_report(&file.token, &report).await {
                        warn!("report on {}: {e:#}", report.path_id);
                    }
                }
            }
            Err(e) => warn!("client tick: {e}"),
        }
        if refreshed.elapsed() >= options.refresh {
            refreshed = Instant::now();
            match fetch_catalog(&options.catalog, &trusted, &versions, Utc::now()).await {
                Ok(catalog) => agent.update_catalog(catalog),
                Err(e) => warn!("catalog refresh (keeping the current one): {e:#}"),
            }
        }
    }
    Ok(())
}
