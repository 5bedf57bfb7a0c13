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
//! - `damm-netns-udp reverse LISTEN NETNS TARGET`: the other way round: listens on LISTEN
//!   here and relays each connection to TARGET dialled from network namespace NETNS (a
//!   `/proc/PID/ns/net` path: the test's), through `forward` under `nsenter`
//!   (`damm_tests::netns::Lab::expose`).
//! - `damm-netns-udp files ADDR:PORT DIR`: serves the files of DIR over HTTP (`GET /NAME`),
//!   404 for anything else: an artifact server.
//! - `damm-netns-udp boot ROOT USER_DATA HOST_PID`: a simulated machine's init
//!   (`damm_sim::machine::boot`), run by `damm_tests::bootlab`.
//! - `damm-netns-udp t1-gateway LISTEN WIREGUARD KEY_FILE` and `t1-client LISTEN GATEWAY
//!   KEY_FILE`: the T1 relays of `damm_transport::relay` (the censor tests).
//! - `damm-netns-udp t3-gateway LISTEN WIREGUARD PATH` and `t3-client LISTEN URL CONNECT_TO
//!   CA_FILE [--stats MS]`: T3's gateway listener and client forwarder
//!   (`damm_transport::t3`); with `--stats`, the forwarder prints its counters every MS as
//!   a line `t3-client dials=D probes=P stalls=S outbound=O inbound=I`.
//! - `damm-netns-udp t2-gateway LISTEN WIREGUARD PATH CERT KEY`: the same listener ending
//!   TLS itself with the certificate chain and key (PEM files): T2, a direct TLS front.

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
            serve_http(addr, |_| Some(b"ok\n".to_vec()))
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
        Some("reverse") => {
            let listen: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let netns = args.get(3).ok_or_else(usage)?;
            let target = args.get(4).ok_or_else(usage)?;
            let listener = TcpListener::bind(listen)?;
            // The listening socket stays in this namespace; the child accepts on it from
            // the other one and dials the target there.
            let mut child = std::process::Command::new("nsenter")
                .arg(format!("--net={netns}"))
                .arg(std::env::current_exe()?)
                .args(["forward", target])
                .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                    listener,
                )))
                .spawn()?;
            // The lab kills it by this pid: it lives outside the namespace it serves.
            println!("pid {}", child.id());
            std::io::stdout().flush()?;
            let status = child.wait()?;
            anyhow::bail!("the reverse relay to {target} stopped: {status}")
        }
        Some("files") => {
            let addr: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let dir = std::path::PathBuf::from(args.get(3).ok_or_else(usage)?);
            serve_http(addr, move |path| {
                let name = path.strip_prefix('/')?;
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    return None;
                }
                std::fs::read(dir.join(name)).ok()
            })
        }
        Some("boot") => {
            let root = args.get(2).ok_or_else(usage)?;
            let user_data = args.get(3).ok_or_else(usage)?;
            let host_pid: u32 = args.get(4).ok_or_else(usage)?.parse()?;
            damm_sim::machine::boot(root.as_ref(), user_data.as_ref(), host_pid)
        }
        Some(side @ ("t1-gateway" | "t1-client")) => {
            let listen: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let peer: SocketAddr = args.get(3).ok_or_else(usage)?.parse()?;
            let key_file = args.get(4).ok_or_else(usage)?;
            let key = damm_transport::t1::Key::from_hex(&std::fs::read_to_string(key_file)?)
                .ok_or_else(|| anyhow::anyhow!("{key_file}: not 64 hex digits"))?;
            let gateway = side == "t1-gateway";
            runtime()?.block_on(async move {
                let socket = tokio::net::UdpSocket::bind(listen).await?;
                let options = damm_transport::relay::Options::default();
                let stats = std::sync::Arc::default();
                if gateway {
                    damm_transport::relay::gateway(socket, peer, key, options, stats).await
                } else {
                    damm_transport::relay::client(socket, peer, key, options, stats).await
                }
            })?;
            Ok(())
        }
        Some("t3-gateway") => {
            let listen: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let wireguard: SocketAddr = args.get(3).ok_or_else(usage)?.parse()?;
            let path = args.get(4).ok_or_else(usage)?.clone();
            let options = damm_transport::t3::GatewayOptions::new(vec![path], wireguard);
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                damm_transport::t3::gateway(listener, options, std::sync::Arc::default()).await
            })?;
            Ok(())
        }
        Some("t2-gateway") => {
            let listen: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let wireguard: SocketAddr = args.get(3).ok_or_else(usage)?.parse()?;
            let path = args.get(4).ok_or_else(usage)?.clone();
            let chain = std::fs::read(args.get(5).ok_or_else(usage)?)?;
            let key = std::fs::read(args.get(6).ok_or_else(usage)?)?;
            let mut options = damm_transport::t3::GatewayOptions::new(vec![path], wireguard);
            options.tls =
                Some(damm_transport::t3::tls_server(&chain, &key).map_err(anyhow::Error::msg)?);
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                damm_transport::t3::gateway(listener, options, std::sync::Arc::default()).await
            })?;
            Ok(())
        }
        Some("t3-client") => {
            let listen: SocketAddr = args.get(2).ok_or_else(usage)?.parse()?;
            let url = args.get(3).ok_or_else(usage)?.clone();
            let connect_to: SocketAddr = args.get(4).ok_or_else(usage)?.parse()?;
            let ca = std::fs::read(args.get(5).ok_or_else(usage)?)?;
            let stats_every = match args.get(6).map(String::as_str) {
                None => None,
                Some("--stats") => Some(Duration::from_millis(
                    args.get(7).ok_or_else(usage)?.parse()?,
                )),
                Some(_) => return Err(usage()),
            };
            let mut options = damm_transport::t3::ClientOptions::new(url, connect_to);
            options.tls = Some(damm_transport::t3::tls_trusting(&ca).map_err(anyhow::Error::msg)?);
            let stats = std::sync::Arc::new(damm_transport::t3::Stats::default());
            if let Some(every) = stats_every {
                let stats = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || print_t3_stats(&stats, every));
            }
            runtime()?.block_on(async move {
                let local = tokio::net::UdpSocket::bind(listen).await?;
                damm_transport::t3::client(local, options, stats).await
            })?;
            Ok(())
        }
        _ => Err(usage()),
    }
}

/// Prints a T3 client's counters every `every`, until stdout goes away.
fn print_t3_stats(stats: &damm_transport::t3::Stats, every: Duration) {
    use damm_transport::t3::Stats;
    loop {
        std::thread::sleep(every);
        let line = format!(
            "t3-client dials={} probes={} stalls={} outbound={} inbound={}",
            Stats::get(&stats.dials),
            Stats::get(&stats.probes),
            Stats::get(&stats.stalls),
            Stats::get(&stats.outbound),
            Stats::get(&stats.inbound),
        );
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A tiny HTTP/1.1 server: `answer` maps a GET's path to a body (200) or `None` (404).
fn serve_http(
    addr: SocketAddr,
    answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let answer = std::sync::Arc::new(answer);
    let listener = TcpListener::bind(addr)?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let answer = std::sync::Arc::clone(&answer);
        std::thread::spawn(move || {
            let Some(head) = read_head(&mut stream) else {
                return;
            };
            let path = head
                .strip_prefix("GET ")
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("");
            let (status, body) = match answer(path) {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", b"not found\n".to_vec()),
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(&body);
        });
    }
    Ok(())
}

/// Reads a request's head (up to the blank line), or `None` if the client goes away.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    use std::io::Read as _;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
        if read == buf.len() {
            return None;
        }
        match stream.read(&mut buf[read..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
    }
    Some(String::from_utf8_lossy(&buf[..read]).into_owned())
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
         | forward ADDR:PORT (stdin: a listening socket) | reverse LISTEN NETNS TARGET \
         | files ADDR:PORT DIR | boot ROOT USER_DATA HOST_PID \
         | t1-gateway LISTEN WIREGUARD KEY_FILE | t1-client LISTEN GATEWAY KEY_FILE \
         | t3-gateway LISTEN WIREGUARD PATH \
         | t3-client LISTEN URL CONNECT_TO CA_FILE [--stats MS]"
    )
}
