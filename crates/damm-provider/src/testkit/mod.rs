//! The conformance suite every adapter runs against a live endpoint (a simulator, an
//! emulator or a real host).
//!
//! One call, [`run`], picks the cases by capability, so a new adapter gets the whole
//! contract for free:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use damm_provider::testkit::{self, memory::MemoryProvider, Fixture};
//!
//! let provider = MemoryProvider::full("memory");
//! let fixture = Fixture::new(MemoryProvider::CAPABILITIES, provider.fleet().clone(),
//!     "eu-central".parse().unwrap());
//! testkit::run(&provider, &fixture).await.assert_passed();
//! # }
//! ```
//!
//! Every lifecycle case cleans up after itself, also when it fails half-way.

pub mod checks;
pub mod memory;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;

use crate::{
    AddressSpec, Capabilities, Capability, FleetId, FrontSpec, HealthStatus, IdempotencyKey,
    Labels, MembershipState, NodeFilter, NodeRef, NodeRole, NodeSpec, NodeState, OverlayMembership,
    OverlaySpec, Provider, Region, Target, TunnelSpec,
};

/// A hook the suite calls after `join_overlay`, standing in for the gateway that redeems
/// the auth key (for example through a simulator's admin API).
pub type JoinHook =
    Box<dyn Fn(OverlayMembership) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the suite needs to know about the adapter under test and its endpoint.
pub struct Fixture {
    /// The adapter's declared capability constant.
    pub declared: Capabilities,
    /// The fleet the adapter instance was configured for.
    pub fleet: FleetId,
    /// A DAMM region the provider serves.
    pub region: Region,
    /// Size profile for node creates.
    pub profile: String,
    /// How long to wait for eventually consistent results (boots, deletions).
    pub timeout: Duration,
    /// How often to look while waiting.
    pub poll: Duration,
    /// Origin address for CDN fronts.
    pub front_origin: IpAddr,
    /// Origin service for tunnels.
    pub tunnel_origin: String,
    /// Expect probes of freshly allocated front doors and egress IPs to be `Healthy`
    /// (true when the endpoint has real listeners, as static hosts on loopback do).
    pub expect_healthy_addresses: bool,
    /// Called after `join_overlay`; the suite then waits for the member to join.
    pub on_join: Option<JoinHook>,
    /// Front doors and egress IPs must be attached to a node (DigitalOcean's reserved
    /// IPs carry no tags, so ownership lives on the droplet): the address lifecycles
    /// create a node first and retire it afterwards.
    pub addresses_need_node: bool,
}

impl Fixture {
    /// Defaults: profile `small`, 30 s timeout polled every 50 ms.
    pub fn new(declared: Capabilities, fleet: FleetId, region: Region) -> Self {
        Fixture {
            declared,
            fleet,
            region,
            profile: "small".to_owned(),
            timeout: Duration::from_secs(30),
            poll: Duration::from_millis(50),
            front_origin: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            tunnel_origin: "http://127.0.0.1:8080".to_owned(),
            expect_healthy_addresses: false,
            on_join: None,
            addresses_need_node: false,
        }
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The contract held.
    Passed,
    /// It did not; the message says where.
    Failed(String),
    /// The case does not apply to the adapter's capabilities.
    Skipped(&'static str),
}

/// One case's name and outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name, such as `compute_lifecycle`.
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every case's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The provider id under test.
    pub provider: String,
    /// The cases in the order they ran.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// The cases that failed.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
            .collect()
    }

    /// The outcome of case `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.outcome)
    }

    /// Panics with the whole report if any case failed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.failures().is_empty(), "conformance failed:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of `{}`:", self.provider)?;
        for case in &self.cases {
            match &case.outcome {
                Outcome::Passed => writeln!(f, "  pass  {}", case.name)?,
                Outcome::Skipped(why) => writeln!(f, "  skip  {} ({why})", case.name)?,
                Outcome::Failed(why) => writeln!(f, "  FAIL  {}: {why}", case.name)?,
            }
        }
        Ok(())
    }
}

type CaseResultOf = Result<(), String>;

/// Runs every case that applies to `fixture.declared` against `provider`.
pub async fn run(provider: &dyn Provider, fixture: &Fixture) -> Report {
    let mut report = Report {
        provider: provider.id().to_owned(),
        cases: Vec::new(),
    };
    let declared = fixture.declared;
    macro_rules! case {
        ($name:literal, $needs:expr, $body:expr) => {{
            let outcome = match $needs {
                Some(cap) if !declared.contains(cap) => Outcome::Skipped("capability not declared"),
                _ => match AssertUnwindSafe($body).catch_unwind().await {
                    Ok(Ok(())) => Outcome::Passed,
                    Ok(Err(why)) => Outcome::Failed(why),
                    Err(panic) => Outcome::Failed(format!("panicked: {}", panic_text(&panic))),
                },
            };
            report.cases.push(CaseResult {
                name: $name,
                outcome,
            });
        }};
    }

    case!("declares_a_capability", None::<Capability>, async {
        if declared.is_empty() {
            Err("the adapter declares no capability".to_owned())
        } else {
            Ok(())
        }
    });
    case!("declared_equals_handed_out", None::<Capability>, async {
        let handed = provider.capabilities();
        let missing = declared.difference(handed);
        let undeclared = handed.difference(declared);
        if missing.is_empty() && undeclared.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "declared [{declared}] but hands out [{handed}] (missing: [{missing}], undeclared: [{undeclared}])"
            ))
        }
    });
    case!("maps_the_fixture_region", None::<Capability>, async {
        provider
            .region(&fixture.region)
            .map(|_| ())
            .ok_or_else(|| format!("region `{}` is not mapped", fixture.region))
    });
    case!(
        "probe_of_unknown_target_is_an_answer",
        None::<Capability>,
        async {
            let missing = NodeRef::new(provider.id(), "damm-conformance-no-such-node");
            // Either an error or a signal is fine; a panic is caught and reported by `case!`.
            let _ = provider.probe_health(&Target::Node(missing.clone())).await;
            let _ = provider.get_metrics(&Target::Node(missing)).await;
            let _ = provider.probe_health(&Target::Api).await;
            Ok(())
        }
    );
    case!("inventory_is_fleet_only", None::<Capability>, async {
        let nodes = provider
            .list_nodes(&NodeFilter::all())
            .await
            .map_err(|e| format!("list_nodes: {e}"))?;
        match nodes.iter().find(|n| !n.labels.is_owned_by(&fixture.fleet)) {
            Some(n) => Err(format!("{} lacks the fleet label", n.reference)),
            None => Ok(()),
        }
    });
    case!(
        "compute_lifecycle",
        Some(Capability::Compute),
        compute_lifecycle(provider, fixture)
    );
    case!(
        "ingress_lifecycle",
        Some(Capability::Ingress),
        ingress_lifecycle(provider, fixture)
    );
    case!(
        "egress_lifecycle",
        Some(Capability::Egress),
        egress_lifecycle(provider, fixture)
    );
    case!(
        "overlay_lifecycle",
        Some(Capability::Overlay),
        overlay_lifecycle(provider, fixture)
    );
    case!(
        "cdn_front_lifecycle",
        Some(Capability::CdnFront),
        front_lifecycle(provider, fixture)
    );
    case!(
        "tunnel_term_lifecycle",
        Some(Capability::TunnelTerm),
        tunnel_lifecycle(provider, fixture)
    );
    report
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// A key no earlier run used: time plus a process-wide counter.
fn fresh_key(what: &str) -> IdempotencyKey {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000_000)
        .unwrap_or_default();
    IdempotencyKey::new(format!("conf-{what}-{t}-{n}")).expect("valid key")
}

/// Polls `probe` until it returns `Some`, or fails with `what` after the fixture timeout.
async fn eventually<T, F, Fut>(fixture: &Fixture, what: &str, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = tokio::time::Instant::now() + fixture.timeout;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "timed out after {:?} waiting until {what}",
                fixture.timeout
            ));
        }
        tokio::time::sleep(fixture.poll).await;
    }
}

fn check_owned(
    what: &str,
    labels: &Labels,
    fixture: &Fixture,
    key: &IdempotencyKey,
) -> CaseResultOf {
    if !labels.is_owned_by(&fixture.fleet) {
        return Err(format!(
            "{what} lacks the fleet label {}",
            crate::LABEL_FLEET
        ));
    }
    if labels.key().as_ref() != Some(key) {
        return Err(format!("{what} lacks idempotency key {key}"));
    }
    Ok(())
}

/// Runs `body`, then `cleanup` whatever happened; the body's failure wins.
async fn with_cleanup<B, C>(body: B, cleanup: C) -> CaseResultOf
where
    B: Future<Output = CaseResultOf>,
    C: AsyncFnOnce() -> CaseResultOf,
{
    let result = body.await;
    let cleaned = cleanup().await;
    result.and(cleaned)
}

async fn compute_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let compute = provider
        .compute()
        .ok_or("declares compute but compute() is None")?;
    let key = fresh_key("node");
    let spec = NodeSpec::new(
        &fixture.fleet,
        key.clone(),
        fixture.region.clone(),
        NodeRole::Ingress,
        fixture.profile.clone(),
    );
    let node = compute
        .create_ingress_node(&spec)
        .await
        .map_err(|e| format!("create_ingress_node: {e}"))?;
    let reference = node.reference.clone();
    let body = async {
        check_owned("created node", &node.labels, fixture, &key)?;
        if node.region != fixture.region {
            return Err(format!(
                "created node is in {} not {}",
                node.region, fixture.region
            ));
        }
        let listed = eventually(fixture, "the node runs and shows in inventory", || async {
            let nodes = provider
                .list_nodes(&NodeFilter::all())
                .await
                .map_err(|e| format!("list_nodes: {e}"))?;
            Ok(nodes
                .into_iter()
                .find(|n| n.reference == reference && n.state == NodeState::Running))
        })
        .await?;
        check_owned("listed node", &listed.labels, fixture, &key)?;
        if !listed.roles.contains(&NodeRole::Ingress) {
            return Err(format!(
                "listed node has roles {:?}, not ingress",
                listed.roles
            ));
        }
        // A replayed create (after a crash) must find the node, not make a second one.
        let again = compute
            .create_ingress_node(&spec)
            .await
            .map_err(|e| format!("replayed create_ingress_node: {e}"))?;
        if again.reference != reference {
            return Err(format!(
                "replayed create made {} besides {reference}",
                again.reference
            ));
        }
        let mut by_key = NodeFilter::all();
        by_key.labels = Labels::owned(&fixture.fleet, &key);
        let same_key = provider
            .list_nodes(&by_key)
            .await
            .map_err(|e| format!("list_nodes: {e}"))?;
        if same_key.len() != 1 {
            return Err(format!("{} nodes carry key {key}", same_key.len()));
        }
        let signal = provider
            .probe_health(&Target::Node(reference.clone()))
            .await
            .map_err(|e| format!("probe_health of the new node: {e}"))?;
        if signal.target != Target::Node(reference.clone()) {
            return Err(format!("probe answered for {} instead", signal.target));
        }
        compute
            .drain_node(&reference)
            .await
            .map_err(|e| format!("drain_node: {e}"))?;
        eventually(fixture, "the node shows as draining", || async {
            let nodes = provider
                .list_nodes(&by_key)
                .await
                .map_err(|e| format!("list_nodes: {e}"))?;
            Ok(nodes
                .into_iter()
                .find(|n| n.state == NodeState::Draining)
                .map(|_| ()))
        })
        .await?;
        Ok(())
    };
    with_cleanup(body, async || {
        compute
            .retire_node(&reference)
            .await
            .map_err(|e| format!("retire_node: {e}"))?;
        eventually(
            fixture,
            "the retired node is gone from inventory",
            || async {
                let nodes = provider
                    .list_nodes(&NodeFilter::all())
                    .await
                    .map_err(|e| format!("list_nodes: {e}"))?;
                Ok((!nodes.iter().any(|n| n.reference == reference)).then_some(()))
            },
        )
        .await?;
        compute
            .retire_node(&reference)
            .await
            .map_err(|e| format!("retiring an already retired node must succeed: {e}"))
    })
    .await
}

fn address_spec(fixture: &Fixture, what: &str, node: Option<NodeRef>) -> AddressSpec {
    let key = fresh_key(what);
    AddressSpec {
        labels: Labels::owned(&fixture.fleet, &key),
        key,
        region: fixture.region.clone(),
        node,
    }
}

/// A running node to attach addresses to, when the fixture says addresses need one.
async fn address_node(
    provider: &dyn Provider,
    fixture: &Fixture,
    role: NodeRole,
) -> Result<Option<NodeRef>, String> {
    if !fixture.addresses_need_node {
        return Ok(None);
    }
    let compute = provider
        .compute()
        .ok_or("addresses need a node, but compute() is None")?;
    let spec = NodeSpec::new(
        &fixture.fleet,
        fresh_key("host"),
        fixture.region.clone(),
        role,
        fixture.profile.clone(),
    );
    let node = compute
        .create_node(&spec)
        .await
        .map_err(|e| format!("create_node for the address: {e}"))?;
    let reference = node.reference;
    eventually(fixture, "the address's node runs", || async {
        let nodes = provider
            .list_nodes(&NodeFilter::all())
            .await
            .map_err(|e| format!("list_nodes: {e}"))?;
        Ok(nodes
            .iter()
            .any(|n| n.reference == reference && n.state == NodeState::Running)
            .then_some(()))
    })
    .await?;
    Ok(Some(reference))
}

async fn retire_address_node(provider: &dyn Provider, node: Option<NodeRef>) -> CaseResultOf {
    match (node, provider.compute()) {
        (Some(node), Some(compute)) => compute
            .retire_node(&node)
            .await
            .map_err(|e| format!("retire_node of the address's node: {e}")),
        _ => Ok(()),
    }
}

/// The shape every allocatable resource shares: the create answered with `reference`
/// and `labels`; it must carry the ownership labels, be listed, pass the case's own
/// `checks`, and then be released, disappear from the list, and release again cleanly.
async fn allocated_lifecycle<R: PartialEq + fmt::Debug>(
    fixture: &Fixture,
    what: &str,
    key: &IdempotencyKey,
    (reference, labels): (R, &Labels),
    checks: impl Future<Output = CaseResultOf>,
    list: impl AsyncFn() -> Result<Vec<R>, String>,
    release: impl AsyncFn(&R) -> CaseResultOf,
) -> CaseResultOf {
    let body = async {
        check_owned(what, labels, fixture, key)?;
        if !list().await?.contains(&reference) {
            return Err(format!("{what} {reference:?} is not listed"));
        }
        checks.await
    };
    with_cleanup(body, async || {
        release(&reference).await?;
        eventually(
            fixture,
            &format!("the released {what} is no longer listed"),
            || async { Ok((!list().await?.contains(&reference)).then_some(())) },
        )
        .await?;
        release(&reference)
            .await
            .map_err(|e| format!("releasing a {what} that is already gone must succeed: {e}"))
    })
    .await
}

async fn ingress_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let ingress = provider
        .ingress()
        .ok_or("declares ingress but ingress() is None")?;
    let node = address_node(provider, fixture, NodeRole::Ingress).await?;
    let spec = address_spec(fixture, "fd", node.clone());
    let door = match ingress.allocate_ingress_frontdoor(&spec).await {
        Ok(found) => found,
        Err(e) => {
            retire_address_node(provider, node).await?;
            return Err(format!("allocate_ingress_frontdoor: {e}"));
        }
    };
    let list = async || {
        let doors = ingress
            .list_frontdoors()
            .await
            .map_err(|e| format!("list_frontdoors: {e}"))?;
        Ok(doors
            .into_iter()
            .map(|d| (d.reference, d.address))
            .collect::<Vec<_>>())
    };
    let checks = async {
        if door.region != fixture.region {
            return Err(format!(
                "front door is in {} not {}",
                door.region, fixture.region
            ));
        }
        let target = Target::Frontdoor(door.reference.clone());
        probe_address(provider, fixture, &target).await
    };
    let result = allocated_lifecycle(
        fixture,
        "front door",
        &spec.key,
        ((door.reference.clone(), door.address), &door.labels),
        checks,
        list,
        async |(r, _)| {
            ingress
                .release_ingress_frontdoor(r)
                .await
                .map_err(|e| format!("release_ingress_frontdoor: {e}"))
        },
    )
    .await;
    result.and(retire_address_node(provider, node).await)
}

async fn egress_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let egress = provider
        .egress()
        .ok_or("declares egress but egress() is None")?;
    let node = address_node(provider, fixture, NodeRole::Egress).await?;
    let spec = address_spec(fixture, "eg", node.clone());
    let ip = match egress.allocate_egress_ip(&spec).await {
        Ok(found) => found,
        Err(e) => {
            retire_address_node(provider, node).await?;
            return Err(format!("allocate_egress_ip: {e}"));
        }
    };
    let list = async || {
        let ips = egress
            .list_egress_ips()
            .await
            .map_err(|e| format!("list_egress_ips: {e}"))?;
        Ok(ips
            .into_iter()
            .map(|i| (i.reference, i.address))
            .collect::<Vec<_>>())
    };
    let checks = async {
        if ip.region != fixture.region {
            return Err(format!(
                "egress ip is in {} not {}",
                ip.region, fixture.region
            ));
        }
        probe_address(provider, fixture, &Target::EgressIp(ip.reference.clone())).await
    };
    let result = allocated_lifecycle(
        fixture,
        "egress ip",
        &spec.key,
        ((ip.reference.clone(), ip.address), &ip.labels),
        checks,
        list,
        async |(r, _)| {
            egress
                .release_egress_ip(r)
                .await
                .map_err(|e| format!("release_egress_ip: {e}"))
        },
    )
    .await;
    result.and(retire_address_node(provider, node).await)
}

/// Probes an allocated address; the fixture says whether it must be healthy.
async fn probe_address(
    provider: &dyn Provider,
    fixture: &Fixture,
    target: &Target,
) -> CaseResultOf {
    let signal = provider
        .probe_health(target)
        .await
        .map_err(|e| format!("probe_health of {target}: {e}"))?;
    if fixture.expect_healthy_addresses && signal.status != HealthStatus::Healthy {
        return Err(format!(
            "{target} probe says {:?}: {}",
            signal.status, signal.detail
        ));
    }
    Ok(())
}

async fn overlay_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let overlay = provider
        .overlay()
        .ok_or("declares overlay but overlay() is None")?;
    let key = fresh_key("ov");
    let spec = OverlaySpec {
        hostname: format!("damm-{key}"),
        labels: Labels::owned(&fixture.fleet, &key),
        key: key.clone(),
        node: None,
        ephemeral: true,
    };
    let membership = overlay
        .join_overlay(&spec)
        .await
        .map_err(|e| format!("join_overlay: {e}"))?;
    let reference = membership.reference.clone();
    let body = async {
        check_owned("membership", &membership.labels, fixture, &key)?;
        if membership.state == MembershipState::Pending && membership.auth_key.is_none() {
            return Err("a pending membership must carry the auth key to join with".to_owned());
        }
        if let Some(hook) = &fixture.on_join {
            hook(membership.clone()).await;
            let joined = eventually(fixture, "the member joins with an address", || async {
                let all = overlay
                    .list_memberships()
                    .await
                    .map_err(|e| format!("list_memberships: {e}"))?;
                Ok(all.into_iter().find(|m| {
                    m.labels.key().as_ref() == Some(&key) && m.state == MembershipState::Joined
                }))
            })
            .await?;
            if joined.address.is_none() {
                return Err("a joined member must carry its overlay address".to_owned());
            }
        } else {
            let all = overlay
                .list_memberships()
                .await
                .map_err(|e| format!("list_memberships: {e}"))?;
            if !all.iter().any(|m| m.reference == reference) {
                return Err(format!("membership {reference} is not listed"));
            }
        }
        Ok(())
    };
    with_cleanup(body, async || {
        // The membership may have been replaced by the joined device; leave by key.
        let all = overlay
            .list_memberships()
            .await
            .map_err(|e| format!("list_memberships: {e}"))?;
        let mine: Vec<_> = all
            .into_iter()
            .filter(|m| m.reference == reference || m.labels.key().as_ref() == Some(&key))
            .map(|m| m.reference)
            .collect();
        for m in mine.iter().chain(std::iter::once(&reference)) {
            overlay
                .leave_overlay(m)
                .await
                .map_err(|e| format!("leave_overlay({m}): {e}"))?;
        }
        eventually(
            fixture,
            "the left membership is no longer listed",
            || async {
                let all = overlay
                    .list_memberships()
                    .await
                    .map_err(|e| format!("list_memberships: {e}"))?;
                Ok((!all.iter().any(|m| m.labels.key().as_ref() == Some(&key))).then_some(()))
            },
        )
        .await
    })
    .await
}

async fn front_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let cdn = provider
        .cdn_front()
        .ok_or("declares cdn_front but cdn_front() is None")?;
    let key = fresh_key("fr");
    let spec = FrontSpec {
        name: key.to_string(),
        origin: fixture.front_origin,
        labels: Labels::owned(&fixture.fleet, &key),
        key: key.clone(),
    };
    let front = cdn
        .publish_front(&spec)
        .await
        .map_err(|e| format!("publish_front: {e}"))?;
    let list = async || {
        let fronts = cdn
            .list_fronts()
            .await
            .map_err(|e| format!("list_fronts: {e}"))?;
        Ok(fronts
            .into_iter()
            .map(|f| (f.reference, f.hostname))
            .collect::<Vec<_>>())
    };
    let checks = async {
        if front.hostname.is_empty() || front.origin != spec.origin {
            return Err(format!(
                "front {} → {} does not match the spec",
                front.hostname, front.origin
            ));
        }
        Ok(())
    };
    allocated_lifecycle(
        fixture,
        "front",
        &key,
        (
            (front.reference.clone(), front.hostname.clone()),
            &front.labels,
        ),
        checks,
        list,
        async |(r, _)| {
            cdn.retire_front(r)
                .await
                .map_err(|e| format!("retire_front: {e}"))
        },
    )
    .await
}

async fn tunnel_lifecycle(provider: &dyn Provider, fixture: &Fixture) -> CaseResultOf {
    let tunnels = provider
        .tunnel_term()
        .ok_or("declares tunnel_term but tunnel_term() is None")?;
    let key = fresh_key("tu");
    let spec = TunnelSpec {
        name: key.to_string(),
        origin: fixture.tunnel_origin.clone(),
        labels: Labels::owned(&fixture.fleet, &key),
        key: key.clone(),
    };
    let tunnel = tunnels
        .register_tunnel(&spec)
        .await
        .map_err(|e| format!("register_tunnel: {e}"))?;
    let list = async || {
        let all = tunnels
            .list_tunnels()
            .await
            .map_err(|e| format!("list_tunnels: {e}"))?;
        Ok(all.into_iter().map(|t| t.reference).collect::<Vec<_>>())
    };
    let checks = async {
        if tunnel.token.is_none() {
            return Err("a registered tunnel must carry the connector token".to_owned());
        }
        Ok(())
    };
    allocated_lifecycle(
        fixture,
        "tunnel",
        &key,
        (tunnel.reference.clone(), &tunnel.labels),
        checks,
        list,
        async |r| {
            tunnels
                .retire_tunnel(r)
                .await
                .map_err(|e| format!("retire_tunnel: {e}"))
        },
    )
    .await
}
