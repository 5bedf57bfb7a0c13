//! Arbitrary bytes as a client's connection to T3's gateway listener (hyper's HTTP/1.1
//! parser, the secret path's upgrade, tungstenite's frame decoder, the tunnel to WireGuard),
//! through `t3::serve_one` on an in-memory stream: closed or answered, never a panic (a
//! panic on a spawned task aborts too: libfuzzer-sys's panic hook).
//!
//! The first byte steers: bit 0 puts a valid upgrade request on the secret path before the
//! rest (so the bytes reach the WebSocket decoder), bit 1 ends the input with EOF (else the
//! stream just goes quiet and the listener's own timers close it), bits 2-7 the size of
//! each read (1 to 64 bytes times 16, so frames and heads arrive split). Time is tokio's
//! paused clock: the 10 s header and 120 s idle limits pass at once.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use damm_transport::t3::{self, GatewayOptions, Stats};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SECRET: &str = "/fuzz-secret";
const UPGRADE: &[u8] = b"GET /fuzz-secret HTTP/1.1\r\nHost: front.example\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// The runtime (paused clock) and WireGuard's stand-in: a UDP socket never read.
struct World {
    runtime: tokio::runtime::Runtime,
    wireguard: std::net::UdpSocket,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime"),
        wireguard: std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket"),
    })
}

/// The client's side: `input` in reads of `chunk` bytes, then EOF or silence; whatever the
/// gateway writes is swallowed.
struct Client {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    eof: bool,
}

impl AsyncRead for Client {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = self.input.len() - self.at;
        if rest == 0 {
            // Silence is never woken: the gateway's timers end it.
            return if self.eof {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = rest.min(self.chunk).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let mut input = Vec::with_capacity(UPGRADE.len() + rest.len());
    if steer & 1 == 1 {
        input.extend_from_slice(UPGRADE);
    }
    input.extend_from_slice(rest);
    let client = Client {
        input,
        at: 0,
        chunk: 16 * (1 + usize::from(steer >> 2)),
        eof: steer & 2 == 2,
    };
    let options = GatewayOptions::new(
        vec![SECRET.into()],
        world.wireguard.local_addr().expect("an address"),
    );
    world.runtime.block_on(async {
        // Virtual time: past every limit of the listener's, at once.
        let _ = tokio::time::timeout(
            Duration::from_secs(3600),
            t3::serve_one(client, options, Arc::new(Stats::default())),
        )
        .await;
    });
});
