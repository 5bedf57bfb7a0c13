//! The helper the network namespace labs (`damm_tests::netns`) run inside their hosts with
//! `ip netns exec`.
//!
//! - `damm-netns-udp echo ADDR:PORT`: answers every datagram with `<payload> <source ip>`, so
//!   the sender learns which address the destination saw (the egress's, after NAT).
//! - `damm-netns-udp probe ADDR:PORT INTERVAL_MS`: sends `<seq>` every INTERVAL_MS and prints
//!   every answer as a line `<seq> <source ip seen by the destination>`, until killed.
//! - `damm-netns-udp http ADDR:PORT`: answers `200 ok` to every HTTP request (a host's
//!   heartbeat, as the static-host adapter probes it).
//! - `damm-netns-udp forward ADDR:PORT`: accepts TCP connections on the listening socket it is
//!   handed as stdin (made in another namespace, the test's) and relays each to ADDR:PORT,
//!   dialled from this namespace (`damm_tests::netns::Lab::forward`).

use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => {
            let addr: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let socket = UdpSocket::bind(addr)?;
            let mut buf = [0u8; 1500];
            loop {
                let (n, from) = socket.recv_from(&mut buf)?;
                let payload = String::from_utf8_lossy(&buf[..n]);
                let reply = format!("{} {}", payload.trim(), from.ip());
                // A lost reply is what the test measures; never stop on it.
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        }
        Some("probe") => {
            let target: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let interval: u64 = args.get(3).ok_or_else(usage)?.parse()?;
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            let sender = socket.try_clone()?;
            std::thread::spawn(move || {
                for seq in 0u64.. {
                    // Unreachable while a path is down: keep counting.
                    let _ = sender.send_to(seq.to_string().as_bytes(), target);
                    std::thread::sleep(Duration::from_millis(interval));
                }
            });
            let mut buf = [0u8; 1500];
            let stdout = std::io::stdout();
            loop {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let mut out = stdout.lock();
                writeln!(out, "{}", String::from_utf8_lossy(&buf[..n]))?;
                out.flush()?;
            }
        }
        Some("http") => {
            let addr: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let listener = std::net::TcpListener::bind(addr)?;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    use std::io::Read as _;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 2048];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                        match stream.read(&mut buf[read..]) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    );
                });
            }
            Ok(())
        }
        Some("forward") => {
            let target: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let listener = TcpListener::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                std::thread::spawn(move || relay(inbound, target));
            }
            Ok(())
        }
        _ => Err(usage()),
    }
}

/// Copies both ways between `inbound` and a connection to `target`; a target that cannot be
/// reached closes `inbound` unanswered, as a dead host would leave it.
fn relay(inbound: TcpStream, target: SocketAddr) {
    let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_target)) = (inbound.try_clone(), outbound.try_clone())
    else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_target);
        let _ = to_target.shutdown(Shutdown::Write);
    });
    let (mut from_target, mut to_client) = (outbound, inbound);
    let _ = std::io::copy(&mut from_target, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

fn usage() -> anyhow::Error {
    anyhow::anyhow!(
        "usage: damm-netns-udp echo ADDR:PORT | probe ADDR:PORT INTERVAL_MS | http ADDR:PORT \
         | forward ADDR:PORT (stdin: a listening socket)"
    )
}
