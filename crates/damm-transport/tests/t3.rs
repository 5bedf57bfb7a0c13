//! T3 on loopback, without the TLS edge (the netns censor test has nginx in front): datagrams
//! cross one per message; probes, wrong paths and plain GETs get an ordinary web site; bad
//! input — oversize and text messages, garbage, a slowloris — closes that one connection
//! and is counted while another client's tunnel carries on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use damm_transport::t3::{self, ClientOptions, GatewayOptions, Stats};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "/k7Qx2mV9pLr4sTz8wYb1n";

async fn fake_wireguard() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
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
    // The first datagrams may go while the tunnel is dialled: WireGuard retries too.
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
