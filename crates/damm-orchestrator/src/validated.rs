//! The record of proven failovers behind the catalog's `validated_for`.
//!
//! A provider-dark scenario run (`cargo xtask scenario provider-dark --provider NAME`) that
//! meets the integrity claim writes or updates one entry of a small JSON file:
//!
//! ```json
//! { "hetzner": { "date": "2026-05-01", "ticksToExclude": 1, "minutesTo70": 1.0,
//!                "minutesTo100": 1.0, "command": "cargo xtask scenario provider-dark --provider hetzner" } }
//! ```
//!
//! The orchestrator reads it (`--validated FILE`, `DAMM_VALIDATED`, default `validated.json`
//! beside the state file; a missing file is an empty record) and lists in `validated_for` only
//! the providers that are both in the record and in the current fleet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;
use damm_catalog::Validation;
use serde::{Deserialize, Serialize};

use crate::state::State;

/// One proven failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proof {
    /// The day of the run.
    pub date: NaiveDate,
    /// Ticks after the outage until the catalog excluded the provider.
    pub ticks_to_exclude: u64,
    /// Minutes (orchestrator time) until capacity was back at 70 % or more.
    pub minutes_to_70: f64,
    /// Minutes until capacity was back at 100 %.
    pub minutes_to_100: f64,
    /// The command that reproduces the run.
    pub command: String,
}

/// Provider → its latest proof.
pub type Record = BTreeMap<String, Proof>;

/// The default record path: `validated.json` beside the state file.
pub fn default_path(state: &Path) -> PathBuf {
    state.with_file_name("validated.json")
}

/// Reads the record; a missing file is an empty record, a broken one an error naming it.
pub fn load(path: &Path) -> anyhow::Result<Record> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not a validated-failover record (provider → {{date, ticksToExclude, minutesTo70, minutesTo100, command}})",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Sets `provider`'s proof and writes the record atomically.
pub fn record(path: &Path, provider: &str, proof: Proof) -> anyhow::Result<()> {
    let mut all = load(path)?;
    all.insert(provider.to_owned(), proof);
    let mut bytes = serde_json::to_vec_pretty(&all)?;
    bytes.push(b'\n');
    damm_provider::fs::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// The catalog's `validated_for`: the recorded providers that the fleet uses now.
pub fn validated_for(record: &Record, state: &State) -> Vec<Validation> {
    record
        .iter()
        .filter(|(provider, _)| state.nodes.values().any(|n| &n.provider == *provider))
        .map(|(provider, proof)| Validation {
            provider: provider.clone(),
            proven_at: proof.date,
            scenario: format!(
                "provider-dark {provider}: excluded after {} tick(s), ≥70 % after {:.1} min, 100 % after {:.1} min",
                proof.ticks_to_exclude, proof.minutes_to_70, proof.minutes_to_100
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeRecord;
    use chrono::DateTime;
    use damm_provider::{FleetId, IdempotencyKey, NodeRole, NodeState, Region};

    fn proof(day: u32) -> Proof {
        Proof {
            date: NaiveDate::from_ymd_opt(2026, 5, day).unwrap(),
            ticks_to_exclude: 1,
            minutes_to_70: 1.0,
            minutes_to_100: 2.0,
            command: "cargo xtask scenario provider-dark --provider x".into(),
        }
    }

    #[test]
    fn lists_only_recorded_providers_of_the_current_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(&dir.path().join("state.json"));
        assert!(load(&path).unwrap().is_empty(), "absent is empty");
        record(&path, "hetzner", proof(1)).unwrap();
        record(&path, "vultr", proof(2)).unwrap();
        record(&path, "hetzner", proof(3)).unwrap();
        let all = load(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["hetzner"].date.to_string(), "2026-05-03");

        let mut state = State::new(FleetId::new("t").unwrap());
        let at = DateTime::UNIX_EPOCH;
        for (key, provider) in [("i1-eu", "hetzner"), ("i2-eu", "digitalocean")] {
            state.nodes.insert(
                IdempotencyKey::new(key).unwrap(),
                NodeRecord {
                    provider: provider.into(),
                    id: key.into(),
                    region: Region::new("eu").unwrap(),
                    role: NodeRole::Ingress,
                    status: damm_fleet::Status::Active,
                    status_since: at,
                    state: NodeState::Running,
                    created_at: at,
                    addresses: vec![],
                    wireguard_port: None,
                    last_seen: at,
                    ready_at: None,
                },
            );
        }
        let v = validated_for(&all, &state);
        // vultr is proven but not in the fleet; digitalocean is in the fleet, not proven.
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].provider, "hetzner");
        assert_eq!(v[0].proven_at.to_string(), "2026-05-03");

        std::fs::write(&path, "{\"hetzner\": 3}").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("validated.json"), "{err}");
    }
}
