//! The [`Provider`] trait and the six capability traits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::AdapterConfig;
use crate::{
    AddressSpec, Capabilities, Capability, EgressIp, EgressIpRef, Error, ErrorKind, Front,
    FrontRef, FrontSpec, Frontdoor, FrontdoorRef, HealthSignal, MembershipRef, Metrics, Node,
    NodeFilter, NodeRef, NodeRole, NodeSpec, Operation, OverlayMembership, OverlaySpec, Price,
    Region, Result, Target, Tunnel, TunnelRef, TunnelSpec,
};

/// A source of path components: one adapter instance, configured for one fleet.
///
/// Capabilities are handed out by the typed accessors; the default for each is `None`,
/// so an adapter implements only what it offers. Inventory, health and metrics are part
/// of every provider.
///
/// ```
/// use damm_provider::{async_trait, Capabilities, Capability, HealthSignal, Metrics,
///     Node, NodeFilter, Provider, Region, Result, Target};
///
/// #[derive(Debug)]
/// struct Nothing;
///
/// #[async_trait]
/// impl Provider for Nothing {
///     fn id(&self) -> &str { "nothing" }
///     fn region(&self, _: &Region) -> Option<String> { None }
///     async fn list_nodes(&self, _: &NodeFilter) -> Result<Vec<Node>> { Ok(vec![]) }
///     async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
///         Err(damm_provider::Error::new(damm_provider::ErrorKind::NotFound, "nothing",
///             damm_provider::Operation::ProbeHealth).with_message(target.to_string()))
///     }
///     async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
///         Ok(Metrics::empty(target.clone(), chrono::Utc::now()))
///     }
/// }
///
/// let p = Nothing;
/// assert!(p.compute().is_none());
/// assert_eq!(p.capabilities(), Capabilities::EMPTY);
/// ```
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// This instance's id (`hetzner`, `aws-eu-west`, `static-host`, ...).
    fn id(&self) -> &str;

    /// Maps a DAMM region to the provider's region or location, if it serves it.
    fn region(&self, region: &Region) -> Option<String>;

    /// The capabilities this instance hands out, derived from the accessors.
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::EMPTY;
        for (cap, present) in [
            (Capability::Compute, self.compute().is_some()),
            (Capability::Ingress, self.ingress().is_some()),
            (Capability::Egress, self.egress().is_some()),
            (Capability::Overlay, self.overlay().is_some()),
            (Capability::CdnFront, self.cdn_front().is_some()),
            (Capability::TunnelTerm, self.tunnel_term().is_some()),
        ] {
            if present {
                caps = caps.with(cap);
            }
        }
        caps
    }

    /// VMs, if the provider creates them.
    fn compute(&self) -> Option<&dyn Compute> {
        None
    }
    /// Public front doors, if the provider has them.
    fn ingress(&self) -> Option<&dyn Ingress> {
        None
    }
    /// Egress addresses, if the provider has them.
    fn egress(&self) -> Option<&dyn Egress> {
        None
    }
    /// An overlay network, if the provider runs one.
    fn overlay(&self) -> Option<&dyn Overlay> {
        None
    }
    /// CDN fronts, if the provider offers them.
    fn cdn_front(&self) -> Option<&dyn CdnFront> {
        None
    }
    /// Managed tunnels, if the provider offers them.
    fn tunnel_term(&self) -> Option<&dyn TunnelTerm> {
        None
    }

    /// Whether a node's health, as [`Provider::probe_health`] reports it, is already the
    /// [`Node::state`](crate::Node) that [`Provider::list_nodes`] returns. True for cloud APIs,
    /// whose node probe only reads the same status back: the orchestrator then scores their
    /// nodes from its inventory listing instead of one API call per node and tick, which the
    /// providers' rate limits could not carry (Hetzner's 3,600 calls an hour allow one probe per
    /// node per hour at 3,600 nodes). Adapters whose probe reaches the node itself (a heartbeat,
    /// the WireGuard port) keep the default, `false`.
    fn health_in_listing(&self) -> bool {
        false
    }

    /// The fleet's nodes at this provider (never a resource without the fleet label).
    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>>;

    /// Probes one target. An unknown target is an error, never a panic.
    async fn probe_health(&self, target: &Target) -> Result<HealthSignal>;

    /// Reads the metrics of one target. The default, for providers without a metrics
    /// API, probes the target and reports the probe's round trip
    /// ([`probe_metrics`](crate::api::probe_metrics)).
    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        Ok(crate::api::probe_metrics(self.probe_health(target).await?))
    }
}

/// Creates and retires VMs. Nodes are listed by [`Provider::list_nodes`].
#[async_trait]
pub trait Compute: Send + Sync {
    /// Creates a node for `spec.role`. When a node with `spec.key` already exists it is
    /// returned instead of creating a second one.
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node>;

    /// Takes the node out of service for new sessions; existing ones finish.
    async fn drain_node(&self, node: &NodeRef) -> Result<()>;

    /// Destroys the node. Retiring a node that is already gone succeeds.
    async fn retire_node(&self, node: &NodeRef) -> Result<()>;

    /// The monthly price of a node of `profile` in `region`, when the adapter knows
    /// it (the planner's spend cap uses it).
    fn price(&self, profile: &str, region: &Region) -> Option<Price> {
        let _ = (profile, region);
        None
    }

    /// Creates an ingress node (`spec.role` must be [`NodeRole::Ingress`]).
    async fn create_ingress_node(&self, spec: &NodeSpec) -> Result<Node> {
        expect_role(spec, NodeRole::Ingress, Operation::CreateIngressNode)?;
        self.create_node(spec).await
    }

    /// Creates an egress node (`spec.role` must be [`NodeRole::Egress`]).
    async fn create_egress_node(&self, spec: &NodeSpec) -> Result<Node> {
        expect_role(spec, NodeRole::Egress, Operation::CreateEgressNode)?;
        self.create_node(spec).await
    }
}

fn expect_role(spec: &NodeSpec, role: NodeRole, operation: Operation) -> Result<()> {
    if spec.role == role {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidInput, "compute", operation)
            .with_message(format!("spec {} asks for role {}", spec.key, spec.role)))
    }
}

/// Public front doors clients connect to.
#[async_trait]
pub trait Ingress: Send + Sync {
    /// Allocates (or, for static hosts, includes) a front door.
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor>;
    /// Releases (or excludes) it. Releasing one that is already gone succeeds.
    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()>;
    /// The fleet's front doors at this provider.
    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>>;
}

/// Outbound NAT addresses.
#[async_trait]
pub trait Egress: Send + Sync {
    /// Allocates (or includes) an egress address.
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp>;
    /// Releases (or excludes) it. Releasing one that is already gone succeeds.
    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()>;
    /// The fleet's egress addresses at this provider.
    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>>;
}

/// A private network DAMM gateways join.
#[async_trait]
pub trait Overlay: Send + Sync {
    /// Mints the credentials a gateway joins with; the result carries the auth key.
    async fn join_overlay(&self, spec: &OverlaySpec) -> Result<OverlayMembership>;
    /// Removes the member and revokes unused credentials.
    async fn leave_overlay(&self, membership: &MembershipRef) -> Result<()>;
    /// The fleet's memberships.
    async fn list_memberships(&self) -> Result<Vec<OverlayMembership>>;
}

/// HTTPS-shaped fronts hiding the real ingress.
#[async_trait]
pub trait CdnFront: Send + Sync {
    /// Publishes a fronted hostname pointing at `spec.origin`.
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front>;
    /// Points an existing front at another origin, keeping its hostname (the origin
    /// rotates, the clients' URL stays). Idempotent.
    async fn repoint_front(&self, front: &FrontRef, origin: std::net::IpAddr) -> Result<Front>;
    /// Takes it down.
    async fn retire_front(&self, front: &FrontRef) -> Result<()>;
    /// The fleet's fronts.
    async fn list_fronts(&self) -> Result<Vec<Front>>;
}

/// The provider's managed tunnels.
#[async_trait]
pub trait TunnelTerm: Send + Sync {
    /// Registers a tunnel; the result carries the connector token.
    async fn register_tunnel(&self, spec: &TunnelSpec) -> Result<Tunnel>;
    /// Deletes it, with its connections.
    async fn retire_tunnel(&self, tunnel: &TunnelRef) -> Result<()>;
    /// The fleet's tunnels.
    async fn list_tunnels(&self) -> Result<Vec<Tunnel>>;
}

/// The future [`AdapterDescriptor::build`] returns.
pub type BuildFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Provider>>> + Send>>;

/// A [`BuildFuture`] of a constructor's future (what [`adapter!`](crate::adapter) expands to).
pub fn build_future<P: Provider + 'static>(
    provider: impl Future<Output = Result<P>> + Send + 'static,
) -> BuildFuture {
    Box::pin(async move {
        let provider: Arc<dyn Provider> = Arc::new(provider.await?);
        Ok(provider)
    })
}

/// Declares an adapter crate's registry entry, `pub const ADAPTER`, from its name, its
/// one-line summary, its capability constant and its constructor (`Type::from_config`,
/// taking `&AdapterConfig`; `async Type::from_config` when the constructor is async).
///
/// ```ignore
/// damm_provider::adapter!("vultr", "Vultr instances (compute, ingress, egress)", CAPABILITIES, Vultr::from_config);
/// damm_provider::adapter!("gce", "Google Compute Engine", CAPABILITIES, async Gce::from_config);
/// ```
#[macro_export]
macro_rules! adapter {
    ($name:literal, $summary:expr, $capabilities:expr, async $constructor:path) => {
        /// The registry's entry for this adapter.
        pub const ADAPTER: $crate::AdapterDescriptor = $crate::AdapterDescriptor {
            name: $name,
            summary: $summary,
            capabilities: $capabilities,
            build: |config: $crate::config::AdapterConfig| {
                $crate::build_future(async move { $constructor(&config).await })
            },
        };
    };
    ($name:literal, $summary:expr, $capabilities:expr, $constructor:path) => {
        /// The registry's entry for this adapter.
        pub const ADAPTER: $crate::AdapterDescriptor = $crate::AdapterDescriptor {
            name: $name,
            summary: $summary,
            capabilities: $capabilities,
            build: |config: $crate::config::AdapterConfig| {
                $crate::build_future(async move { $constructor(&config) })
            },
        };
    };
}

/// Inside `impl Provider for T`: the [`Provider`] methods that adapters answer the same
/// way, each named once. `id` reads the adapter's `id` field; `region` looks the DAMM
/// region up in its `regions` table (DAMM region → provider region); `health_in_listing`
/// answers `true` (the node probe only reads back the listing's status); `compute`,
/// `ingress`, `egress`, `overlay`, `cdn_front` and `tunnel_term` hand out `self` as that
/// capability, which `T` implements.
///
/// ```ignore
/// #[async_trait]
/// impl Provider for Vultr {
///     damm_provider::provider_methods!(id, region, health_in_listing, compute, ingress, egress);
///
///     async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> { ... }
///     async fn probe_health(&self, target: &Target) -> Result<HealthSignal> { ... }
/// }
/// ```
#[macro_export]
macro_rules! provider_methods {
    ($($method:ident),+ $(,)?) => {
        $( $crate::provider_methods!(@one $method); )+
    };
    (@one id) => {
        fn id(&self) -> &str {
            &self.id
        }
    };
    (@one region) => {
        fn region(&self, region: &$crate::Region) -> Option<String> {
            self.regions.get(region.as_str()).cloned()
        }
    };
    (@one health_in_listing) => {
        fn health_in_listing(&self) -> bool {
            true
        }
    };
    (@one compute) => {
        fn compute(&self) -> Option<&dyn $crate::Compute> {
            Some(self)
        }
    };
    (@one ingress) => {
        fn ingress(&self) -> Option<&dyn $crate::Ingress> {
            Some(self)
        }
    };
    (@one egress) => {
        fn egress(&self) -> Option<&dyn $crate::Egress> {
            Some(self)
        }
    };
    (@one overlay) => {
        fn overlay(&self) -> Option<&dyn $crate::Overlay> {
            Some(self)
        }
    };
    (@one cdn_front) => {
        fn cdn_front(&self) -> Option<&dyn $crate::CdnFront> {
            Some(self)
        }
    };
    (@one tunnel_term) => {
        fn tunnel_term(&self) -> Option<&dyn $crate::TunnelTerm> {
            Some(self)
        }
    };
}

/// What an adapter crate exports for the registry: its name, the capabilities it
/// declares (shown before anything is built) and how to build an instance.
#[derive(Clone, Copy)]
pub struct AdapterDescriptor {
    /// Adapter name, equal to its cargo feature (`static-host`, `hetzner`, ...).
    pub name: &'static str,
    /// One line for `damm adapters`.
    pub summary: &'static str,
    /// The capabilities every instance hands out; the conformance suite checks it.
    pub capabilities: Capabilities,
    /// Builds an instance from its config.
    pub build: fn(AdapterConfig) -> BuildFuture,
}

impl std::fmt::Debug for AdapterDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterDescriptor")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}
