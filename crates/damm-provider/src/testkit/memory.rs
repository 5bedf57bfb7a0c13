//! An in-memory provider with every capability: the reference the conformance suite
//! tests itself against, with switches that break the contract on purpose.
//!
//! It is a test double for the suite, not a simulator of any real API: adapters are
//! tested against `damm-sim`, emulators or real hosts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use secrecy::SecretString;

use crate::{
    AddressSpec, Capabilities, Capability, CdnFront, Compute, Egress, EgressIp, EgressIpRef, Error,
    ErrorKind, FleetId, Front, FrontRef, FrontSpec, Frontdoor, FrontdoorRef, HealthSignal,
    HealthStatus, Ingress, Labels, MembershipRef, MembershipState, Metrics, Node, NodeFilter,
    NodeRef, NodeSpec, NodeState, Operation, Overlay, OverlayMembership, OverlaySpec, Provider,
    Region, Result, Target, Tunnel, TunnelRef, TunnelSpec, TunnelTerm,
};

/// Ways to break the contract, for the suite's negative tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Inventory and lists never show what was created.
    pub hides_created: bool,
    /// A replayed create makes a second resource instead of finding the first.
    pub ignores_idempotency_key: bool,
}

#[derive(Debug, Default)]
struct State {
    next: u32,
    nodes: BTreeMap<String, Node>,
    frontdoors: BTreeMap<String, Frontdoor>,
    egress: BTreeMap<String, EgressIp>,
    memberships: BTreeMap<String, OverlayMembership>,
    fronts: BTreeMap<String, Front>,
    tunnels: BTreeMap<String, Tunnel>,
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }

    fn next_address(&mut self) -> IpAddr {
        self.next += 1;
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, (self.next % 250) as u8 + 1))
    }
}

/// The in-memory provider.
#[derive(Debug)]
pub struct MemoryProvider {
    id: String,
    fleet: FleetId,
    offered: Capabilities,
    quirks: Quirks,
    state: Mutex<State>,
}

impl MemoryProvider {
    /// Every capability.
    pub const CAPABILITIES: Capabilities = Capabilities::of(&Capability::ALL);

    /// A well-behaved provider offering every capability, for fleet `test`.
    pub fn full(id: &str) -> Self {
        MemoryProvider::new(id, MemoryProvider::CAPABILITIES, Quirks::default())
    }

    /// A provider handing out `offered` only, with `quirks`.
    pub fn new(id: &str, offered: Capabilities, quirks: Quirks) -> Self {
        MemoryProvider {
            id: id.to_owned(),
            fleet: FleetId::new("test").expect("valid"),
            offered,
            quirks,
            state: Mutex::new(State::default()),
        }
    }

    /// The fleet it labels resources with.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    /// How many resources it holds, whatever the quirks hide.
    pub fn stored_resources(&self) -> usize {
        let s = self.state();
        s.nodes.len()
            + s.frontdoors.len()
            + s.egress.len()
            + s.memberships.len()
            + s.fronts.len()
            + s.tunnels.len()
    }

    fn has(&self, cap: Capability) -> bool {
        self.offered.contains(cap)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_found(&self, operation: Operation, what: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::NotFound, &self.id, operation)
            .with_message(format!("{what} not found"))
    }

    fn visible<'a, T: Clone + 'a>(&self, items: impl Iterator<Item = &'a T>) -> Vec<T> {
        if self.quirks.hides_created {
            Vec::new()
        } else {
            items.cloned().collect()
        }
    }

    fn find_by_key<'a, T>(
        &self,
        items: &'a BTreeMap<String, T>,
        labels: &Labels,
        get: fn(&T) -> &Labels,
    ) -> Option<&'a T> {
        if self.quirks.ignores_idempotency_key {
            return None;
        }
        let key = labels.key()?;
        items
            .values()
            .find(|item| get(item).key().as_ref() == Some(&key))
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn region(&self, region: &Region) -> Option<String> {
        Some(format!("mem-{region}"))
    }

    fn compute(&self) -> Option<&dyn Compute> {
        self.has(Capability::Compute)
            .then_some(self as &dyn Compute)
    }
    fn ingress(&self) -> Option<&dyn Ingress> {
        self.has(Capability::Ingress)
            .then_some(self as &dyn Ingress)
    }
    fn egress(&self) -> Option<&dyn Egress> {
        self.has(Capability::Egress).then_some(self as &dyn Egress)
    }
    fn overlay(&self) -> Option<&dyn Overlay> {
        self.has(Capability::Overlay)
            .then_some(self as &dyn Overlay)
    }
    fn cdn_front(&self) -> Option<&dyn CdnFront> {
        self.has(Capability::CdnFront)
            .then_some(self as &dyn CdnFront)
    }
    fn tunnel_term(&self) -> Option<&dyn TunnelTerm> {
        self.has(Capability::TunnelTerm)
            .then_some(self as &dyn TunnelTerm)
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let state = self.state();
        Ok(self.visible(state.nodes.values().filter(|n| filter.matches(n))))
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let state = self.state();
        let known = match target {
            Target::Api => true,
            Target::Node(r) => state.nodes.contains_key(&r.id),
            Target::Frontdoor(r) => state.frontdoors.contains_key(&r.id),
            Target::EgressIp(r) => state.egress.contains_key(&r.id),
            Target::Membership(r) => state.memberships.contains_key(&r.id),
            Target::Front(r) => state.fronts.contains_key(&r.id),
            Target::Tunnel(r) => state.tunnels.contains_key(&r.id),
        };
        if !known {
            return Err(self.not_found(Operation::ProbeHealth, target));
        }
        Ok(HealthSignal {
            target: target.clone(),
            status: HealthStatus::Healthy,
            rtt: Some(std::time::Duration::from_micros(100)),
            observed_at: Utc::now(),
            detail: "in memory".to_owned(),
        })
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        Ok(Metrics::empty(target.clone(), Utc::now()))
    }
}

#[async_trait]
impl Compute for MemoryProvider {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let mut state = self.state();
        if let Some(node) = self.find_by_key(&state.nodes, &spec.labels, |n| &n.labels) {
            return Ok(node.clone());
        }
        let id = state.next_id("node");
        let address = state.next_address();
        let node = Node {
            reference: NodeRef::new(&self.id, &id),
            region: spec.region.clone(),
            provider_region: format!("mem-{}", spec.region),
            roles: vec![spec.role],
            state: NodeState::Running,
            addresses: vec![address],
            wireguard_port: Some(51820),
            labels: spec.labels.clone(),
            created_at: Some(Utc::now()),
        };
        state.nodes.insert(id, node.clone());
        Ok(node)
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let mut state = self.state();
        let found = state
            .nodes
            .get_mut(&node.id)
            .ok_or_else(|| self.not_found(Operation::DrainNode, node))?;
        found.state = NodeState::Draining;
        Ok(())
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        self.state().nodes.remove(&node.id);
        Ok(())
    }
}

#[async_trait]
impl Ingress for MemoryProvider {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        let mut state = self.state();
        if let Some(door) = self.find_by_key(&state.frontdoors, &spec.labels, |d| &d.labels) {
            return Ok(door.clone());
        }
        let id = state.next_id("fd");
        let door = Frontdoor {
            reference: FrontdoorRef::new(&self.id, &id),
            region: spec.region.clone(),
            address: state.next_address(),
            port: Some(51820),
            node: spec.node.clone(),
            labels: spec.labels.clone(),
        };
        state.frontdoors.insert(id, door.clone());
        Ok(door)
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        self.state().frontdoors.remove(&frontdoor.id);
        Ok(())
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        Ok(self.visible(self.state().frontdoors.values()))
    }
}

#[async_trait]
impl Egress for MemoryProvider {
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp> {
        let mut state = self.state();
        if let Some(ip) = self.find_by_key(&state.egress, &spec.labels, |i| &i.labels) {
            return Ok(ip.clone());
        }
        let id = state.next_id("eg");
        let ip = EgressIp {
            reference: EgressIpRef::new(&self.id, &id),
            region: spec.region.clone(),
            address: state.next_address(),
            node: spec.node.clone(),
            labels: spec.labels.clone(),
        };
        state.egress.insert(id, ip.clone());
        Ok(ip)
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        self.state().egress.remove(&ip.id);
        Ok(())
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        Ok(self.visible(self.state().egress.values()))
    }
}

#[async_trait]
impl Overlay for MemoryProvider {
    async fn join_overlay(&self, spec: &OverlaySpec) -> Result<OverlayMembership> {
        let mut state = self.state();
        if let Some(m) = self.find_by_key(&state.memberships, &spec.labels, |m| &m.labels) {
            return Ok(m.clone());
        }
        let id = state.next_id("member");
        let membership = OverlayMembership {
            reference: MembershipRef::new(&self.id, &id),
            hostname: spec.hostname.clone(),
            node: spec.node.clone(),
            state: MembershipState::Pending,
            address: None,
            auth_key: Some(SecretString::from(format!("memkey-{id}"))),
            labels: spec.labels.clone(),
        };
        state.memberships.insert(id, membership.clone());
        Ok(membership)
    }

    async fn leave_overlay(&self, membership: &MembershipRef) -> Result<()> {
        self.state().memberships.remove(&membership.id);
        Ok(())
    }

    async fn list_memberships(&self) -> Result<Vec<OverlayMembership>> {
        Ok(self.visible(self.state().memberships.values()))
    }
}

#[async_trait]
impl CdnFront for MemoryProvider {
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front> {
        let mut state = self.state();
        if let Some(front) = self.find_by_key(&state.fronts, &spec.labels, |f| &f.labels) {
            return Ok(front.clone());
        }
        let id = state.next_id("front");
        let front = Front {
            reference: FrontRef::new(&self.id, &id),
            hostname: format!("{}.front.example", spec.name),
            origin: spec.origin,
            labels: spec.labels.clone(),
        };
        state.fronts.insert(id, front.clone());
        Ok(front)
    }

    async fn repoint_front(&self, front: &FrontRef, origin: std::net::IpAddr) -> Result<Front> {
        let mut state = self.state();
        let Some(found) = state.fronts.get_mut(&front.id) else {
            return Err(self.not_found(Operation::RepointFront, format!("front {}", front.id)));
        };
        found.origin = origin;
        Ok(found.clone())
    }

    async fn retire_front(&self, front: &FrontRef) -> Result<()> {
        self.state().fronts.remove(&front.id);
        Ok(())
    }

    async fn list_fronts(&self) -> Result<Vec<Front>> {
        Ok(self.visible(self.state().fronts.values()))
    }
}

#[async_trait]
impl TunnelTerm for MemoryProvider {
    async fn register_tunnel(&self, spec: &TunnelSpec) -> Result<Tunnel> {
        let mut state = self.state();
        if let Some(t) = self.find_by_key(&state.tunnels, &spec.labels, |t| &t.labels) {
            return Ok(t.clone());
        }
        let id = state.next_id("tunnel");
        let tunnel = Tunnel {
            reference: TunnelRef::new(&self.id, &id),
            name: spec.name.clone(),
            origin: spec.origin.clone(),
            connected: Some(false),
            token: Some(SecretString::from(format!("memtoken-{id}"))),
            labels: spec.labels.clone(),
        };
        state.tunnels.insert(id, tunnel.clone());
        Ok(tunnel)
    }

    async fn retire_tunnel(&self, tunnel: &TunnelRef) -> Result<()> {
        self.state().tunnels.remove(&tunnel.id);
        Ok(())
    }

    async fn list_tunnels(&self) -> Result<Vec<Tunnel>> {
        Ok(self.visible(self.state().tunnels.values()))
    }
}
