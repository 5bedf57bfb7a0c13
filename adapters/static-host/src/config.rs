//! Settings and the inventory file.
//!
//! ```toml
//! # hosts.toml
//! [[host]]
//! id = "pi-berlin"
//! region = "eu-central"
//! address = "203.0.113.7"
//! wireguard_port = 51820
//! roles = ["ingress", "egress"]
//! heartbeat_url = "http://203.0.113.7:9100/healthz"   # optional
//! labels = { owner = "alice" }                         # optional
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use damm_provider::{Labels, NodeRole, Region};
use serde::Deserialize;
use toml::Spanned;

/// The adapter's settings (section `[providers.static-host]`, or `DAMM_STATIC_HOST_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticHostConfig {
    /// The inventory file; relative paths are resolved against the config file.
    pub inventory: PathBuf,
    /// Where the include/exclude decisions are kept; default: beside the inventory,
    /// `<inventory stem>.state.json`.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Probe timeout in milliseconds.
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
}

fn default_probe_timeout_ms() -> u64 {
    2000
}

impl StaticHostConfig {
    /// The probe timeout.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms.max(1))
    }

    /// Where the include/exclude state lives.
    pub fn state_path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| {
            let stem = self
                .inventory
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "inventory".to_owned());
            self.inventory.with_file_name(format!("{stem}.state.json"))
        })
    }
}

/// One hand-provisioned host.
#[derive(Clone, PartialEq)]
pub struct Host {
    /// Unique id within the inventory (a DAMM name: `a-z`, `0-9`, `-`, `_`).
    pub id: String,
    /// DAMM region.
    pub region: Region,
    /// Public address clients (ingress) or destinations (egress) see.
    pub address: IpAddr,
    /// WireGuard UDP port.
    pub wireguard_port: u16,
    /// What the host may serve as.
    pub roles: Vec<NodeRole>,
    /// An HTTP(S) URL answering 2xx while the host is healthy.
    pub heartbeat_url: Option<reqwest::Url>,
    /// Operator labels.
    pub labels: Labels,
}

impl std::fmt::Debug for Host {
    // A heartbeat URL may carry a token in its user-info or query: show neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let heartbeat = self.heartbeat_url.as_ref().map(|u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            )
        });
        f.debug_struct("Host")
            .field("id", &self.id)
            .field("region", &self.region)
            .field("address", &self.address)
            .field("wireguard_port", &self.wireguard_port)
            .field("roles", &self.roles)
            .field("heartbeat_url", &heartbeat)
            .field("labels", &self.labels)
            .finish()
    }
}

/// The parsed, validated inventory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    /// Hosts, in file order.
    pub hosts: Vec<Host>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    id: Spanned<String>,
    region: Spanned<String>,
    address: Spanned<String>,
    #[serde(default = "default_port")]
    wireguard_port: Spanned<u16>,
    roles: Spanned<Vec<String>>,
    #[serde(default)]
    heartbeat_url: Option<Spanned<String>>,
    #[serde(default = "no_labels")]
    labels: Spanned<BTreeMap<String, String>>,
}

fn no_labels() -> Spanned<BTreeMap<String, String>> {
    Spanned::new(0..0, BTreeMap::new())
}

fn default_port() -> Spanned<u16> {
    Spanned::new(0..0, 51820)
}

/// An inventory problem, with file, line, column and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InventoryError(pub String);

impl Inventory {
    /// Reads and validates the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InventoryError(format!("{}: cannot read inventory: {e}", path.display()))
        })?;
        Inventory::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = toml::from_str(text).map_err(|e| {
            InventoryError(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        let at = |span: Range<usize>, field: &str, message: String| {
            let (line, column) = line_col(text, span.start);
            InventoryError(format!(
                "{}:{line}:{column}: field `{field}`: {message}",
                path.display()
            ))
        };
        let mut hosts: Vec<Host> = Vec::with_capacity(raw.host.len());
        for entry in raw.host {
            let raw = entry.into_inner();
            let id = raw.id.get_ref();
            Region::new(id.as_str()).map_err(|e| {
                at(
                    raw.id.span(),
                    "id",
                    e.to_string().replace("region", "host id"),
                )
            })?;
            if hosts.iter().any(|h| h.id == *id) {
                return Err(at(raw.id.span(), "id", format!("duplicate host id `{id}`")));
            }
            let region = Region::new(raw.region.get_ref().as_str())
                .map_err(|e| at(raw.region.span(), "region", e.to_string()))?;
            let address: IpAddr = raw.address.get_ref().parse().map_err(|_| {
                at(
                    raw.address.span(),
                    "address",
                    format!("`{}` is not an IP address", raw.address.get_ref()),
                )
            })?;
            let wireguard_port = *raw.wireguard_port.get_ref();
            if wireguard_port == 0 {
                return Err(at(
                    raw.wireguard_port.span(),
                    "wireguard_port",
                    "must be 1-65535".into(),
                ));
            }
            let mut roles = Vec::new();
            for role in raw.roles.get_ref() {
                let role: NodeRole = role.parse().map_err(|e: damm_provider::InvalidName| {
                    at(raw.roles.span(), "roles", e.to_string())
                })?;
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            if roles.is_empty() {
                return Err(at(
                    raw.roles.span(),
                    "roles",
                    "give at least one of `ingress`, `egress`".into(),
                ));
            }
            roles.sort();
            let heartbeat_url = match raw.heartbeat_url {
                None => None,
                Some(url) => {
                    let parsed = reqwest::Url::parse(url.get_ref())
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .ok_or_else(|| {
                            at(
                                url.span(),
                                "heartbeat_url",
                                format!("`{}` is not an http(s) URL", url.get_ref()),
                            )
                        })?;
                    Some(parsed)
                }
            };
            let mut labels = Labels::new();
            for (k, v) in raw.labels.get_ref() {
                labels
                    .insert(k.clone(), v.clone())
                    .map_err(|e| at(raw.labels.span(), "labels", e.to_string()))?;
            }
            hosts.push(Host {
                id: id.clone(),
                region,
                address,
                wireguard_port,
                roles,
                heartbeat_url,
                labels,
            });
        }
        Ok(Inventory { hosts })
    }

    /// The host with id `id`.
    pub fn host(&self, id: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, String> {
        Inventory::parse(Path::new("hosts.toml"), text).map_err(|e| e.0)
    }

    #[test]
    fn parses_a_full_host() {
        let inv = parse(
            r#"
[[host]]
id = "pi-berlin"
region = "eu-central"
address = "203.0.113.7"
roles = ["egress", "ingress"]
heartbeat_url = "http://203.0.113.7:9100/healthz"
labels = { owner = "alice" }
"#,
        )
        .unwrap();
        let host = inv.host("pi-berlin").unwrap();
        assert_eq!(host.wireguard_port, 51820);
        assert_eq!(host.roles, vec![NodeRole::Ingress, NodeRole::Egress]);
        assert_eq!(host.labels.get("owner"), Some("alice"));
    }

    #[test]
    fn debug_hides_heartbeat_credentials() {
        let inv = parse(
            "[[host]]\nid = \"a\"\nregion = \"eu\"\naddress = \"192.0.2.1\"\nroles = [\"ingress\"]\nheartbeat_url = \"https://user:pw@192.0.2.1:9100/healthz?token=s3cret\"\n",
        )
        .unwrap();
        let shown = format!("{inv:?}");
        assert!(shown.contains("https://192.0.2.1:9100/healthz"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = parse("[[host]]\nid = \"a\"\nregion = \"eu\"\naddress = \"not-an-ip\"\nroles = [\"ingress\"]\n")
            .unwrap_err();
        assert_eq!(
            err,
            "hosts.toml:4:11: field `address`: `not-an-ip` is not an IP address"
        );
        let err = parse("[[host]]\nid = \"a\"\nregion = \"eu\"\naddress = \"192.0.2.1\"\nroles = [\"gateway\"]\n")
            .unwrap_err();
        assert!(err.starts_with("hosts.toml:5:9: field `roles`"), "{err}");
        let err =
            parse("[[host]]\nid = \"a\"\nregion = \"eu\"\naddress = \"192.0.2.1\"\nroles = []\n")
                .unwrap_err();
        assert!(err.contains("field `roles`: give at least one"), "{err}");
    }

    #[test]
    fn rejects_duplicates_bad_ports_and_unknown_fields() {
        let host = "[[host]]\nid = \"a\"\nregion = \"eu\"\naddress = \"192.0.2.1\"\nroles = [\"ingress\"]\n";
        let err = parse(&format!("{host}{host}")).unwrap_err();
        assert!(
            err.starts_with("hosts.toml:7:6: field `id`: duplicate host id `a`"),
            "{err}"
        );
        let err = parse(&format!("{host}wireguard_port = 0\n")).unwrap_err();
        assert!(err.contains("field `wireguard_port`"), "{err}");
        let err = parse(&format!("{host}adress = \"x\"\n")).unwrap_err();
        assert!(err.contains("line 6") && err.contains("adress"), "{err}");
        let err = parse(&format!("{host}heartbeat_url = \"ftp://x\"\n")).unwrap_err();
        assert!(err.contains("field `heartbeat_url`"), "{err}");
    }
}
