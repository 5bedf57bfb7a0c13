//! T3, WireGuard over WebSocket over TLS: what crosses a censor that drops UDP, through a
//! CDN front (or a friend's reverse proxy) that the censor cannot block without great
//! collateral damage.
//!
//! One WireGuard datagram per binary WebSocket message, never coalesced or split (see
//! TRANSPORTS.md). The **gateway** listener speaks plain HTTP/1.1 behind the TLS-terminating
//! edge: the upgrade on its secret path becomes a tunnel to the local WireGuard port; every
//! other request — a wrong path, a plain GET, a prober — gets the same small web page or
//! the same 404, as any web server would. The **client** forwarder is a loopback UDP port
//! that WireGuard uses as its peer endpoint; once WireGuard first sends, it dials
//! `wss://host/secret` over TLS (SNI and Host set to the front's hostname, whatever address
//! it dials), pings every `ping_every` so a CDN's idle limit (Cloudflare: 100 s) never ends
//! the socket, and dials again when the socket closes or freezes (a censor that stops a
//! flow after a few kilobytes: a probe ping goes unanswered); the datagram that waited for
//! the dial goes first, and WireGuard's session carries on.
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
    /// Client probes: a WebSocket ping sent because the tunnel had sent and then heard
    /// nothing for `stall_after`.
    pub probes: AtomicU64,
    /// Client tunnels found frozen (a probe unanswered for `probe_timeout`, or a send stuck
    /// as long), dropped and dialled again at once.
    pub stalls: AtomicU64,
    /// T2: connections whose TLS handshake failed or did not finish in time (scanners,
    /// probes with the wrong name, slowloris before TLS).
    pub tls_failed: AtomicU64,
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
    /// T2: the listener ends TLS itself with this configuration (its certificate); `None`
    /// for T3, behind a CDN's TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
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
            tls: None,
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
            match &options.tls {
                None => serve(stream, &options, &stats, alive).await,
                // T2: TLS first, within the same limit as a request head.
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
                    match tokio::time::timeout(options.header_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => serve(stream, &options, &stats, alive).await,
                        _ => Stats::add(&stats.tls_failed),
                    }
                }
            }
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

/// Serves one connection as [`gateway`] does, and waits for the tunnel it may open to end
/// too: the fuzz target's way in (`fuzz/fuzz_targets/t3_gateway.rs`), for any byte stream
/// (an in-memory duplex). Not an API.
#[doc(hidden)]
pub async fn serve_one<S>(stream: S, options: GatewayOptions, stats: Arc<Stats>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (alive, watching) = tokio::sync::watch::channel(());
    serve(stream, &Arc::new(options), &stats, watching).await;
    // A tunnel runs on a task of its own holding a receiver: it ends with its stream.
    alive.closed().await;
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
    /// Wait before dialling again after a close (not after a stall: that dials at once).
    pub redial_after: Duration,
    /// The largest message accepted from the gateway.
    pub max_message: usize,
    /// A tunnel that has sent something since it last received anything, and whose last
    /// receive is older than this, is probed with one WebSocket ping. A tunnel that sends
    /// nothing is never probed (its keepalive pings are no probe).
    pub stall_after: Duration,
    /// A probed tunnel that receives nothing at all (the pong, a datagram) within this is
    /// frozen (a censor freezing flows after a few kilobytes): it is dropped and dialled
    /// again at once. A send that cannot finish within `stall_after + probe_timeout` is a
    /// frozen tunnel too.
    pub probe_timeout: Duration,
    /// The whole dial (TCP, TLS, the upgrade) must finish within this.
    pub dial_timeout: Duration,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path is the tunnel's secret.
        f.debug_struct("ClientOptions")
            .field("connect_to", &self.connect_to)
            .field("tls", &self.tls.is_some())
            .field("stall_after", &self.stall_after)
            .field("probe_timeout", &self.probe_timeout)
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
            ping_every: Duration::from_secs(15),
            redial_after: Duration::from_millis(500),
            max_message: 2048,
            stall_after: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            dial_timeout: Duration::from_secs(10),
        }
    }
}

/// A rustls server configuration for a T2 listener: the certificate chain and private key
/// in PEM (as certbot and most CAs write them), HTTP/1.1 offered by ALPN as a web server
/// would. Errors name what is wrong, never the key.
pub fn tls_server(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the chain file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| "the key file holds no PEM private key".to_owned())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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

/// The client end: WireGuard's peer endpoint is `local`'s address. Runs until `local` fails.
///
/// Nothing is dialled before WireGuard sends its first datagram: a forwarder started for a
/// race it loses opens no connection to the front. The latest datagram that arrives while
/// no tunnel is up (before the first dial, during a dial, during the pause after a close)
/// is held and sent first once a tunnel is up, so a handshake initiation is never lost to a
/// dial. A closed tunnel is dialled again after `redial_after`; a frozen one (see
/// [`ClientOptions::stall_after`]) at once.
pub async fn client(
    local: UdpSocket,
    options: ClientOptions,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536];
    let mut held = Held::default();
    let got = local.recv_from(&mut buf).await?;
    held.hold(got, &buf);
    loop {
        Stats::add(&stats.dials);
        let dialled = {
            let dialling = dial(&options);
            tokio::pin!(dialling);
            loop {
                tokio::select! {
                    dialled = &mut dialling => break dialled,
                    got = local.recv_from(&mut buf) => held.hold(got?, &buf),
                }
            }
        };
        let pause = match dialled {
            Ok(ws) => match carry(ws, &local, &mut held, &mut buf, &options, &stats).await? {
                Ended::Stalled => {
                    Stats::add(&stats.stalls);
                    Duration::ZERO
                }
                Ended::Closed => options.redial_after,
            },
            Err(e) => {
                tracing::debug!("t3: dial failed: {e}");
                options.redial_after
            }
        };
        if pause.is_zero() {
            continue;
        }
        let pause = tokio::time::sleep(pause);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                got = local.recv_from(&mut buf) => held.hold(got?, &buf),
            }
        }
    }
}

/// What the client keeps between tunnels: where WireGuard sends from, and the latest
/// datagram it sent while no tunnel was up.
#[derive(Default)]
struct Held {
    wireguard: Option<SocketAddr>,
    pending: Option<Bytes>,
}

impl Held {
    fn hold(&mut self, (n, from): (usize, SocketAddr), buf: &[u8]) {
        self.wireguard = Some(from);
        self.pending = Some(Bytes::copy_from_slice(&buf[..n]));
    }
}

type Tunnel = WebSocketStream<Box<dyn Stream>>;

/// A byte stream the tunnel runs on: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn dial(options: &ClientOptions) -> Result<Tunnel, String> {
    tokio::time::timeout(options.dial_timeout, dial_unbounded(options))
        .await
        .map_err(|_| format!("the dial took over {:?}", options.dial_timeout))?
}

async fn dial_unbounded(options: &ClientOptions) -> Result<Tunnel, String> {
    let request = http::Uri::try_from(options.url.as_str()).map_err(|e| e.to_string())?;
    let host = request.host().ok_or("the URL has no host")?.to_owned();
    let tcp = TcpStream::connect(options.connect_to)
        .await
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

/// Why a tunnel ended.
enum Ended {
    /// Closed by either end, or broken: dial again after `redial_after`.
    Closed,
    /// Frozen: nothing came back after a probe (or a send stuck). Dial again at once.
    Stalled,
}

/// Sends `message`, or says how the tunnel ended: a send still stuck after `limit` (the
/// socket's buffer full and nothing acknowledged) is a frozen flow.
async fn send(ws: &mut Tunnel, message: Message, limit: Duration) -> Result<(), Ended> {
    match tokio::time::timeout(limit, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!("t3: tunnel closed: {e}");
            Err(Ended::Closed)
        }
        Err(_) => {
            tracing::debug!("t3: a send stuck for {limit:?}: the tunnel froze");
            Err(Ended::Stalled)
        }
    }
}

/// Carries datagrams between WireGuard and one tunnel until the tunnel ends (`Ok`) or
/// `local` fails (`Err`). The datagram `held` sends first.
///
/// Stall detection: the tunnel remembers when it last received anything (a datagram, a
/// pong) and whether it has sent a datagram since. Sent-since and a last receive older than
/// `stall_after` sends one ping as a probe; nothing at all within `probe_timeout` after it
/// is a frozen flow. A tunnel that sends nothing is never probed: its keepalive pings
/// alone never make it a stall.
async fn carry(
    mut ws: Tunnel,
    local: &UdpSocket,
    held: &mut Held,
    buf: &mut [u8],
    options: &ClientOptions,
    stats: &Stats,
) -> std::io::Result<Ended> {
    use tokio::time::Instant;

    let limit = options.stall_after + options.probe_timeout;
    // The upgrade's answer is the first thing received.
    let mut last_received = Instant::now();
    let mut sent_since = false;
    let mut probed: Option<Instant> = None;
    if let Some(datagram) = held.pending.take() {
        if let Err(end) = send(&mut ws, Message::Binary(datagram), limit).await {
            return Ok(end);
        }
        Stats::add(&stats.outbound);
        sent_since = true;
    }
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + options.ping_every, options.ping_every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let check = match probed {
            Some(at) => Some(at + options.probe_timeout),
            None if sent_since => Some(last_received + options.stall_after),
            None => None,
        };
        let check = async move {
            match check {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = local.recv_from(buf) => {
                let (n, from) = got?;
                held.wireguard = Some(from);
                let datagram = Bytes::copy_from_slice(&buf[..n]);
                if let Err(end) = send(&mut ws, Message::Binary(datagram), limit).await {
                    return Ok(end);
                }
                Stats::add(&stats.outbound);
                sent_since = true;
            }
            message = ws.next() => {
                last_received = Instant::now();
                sent_since = false;
                probed = None;
                match message {
                    None | Some(Ok(Message::Close(_))) => return Ok(Ended::Closed),
                    Some(Err(e)) => {
                        tracing::debug!("t3: tunnel closed: {e}");
                        return Ok(Ended::Closed);
                    }
                    Some(Ok(Message::Binary(datagram))) => {
                        if let Some(wg) = held.wireguard
                            && local.send_to(&datagram, wg).await.is_ok()
                        {
                            Stats::add(&stats.inbound);
                        }
                    }
                    // A ping is answered by tungstenite on the next write or flush.
                    Some(Ok(_)) => {
                        match tokio::time::timeout(limit, ws.flush()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return Ok(Ended::Closed),
                            Err(_) => return Ok(Ended::Stalled),
                        }
                    }
                }
            }
            _ = keepalive.tick() => {
                if let Err(end) = send(&mut ws, Message::Ping(Bytes::new()), limit).await {
                    return Ok(end);
                }
            }
            () = check => {
                if probed.is_some() {
                    tracing::debug!(
                        "t3: nothing received {:?} after a probe: the tunnel froze",
                        options.probe_timeout
                    );
                    return Ok(Ended::Stalled);
                }
                Stats::add(&stats.probes);
                if let Err(end) = send(&mut ws, Message::Ping(Bytes::new()), limit).await {
                    return Ok(end);
                }
                probed = Some(Instant::now());
            }
        }
    }
}
