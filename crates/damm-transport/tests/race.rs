//! The racer on loopback: a silent lane loses to a later one that answers, the late lane
//! gets the datagram sent before it started, and after the win only the winner carries.

use std::time::Duration;

use damm_transport::race::{Lane, Won, race};
use tokio::net::UdpSocket;
use tokio::sync::watch;

async fn bound() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Echoes every datagram back; returns its address.
async fn echo() -> std::net::SocketAddr {
    let socket = bound().await;
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    buf[..n].to_vec()
}

#[tokio::test]
async fn a_later_lane_that_answers_beats_a_silent_one_and_then_carries_alone() {
    let silent = bound().await;
    let answering = echo().await;
    let local = bound().await;
    let racer = local.local_addr().unwrap();
    let (tx, mut won) = watch::channel(None);
    let lanes = vec![
        Lane {
            target: silent.local_addr().unwrap(),
            after: Duration::ZERO,
        },
        Lane {
            target: answering,
            after: Duration::from_millis(200),
        },
    ];
    let task = tokio::spawn(race(local, lanes, tx));

    let wireguard = bound().await;
    wireguard.connect(racer).await.unwrap();
    // Sent once, before the answering lane exists: the lane gets it when it starts.
    wireguard.send(b"initiation").await.unwrap();
    assert_eq!(recv(&wireguard).await, b"initiation");
    won.wait_for(Option::is_some).await.unwrap();
    let Won { lane, after } = won.borrow().unwrap();
    assert_eq!(lane, 1);
    assert!(after >= Duration::from_millis(200), "{after:?}");
    // The silent lane saw the first datagram (it was racing then) ...
    assert_eq!(recv(&silent).await, b"initiation");
    // ... and nothing after the win.
    wireguard.send(b"data").await.unwrap();
    assert_eq!(recv(&wireguard).await, b"data");
    let mut buf = [0u8; 64];
    let late = tokio::time::timeout(Duration::from_millis(300), silent.recv(&mut buf)).await;
    assert!(late.is_err(), "a loser was still carried to");
    task.abort();
}

#[tokio::test]
async fn no_answer_means_no_winner() {
    let silent_a = bound().await;
    let silent_b = bound().await;
    let local = bound().await;
    let racer = local.local_addr().unwrap();
    let (tx, won) = watch::channel(None);
    let lanes = [&silent_a, &silent_b]
        .iter()
        .enumerate()
        .map(|(i, s)| Lane {
            target: s.local_addr().unwrap(),
            after: Duration::from_millis(50 * i as u64),
        })
        .collect();
    let task = tokio::spawn(race(local, lanes, tx));
    let wireguard = bound().await;
    wireguard.connect(racer).await.unwrap();
    wireguard.send(b"hello").await.unwrap();
    // Both lanes get it, the second one on joining.
    assert_eq!(recv(&silent_a).await, b"hello");
    assert_eq!(recv(&silent_b).await, b"hello");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(won.borrow().is_none());
    task.abort();
}
