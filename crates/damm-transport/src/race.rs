//! Happy Eyeballs for transports: WireGuard sends to one loopback port, and the racer carries
//! what it sends over several lanes at once, each lane started a little after the one before
//! it, until one of them brings something back. That lane wins; the racer then carries only on
//! it, and its owner normally points WireGuard straight at the winner and drops the racer.
//!
//! A lane is a UDP destination: a gateway's bare WireGuard endpoint (T0), or the loopback
//! port of a local forwarder (T1, T3). The racer does not know which.
//!
//! Why racing is safe with WireGuard: the same handshake initiation arriving twice at a
//! gateway (over two lanes) is answered once. WireGuard refuses an initiation whose timestamp
//! it has already seen, so the first copy to arrive wins and the gateway answers over the lane
//! that delivered it. Duplicate data packets are dropped by WireGuard's replay window.
//!
//! A lane started late gets the latest datagram WireGuard sent at once (normally its
//! handshake initiation), so a slow lane never waits for WireGuard's 5 s retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One way to the gateway, and when to start it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// Where the lane sends: a gateway's UDP endpoint, or a forwarder's loopback port.
    pub target: SocketAddr,
    /// How long after the race starts the lane joins it.
    pub after: Duration,
}

/// The winning lane, by index into the lanes given, and how long after the start its first
/// datagram came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Won {
    /// The lane's index.
    pub lane: usize,
    /// Time from the start of the race to the lane's first datagram back.
    pub after: Duration,
}

/// Races `lanes` for what WireGuard sends to `local`, and says on `won` which one answered
/// first. Runs until `local` fails or the task is dropped; after the win it keeps carrying on
/// the winning lane only.
pub async fn race(
    local: UdpSocket,
    lanes: Vec<Lane>,
    won: watch::Sender<Option<Won>>,
) -> std::io::Result<()> {
    let start = Instant::now();
    let mut order: Vec<usize> = (0..lanes.len()).collect();
    order.sort_by_key(|&i| lanes[i].after);
    let mut pending = order.into_iter().peekable();
    let mut started: Vec<Option<Arc<UdpSocket>>> = vec![None; lanes.len()];
    let mut reading: Vec<Option<tokio::task::AbortHandle>> = vec![None; lanes.len()];
    let mut readers = JoinSet::new();
    let (back_tx, mut back) = mpsc::channel::<(usize, Vec<u8>)>(256);
    let mut wireguard: Option<SocketAddr> = None;
    let mut latest: Option<Vec<u8>> = None;
    let mut winner: Option<usize> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let next_start = pending
            .peek()
            .map(|&i| start + lanes[i].after)
            .filter(|_| winner.is_none());
        tokio::select! {
            got = local.recv_from(&mut buf) => {
                let (n, from) = got?;
                wireguard = Some(from);
                let datagram = &buf[..n];
                match winner {
                    Some(w) => send(started[w].as_deref(), datagram).await,
                    None => {
                        for socket in started.iter().flatten() {
                            send(Some(socket), datagram).await;
                        }
                        latest = Some(datagram.to_vec());
                    }
                }
            }
            Some((lane, datagram)) = back.recv() => {
                if winner.is_none() {
                    winner = Some(lane);
                    let _ = won.send(Some(Won { lane, after: start.elapsed() }));
                    // The losers stop: their sockets close with their readers.
                    for i in (0..lanes.len()).filter(|&i| i != lane) {
                        started[i] = None;
                        if let Some(reader) = reading[i].take() {
                            reader.abort();
                        }
                    }
                    latest = None;
                }
                if winner == Some(lane)
                    && let Some(wg) = wireguard
                {
                    let _ = local.send_to(&datagram, wg).await;
                }
            }
            () = sleep_until(next_start) => {
                let Some(i) = pending.next() else { continue };
                match open(lanes[i].target).await {
                    Ok(socket) => {
                        let socket = Arc::new(socket);
                        if let Some(datagram) = &latest {
                            send(Some(&socket), datagram).await;
                        }
                        reading[i] =
                            Some(readers.spawn(read(i, Arc::clone(&socket), back_tx.clone())));
                        started[i] = Some(socket);
                    }
                    Err(e) => tracing::debug!(lane = i, "race: lane not started: {e}"),
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn open(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = match target {
        SocketAddr::V4(a) if a.ip().is_loopback() => "127.0.0.1:0",
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(a) if a.ip().is_loopback() => "[::1]:0",
        SocketAddr::V6(_) => "[::]:0",
    }
    .parse()
    .expect("an address");
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends on a lane; an unreachable destination (ICMP) is the lane failing, not the racer.
async fn send(socket: Option<&UdpSocket>, datagram: &[u8]) {
    if let Some(socket) = socket {
        let _ = socket.send(datagram).await;
    }
}

/// Hands what comes back on lane `i` to the racer, until the racer drops the lane.
async fn read(i: usize, socket: Arc<UdpSocket>, back: mpsc::Sender<(usize, Vec<u8>)>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                if back.send((i, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            // A refused port (ICMP) says nothing about the next datagram: keep listening.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
