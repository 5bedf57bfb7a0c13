//! The orchestrator's state: what DAMM owns, the apply journal, the scoring memory and the
//! planner's last output (`orchestrator.desiredFleet`), behind a [`StateStore`].
//!
//! The embedded default is [`FileStore`]: one JSON document replaced atomically (temp file,
//! fsync, rename, directory fsync), guarded by an exclusive lock on a sibling `.lock` file so
//! two orchestrators never write one state, with a serial number that only grows and a
//! schema version that refuses documents from a newer DAMM.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use damm_fleet::{Action, AddressKind, DesiredNode, Plan, ScoreBook, Status};
use damm_provider::{FleetId, IdempotencyKey, NodeRole, NodeState, Region};
use serde::{Deserialize, Serialize};

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A node DAMM owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Provider (policy name).
    pub provider: String,
    /// The provider's id.
    pub id: String,
    /// DAMM region.
    pub region: Region,
    /// Role.
    pub role: NodeRole,
    /// DAMM status.
    pub status: Status,
    /// Since when.
    pub status_since: DateTime<Utc>,
    /// The provider's last reported state.
    pub state: NodeState,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Public addresses.
    pub addresses: Vec<IpAddr>,
    /// WireGuard port, when known.
    pub wireguard_port: Option<u16>,
    /// Last seen in an inventory.
    pub last_seen: DateTime<Utc>,
    /// The first tick it probed healthy: `ready_at - created_at` is its measured boot time
    /// (to the tick's resolution), which `damm whatif` uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<DateTime<Utc>>,
}

impl NodeRecord {
    /// The record of `node`, first seen now at `provider` (created or adopted), in `region`
    /// as `role` with `status`.
    pub fn first_seen(
        node: &damm_provider::Node,
        provider: &str,
        region: &Region,
        role: NodeRole,
        status: Status,
        now: DateTime<Utc>,
    ) -> NodeRecord {
        NodeRecord {
            provider: provider.to_owned(),
            id: node.reference.id.clone(),
            region: region.clone(),
            role,
            status,
            status_since: now,
            state: node.state,
            created_at: now,
            addresses: node.addresses.clone(),
            wireguard_port: node.wireguard_port,
            last_seen: now,
            ready_at: None,
        }
    }
}

/// A static address, CDN front or overlay membership DAMM owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressRecord {
    /// Provider (policy name).
    pub provider: String,
    /// The provider's id.
    pub id: String,
    /// DAMM region.
    pub region: Region,
    /// Front door, egress, front or overlay membership.
    pub kind: AddressKind,
    /// The node it serves.
    pub node: Option<IdempotencyKey>,
    /// The address: a front's origin, a member's overlay address (none while pending).
    pub address: Option<IpAddr>,
    /// A front's public hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl AddressRecord {
    /// What clients connect to: a front's hostname, a member's overlay address.
    pub fn endpoint(&self) -> Option<String> {
        match self.kind {
            AddressKind::Front => self.hostname.clone(),
            AddressKind::Overlay => self.address.map(|a| a.to_string()),
            AddressKind::Frontdoor | AddressKind::EgressIp => None,
        }
    }
}

/// Where a journaled action is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "camelCase")]
pub enum Phase {
    /// Written before the adapter call; no answer recorded yet.
    Intent,
    /// The adapter call succeeded (or a later inventory proved it did).
    Done,
    /// The adapter refused; the planner will decide again.
    Failed {
        /// The error (never a secret: adapters scrub them).
        error: String,
    },
    /// No answer was recorded (a crash) and inventory did not show the result; a
    /// resource that later appears with this key is adopted.
    Abandoned,
}

/// One journaled action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Sequence number, only grows.
    pub seq: u64,
    /// When the intent was written.
    pub at: DateTime<Utc>,
    /// The action.
    pub action: Action,
    /// Where it is.
    #[serde(flatten)]
    pub phase: Phase,
}

/// What the last tick did, for `status`, `/metrics` and operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickSummary {
    /// When it started.
    pub at: Option<DateTime<Utc>>,
    /// Tick number.
    pub number: u64,
    /// Probe phase wall time (inventory, reconcile and probes), milliseconds.
    pub probe_ms: u64,
    /// Of which the inventory listings, milliseconds.
    #[serde(default)]
    pub inventory_ms: u64,
    /// Probes run.
    pub probes: u64,
    /// Probes that failed.
    pub probe_failures: u64,
    /// Actions planned.
    pub planned: u64,
    /// Actions applied.
    pub applied: u64,
    /// Actions that failed.
    pub failed: u64,
    /// Resources adopted from the journal.
    pub adopted: u64,
    /// Orphans collected.
    pub collected: u64,
    /// Providers whose inventory failed this tick, with the error.
    pub provider_errors: BTreeMap<String, String>,
}

/// The orchestrator's own section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrchestratorState {
    /// The planner's output of the last tick.
    pub desired_fleet: Vec<DesiredNode>,
    /// The last plan.
    pub last_plan: Option<Plan>,
    /// The last tick.
    pub last_tick: TickSummary,
    /// Serial for new idempotency keys.
    pub next_serial: u64,
    /// Next journal sequence number.
    pub next_seq: u64,
    /// Version of the last published catalog; only grows.
    #[serde(default)]
    pub catalog_version: u64,
}

/// The whole state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Schema version of the document.
    pub schema_version: u32,
    /// Only grows: one more on every write.
    pub serial: u64,
    /// The fleet this state belongs to.
    pub fleet: FleetId,
    /// Owned nodes by key.
    pub nodes: BTreeMap<IdempotencyKey, NodeRecord>,
    /// Owned addresses by key.
    pub addresses: BTreeMap<IdempotencyKey, AddressRecord>,
    /// The apply journal (recent entries).
    pub journal: Vec<JournalEntry>,
    /// Labelled resources no journal explains, by `provider/key`, with when first seen.
    pub orphans: BTreeMap<String, DateTime<Utc>>,
    /// Scoring memory.
    pub scores: ScoreBook,
    /// The orchestrator's section.
    pub orchestrator: OrchestratorState,
    /// Enrolled clients by id (public key, tunnel address, report token hash; never a
    /// private key or a raw token).
    #[serde(default)]
    pub clients: BTreeMap<String, crate::enroll::ClientRecord>,
    /// Each gateway's backbone address (ingress → egress tunnels), from the policy's
    /// `clients.backbone_pool`.
    #[serde(default)]
    pub backbone: BTreeMap<IdempotencyKey, std::net::Ipv4Addr>,
}

/// How many settled journal entries are kept.
const JOURNAL_KEEP: usize = 2000;

impl State {
    /// The fleet as the planner sees it: every record here carries the fleet's label.
    pub fn fleet(&self) -> damm_fleet::Fleet {
        damm_fleet::Fleet {
            nodes: self
                .nodes
                .iter()
                .map(|(key, n)| damm_fleet::FleetNode {
                    key: key.clone(),
                    provider: n.provider.clone(),
                    id: Some(n.id.clone()),
                    region: n.region.clone(),
                    role: n.role,
                    owned: true,
                    status: n.status,
                    status_since: n.status_since,
                    state: n.state,
                    created_at: n.created_at,
                })
                .collect(),
            addresses: self
                .addresses
                .iter()
                .map(|(key, a)| damm_fleet::FleetAddress {
                    key: key.clone(),
                    provider: a.provider.clone(),
                    id: Some(a.id.clone()),
                    region: a.region.clone(),
                    kind: a.kind,
                    node: a.node.clone(),
                    owned: true,
                    endpoint: a.endpoint(),
                })
                .collect(),
            next_serial: self.orchestrator.next_serial,
        }
    }

    /// An empty state for `fleet`.
    pub fn new(fleet: FleetId) -> Self {
        State {
            schema_version: SCHEMA_VERSION,
            serial: 0,
            fleet,
            nodes: BTreeMap::new(),
            addresses: BTreeMap::new(),
            journal: Vec::new(),
            orphans: BTreeMap::new(),
            scores: ScoreBook::default(),
            orchestrator: OrchestratorState::default(),
            clients: BTreeMap::new(),
            backbone: BTreeMap::new(),
        }
    }

    /// Writes an intent; returns its sequence number.
    pub fn intend(&mut self, action: Action, at: DateTime<Utc>) -> u64 {
        let seq = self.orchestrator.next_seq;
        self.orchestrator.next_seq += 1;
        self.journal.push(JournalEntry {
            seq,
            at,
            action,
            phase: Phase::Intent,
        });
        seq
    }

    /// Settles an entry.
    pub fn settle(&mut self, seq: u64, phase: Phase) {
        if let Some(e) = self.journal.iter_mut().find(|e| e.seq == seq) {
            e.phase = phase;
        }
    }

    /// Drops the oldest settled entries past the keep limit; unsettled ones stay.
    pub fn trim_journal(&mut self) {
        let excess = self.journal.len().saturating_sub(JOURNAL_KEEP);
        if excess == 0 {
            return;
        }
        let mut dropped = 0;
        self.journal.retain(|e| {
            let settled = matches!(e.phase, Phase::Done | Phase::Failed { .. });
            if settled && dropped < excess {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}

/// Where state lives.
pub trait StateStore: Send {
    /// Reads the state, or `None` when there is none yet.
    fn load(&mut self) -> anyhow::Result<Option<State>>;
    /// Writes `state`, bumping its serial.
    fn save(&mut self, state: &mut State) -> anyhow::Result<()>;
    /// Where, for messages.
    fn describe(&self) -> String;
}

/// The embedded default: one JSON file, atomically replaced, locked.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    /// Held for the store's lifetime: the lock.
    _lock: Option<File>,
    last_serial: u64,
}

impl FileStore {
    /// Opens `path` for writing, taking the lock. Fails when another orchestrator holds it.
    pub fn open(path: &Path) -> anyhow::Result<FileStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state directory {}", dir.display()))?;
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening the state lock {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another orchestrator holds the state lock {}; only one may write {}",
                lock_path.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        Ok(FileStore {
            path: path.to_owned(),
            _lock: Some(lock),
            last_serial: 0,
        })
    }

    /// Opens `path` for reading only, without the lock (`status`, `plan`).
    pub fn read_only(path: &Path) -> FileStore {
        FileStore {
            path: path.to_owned(),
            _lock: None,
            last_serial: 0,
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

impl StateStore for FileStore {
    fn load(&mut self) -> anyhow::Result<Option<State>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let probe: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a DAMM state document (invalid JSON)",
                self.path.display()
            )
        })?;
        let version = probe
            .get("schemaVersion")
            .and_then(serde_json::Value::as_u64);
        match version {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) if v > u64::from(SCHEMA_VERSION) => bail!(
                "{}: schemaVersion {v} is newer than this DAMM understands ({SCHEMA_VERSION}); upgrade DAMM",
                self.path.display()
            ),
            Some(v) => bail!(
                "{}: schemaVersion {v} is not supported (expected {SCHEMA_VERSION})",
                self.path.display()
            ),
            None => bail!("{}: schemaVersion: missing", self.path.display()),
        }
        let state: State = serde_json::from_value(probe)
            .with_context(|| format!("{}: not a valid DAMM state document", self.path.display()))?;
        self.last_serial = state.serial;
        Ok(Some(state))
    }

    fn save(&mut self, state: &mut State) -> anyhow::Result<()> {
        if self._lock.is_none() {
            bail!("{} was opened read-only", self.path.display());
        }
        state.serial = state.serial.max(self.last_serial) + 1;
        state.trim_journal();
        let bytes = serde_json::to_vec(state).context("serialising state")?;
        damm_provider::fs::write_atomic(&self.path, &bytes)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.last_serial = state.serial;
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// A store in memory, for tests and the demo's dry runs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The last saved state.
    pub state: Option<State>,
}

impl StateStore for MemoryStore {
    fn load(&mut self) -> anyhow::Result<Option<State>> {
        Ok(self.state.clone())
    }

    fn save(&mut self, state: &mut State) -> anyhow::Result<()> {
        state.serial += 1;
        state.trim_journal();
        self.state = Some(state.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_with_a_growing_serial_and_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut store = FileStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut state = State::new(FleetId::new("t").unwrap());
        store.save(&mut state).unwrap();
        store.save(&mut state).unwrap();
        assert_eq!(state.serial, 2);
        // A second orchestrator cannot take the same file.
        let err = FileStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("another orchestrator"), "{err}");
        // Readers can.
        let read = FileStore::read_only(&path).load().unwrap().unwrap();
        assert_eq!(read.serial, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"desiredFleet\""), "{text}");
        drop(store);
        let mut again = FileStore::open(&path).unwrap();
        let mut loaded = again.load().unwrap().unwrap();
        // Even a stale in-memory copy never lowers the serial.
        loaded.serial = 0;
        again.save(&mut loaded).unwrap();
        assert_eq!(loaded.serial, 3);
    }

    #[test]
    fn refuses_newer_and_broken_documents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"schemaVersion": 99}"#).unwrap();
        let err = FileStore::read_only(&path).load().unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        std::fs::write(&path, "{").unwrap();
        let err = FileStore::read_only(&path).load().unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
    }
}
