//! T1 relays: the gateway's listener, which opens T1 datagrams and hands them to the local
//! WireGuard port, and the client's forwarder, a loopback port that WireGuard uses as its
//! peer endpoint and that seals everything towards the gateway.
//!
//! The gateway keeps one upstream socket per client address (so WireGuard sees each client
//! as its own endpoint and roams with it), forgets it after `idle`, and holds at most
//! `max_sessions`. Whatever does not open, is replayed or stale is dropped and counted, never
//! answered: the listener looks like a closed UDP port to a prober.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::Mutex;

use crate::t1::{self, Key, ReplayGuard, Sealer, T1Error};

/// What a relay did, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams carried towards WireGuard.
    pub inbound: AtomicU64,
    /// Datagrams carried from WireGuard.
    pub outbound: AtomicU64,
    /// Datagrams that did not open (probes, noise, a wrong key, tampering).
    pub unauthentic: AtomicU64,
    /// Replayed or stale datagrams.
    pub replayed: AtomicU64,
    /// Datagrams too short or too long to be T1.
    pub malformed: AtomicU64,
    /// Client sessions opened (gateway).
    pub sessions: AtomicU64,
    /// New clients turned away because `max_sessions` were open (gateway).
    pub refused_sessions: AtomicU64,
}

impl Stats {
    fn count(&self, error: &T1Error) {
        let counter = match error {
            T1Error::Unauthentic | T1Error::BadLength(_) => &self.unauthentic,
            T1Error::Replayed | T1Error::Stale { .. } => &self.replayed,
            _ => &self.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Settings shared by both ends.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest random padding per datagram.
    pub pad_max: usize,
    /// Timestamps further than this from the receiver's clock are refused.
    pub replay_window: Duration,
    /// Nonces the replay guard remembers at most.
    pub replay_capacity: usize,
    /// A gateway session with no traffic for this long is closed.
    pub idle: Duration,
    /// Client sessions a gateway holds at once.
    pub max_sessions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pad_max: t1::DEFAULT_PAD_MAX,
            replay_window: Duration::from_secs(120),
            replay_capacity: 1 << 20,
            idle: Duration::from_secs(180),
            max_sessions: 4096,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens and admits one datagram, counting what it refuses.
fn accept(key: &Key, guard: &mut ReplayGuard, stats: &Stats, wire: &[u8]) -> Option<Vec<u8>> {
    let opened = t1::open(key, wire).and_then(|o| guard.admit(&o, now_ms()).map(|()| o));
    match opened {
        Ok(o) => Some(o.datagram),
        Err(e) => {
            stats.count(&e);
            tracing::debug!("t1: dropped a datagram: {e}");
            None
        }
    }
}

struct Session {
    upstream: Arc<UdpSocket>,
    last: Instant,
}

/// The gateway end: serves `listen` until it fails, handing opened datagrams to WireGuard
/// at `upstream` and sealing its answers back to each client.
pub async fn gateway(
    listen: UdpSocket,
    upstream: SocketAddr,
    key: Key,
    options: Options,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let listen = Arc::new(listen);
    let sealer = Arc::new(Sealer::new(key, options.pad_max));
    let mut guard = ReplayGuard::new(
        options.replay_window.as_millis() as u64,
        options.replay_capacity,
    );
    let sessions: Arc<Mutex<HashMap<SocketAddr, Session>>> = Arc::default();
    // The sessions' tasks end with this future: a stopped listener frees its port at once.
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = listen.recv_from(&mut buf).await?;
        while tasks.try_join_next().is_some() {}
        let Some(datagram) = accept(sealer.key(), &mut guard, &stats, &buf[..n]) else {
            continue;
        };
        let upstream_socket = {
            let mut map = sessions.lock().await;
            let known = map.get_mut(&from).map(|s| {
                s.last = Instant::now();
                Arc::clone(&s.upstream)
            });
            match known {
                Some(socket) => Some(socket),
                None if map.len() >= options.max_sessions => {
                    stats.refused_sessions.fetch_add(1, Ordering::Relaxed);
                    None
                }
                None => {
                    let bind: SocketAddr = if upstream.is_ipv4() {
                        "127.0.0.1:0".parse().expect("an address")
                    } else {
                        "[::1]:0".parse().expect("an address")
                    };
                    let socket = UdpSocket::bind(bind).await?;
                    socket.connect(upstream).await?;
                    let socket = Arc::new(socket);
                    map.insert(
                        from,
                        Session {
                            upstream: Arc::clone(&socket),
                            last: Instant::now(),
                        },
                    );
                    stats.sessions.fetch_add(1, Ordering::Relaxed);
                    tasks.spawn(answer(
                        Arc::clone(&socket),
                        Arc::clone(&listen),
                        from,
                        Arc::clone(&sealer),
                        Arc::clone(&sessions),
                        options.idle,
                        Arc::clone(&stats),
                    ));
                    Some(socket)
                }
            }
        };
        if let Some(socket) = upstream_socket {
            // A full WireGuard socket drops the datagram, as the network would.
            if socket.send(&datagram).await.is_ok() {
                stats.inbound.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Carries WireGuard's answers for one client until the session idles out.
async fn answer(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    sealer: Arc<Sealer>,
    sessions: Arc<Mutex<HashMap<SocketAddr, Session>>>,
    idle: Duration,
    stats: Arc<Stats>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(idle, upstream.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let Ok(wire) = sealer.seal(&buf[..n], now_ms()) else {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if listen.send_to(&wire, client).await.is_ok() {
                    stats.outbound.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(_)) => break,
            Err(_) => {
                // Quiet this way; the client may still be sending.
                let mut map = sessions.lock().await;
                if map.get(&client).is_some_and(|s| s.last.elapsed() < idle) {
                    continue;
                }
                map.remove(&client);
                break;
            }
        }
    }
}

/// The client end: WireGuard's peer endpoint is `local`'s address; everything it sends there
/// is sealed to the gateway's T1 listener at `remote`, and the gateway's answers are opened
/// and handed back to WireGuard.
pub async fn client(
    local: UdpSocket,
    remote: SocketAddr,
    key: Key,
    options: Options,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let bind: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let outside = UdpSocket::bind(bind).await?;
    outside.connect(remote).await?;
    let sealer = Sealer::new(key, options.pad_max);
    let mut guard = ReplayGuard::new(
        options.replay_window.as_millis() as u64,
        options.replay_capacity,
    );
    let mut wireguard: Option<SocketAddr> = None;
    let mut from_wg = vec![0u8; 65536];
    let mut from_gw = vec![0u8; 65536];
    loop {
        tokio::select! {
            got = local.recv_from(&mut from_wg) => {
                let (n, from) = got?;
                wireguard = Some(from);
                match sealer.seal(&from_wg[..n], now_ms()) {
                    Ok(wire) => {
                        // An unreachable gateway (ICMP) is the path failing, not the relay.
                        if outside.send(&wire).await.is_ok() {
                            stats.outbound.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => stats.count(&e),
                }
            }
            got = outside.recv(&mut from_gw) => {
                let Ok(n) = got else { continue };
                let Some(datagram) = accept(sealer.key(), &mut guard, &stats, &from_gw[..n]) else {
                    continue;
                };
                if let Some(wg) = wireguard
                    && local.send_to(&datagram, wg).await.is_ok()
                {
                    stats.inbound.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
