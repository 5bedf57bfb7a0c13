//! The gateway's transport listeners follow its config: T1 starts under the config's key and
//! carries datagrams to WireGuard on loopback; a new key restarts it (the old key is then
//! refused); T3 serves the config's secret paths; a config without them stops both.

use std::net::SocketAddr;
use std::time::Duration;

use damm_agent::listeners::TransportListeners;
use damm_catalog::{GatewayT1, GatewayT3, GatewayTransports, T1Key};
use damm_transport::t1::{Key, Sealer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// A WireGuard stand-in on loopback answering `ack`.
async fn fake_wireguard() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(b"ack", from).await;
        }
    });
    port
}

/// A port free right now.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Whether a datagram sealed under `key` to `port` is answered.
async fn t1_answers(port: u16, key: [u8; 32]) -> bool {
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    c.send(&Sealer::new(Key::new(&key), 8).seal(b"hi", now).unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    tokio::time::timeout(Duration::from_millis(500), c.recv(&mut buf))
        .await
        .is_ok()
}

async fn http_status(port: u16, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .map(str::to_owned)
}

#[tokio::test]
async fn listeners_start_restart_and_stop_with_the_config() {
    let wg = fake_wireguard().await;
    let (t1_port, t3_port) = (free_port(), free_port());
    let (first, second) = ([1u8; 32], [2u8; 32]);
    let path = "abcdefghijklmnopqrstuv";
    let wanted = |key: [u8; 32]| GatewayTransports {
        t1: Some(GatewayT1 {
            port: t1_port,
            key: T1Key::from_bytes(key),
        }),
        t3: Some(GatewayT3 {
            port: t3_port,
            paths: vec![path.into()],
        }),
    };
    let mut listeners = TransportListeners::new();
    listeners.apply(&wanted(first), wg).await.unwrap();
    assert!(
        t1_answers(t1_port, first).await,
        "T1 carries under the config's key"
    );
    // The secret path is upgraded, nothing else is: a plain GET of it is a 404 like any
    // other (the upgrade itself is tested in damm-transport).
    assert_eq!(
        http_status(t3_port, "/").await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    assert_eq!(
        http_status(t3_port, &format!("/{path}")).await.as_deref(),
        Some("HTTP/1.1 404 Not Found")
    );

    // The same config again changes nothing; a new key restarts T1 only.
    listeners.apply(&wanted(first), wg).await.unwrap();
    listeners.apply(&wanted(second), wg).await.unwrap();
    assert!(t1_answers(t1_port, second).await);
    assert!(!t1_answers(t1_port, first).await, "the old key is refused");
    assert!(
        listeners
            .t1_stats()
            .unauthentic
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // No transports: both ports are free again.
    listeners
        .apply(&GatewayTransports::default(), wg)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        http_status(t3_port, "/").await.is_none(),
        "T3 still listening"
    );
    assert!(
        std::net::UdpSocket::bind(("0.0.0.0", t1_port)).is_ok(),
        "T1 still bound"
    );
}
