//! Typed specs, references and results shared by every adapter.
//!
//! Specs are what the planner asks for; `*Ref`s name a provider resource; the result
//! types (`Node`, `Frontdoor`, ...) are what inventory and creates hand back, with the
//! catalog-facing data (addresses, hostnames, tunnel ids, overlay addresses) as typed
//! values rather than strings to parse.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{LABEL_FLEET, LABEL_KEY, LABEL_ROLE};

/// A name DAMM accepts in labels: 1–63 characters of `a-z`, `0-9`, `-` and `_`,
/// starting with a letter or digit. The strictest rule across the providers (GCE labels
/// are lowercase only; Hetzner caps at 63), so one value is valid everywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: {reason}")]
pub struct InvalidName {
    what: &'static str,
    value: String,
    reason: &'static str,
}

fn check_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let fail = |reason| {
        Err(InvalidName {
            what,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > 63 {
        return fail("must be at most 63 characters");
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return fail("must start with a lowercase letter or a digit");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return fail("may hold only a-z, 0-9, '-' and '_'");
    }
    Ok(())
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                check_name($what, &value)?;
                Ok($name(value))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_name!(
    /// A DAMM region (`eu-central`, `us-east`, ...). Adapters map it to their own
    /// region names with [`Provider::region`](crate::Provider::region).
    Region,
    "region"
);
checked_name!(
    /// The id of one DAMM fleet; every resource DAMM owns carries it as [`LABEL_FLEET`].
    FleetId,
    "fleet id"
);
checked_name!(
    /// The idempotency key the planner chose before a create call, carried as
    /// [`LABEL_KEY`]: a retried or replayed create finds the resource instead of
    /// making a second one.
    IdempotencyKey,
    "idempotency key"
);

/// Labels (tags) on a provider resource.
///
/// ```
/// use damm_provider::{FleetId, IdempotencyKey, Labels};
///
/// let fleet = FleetId::new("prod").unwrap();
/// let labels = Labels::owned(&fleet, &IdempotencyKey::new("k-42").unwrap());
/// assert!(labels.is_owned_by(&fleet));
/// assert_eq!(labels.key().unwrap().as_str(), "k-42");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Labels::default()
    }

    /// The two ownership labels: fleet id and idempotency key.
    pub fn owned(fleet: &FleetId, key: &IdempotencyKey) -> Self {
        let mut labels = Labels::new();
        labels.0.insert(LABEL_FLEET.into(), fleet.to_string());
        labels.0.insert(LABEL_KEY.into(), key.to_string());
        labels
    }

    /// Adds a label after checking both parts; returns the previous value.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Option<String>, InvalidName> {
        let (key, value) = (key.into(), value.into());
        check_name("label key", &key)?;
        if !value.is_empty() {
            check_name("label value", &value)?;
        }
        Ok(self.0.insert(key, value))
    }

    /// Labels as read back from a provider, unchecked (foreign resources may use any).
    pub fn from_provider(map: BTreeMap<String, String>) -> Self {
        Labels(map)
    }

    /// Looks a label up.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Removes a label.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Whether the resource belongs to `fleet`.
    pub fn is_owned_by(&self, fleet: &FleetId) -> bool {
        self.get(LABEL_FLEET) == Some(fleet.as_str())
    }

    /// The idempotency key, if the resource carries a valid one.
    pub fn key(&self) -> Option<IdempotencyKey> {
        self.get(LABEL_KEY)
            .and_then(|k| IdempotencyKey::new(k).ok())
    }

    /// Every `(key, value)` pair, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether every label in `wanted` is present with the same value.
    pub fn contains_all(&self, wanted: &Labels) -> bool {
        wanted.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Terminates client connections.
    Ingress,
    /// NATs traffic out to the internet.
    Egress,
}

impl NodeRole {
    /// `ingress` or `egress`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeRole::Ingress => "ingress",
            NodeRole::Egress => "egress",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeRole {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingress" => Ok(NodeRole::Ingress),
            "egress" => Ok(NodeRole::Egress),
            other => Err(InvalidName {
                what: "node role",
                value: other.to_owned(),
                reason: "expected `ingress` or `egress`",
            }),
        }
    }
}

/// Bootstrap user-data (cloud-init) for a new node. It may carry keys and tokens, so
/// its Debug output is redacted and it is never serialised.
#[derive(Clone)]
pub struct UserData(SecretString);

impl UserData {
    /// Wraps a cloud-init document.
    pub fn new(text: impl Into<String>) -> Self {
        UserData(SecretString::from(text.into()))
    }

    /// The document, for the adapter call that sends it.
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserData([redacted])")
    }
}

/// What the planner asks a compute provider to create.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Idempotency key, also written as the [`LABEL_KEY`] label.
    pub key: IdempotencyKey,
    /// DAMM region.
    pub region: Region,
    /// Ingress or egress.
    pub role: NodeRole,
    /// Size profile from the policy (`small`, `medium`, ...); the adapter maps it.
    pub profile: String,
    /// Labels to set; must include the ownership labels (see [`Labels::owned`]).
    pub labels: Labels,
    /// Bootstrap configuration stamped onto the node.
    pub user_data: Option<UserData>,
}

impl NodeSpec {
    /// A spec with the ownership and role labels set, no user-data.
    pub fn new(
        fleet: &FleetId,
        key: IdempotencyKey,
        region: Region,
        role: NodeRole,
        profile: impl Into<String>,
    ) -> Self {
        let mut labels = Labels::owned(fleet, &key);
        labels.0.insert(LABEL_ROLE.into(), role.as_str().into());
        NodeSpec {
            key,
            region,
            role,
            profile: profile.into(),
            labels,
            user_data: None,
        }
    }
}

macro_rules! resource_ref {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name {
            /// The provider id that owns the resource.
            pub provider: String,
            /// The provider's own id for it.
            pub id: String,
        }

        impl $name {
            /// Names resource `id` at `provider`.
            pub fn new(provider: impl Into<String>, id: impl Into<String>) -> Self {
                $name { provider: provider.into(), id: id.into() }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.provider, self.id)
            }
        }
    };
}

resource_ref!(
    /// Names a node (VM or static host) at its provider.
    NodeRef
);
resource_ref!(
    /// Names an ingress front door (a public address clients connect to).
    FrontdoorRef
);
resource_ref!(
    /// Names an egress address.
    EgressIpRef
);
resource_ref!(
    /// Names an overlay membership (a device or its pending auth key).
    MembershipRef
);
resource_ref!(
    /// Names a CDN front (a proxied hostname).
    FrontRef
);
resource_ref!(
    /// Names a managed tunnel.
    TunnelRef
);

/// Lifecycle state of a node as its provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Being created or booting.
    Provisioning,
    /// Up and serving.
    Running,
    /// Up, but taking no new sessions.
    Draining,
    /// Powered off.
    Stopped,
    /// Being deleted.
    Deleting,
    /// The provider reported something DAMM does not know.
    Unknown,
}

/// One node in a provider's inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Which node.
    pub reference: NodeRef,
    /// DAMM region.
    pub region: Region,
    /// The provider's own region or location name.
    pub provider_region: String,
    /// What the node serves as (a static host may be both).
    pub roles: Vec<NodeRole>,
    /// Lifecycle state.
    pub state: NodeState,
    /// Public addresses.
    pub addresses: Vec<IpAddr>,
    /// WireGuard UDP port, when the provider knows it.
    pub wireguard_port: Option<u16>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
    /// Creation time, when the provider reports one.
    pub created_at: Option<DateTime<Utc>>,
}

impl Node {
    /// The idempotency key the node was created with.
    pub fn key(&self) -> Option<IdempotencyKey> {
        self.labels.key()
    }
}

/// A monthly price in the provider's billing currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Hundredths of the currency unit per month.
    pub monthly_cents: u64,
    /// ISO 4217 code (`EUR`, `USD`).
    pub currency: String,
}

/// Narrows an inventory listing. Adapters always restrict listings to their own fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only nodes in this DAMM region.
    pub region: Option<Region>,
    /// Only nodes with this role.
    pub role: Option<NodeRole>,
    /// Only nodes carrying all these labels.
    pub labels: Labels,
}

impl NodeFilter {
    /// Matches every node of the fleet.
    pub fn all() -> Self {
        NodeFilter::default()
    }

    /// Whether `node` passes the filter.
    pub fn matches(&self, node: &Node) -> bool {
        self.region.as_ref().is_none_or(|r| *r == node.region)
            && self.role.is_none_or(|r| node.roles.contains(&r))
            && node.labels.contains_all(&self.labels)
    }
}

/// What the planner asks for when it wants a public address: an ingress front door or
/// an egress address.
#[derive(Debug, Clone)]
pub struct AddressSpec {
    /// Idempotency key.
    pub key: IdempotencyKey,
    /// DAMM region the address must live in.
    pub region: Region,
    /// Node to attach it to, if any.
    pub node: Option<NodeRef>,
    /// Labels to set; must include the ownership labels.
    pub labels: Labels,
}

/// Spec for [`Ingress::allocate_ingress_frontdoor`](crate::Ingress::allocate_ingress_frontdoor).
pub type FrontdoorSpec = AddressSpec;
/// Spec for [`Egress::allocate_egress_ip`](crate::Egress::allocate_egress_ip).
pub type EgressIpSpec = AddressSpec;

/// A public surface clients connect to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontdoor {
    /// Which front door.
    pub reference: FrontdoorRef,
    /// DAMM region.
    pub region: Region,
    /// The public address.
    pub address: IpAddr,
    /// The WireGuard UDP port, when known.
    pub port: Option<u16>,
    /// The node it is attached to.
    pub node: Option<NodeRef>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

/// An outbound NAT address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressIp {
    /// Which address.
    pub reference: EgressIpRef,
    /// DAMM region.
    pub region: Region,
    /// The public address traffic leaves from.
    pub address: IpAddr,
    /// The node it is attached to.
    pub node: Option<NodeRef>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

/// What the planner asks an overlay provider for.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Idempotency key.
    pub key: IdempotencyKey,
    /// Host name the member shows up under.
    pub hostname: String,
    /// The DAMM node that will join, if it is one.
    pub node: Option<NodeRef>,
    /// Labels to set (adapters map them to tags); must include the ownership labels.
    pub labels: Labels,
    /// Whether the membership goes away when the member goes offline.
    pub ephemeral: bool,
}

/// Where an overlay membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipState {
    /// Credentials minted, the member has not joined yet.
    Pending,
    /// The member is in the overlay with an address.
    Joined,
}

/// A member of an overlay network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverlayMembership {
    /// Which membership.
    pub reference: MembershipRef,
    /// Host name in the overlay.
    pub hostname: String,
    /// The DAMM node behind it.
    pub node: Option<NodeRef>,
    /// Pending or joined.
    pub state: MembershipState,
    /// The overlay address (for Tailscale, a 100.x address) once joined.
    pub address: Option<IpAddr>,
    /// The credential the member joins with; only set in a join result, never stored.
    #[serde(skip)]
    pub auth_key: Option<SecretString>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

/// What the planner asks a CDN-front provider for.
#[derive(Debug, Clone)]
pub struct FrontSpec {
    /// Idempotency key.
    pub key: IdempotencyKey,
    /// First label of the hostname (the adapter places it under its DAMM zone).
    pub name: String,
    /// The gateway address the front points at.
    pub origin: IpAddr,
    /// Labels to set; must include the ownership labels.
    pub labels: Labels,
}

/// A CDN-fronted hostname.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Front {
    /// Which front.
    pub reference: FrontRef,
    /// The public hostname clients connect to.
    pub hostname: String,
    /// The gateway address behind it.
    pub origin: IpAddr,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

/// What the planner asks a tunnel provider for.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// Idempotency key.
    pub key: IdempotencyKey,
    /// Tunnel name (the adapter prefixes it with its DAMM prefix).
    pub name: String,
    /// The service behind the tunnel, as the gateway sees it (`http://127.0.0.1:8080`).
    pub origin: String,
    /// Labels to set; must include the ownership labels.
    pub labels: Labels,
}

/// A managed tunnel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tunnel {
    /// Which tunnel (its id is the provider's tunnel id).
    pub reference: TunnelRef,
    /// Its name.
    pub name: String,
    /// The service behind it.
    pub origin: String,
    /// Whether a connector is attached, when the provider says.
    pub connected: Option<bool>,
    /// The token the gateway runs the connector with; only set in a register result.
    #[serde(skip)]
    pub token: Option<SecretString>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

/// What a health probe or metrics query is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The provider's API itself (feeds its circuit breaker).
    Api,
    /// A node.
    Node(NodeRef),
    /// A front door.
    Frontdoor(FrontdoorRef),
    /// An egress address.
    EgressIp(EgressIpRef),
    /// An overlay membership.
    Membership(MembershipRef),
    /// A CDN front.
    Front(FrontRef),
    /// A managed tunnel.
    Tunnel(TunnelRef),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Api => f.write_str("api"),
            Target::Node(r) => write!(f, "node {r}"),
            Target::Frontdoor(r) => write!(f, "frontdoor {r}"),
            Target::EgressIp(r) => write!(f, "egress ip {r}"),
            Target::Membership(r) => write!(f, "membership {r}"),
            Target::Front(r) => write!(f, "front {r}"),
            Target::Tunnel(r) => write!(f, "tunnel {r}"),
        }
    }
}

/// The verdict of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Answered as expected.
    Healthy,
    /// Answered, but slowly or partially.
    Degraded,
    /// Did not answer, or refused.
    Down,
    /// The probe could not tell.
    Unknown,
}

/// One health observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSignal {
    /// What was probed.
    pub target: Target,
    /// The verdict.
    pub status: HealthStatus,
    /// Round-trip time of the probe, when it got an answer.
    #[serde(with = "opt_millis")]
    pub rtt: Option<Duration>,
    /// When the probe ran.
    pub observed_at: DateTime<Utc>,
    /// A short human explanation (never a secret).
    pub detail: String,
}

/// Point-in-time metrics of a target; every field is optional because providers
/// report different things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// What was measured.
    pub target: Target,
    /// When.
    pub observed_at: DateTime<Utc>,
    /// Probe round-trip time.
    #[serde(with = "opt_millis")]
    pub rtt: Option<Duration>,
    /// Bytes received since the counter's start.
    pub rx_bytes: Option<u64>,
    /// Bytes sent since the counter's start.
    pub tx_bytes: Option<u64>,
    /// WireGuard peers with a recent handshake.
    pub active_peers: Option<u64>,
    /// CPU use, percent of one core times cores.
    pub cpu_percent: Option<f64>,
}

impl Metrics {
    /// Metrics with nothing measured yet.
    pub fn empty(target: Target, observed_at: DateTime<Utc>) -> Self {
        Metrics {
            target,
            observed_at,
            rtt: None,
            rx_bytes: None,
            tx_bytes: None,
            active_peers: None,
            cpu_percent: None,
        }
    }
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_strictest_label_rules() {
        assert!(Region::new("eu-central").is_ok());
        assert!(Region::new("EU").is_err());
        assert!(Region::new("").is_err());
        assert!(Region::new("-x").is_err());
        assert!(FleetId::new("a".repeat(64)).is_err());
        let err = IdempotencyKey::new("k.1").unwrap_err();
        assert!(err.to_string().contains("idempotency key `k.1`"), "{err}");
    }

    #[test]
    fn filter_matches_region_role_and_labels() {
        let fleet = FleetId::new("f").unwrap();
        let spec = NodeSpec::new(
            &fleet,
            IdempotencyKey::new("k1").unwrap(),
            Region::new("eu").unwrap(),
            NodeRole::Ingress,
            "small",
        );
        let node = Node {
            reference: NodeRef::new("p", "1"),
            region: spec.region.clone(),
            provider_region: "fsn1".into(),
            roles: vec![NodeRole::Ingress],
            state: NodeState::Running,
            addresses: vec![],
            wireguard_port: None,
            labels: spec.labels.clone(),
            created_at: None,
        };
        assert!(NodeFilter::all().matches(&node));
        let mut f = NodeFilter::all();
        f.role = Some(NodeRole::Egress);
        assert!(!f.matches(&node));
        f.role = None;
        f.labels = Labels::owned(&fleet, &IdempotencyKey::new("k1").unwrap());
        assert!(f.matches(&node));
        f.region = Some(Region::new("us").unwrap());
        assert!(!f.matches(&node));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_json() {
        let mut spec = NodeSpec::new(
            &FleetId::new("f").unwrap(),
            IdempotencyKey::new("k").unwrap(),
            Region::new("eu").unwrap(),
            NodeRole::Egress,
            "small",
        );
        spec.user_data = Some(UserData::new("PrivateKey = hunter2"));
        assert!(!format!("{spec:?}").contains("hunter2"));
        let tunnel = Tunnel {
            reference: TunnelRef::new("cloudflare", "t1"),
            name: "damm-t1".into(),
            origin: "http://127.0.0.1:8080".into(),
            connected: None,
            token: Some(SecretString::from("tok-secret")),
            labels: Labels::new(),
        };
        assert!(!format!("{tunnel:?}").contains("tok-secret"));
        assert!(
            !serde_json::to_string(&tunnel)
                .unwrap()
                .contains("tok-secret")
        );
    }

    #[test]
    fn health_signal_round_trips_through_json() {
        let signal = HealthSignal {
            target: Target::Node(NodeRef::new("static-host", "pi")),
            status: HealthStatus::Healthy,
            rtt: Some(Duration::from_micros(1500)),
            observed_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            detail: "udp ok".into(),
        };
        let json = serde_json::to_string(&signal).unwrap();
        assert!(json.contains(r#""kind":"node""#), "{json}");
        let back: HealthSignal = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signal);
    }
}
