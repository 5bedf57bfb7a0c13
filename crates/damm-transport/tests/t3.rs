//! T3 on loopback, without the TLS edge (the netns censor test has nginx in front): datagrams
//! cross one per message; probes, wrong paths and plain GETs get an ordinary web site; bad
//! input — oversize and text messages, garbage, a slowloris — closes that one connection
//! and is counted while another client's tunnel carries on. The client dials nothing
//! before WireGuard sends and keeps the datagram that waited for the dial; a tunnel frozen
//! by a relay that stops forwarding after a few kilobytes is noticed, counted and dialled
//! again; a healthy one, idle or busy, never is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use damm_transport::t3::{self, ClientOptions, GatewayOptions, Stats};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "/k7Qx2mV9pLr4sTz8wYb1n";

async fn fake_wireguard() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            // What WireGuard sends with no answer (a keepalive, one-way traffic).
            if buf[..n].starts_with(b"quiet") {
                continue;
            }
            let mut answer = b"ack:".to_vec();
            answer.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

async fn gateway(header_timeout: Duration) -> (SocketAddr, Arc<Stats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = GatewayOptions::new(vec![SECRET.into()], fake_wireguard().await);
    options.header_timeout = header_timeout;
    let stats = Arc::new(Stats::default());
    tokio::spawn(t3::gateway(listener, options, Arc::clone(&stats)));
    (addr, stats)
}

async fn recv(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf[..n].to_vec())
}

/// A raw HTTP exchange: what a prober or a browser sees.
async fn http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn datagrams_cross_one_per_message_through_the_forwarder() {
    let (gw, stats) = gateway(Duration::from_secs(5)).await;
    let local = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local_addr = local.local_addr().unwrap();
    let client_stats = Arc::new(Stats::default());
    let options = ClientOptions::new(format!("ws://front.example{SECRET}"), gw);
    tokio::spawn(t3::client(local, options, Arc::clone(&client_stats)));
    let wg = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    wg.connect(local_addr).await.unwrap();
    // The first datagram waits for the dial (the forwarder holds it); retried all the
    // same, as WireGuard would.
    let mut crossed = false;
    for _ in 0..20 {
        wg.send(b"hello").await.unwrap();
        if recv(&wg).await.is_some() {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "nothing crossed T3");
    for len in [1usize, 32, 148, 1200, 1420] {
        let datagram: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        wg.send(&datagram).await.unwrap();
        let answer = recv(&wg).await.expect("an answer");
        assert_eq!(
            &answer[4..],
            &datagram[..],
            "one datagram per message, whole"
        );
    }
    assert_eq!(Stats::get(&stats.tunnels), 1);
    assert_eq!(Stats::get(&client_stats.dials), 1);
    assert!(
        format!("{:?}", ClientOptions::new(format!("wss://x{SECRET}"), gw))
            .find(SECRET)
            .is_none()
    );
}

#[tokio::test]
async fn probes_see_a_web_site_and_bad_input_closes_only_its_connection() {
    let (gw, stats) = gateway(Duration::from_millis(500)).await;
    // A tunnel that must survive everything below.
    let (mut good, _) = tokio_tungstenite::client_async(
        format!("ws://front.example{SECRET}"),
        TcpStream::connect(gw).await.unwrap(),
    )
    .await
    .unwrap();

    let index = http(
        gw,
        "GET / HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("Welcome"));
    for path in ["/wrong", "/k7Qx2mV9pLr4sTz8wYb1", "/admin"] {
        let answer = http(
            gw,
            &format!("GET {path} HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    // The upgrade on a wrong path, and the right path without the upgrade: the same 404
    // or page, never a 101 or a WebSocket error.
    let wrong = http(
        gw,
        "GET /wrong HTTP/1.1\r\nHost: front.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 404"), "{wrong}");
    let plain = http(
        gw,
        &format!("GET {SECRET} HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 404"), "{plain}");
    assert_eq!(Stats::get(&stats.tunnels), 1, "no tunnel for any probe");

    // Garbage and a slowloris: closed by the server.
    let garbage = http(gw, "\x16\x03\x01\x00\x05garbage\r\n\r\n").await;
    assert!(!garbage.contains("101"), "{garbage}");
    let mut slow = TcpStream::connect(gw).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: front")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a slowloris connection stays open");

    // An oversize message and a text message close their own tunnels.
    for bad in [
        Message::Binary(Bytes::from(vec![0u8; 5000])),
        Message::Text("hi".into()),
    ] {
        let (mut ws, _) = tokio_tungstenite::client_async(
            format!("ws://front.example{SECRET}"),
            TcpStream::connect(gw).await.unwrap(),
        )
        .await
        .unwrap();
        let _ = ws.send(bad).await;
        let end = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the bad tunnel was not closed");
    }
    assert!(Stats::get(&stats.bad) >= 3, "{:?}", stats);

    // The first tunnel still carries datagrams.
    good.send(Message::Binary(Bytes::from_static(b"still")))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(2), good.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::Binary(Bytes::from_static(b"ack:still")));
}

/// A TCP relay in front of `target` that counts the connections it accepts. With
/// `freeze_after`, each connection stops forwarding in both directions once its client has
/// sent that many bytes, and stays open, silent: a censor freezing flows after a few
/// kilobytes.
async fn relay(target: SocketAddr, freeze_after: Option<usize>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let frozen = Arc::new(AtomicBool::new(false));
            let (from_client, to_client) = inbound.into_split();
            let (from_target, to_target) = outbound.into_split();
            tokio::spawn(pipe(
                from_client,
                to_target,
                freeze_after,
                Arc::clone(&frozen),
            ));
            tokio::spawn(pipe(from_target, to_client, None, frozen));
        }
    });
    (addr, connections)
}

/// One direction of [`relay`]: copies until either side ends, forwarding at most `budget`
/// bytes; once the connection is frozen it forwards nothing more and holds both halves
/// open forever.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut budget: Option<usize>,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16384];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || frozen.load(Ordering::SeqCst) {
            break;
        }
        let mut n = n;
        if let Some(left) = budget.as_mut() {
            if n >= *left {
                n = *left;
                frozen.store(true, Ordering::SeqCst);
            }
            *left -= n;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if frozen.load(Ordering::SeqCst) {
            break;
        }
    }
    if frozen.load(Ordering::SeqCst) {
        // Neither a close nor a reset: the peers see a connection that went silent.
        let _kept = (from, to);
        std::future::pending::<()>().await;
        return;
    }
    let _ = to.shutdown().await;
}

/// A client forwarder for `front` on a loopback port, and WireGuard's socket connected to
/// it.
async fn forwarder(options: ClientOptions) -> (UdpSocket, Arc<Stats>) {
    let local = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local_addr = local.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    tokio::spawn(t3::client(local, options, Arc::clone(&stats)));
    let wg = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    wg.connect(local_addr).await.unwrap();
    (wg, stats)
}

#[tokio::test]
async fn the_forwarder_dials_nothing_before_wireguard_sends_and_its_first_datagram_crosses() {
    let (gw, gw_stats) = gateway(Duration::from_secs(5)).await;
    let (front, connections) = relay(gw, None).await;
    let (wg, stats) = forwarder(ClientOptions::new(
        format!("ws://front.example{SECRET}"),
        front,
    ))
    .await;
    // Started, but WireGuard has sent nothing: no connection to the front.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "dialled before use");
    assert_eq!(Stats::get(&stats.dials), 0);

    // One datagram, sent once (a handshake initiation): it waits for the dial, then
    // reaches WireGuard, whose answer comes back.
    wg.send(b"initiation").await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), wg.recv(&mut buf))
        .await
        .expect("the first datagram was lost to the dial")
        .unwrap();
    assert_eq!(&buf[..n], b"ack:initiation");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(Stats::get(&stats.dials), 1);
    assert_eq!(Stats::get(&stats.outbound), 1);
    assert_eq!(Stats::get(&gw_stats.inbound), 1);
}

/// A datagram of `len` bytes whose first bytes say `seq`.
fn numbered(seq: u64, len: usize) -> Vec<u8> {
    let mut datagram = format!("{seq}:").into_bytes();
    datagram.resize(len, b'x');
    datagram
}

/// The sequence number of an answer to [`numbered`] (`ack:<seq>:xxx...`).
fn answered(answer: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(answer.strip_prefix(b"ack:")?).ok()?;
    text.split(':').next()?.parse().ok()
}

#[tokio::test]
async fn a_frozen_tunnel_is_noticed_counted_and_dialled_again() {
    let (gw, gw_stats) = gateway(Duration::from_secs(5)).await;
    // Every connection freezes after 4 KB from the client: the upgrade and a few datagrams.
    let (front, connections) = relay(gw, Some(4096)).await;
    let (wg, stats) = forwarder(ClientOptions::new(
        format!("ws://front.example{SECRET}"),
        front,
    ))
    .await;

    // 500-byte datagrams every 50 ms, until one sent after the stall was counted comes back.
    let started = Instant::now();
    let mut after_stall: Option<u64> = None;
    let mut crossed_before = 0;
    let mut resumed = None;
    let mut buf = [0u8; 4096];
    for seq in 0u64.. {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no datagram crossed after a stall: {stats:?}, {} connections",
            connections.load(Ordering::SeqCst)
        );
        if after_stall.is_none() && Stats::get(&stats.stalls) > 0 {
            after_stall = Some(seq);
        }
        wg.send(&numbered(seq, 500)).await.unwrap();
        let pause = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                got = wg.recv(&mut buf) => {
                    let Some(seq) = answered(&buf[..got.unwrap()]) else { continue };
                    match after_stall {
                        Some(first) if seq >= first => resumed = Some(seq),
                        _ => crossed_before += 1,
                    }
                }
            }
        }
        if resumed.is_some() {
            break;
        }
    }
    assert!(crossed_before > 0, "nothing crossed before the freeze");
    assert!(Stats::get(&stats.stalls) >= 1);
    assert!(Stats::get(&stats.probes) >= 1, "a stall without a probe");
    assert!(Stats::get(&stats.dials) >= 2, "{stats:?}");
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert!(Stats::get(&gw_stats.tunnels) >= 2);
}

#[tokio::test]
async fn a_healthy_tunnel_idle_or_sending_without_answers_is_never_taken_for_frozen() {
    let (gw, gw_stats) = gateway(Duration::from_secs(5)).await;
    let mut options = ClientOptions::new(format!("ws://front.example{SECRET}"), gw);
    options.stall_after = Duration::from_millis(200);
    let (wg, stats) = forwarder(options).await;
    wg.send(b"hello").await.unwrap();
    assert_eq!(recv(&wg).await.as_deref(), Some(&b"ack:hello"[..]));

    // Idle for many times `stall_after`: nothing sent, nothing probed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(Stats::get(&stats.probes), 0, "an idle tunnel was probed");

    // Sending with no answer (one-way traffic, WireGuard keepalives): probed, and the
    // gateway's pongs keep it alive.
    for _ in 0..20 {
        wg.send(b"quiet").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(Stats::get(&stats.probes) >= 1, "{stats:?}");
    wg.send(b"again").await.unwrap();
    assert_eq!(recv(&wg).await.as_deref(), Some(&b"ack:again"[..]));
    assert_eq!(Stats::get(&stats.stalls), 0, "{stats:?}");
    assert_eq!(Stats::get(&stats.dials), 1, "{stats:?}");
    assert_eq!(Stats::get(&gw_stats.tunnels), 1);
}

/// A client's masked binary frame carrying `payload` (under 126 bytes).
fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x13, 0xc7, 0x01];
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn the_fuzzing_entry_serves_one_connection_until_it_ends() {
    let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = GatewayOptions::new(vec![SECRET.into()], upstream.local_addr().unwrap());
    // The input, then (once the answer's head is in) the end of the client's writes; the
    // whole answer.
    let exchange = |input: Vec<u8>, options: GatewayOptions| async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = t3::serve_one(server, options, Arc::new(Stats::default()));
        let talk = async move {
            client.write_all(&input).await.unwrap();
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !out.windows(4).any(|w| w == b"\r\n\r\n") {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            client.shutdown().await.unwrap();
            let _ = client.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        };
        let ((), answer) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(served, talk)
        })
        .await
        .expect("the connection outlived its input");
        answer
    };
    let page = exchange(
        b"GET / HTTP/1.1\r\nHost: front.example\r\n\r\n".to_vec(),
        options.clone(),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    let mut input = format!(
        "GET {SECRET} HTTP/1.1\r\nHost: front.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    input.extend(masked_frame(b"fuzz"));
    let answer = exchange(input, options).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert_eq!(recv(&upstream).await.as_deref(), Some(&b"fuzz"[..]));
}
