//! What worked on which network: the client remembers, per network it has been on, which
//! transports carried a tunnel and which went unanswered, so that on a network that drops UDP
//! the next connect starts with T3 instead of waiting for T0 and T1 to fail again.
//!
//! A network is named by a hash of the local address the kernel picks to reach the gateway,
//! keyed with a random salt kept in the file (an unkeyed hash of an IPv4 address is undone
//! by trying all of them) (a laptop at home and at the office gets two addresses, so two networks). Two
//! networks that hand out the same private address look like one; that costs little, since
//! the memory only orders the race ([`crate::client`]): every transport is still tried, the
//! remembered one first.
//!
//! The memory is a small JSON file written atomically; a missing or unreadable file starts an
//! empty memory (with a warning naming the file), never a failed client.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// How many networks are remembered; the least recently seen is forgotten first.
const MAX_NETWORKS: usize = 64;
/// A failure older than this no longer demotes a transport.
const FAILURE_MEMORY_H: i64 = 24;
/// A success older than this no longer promotes one.
const SUCCESS_MEMORY_D: i64 = 30;

/// What the memory says of a transport on a network, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hint {
    /// It carried a tunnel here, more recently than it failed.
    Worked,
    /// Never tried here, or too long ago.
    Unknown,
    /// It went unanswered here, more recently than it worked.
    Failed,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Seen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Network {
    last_seen: Option<DateTime<Utc>>,
    transports: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    /// 16 random bytes, hex, keying the network names; made when the memory is first made.
    #[serde(default)]
    salt: String,
    networks: BTreeMap<String, Network>,
}

impl Book {
    fn new() -> Book {
        use ring::rand::SecureRandom as _;
        let mut salt = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .expect("the system's random source works");
        Book {
            salt: salt.iter().map(|b| format!("{b:02x}")).collect(),
            networks: BTreeMap::new(),
        }
    }
}

/// The memory, kept in a file or only for this run.
#[derive(Debug, Clone)]
pub struct NetworkMemory {
    file: Option<PathBuf>,
    book: Book,
}

impl NetworkMemory {
    /// A memory for this run only.
    pub fn in_memory() -> Self {
        Self {
            file: None,
            book: Book::new(),
        }
    }

    /// The memory kept in `file`: what it holds, or an empty memory if it is missing or
    /// unreadable (a warning names the file and the problem; the next save replaces it).
    pub fn load(file: impl Into<PathBuf>) -> Self {
        let file = file.into();
        let book = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Book>(&bytes) {
                // A file from before the salt: its names cannot be kept under a new key.
                Ok(book) if book.salt.len() != 32 => Book::new(),
                Ok(book) => book,
                Err(e) => {
                    tracing::warn!(file = %file.display(), "network memory unreadable, starting empty: {e}");
                    Book::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::new(),
            Err(e) => {
                tracing::warn!(file = %file.display(), "network memory unreadable, starting empty: {e}");
                Book::new()
            }
        };
        Self {
            file: Some(file),
            book,
        }
    }

    /// What the memory says of `transport` on `network` at `now`.
    pub fn hint(&self, network: &str, transport: &str, now: DateTime<Utc>) -> Hint {
        let Some(seen) = self
            .book
            .networks
            .get(network)
            .and_then(|n| n.transports.get(transport))
        else {
            return Hint::Unknown;
        };
        let failed = seen
            .failed_at
            .filter(|t| now - *t < Duration::hours(FAILURE_MEMORY_H));
        let ok = seen
            .ok_at
            .filter(|t| now - *t < Duration::days(SUCCESS_MEMORY_D));
        match (ok, failed) {
            (Some(ok), Some(failed)) if failed > ok => Hint::Failed,
            (Some(_), _) => Hint::Worked,
            (None, Some(_)) => Hint::Failed,
            (None, None) => Hint::Unknown,
        }
    }

    /// Records that `transport` carried a tunnel on `network`.
    pub fn worked(&mut self, network: &str, transport: &str, at: DateTime<Utc>) {
        self.seen(network, transport, at).ok_at = Some(at);
        self.save();
    }

    /// Records that `transport` went unanswered on `network`.
    pub fn failed(&mut self, network: &str, transport: &str, at: DateTime<Utc>) {
        self.seen(network, transport, at).failed_at = Some(at);
        self.save();
    }

    fn seen(&mut self, network: &str, transport: &str, at: DateTime<Utc>) -> &mut Seen {
        if !self.book.networks.contains_key(network) && self.book.networks.len() >= MAX_NETWORKS {
            let oldest = self
                .book
                .networks
                .iter()
                .min_by_key(|(_, n)| n.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.book.networks.remove(&oldest);
            }
        }
        let entry = self.book.networks.entry(network.to_owned()).or_default();
        entry.last_seen = Some(at);
        entry.transports.entry(transport.to_owned()).or_default()
    }

    fn save(&self) {
        let Some(file) = &self.file else { return };
        let bytes = serde_json::to_vec_pretty(&self.book).expect("the memory serialises");
        if let Err(e) = write_atomic(file, &bytes) {
            tracing::warn!(file = %file.display(), "network memory not saved: {e}");
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl NetworkMemory {
    /// The network the client is on, as seen towards `gateway`: a hash of the local address
    /// the kernel would send from (no packet is sent), keyed with this memory's salt. `None`
    /// without a route.
    pub fn network_towards(&self, gateway: SocketAddr) -> Option<String> {
        let bind: SocketAddr = match gateway {
            SocketAddr::V4(_) => "0.0.0.0:0",
            SocketAddr::V6(_) => "[::]:0",
        }
        .parse()
        .ok()?;
        let socket = UdpSocket::bind(bind).ok()?;
        socket.connect(gateway).ok()?;
        Some(self.name_of(socket.local_addr().ok()?.ip()))
    }

    /// The memory's name for the network where this host has `local`: not the address
    /// itself, and not a hash anyone without the salt can undo, so the file does not say
    /// where its owner has been.
    pub fn name_of(&self, local: IpAddr) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.book.salt.as_bytes());
        let tag = ring::hmac::sign(&key, format!("damm-network-memory/2 {local}").as_bytes());
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Checks a path given for the memory before a client starts with it: its directory must
/// exist.
pub fn check_file(file: &Path) -> Result<(), AgentError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(AgentError::Invalid(
            format!("{}: the directory does not exist", file.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_outcome_wins_and_old_ones_fade() {
        let now = Utc::now();
        let mut m = NetworkMemory::in_memory();
        assert_eq!(m.hint("n", "T0", now), Hint::Unknown);
        m.failed("n", "T0", now - Duration::minutes(5));
        m.worked("n", "T3", now - Duration::minutes(5));
        assert_eq!(m.hint("n", "T0", now), Hint::Failed);
        assert_eq!(m.hint("n", "T3", now), Hint::Worked);
        assert_eq!(m.hint("other", "T0", now), Hint::Unknown);
        m.worked("n", "T0", now);
        assert_eq!(m.hint("n", "T0", now), Hint::Worked);
        // A day later the failure of T3 would no longer count; a month later nor the success.
        m.failed("n", "T3", now);
        assert_eq!(m.hint("n", "T3", now), Hint::Failed);
        assert_eq!(m.hint("n", "T3", now + Duration::hours(25)), Hint::Worked);
        assert_eq!(m.hint("n", "T3", now + Duration::days(31)), Hint::Unknown);
    }

    #[test]
    fn the_file_survives_a_restart_and_a_bad_one_starts_empty() {
        let dir = std::env::temp_dir().join(format!("damm-networks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("networks.json");
        let now = Utc::now();
        let mut m = NetworkMemory::load(&file);
        m.failed("n", "T0", now);
        let again = NetworkMemory::load(&file);
        assert_eq!(again.hint("n", "T0", now), Hint::Failed);
        let here: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(again.name_of(here), m.name_of(here), "the salt is kept");
        std::fs::write(&file, b"{ not json").unwrap();
        let broken = NetworkMemory::load(&file);
        assert_eq!(broken.hint("n", "T0", now), Hint::Unknown);
        assert!(check_file(&dir.join("missing/networks.json")).is_err());
        assert!(check_file(&file).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn at_most_so_many_networks_the_oldest_forgotten() {
        let now = Utc::now();
        let mut m = NetworkMemory::in_memory();
        for i in 0..=MAX_NETWORKS {
            m.worked(&format!("n{i}"), "T0", now + Duration::seconds(i as i64));
        }
        assert_eq!(m.book.networks.len(), MAX_NETWORKS);
        assert_eq!(m.hint("n0", "T0", now), Hint::Unknown);
        assert_eq!(m.hint("n1", "T0", now), Hint::Worked);
    }

    #[test]
    fn networks_are_named_under_the_files_own_salt() {
        let a = NetworkMemory::in_memory();
        let address: IpAddr = "192.168.1.23".parse().unwrap();
        let name = a.name_of(address);
        assert_eq!(name.len(), 16);
        assert_eq!(name, a.name_of(address), "stable");
        assert_ne!(name, a.name_of("192.168.1.24".parse().unwrap()));
        // Another memory (another device) names the same address otherwise: a name says
        // nothing without the salt.
        assert_ne!(name, NetworkMemory::in_memory().name_of(address));
        assert!(a.network_towards("127.0.0.1:9".parse().unwrap()).is_some());
    }
}
