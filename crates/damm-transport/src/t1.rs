//! T1, obfuscated UDP: the wire codec. Pure: no I/O, no clock (time comes in as an
//! argument), randomness only through [`Sealer`].
//!
//! Every WireGuard datagram travels as one UDP datagram
//!
//! ```text
//! nonce (12 random bytes) ‖ ChaCha20-Poly1305(key, nonce, ts_ms u64 ‖ len u16 ‖ datagram ‖ padding) ‖ tag (16)
//! ```
//!
//! so nothing on the wire is fixed: the first bytes are a random nonce, the rest is
//! ciphertext, and the length is the datagram's plus 38 plus a random padding of
//! `0..=pad_max` bytes (never beyond [`MAX_WIRE`]). WireGuard's signals — message types 1–4
//! followed by three zero bytes, the sizes 148, 92 and 64, the zero MAC2 — are all inside the
//! ciphertext. A datagram that does not open under the key is dropped without an answer, so a
//! prober learns nothing; a replayed one (same nonce, or a timestamp outside the window) is
//! dropped by the [`ReplayGuard`] before it reaches WireGuard, so a censor replaying captured
//! traffic from its own address never makes the gateway answer it.
//!
//! Left for later, and said so: the timing of WireGuard's handshakes (one every two minutes)
//! still shows through, and so does UDP itself; T3 over TCP/443 is the backstop there.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

/// Random nonce in front of every datagram.
pub const NONCE_LEN: usize = 12;
/// The AEAD tag.
pub const TAG_LEN: usize = 16;
/// Timestamp and length, sealed with the datagram.
const HEADER_LEN: usize = 8 + 2;
/// Bytes T1 adds to a datagram before padding.
pub const OVERHEAD: usize = NONCE_LEN + HEADER_LEN + TAG_LEN;
/// The largest T1 datagram: the UDP payload of a 1500-byte IPv4 packet, so T1 itself never
/// fragments.
pub const MAX_WIRE: usize = 1472;
/// The largest WireGuard datagram T1 carries (a WireGuard MTU of 1380 or less fits).
pub const MAX_DATAGRAM: usize = MAX_WIRE - OVERHEAD;
/// Default largest padding: WireGuard's handshake sizes (148, 92, 64) spread over ranges
/// that overlap each other and the data packets'.
pub const DEFAULT_PAD_MAX: usize = 96;

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum T1Error {
    /// Shorter than the overhead: cannot be T1.
    #[error("datagram of {0} bytes is shorter than T1's overhead")]
    TooShort(usize),
    /// Longer than [`MAX_WIRE`] (on open) or the datagram longer than [`MAX_DATAGRAM`]
    /// (on seal).
    #[error("datagram of {0} bytes is too long for T1")]
    TooLong(usize),
    /// Does not open under the key: a probe, noise, another gateway's key, tampering.
    #[error("datagram does not authenticate")]
    Unauthentic,
    /// Opens, but its length field does not fit the datagram.
    #[error("sealed length {0} does not fit the datagram")]
    BadLength(usize),
    /// Seen before within the window.
    #[error("replayed datagram")]
    Replayed,
    /// Its timestamp is outside the window around now.
    #[error("datagram timestamp {skew_ms} ms away from now")]
    Stale {
        /// How far from now, in milliseconds.
        skew_ms: i64,
    },
}

/// A gateway's T1 key (32 bytes, from the gateway's config or catalog entry). Its Debug
/// output never shows the key.
pub struct Key(LessSafeKey);

impl Key {
    /// The key of `bytes`.
    pub fn new(bytes: &[u8; 32]) -> Key {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("32 bytes is the key size");
        Key(LessSafeKey::new(unbound))
    }

    /// The key written as 64 hex digits (a key file's content, surrounding space ignored).
    pub fn from_hex(text: &str) -> Option<Key> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key::new(&bytes))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

/// Seals `datagram` with `nonce`, timestamp `now_ms` and `pad` bytes of padding (capped so
/// the result stays within [`MAX_WIRE`]). Deterministic: [`Sealer`] supplies the randomness.
pub fn seal(
    key: &Key,
    datagram: &[u8],
    now_ms: u64,
    nonce: [u8; NONCE_LEN],
    pad: usize,
) -> Result<Vec<u8>, T1Error> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(T1Error::TooLong(datagram.len()));
    }
    let pad = pad.min(MAX_WIRE - OVERHEAD - datagram.len());
    let mut out = Vec::with_capacity(OVERHEAD + datagram.len() + pad);
    out.extend_from_slice(&nonce);
    let mut body = Vec::with_capacity(HEADER_LEN + datagram.len() + pad + TAG_LEN);
    body.extend_from_slice(&now_ms.to_be_bytes());
    body.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    body.extend_from_slice(datagram);
    // Zero padding is fine: it is encrypted, so it reads as random on the wire.
    body.resize(body.len() + pad, 0);
    key.0
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| T1Error::TooLong(datagram.len()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// An opened datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its nonce (for the replay guard).
    pub nonce: [u8; NONCE_LEN],
    /// The sender's clock when it sealed it, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The WireGuard datagram.
    pub datagram: Vec<u8>,
}

/// Opens a T1 datagram. Never panics, whatever the bytes.
pub fn open(key: &Key, wire: &[u8]) -> Result<Opened, T1Error> {
    if wire.len() < OVERHEAD {
        return Err(T1Error::TooShort(wire.len()));
    }
    if wire.len() > MAX_WIRE {
        return Err(T1Error::TooLong(wire.len()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&wire[..NONCE_LEN]);
    let mut body = wire[NONCE_LEN..].to_vec();
    let plain = key
        .0
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| T1Error::Unauthentic)?;
    let (header, rest) = plain.split_at(HEADER_LEN);
    let ts_ms = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
    let len = usize::from(u16::from_be_bytes([header[8], header[9]]));
    if len > rest.len() {
        return Err(T1Error::BadLength(len));
    }
    Ok(Opened {
        nonce,
        ts_ms,
        datagram: rest[..len].to_vec(),
    })
}

/// Seals with fresh randomness: a random nonce and a random padding length.
#[derive(Debug)]
pub struct Sealer {
    key: Key,
    rng: SystemRandom,
    pad_max: usize,
}

impl Sealer {
    /// A sealer under `key` padding up to `pad_max` bytes.
    pub fn new(key: Key, pad_max: usize) -> Sealer {
        Sealer {
            key,
            rng: SystemRandom::new(),
            pad_max,
        }
    }

    /// The key (to open what the other side sends).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Seals `datagram` at `now_ms`.
    pub fn seal(&self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, T1Error> {
        let mut random = [0u8; NONCE_LEN + 2];
        self.rng
            .fill(&mut random)
            .expect("the system's random source works");
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&random[..NONCE_LEN]);
        let draw = usize::from(u16::from_be_bytes([
            random[NONCE_LEN],
            random[NONCE_LEN + 1],
        ]));
        let pad = draw % (self.pad_max + 1);
        seal(&self.key, datagram, now_ms, nonce, pad)
    }
}

/// Refuses datagrams seen before, or stamped outside a window around now. Bounded: it keeps
/// at most `capacity` nonces (the oldest go first), and a datagram older than the window is
/// refused whatever the set holds, so an evicted nonce cannot be replayed once it is stale.
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    seen: HashSet<[u8; NONCE_LEN]>,
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_ms` of now, remembering up to `capacity`
    /// nonces.
    pub fn new(window_ms: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            window_ms,
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Admits `opened` at `now_ms`, or says why not.
    pub fn admit(&mut self, opened: &Opened, now_ms: u64) -> Result<(), T1Error> {
        let skew = opened.ts_ms as i128 - now_ms as i128;
        if skew.unsigned_abs() > u128::from(self.window_ms) {
            let skew_ms = skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            return Err(T1Error::Stale { skew_ms });
        }
        // Forget what the window no longer admits anyway.
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(&(ts, nonce)) = self.order.front() {
            if ts >= horizon && self.order.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
        if !self.seen.insert(opened.nonce) {
            return Err(T1Error::Replayed);
        }
        self.order.push_back((opened.ts_ms, opened.nonce));
        Ok(())
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::new(&[b; 32])
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let k = key(7);
        let wire = seal(&k, b"hello", 1000, [1; 12], 10).unwrap();
        assert_eq!(wire.len(), OVERHEAD + 5 + 10);
        let opened = open(&k, &wire).unwrap();
        assert_eq!(opened.datagram, b"hello");
        assert_eq!((opened.ts_ms, opened.nonce), (1000, [1; 12]));
        assert_eq!(open(&key(8), &wire), Err(T1Error::Unauthentic));
        let mut flipped = wire.clone();
        flipped[20] ^= 1;
        assert_eq!(open(&k, &flipped), Err(T1Error::Unauthentic));
        assert_eq!(open(&k, &wire[..10]), Err(T1Error::TooShort(10)));
    }

    #[test]
    fn sizes_are_capped() {
        let k = key(1);
        let big = vec![0u8; MAX_DATAGRAM];
        assert_eq!(seal(&k, &big, 0, [0; 12], 500).unwrap().len(), MAX_WIRE);
        assert_eq!(
            seal(&k, &[0u8; MAX_DATAGRAM + 1], 0, [0; 12], 0),
            Err(T1Error::TooLong(MAX_DATAGRAM + 1))
        );
        assert_eq!(
            open(&k, &[0u8; MAX_WIRE + 1]),
            Err(T1Error::TooLong(MAX_WIRE + 1))
        );
    }

    #[test]
    fn the_replay_guard_refuses_repeats_and_stale_stamps() {
        let k = key(3);
        let mut guard = ReplayGuard::new(30_000, 4);
        let at = |ts: u64, n: u8| open(&k, &seal(&k, b"x", ts, [n; 12], 0).unwrap()).unwrap();
        let first = at(100_000, 1);
        guard.admit(&first, 100_000).unwrap();
        assert_eq!(guard.admit(&first, 100_500), Err(T1Error::Replayed));
        assert!(matches!(
            guard.admit(&at(50_000, 2), 100_000),
            Err(T1Error::Stale { skew_ms: -50_000 })
        ));
        assert!(matches!(
            guard.admit(&at(140_000, 3), 100_000),
            Err(T1Error::Stale { .. })
        ));
        // Bounded: past capacity the oldest go, and stale ones are refused by their stamp.
        for n in 10..20 {
            guard
                .admit(&at(100_000 + u64::from(n), n), 100_000)
                .unwrap();
        }
        assert!(guard.len() <= 4, "{}", guard.len());
        assert!(format!("{:?}", key(9)).contains("redacted"));
    }

    #[test]
    fn hex_keys() {
        let hex = "00".repeat(31) + "ff";
        assert!(Key::from_hex(&format!(" {hex}\n")).is_some());
        assert!(Key::from_hex("zz").is_none());
        assert!(Key::from_hex(&"g0".repeat(32)).is_none());
    }
}
