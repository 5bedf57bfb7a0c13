//! The fleet as the planner sees it: every node and address DAMM knows of, merged from
//! the orchestrator's state and the providers' inventories by the shell.

use chrono::{DateTime, Utc};
use damm_provider::{IdempotencyKey, NodeRole, NodeState, Region};
use serde::{Deserialize, Serialize};

/// What DAMM uses a node for; the provider knows nothing of this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Serving and published in the catalog.
    Active,
    /// Provisioned and healthy, but not published: promoted in one tick.
    Spare,
    /// Taking no new sessions; retired after the drain grace.
    Draining,
}

impl Status {
    /// `active`, `spare` or `draining`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Spare => "spare",
            Status::Draining => "draining",
        }
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetNode {
    /// The idempotency key it was created with: DAMM's name for it.
    pub key: IdempotencyKey,
    /// Provider (policy name).
    pub provider: String,
    /// The provider's id, once known.
    pub id: Option<String>,
    /// DAMM region.
    pub region: Region,
    /// Ingress or egress.
    pub role: NodeRole,
    /// Whether it carries this fleet's label. Unlabelled nodes are never touched.
    pub owned: bool,
    /// DAMM's status.
    pub status: Status,
    /// Since when it has that status.
    pub status_since: DateTime<Utc>,
    /// The provider's lifecycle state.
    pub state: NodeState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What an address is: a static address of the node's own provider, or an entry on
/// another provider that leads to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// A static address clients connect to.
    Frontdoor,
    /// A static address traffic leaves from.
    EgressIp,
    /// A CDN-fronted hostname in front of an ingress, on a `[fronts]` provider. It can be
    /// moved to another ingress and keep its hostname.
    Front,
    /// A gateway's membership of an overlay network, on an `[overlay]` provider.
    Overlay,
}

impl AddressKind {
    /// Whether it lives on another provider than its node (a front or an overlay
    /// membership), as opposed to a static address of the node's own provider.
    pub const fn is_entry(self) -> bool {
        matches!(self, AddressKind::Front | AddressKind::Overlay)
    }
}

/// One static address, front or overlay membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetAddress {
    /// Its idempotency key.
    pub key: IdempotencyKey,
    /// Provider (policy name).
    pub provider: String,
    /// The provider's id, once known.
    pub id: Option<String>,
    /// DAMM region.
    pub region: Region,
    /// Front door, egress, front or overlay.
    pub kind: AddressKind,
    /// The node it serves.
    pub node: Option<IdempotencyKey>,
    /// Whether it carries this fleet's label.
    pub owned: bool,
    /// What clients connect to, once known: the front's hostname, the overlay address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Everything the planner needs to know about the fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    /// Nodes, in any order.
    pub nodes: Vec<FleetNode>,
    /// Static addresses, in any order.
    pub addresses: Vec<FleetAddress>,
    /// The next serial for new idempotency keys; only grows.
    pub next_serial: u64,
}

impl Fleet {
    /// A node by key.
    pub fn node(&self, key: &IdempotencyKey) -> Option<&FleetNode> {
        self.nodes.iter().find(|n| &n.key == key)
    }
}
