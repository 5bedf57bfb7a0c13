//! The gateway's transport listeners follow its config: T1 starts under the config's key and
//! carries datagrams to WireGuard on loopback; a new key restarts it (the old key is then
//! refused); T3 serves the config's secret paths; a config without them stops both. T2 ends
//! TLS with the gateway's own certificate files, is refused without them (the others still
//! start), and restarts when the certificate is renewed.

use std::net::SocketAddr;
use std::time::Duration;

use damm_agent::listeners::TransportListeners;
use damm_catalog::{GatewayT1, GatewayT2, GatewayT3, GatewayTransports, T1Key};
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

/// A TCP port free right now (a port free for UDP may be taken for TCP).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
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
        t2: None,
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

/// The status line of `GET /` over TLS to `port` with SNI `s1.t2.example`, trusting `ca`,
/// and the certificate the server showed.
async fn https_status(port: u16, ca: &[u8]) -> Option<(String, Vec<u8>)> {
    let tls = damm_transport::t3::tls_trusting(ca).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from("s1.t2.example").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .ok()?;
    let shown = stream.get_ref().1.peer_certificates()?[0].to_vec();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: s1.t2.example\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    let line = String::from_utf8_lossy(&out).lines().next()?.to_owned();
    Some((line, shown))
}

#[tokio::test]
async fn t2_ends_tls_with_the_gateways_certificate_and_follows_its_renewal() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile_dir();
    let (chain, key) = (dir.join("t2.crt"), dir.join("t2.key"));
    std::fs::copy(fixtures.join("t2-test.pem"), &chain).unwrap();
    std::fs::copy(fixtures.join("t2-test.key"), &key).unwrap();
    let wg = fake_wireguard().await;
    let (t1_port, t2_port) = (free_port(), free_tcp_port());
    let wanted = GatewayTransports {
        t1: Some(GatewayT1 {
            port: t1_port,
            key: T1Key::from_bytes([3; 32]),
        }),
        t2: Some(GatewayT2 {
            port: t2_port,
            paths: vec!["abcdefghijklmnopqrstuv".into()],
        }),
        t3: None,
    };

    // Without certificate files T2 is refused, by name, and T1 still starts.
    let mut bare = TransportListeners::new();
    let e = bare.apply(&wanted, wg).await.unwrap_err().to_string();
    assert!(e.contains("--t2-certificate"), "{e}");
    assert!(t1_answers(t1_port, [3; 32]).await);
    drop(bare);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut listeners = TransportListeners::new().with_t2_certificate(&chain, &key);
    listeners.apply(&wanted, wg).await.unwrap();
    let first = std::fs::read(fixtures.join("ca-test.pem")).unwrap();
    let (status, shown) = https_status(t2_port, &first).await.expect("T2 answers");
    assert_eq!(status, "HTTP/1.1 200 OK", "an ordinary website");
    // A client that does not trust the certificate gets nothing.
    let other = std::fs::read(fixtures.join("ca-renewed.pem")).unwrap();
    assert!(https_status(t2_port, &other).await.is_none());
    // Counted once the server has seen the client's alert.
    let mut counted = false;
    for _ in 0..100 {
        let failed = listeners
            .t2_stats()
            .tls_failed
            .load(std::sync::atomic::Ordering::Relaxed);
        if failed >= 1 {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "the failed handshake is counted");

    // A renewed certificate on disk: the next apply restarts T2 with it.
    std::fs::copy(fixtures.join("t2-renewed.pem"), &chain).unwrap();
    std::fs::copy(fixtures.join("t2-renewed.key"), &key).unwrap();
    listeners.apply(&wanted, wg).await.unwrap();
    let (status, shown_now) = https_status(t2_port, &other).await.expect("T2 renewed");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_ne!(shown, shown_now);

    // A broken key file: refused with the reason, never the key.
    std::fs::write(&key, b"not a key").unwrap();
    std::fs::write(
        &chain,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = listeners.apply(&wanted, wg).await.unwrap_err().to_string();
    assert!(e.contains("T2 certificate"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary one.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "damm-t2-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
