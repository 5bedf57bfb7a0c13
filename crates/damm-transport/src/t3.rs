//! T3, WireGuard over WebSocket over TLS: what crosses a censor that drops UDP, through a
//! CDN front (or a friend's reverse proxy) that the censor cannot block without great
//! collateral damage.
//!
//! One WireGuard datagram per binary WebSocket message, never coalesced or split (see
//! TRANSPORTS.md). The **gateway** listener speaks plain HTTP/1.1 behind the TLS-terminating
//! edge: the upgrade on its secret path becomes a tunnel to the local WireGuard port; every
//! other request — a wrong path, a plain GET, a prober — gets the same small web page or
//! the same 404, as any web server would. The **client** forwarder is a loopback UDP port
//! that WireGuard uses as its peer endpoint; it dials `wss://host/secret` over TLS (SNI and
//! Host set to the front's hostname, whatever address it dials), pings every
//! `ping_every` so a CDN's idle limit (Cloudflare: 100 s) never ends the socket, and dials
//! again when the socket closes; WireGuard's own handshake recovers the session.
//!
//! Bad input closes that one connection and is counted: frames or messages over
//! `max_message`, text messages, a client slower than `header_timeout` to send its request
//! (slowloris), silence longer than `idle`. Nothing a prober sends reaches WireGuard.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

/// The web page every request but the tunnel's gets: an ordinary site's front page.
const INDEX: &str = "<!doctype html><html><head><title>Welcome</title></head>\
<body><h1>Welcome</h1><p>This site is under construction.</p></body></html>\n";
/// The answer to any other path.
const NOT_FOUND: &str = "<html><head><title>404 Not Found</title></head>\
<body><center><h1>404 Not Found</h1></center></body></html>\n";

/// What a T3 end did, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// WebSocket tunnels opened.
    pub tunnels: AtomicU64,
    /// HTTP requests answered with the web page or a 404 (probes, browsers, wrong paths).
    pub web: AtomicU64,
    /// Datagrams carried towards WireGuard.
    pub inbound: AtomicU64,
    /// Datagrams carried from WireGuard.
    pub outbound: AtomicU64,
    /// Connections closed for bad input (oversize, text, protocol errors).
    pub bad: AtomicU64,
    /// Tunnels closed for silence.
    pub idle: AtomicU64,
    /// Connections turned away at the connection cap.
    pub refused: AtomicU64,
    /// Client dials (first and again).
    pub dials: AtomicU64,
}

impl Stats {
    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The gateway listener's settings.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The secret paths of the tunnel (one per front leading here), each with its leading
    /// `/`.
    pub paths: Vec<String>,
    /// The local WireGuard port.
    pub upstream: SocketAddr,
    /// The largest message or frame (a WireGuard datagram with room to spare).
    pub max_message: usize,
    /// A tunnel with nothing received for this long is closed (the client pings well inside).
    pub idle: Duration,
    /// A client must send its whole request head within this (slowloris).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl GatewayOptions {
    /// Defaults for tunnels on `paths` to WireGuard at `upstream`.
    pub fn new(paths: Vec<String>, upstream: SocketAddr) -> Self {
        GatewayOptions {
            paths,
            upstream,
            max_message: 2048,
            idle: Duration::from_secs(120),
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }

    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
    }
}

/// Serves `listener` until it fails: the tunnel on the secret path, a web site elsewhere.
pub async fn gateway(
    listener: TcpListener,
    options: GatewayOptions,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let options = Arc::new(options);
    let open = Arc::new(AtomicUsize::new(0));
    // Connections (and their tunnels) end with this future: a stopped listener closes them.
    // Tunnels run on tasks of their own once upgraded; they watch `alive`, whose sender
    // goes with this future.
    let mut tasks = tokio::task::JoinSet::new();
    let (_alive, watching) = tokio::sync::watch::channel(());
    loop {
        let (stream, _) = listener.accept().await?;
        while tasks.try_join_next().is_some() {}
        if open.load(Ordering::Relaxed) >= options.max_connections {
            Stats::add(&stats.refused);
            continue; // dropped: closed at once
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (options, stats, open) = (Arc::clone(&options), Arc::clone(&stats), Arc::clone(&open));
        let alive = watching.clone();
        tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
            serve(stream, &options, &stats, alive).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One HTTP/1.1 connection, upgraded when it asks for the tunnel.
async fn serve<S>(
    stream: S,
    options: &Arc<GatewayOptions>,
    stats: &Arc<Stats>,
    alive: tokio::sync::watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn({
        let (options, stats) = (Arc::clone(options), Arc::clone(stats));
        move |req| {
            let (options, stats, alive) = (Arc::clone(&options), Arc::clone(&stats), alive.clone());
            async move { Ok::<_, Infallible>(answer(req, options, stats, alive)) }
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if served.is_err() {
        // A malformed request or a slowloris: the connection is gone, nothing else is.
        Stats::add(&stats.bad);
    }
}

fn page(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html"),
    );
    response
}

fn answer(
    mut req: Request<Incoming>,
    options: Arc<GatewayOptions>,
    stats: Arc<Stats>,
    mut alive: tokio::sync::watch::Receiver<()>,
) -> Response<Full<Bytes>> {
    let tunnel = options.paths.iter().any(|p| p == req.uri().path())
        && req.method() == http::Method::GET
        && header_has(&req, header::UPGRADE, "websocket")
        && header_has(&req, header::CONNECTION, "upgrade");
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (tunnel, key) else {
        Stats::add(&stats.web);
        return match req.uri().path() {
            "/" | "/index.html" => page(StatusCode::OK, INDEX),
            _ => page(StatusCode::NOT_FOUND, NOT_FOUND),
        };
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            Stats::add(&stats.bad);
            return;
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(options.ws_config()),
        )
        .await;
        Stats::add(&stats.tunnels);
        tokio::select! {
            done = tunnel_to_wireguard(ws, &options, &stats) => {
                if let Err(e) = done {
                    tracing::debug!("t3: tunnel closed: {e}");
                }
            }
            // The listener stopped.
            _ = alive.changed() => {}
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Carries datagrams between one WebSocket and the local WireGuard port until either ends,
/// the peer misbehaves or goes silent.
async fn tunnel_to_wireguard<S>(
    mut ws: WebSocketStream<S>,
    options: &GatewayOptions,
    stats: &Stats,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bind: SocketAddr = if options.upstream.is_ipv4() {
        "127.0.0.1:0".parse().expect("an address")
    } else {
        "[::1]:0".parse().expect("an address")
    };
    let udp = UdpSocket::bind(bind).await?;
    udp.connect(options.upstream).await?;
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            message = tokio::time::timeout(options.idle, ws.next()) => {
                let message = match message {
                    Err(_) => {
                        Stats::add(&stats.idle);
                        return ws.close(None).await;
                    }
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => {
                        Stats::add(&stats.bad);
                        return Err(e);
                    }
                    Ok(Some(Ok(m))) => m,
                };
                match message {
                    Message::Binary(datagram) => {
                        if udp.send(&datagram).await.is_ok() {
                            Stats::add(&stats.inbound);
                        }
                    }
                    // Answered by tungstenite on the next write or flush.
                    Message::Ping(_) | Message::Pong(_) => ws.flush().await?,
                    Message::Close(_) => return Ok(()),
                    Message::Text(_) | Message::Frame(_) => {
                        Stats::add(&stats.bad);
                        return ws.close(None).await;
                    }
                }
            }
            got = udp.recv(&mut buf) => {
                let n = got?;
                ws.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await?;
                Stats::add(&stats.outbound);
            }
        }
    }
}

/// How the client reaches the front.
#[derive(Clone)]
pub struct ClientOptions {
    /// `wss://host/secret` (or `ws://` without TLS, for a lab without an edge).
    pub url: String,
    /// The address dialled (the CDN edge's); SNI and Host come from the URL.
    pub connect_to: SocketAddr,
    /// The TLS roots to trust (the system's, or a lab's test CA).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Ping interval: well inside the CDN's idle limit.
    pub ping_every: Duration,
    /// Wait before dialling again after a close.
    pub redial_after: Duration,
    /// The largest message accepted from the gateway.
    pub max_message: usize,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path is the tunnel's secret.
        f.debug_struct("ClientOptions")
            .field("connect_to", &self.connect_to)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Defaults for `url`, dialled at `connect_to`.
    pub fn new(url: impl Into<String>, connect_to: SocketAddr) -> Self {
        ClientOptions {
            url: url.into(),
            connect_to,
            tls: None,
            ping_every: Duration::from_secs(20),
            redial_after: Duration::from_millis(500),
            max_message: 2048,
        }
    }
}

/// A rustls client configuration trusting the PEM certificates in `pem` (a lab's test CA,
/// or an operator's private CA).
pub fn tls_trusting(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("reading the CA certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("adding a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate in the file".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A rustls client configuration trusting the public web's roots (Mozilla's, as
/// `webpki-roots` ships them): what a client uses for a real CDN front.
pub fn tls_public_roots() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The client end: WireGuard's peer endpoint is `local`'s address. Runs until `local` fails;
/// the tunnel is dialled again whenever it closes.
pub async fn client(
    local: UdpSocket,
    options: ClientOptions,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let mut wireguard: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        Stats::add(&stats.dials);
        match dial(&options).await {
            Ok(ws) => {
                let done = carry(ws, &local, &mut wireguard, &mut buf, &options, &stats).await;
                if let Err(e) = done {
                    tracing::debug!("t3: tunnel closed: {e}");
                }
            }
            Err(e) => tracing::debug!("t3: dial failed: {e}"),
        }
        // While the tunnel is down, what WireGuard sends is lost, as on a broken network.
        let pause = tokio::time::sleep(options.redial_after);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                got = local.recv_from(&mut buf) => { wireguard = Some(got?.1); }
            }
        }
    }
}

type Tunnel = WebSocketStream<Box<dyn Stream>>;

/// A byte stream the tunnel runs on: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn dial(options: &ClientOptions) -> Result<Tunnel, String> {
    let request = http::Uri::try_from(options.url.as_str()).map_err(|e| e.to_string())?;
    let host = request.host().ok_or("the URL has no host")?.to_owned();
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(options.connect_to),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match (&options.tls, request.scheme_str()) {
        (Some(tls), Some("wss")) => {
            let name =
                rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        (None, Some("ws")) => Box::new(tcp),
        _ => return Err("wss:// needs TLS roots; ws:// takes none".into()),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message))
        .max_frame_size(Some(options.max_message));
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(options.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn carry(
    mut ws: Tunnel,
    local: &UdpSocket,
    wireguard: &mut Option<SocketAddr>,
    buf: &mut [u8],
    options: &ClientOptions,
    stats: &Stats,
) -> Result<(), tungstenite::Error> {
    let mut ping = tokio::time::interval(options.ping_every);
    ping.tick().await;
    loop {
        tokio::select! {
            got = local.recv_from(buf) => {
                let (n, from) = got?;
                *wireguard = Some(from);
                ws.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await?;
                Stats::add(&stats.outbound);
            }
            message = ws.next() => {
                match message {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Message::Binary(datagram))) => {
                        if let Some(wg) = *wireguard
                            && local.send_to(&datagram, wg).await.is_ok()
                        {
                            Stats::add(&stats.inbound);
                        }
                    }
                    Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => ws.flush().await?,
                }
            }
            _ = ping.tick() => ws.send(Message::Ping(Bytes::new())).await?,
        }
    }
}
