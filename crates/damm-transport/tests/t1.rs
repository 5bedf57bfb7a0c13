//! T1 on loopback, seen as the censor sees it: a tap between the client's forwarder and the
//! gateway's listener records every datagram on the wire. WireGuard-shaped datagrams cross
//! and come back; on the wire no byte position, type or length of WireGuard's is left; a
//! probe, garbage and a replay of captured traffic get no answer and are counted, and the
//! relay keeps serving afterwards.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use damm_transport::relay::{self, Options, Stats};
use damm_transport::t1::{self, Key};
use proptest::prelude::*;
use tokio::net::UdpSocket;

const KEY: [u8; 32] = [42; 32];

/// A WireGuard stand-in: answers every datagram with `ack:` and the datagram.
async fn fake_wireguard() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mut answer = b"ack:".to_vec();
            answer.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

/// A tap: relays between one client and `server`, recording what crosses towards it.
async fn tap(server: SocketAddr, seen: Arc<Mutex<Vec<Vec<u8>>>>) -> SocketAddr {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    up.connect(server).await.unwrap();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (s, u, c) = (Arc::clone(&socket), Arc::clone(&up), Arc::clone(&client));
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            seen.lock().unwrap().push(buf[..n].to_vec());
            let _ = u.send(&buf[..n]).await;
        }
    });
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(n) = up.recv(&mut buf).await {
            let to = *client.lock().unwrap();
            if let Some(to) = to {
                let _ = socket.send_to(&buf[..n], to).await;
            }
        }
    });
    addr
}

async fn recv(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf[..n].to_vec())
}

/// WireGuard's four message shapes: type, three zero bytes, its fixed size.
fn wireguard_shaped() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (kind, len) in [(1u8, 148usize), (2, 92), (3, 64), (4, 128), (4, 1200)] {
        let mut m = vec![0u8; len];
        m[0] = kind;
        for (i, b) in m.iter_mut().enumerate().skip(4) {
            *b = (i * 31 % 251) as u8;
        }
        out.push(m);
    }
    out
}

#[tokio::test]
async fn datagrams_cross_unrecognisable_and_probes_get_nothing() {
    let wg = fake_wireguard().await;
    let gw_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gw = gw_socket.local_addr().unwrap();
    let gw_stats = Arc::new(Stats::default());
    tokio::spawn(relay::gateway(
        gw_socket,
        wg,
        Key::new(&KEY),
        Options::default(),
        Arc::clone(&gw_stats),
    ));
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let tapped = tap(gw, Arc::clone(&seen)).await;
    let local = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local_addr = local.local_addr().unwrap();
    let client_stats = Arc::new(Stats::default());
    tokio::spawn(relay::client(
        local,
        tapped,
        Key::new(&KEY),
        Options::default(),
        Arc::clone(&client_stats),
    ));
    // WireGuard on the client: talks to the forwarder's loopback port.
    let wg_client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    wg_client.connect(local_addr).await.unwrap();
    let shapes = wireguard_shaped();
    for _ in 0..40 {
        for m in &shapes {
            wg_client.send(m).await.unwrap();
            let answer = recv(&wg_client).await.expect("an answer through T1");
            assert_eq!(&answer[..4], b"ack:");
            assert_eq!(&answer[4..], &m[..]);
        }
    }

    // The censor's view: no WireGuard signature, no fixed byte, no fixed length.
    let wire = seen.lock().unwrap().clone();
    assert_eq!(wire.len(), 200);
    // The rule a censor writes for WireGuard: type 1–4, then three zero bytes.
    let matched = wire
        .iter()
        .filter(|d| d.len() >= 4 && (1..=4).contains(&d[0]) && d[1..4] == [0, 0, 0])
        .count();
    assert_eq!(matched, 0, "a WireGuard DPI rule matched T1 datagrams");
    for position in 0..16 {
        let values: BTreeSet<u8> = wire.iter().map(|d| d[position]).collect();
        assert!(
            values.len() > 16,
            "byte {position} takes {} values",
            values.len()
        );
    }
    let initiations: BTreeSet<usize> = wire.iter().step_by(shapes.len()).map(Vec::len).collect();
    assert!(initiations.len() > 10, "initiation sizes {initiations:?}");
    assert!(
        wire.iter()
            .filter(|d| [148usize, 92, 64].contains(&d.len()))
            .count()
            < 10,
        "WireGuard's sizes are rare, not systematic"
    );

    // A prober: garbage, a WireGuard initiation, an empty datagram, a replay. No answer.
    let prober = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    prober.connect(gw).await.unwrap();
    let before = Stats::get(&gw_stats.inbound);
    for probe in [
        vec![0xde; 300],
        shapes[0].clone(),
        Vec::new(),
        vec![0u8; 5000],
        wire[0].clone(),
        wire[7].clone(),
    ] {
        prober.send(&probe).await.unwrap();
    }
    assert_eq!(
        recv(&prober).await,
        None,
        "the listener never answers a probe"
    );
    assert_eq!(
        Stats::get(&gw_stats.inbound),
        before,
        "nothing reached WireGuard"
    );
    assert!(Stats::get(&gw_stats.unauthentic) >= 2);
    assert_eq!(Stats::get(&gw_stats.replayed), 2, "both replays refused");
    assert!(Stats::get(&gw_stats.malformed) >= 2);

    // The client is still served.
    wg_client.send(&shapes[3]).await.unwrap();
    assert!(recv(&wg_client).await.is_some());
    assert_eq!(Stats::get(&gw_stats.sessions), 1);
}

#[tokio::test]
async fn the_gateway_caps_its_sessions() {
    let wg = fake_wireguard().await;
    let gw_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gw = gw_socket.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let options = Options {
        max_sessions: 2,
        ..Options::default()
    };
    tokio::spawn(relay::gateway(
        gw_socket,
        wg,
        Key::new(&KEY),
        options,
        Arc::clone(&stats),
    ));
    let sealer = t1::Sealer::new(Key::new(&KEY), 8);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut answered = 0;
    for _ in 0..4 {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(gw).await.unwrap();
        c.send(&sealer.seal(b"hi", now).unwrap()).await.unwrap();
        if recv(&c).await.is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 2);
    assert_eq!(Stats::get(&stats.refused_sessions), 2);
}

proptest! {
    #[test]
    fn open_never_panics_and_round_trips(
        datagram in prop::collection::vec(any::<u8>(), 0..1500),
        garbage in prop::collection::vec(any::<u8>(), 0..1600),
        nonce in any::<[u8; 12]>(),
        pad in 0usize..200,
        ts in any::<u64>(),
    ) {
        let key = Key::new(&KEY);
        let _ = t1::open(&key, &garbage);
        match t1::seal(&key, &datagram, ts, nonce, pad) {
            Ok(wire) => {
                prop_assert!(wire.len() <= t1::MAX_WIRE);
                let opened = t1::open(&key, &wire).unwrap();
                prop_assert_eq!(opened.datagram, datagram);
                prop_assert_eq!(opened.ts_ms, ts);
            }
            Err(_) => prop_assert!(datagram.len() > t1::MAX_DATAGRAM),
        }
    }
}
