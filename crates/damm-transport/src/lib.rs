//! DAMM's transports: what carries a WireGuard datagram from a client to a gateway when the
//! network between them is hostile.
//!
//! - **T0** is WireGuard over UDP as it is: nothing here.
//! - **T1**, obfuscated UDP ([`t1`], [`relay`]): each datagram sealed under the gateway's
//!   T1 key with a random nonce and random padding, so no byte, type or length of
//!   WireGuard's is left on the wire, and a prober without the key gets no answer.
//! - **T3**, WebSocket over TLS through a CDN front ([`t3`]): one datagram per binary
//!   message on a secret path; everything else gets an ordinary web page.
//!
//! - [`race`]: Happy Eyeballs over the transports a path offers, the first to answer wins.
//!
//! The codecs are pure and fuzzed; the relays are small tokio loops. The agent decides which
//! transport to use; the catalog describes them; the orchestrator never imports this crate.
//!
//! ```
//! use damm_transport::t1::{Key, open, seal};
//!
//! let key = Key::new(&[7; 32]);
//! let handshake = [1u8, 0, 0, 0].repeat(37); // 148 bytes, as WireGuard's initiation starts
//! let wire = seal(&key, &handshake, 1_700_000_000_000, [9; 12], 40)?;
//! assert_ne!(&wire[..4], &[1, 0, 0, 0]);
//! assert_eq!(open(&key, &wire)?.datagram, handshake);
//! # Ok::<(), damm_transport::t1::T1Error>(())
//! ```

pub mod race;
pub mod relay;
pub mod t1;
pub mod t3;
