//! The [`Provider`] implementation: inventory, include/exclude as ingress and egress,
//! and probes.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use chrono::Utc;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Egress, EgressIp, EgressIpRef, Error, ErrorKind,
    FleetId, Frontdoor, FrontdoorRef, HealthSignal, HealthStatus, Ingress, LABEL_FLEET, Metrics,
    Node, NodeFilter, NodeRef, NodeRole, NodeState, Operation, Provider, Region, Result, Target,
    async_trait,
};

use crate::config::{Host, Inventory, StaticHostConfig};
use crate::core::{Inclusion, Inclusions, probe_host};

/// What a static host gives DAMM: no compute API, only include/exclude.
pub const CAPABILITIES: Capabilities = Capabilities::of(&[Capability::Ingress, Capability::Egress]);

const ADAPTER: &str = "static-host";

#[derive(Debug)]
struct Loaded {
    inventory: Arc<Inventory>,
    modified: Option<SystemTime>,
    /// Why the last reload failed (the previous inventory stays in force).
    error: Option<String>,
}

/// Hand-provisioned hosts from an inventory file.
#[derive(Debug)]
pub struct StaticHost {
    id: String,
    fleet: FleetId,
    settings: StaticHostConfig,
    loaded: RwLock<Loaded>,
    inclusions: Mutex<Inclusions>,
    http: reqwest::Client,
}

impl StaticHost {
    /// Builds the adapter: reads the settings, the inventory and the include state.
    pub fn from_config(config: &AdapterConfig) -> Result<StaticHost> {
        let id = config.instance().to_owned();
        let invalid = |message: String| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(message)
        };
        let mut settings: StaticHostConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        settings.inventory = config.resolve(&settings.inventory);
        settings.state = settings.state.as_deref().map(|p| config.resolve(p));
        let inventory = Inventory::load(&settings.inventory).map_err(|e| invalid(e.to_string()))?;
        let inclusions = Inclusions::load(&settings.state_path()).map_err(invalid)?;
        let http = reqwest::Client::builder()
            .timeout(settings.probe_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, &id, Operation::Configure)
                    .with_message("cannot build the HTTP client")
                    .with_source(e)
            })?;
        Ok(StaticHost {
            fleet: config.fleet().clone(),
            loaded: RwLock::new(Loaded {
                inventory: Arc::new(inventory),
                modified: modified(&settings.inventory),
                error: None,
            }),
            inclusions: Mutex::new(inclusions),
            settings,
            http,
            id,
        })
    }

    /// The inventory in force, re-read when the file changed. A file that no longer
    /// parses keeps the previous inventory and is reported by the API probe.
    pub fn inventory(&self) -> Arc<Inventory> {
        let now = modified(&self.settings.inventory);
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.modified == now {
                return loaded.inventory.clone();
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if loaded.modified != now {
            loaded.modified = now;
            match Inventory::load(&self.settings.inventory) {
                Ok(inventory) => {
                    loaded.inventory = Arc::new(inventory);
                    loaded.error = None;
                }
                Err(e) => {
                    tracing::warn!(provider = %self.id, error = %e, "inventory reload failed; keeping the previous one");
                    loaded.error = Some(e.to_string());
                }
            }
        }
        loaded.inventory.clone()
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, operation).with_message(message)
    }

    fn node(&self, host: &Host) -> Node {
        // Inventory labels were validated at load; the fleet label is ours to set.
        let mut labels = host.labels.clone();
        labels
            .insert(LABEL_FLEET, self.fleet.as_str())
            .expect("fleet ids are valid label values");
        Node {
            reference: NodeRef::new(&self.id, &host.id),
            region: host.region.clone(),
            provider_region: host.region.to_string(),
            roles: host.roles.clone(),
            state: NodeState::Running,
            addresses: vec![host.address],
            wireguard_port: Some(host.wireguard_port),
            labels,
            created_at: None,
        }
    }

    /// Includes a host for `role` under `spec`'s key, or finds the earlier inclusion; answers
    /// with the `view` of it (its front door or egress IP).
    fn include<T>(
        &self,
        role: NodeRole,
        spec: &AddressSpec,
        operation: Operation,
        view: impl Fn(&Self, &Host, &Inclusion) -> T,
    ) -> Result<T> {
        if !spec.labels.is_owned_by(&self.fleet) || spec.labels.key().as_ref() != Some(&spec.key) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "spec {} must carry the fleet label and its idempotency key",
                    spec.key
                ),
            ));
        }
        let inventory = self.inventory();
        let mut inclusions = self.inclusions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = inclusions
            .iter(role)
            .find(|i| i.labels.key().as_ref() == Some(&spec.key))
            && let Some(host) = inventory.host(&done.host)
        {
            return Ok(view(self, host, done));
        }
        let serves = |h: &&Host| h.region == spec.region && h.roles.contains(&role);
        let host = match &spec.node {
            Some(node) => {
                let host = inventory
                    .host(&node.id)
                    .filter(|_| node.provider == self.id)
                    .ok_or_else(|| {
                        self.error(
                            ErrorKind::NotFound,
                            operation,
                            format!("no static host {node}"),
                        )
                    })?;
                if !serves(&host) {
                    return Err(self.error(
                        ErrorKind::InvalidInput,
                        operation,
                        format!("host {} does not serve {role} in {}", host.id, spec.region),
                    ));
                }
                if inclusions.get(&host.id, role).is_some() {
                    return Err(self.error(
                        ErrorKind::Conflict,
                        operation,
                        format!("host {} is already included as {role}", host.id),
                    ));
                }
                host
            }
            None => inventory
                .hosts
                .iter()
                .filter(serves)
                .find(|h| inclusions.get(&h.id, role).is_none())
                .ok_or_else(|| {
                    self.error(
                        ErrorKind::QuotaExceeded,
                        operation,
                        format!("no free static host serves {role} in {}", spec.region),
                    )
                })?,
        };
        let inclusion = Inclusion {
            host: host.id.clone(),
            role,
            labels: spec.labels.clone(),
        };
        inclusions
            .update(|map| {
                map.insert((host.id.clone(), role), inclusion.clone());
            })
            .map_err(|e| self.unpersisted(operation, e))?;
        Ok(view(self, host, &inclusion))
    }

    /// The error of an include state that could not be written.
    fn unpersisted(&self, operation: Operation, e: std::io::Error) -> Error {
        self.error(
            ErrorKind::Unavailable,
            operation,
            "cannot persist the include state",
        )
        .with_source(e)
    }

    fn exclude(&self, role: NodeRole, host: &str, operation: Operation) -> Result<()> {
        let mut inclusions = self.inclusions.lock().unwrap_or_else(|p| p.into_inner());
        inclusions
            .update(|map| {
                map.remove(&(host.to_owned(), role));
            })
            .map_err(|e| self.unpersisted(operation, e))
    }

    /// The `view` of every host included for `role` that is still in the inventory.
    fn included<T>(&self, role: NodeRole, view: impl Fn(&Self, &Host, &Inclusion) -> T) -> Vec<T> {
        let inventory = self.inventory();
        let inclusions = self.inclusions.lock().unwrap_or_else(|p| p.into_inner());
        inclusions
            .iter(role)
            .filter_map(|i| inventory.host(&i.host).map(|h| view(self, h, i)))
            .collect()
    }

    /// The host a probe target names, and whether the target exists.
    fn target_host(&self, target: &Target, operation: Operation) -> Result<Host> {
        let (provider, id, role) = match target {
            Target::Node(r) => (&r.provider, &r.id, None),
            Target::Frontdoor(r) => (&r.provider, &r.id, Some(NodeRole::Ingress)),
            Target::EgressIp(r) => (&r.provider, &r.id, Some(NodeRole::Egress)),
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    operation,
                    format!("static hosts have no {other}"),
                ));
            }
        };
        let inventory = self.inventory();
        let host = inventory
            .host(id)
            .filter(|_| *provider == self.id)
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("no static host {provider}/{id}"),
                )
            })?;
        if let Some(role) = role {
            let inclusions = self.inclusions.lock().unwrap_or_else(|p| p.into_inner());
            if inclusions.get(id, role).is_none() {
                return Err(self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("{target} is not allocated"),
                ));
            }
        }
        Ok(host.clone())
    }

    fn frontdoor(&self, host: &Host, inclusion: &Inclusion) -> Frontdoor {
        Frontdoor {
            reference: FrontdoorRef::new(&self.id, &host.id),
            region: host.region.clone(),
            address: host.address,
            port: Some(host.wireguard_port),
            node: Some(NodeRef::new(&self.id, &host.id)),
            labels: inclusion.labels.clone(),
        }
    }

    fn egress_ip(&self, host: &Host, inclusion: &Inclusion) -> EgressIp {
        EgressIp {
            reference: EgressIpRef::new(&self.id, &host.id),
            region: host.region.clone(),
            address: host.address,
            node: Some(NodeRef::new(&self.id, &host.id)),
            labels: inclusion.labels.clone(),
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[async_trait]
impl Provider for StaticHost {
    fn id(&self) -> &str {
        &self.id
    }

    fn region(&self, region: &Region) -> Option<String> {
        self.inventory()
            .hosts
            .iter()
            .any(|h| h.region == *region)
            .then(|| region.to_string())
    }

    fn ingress(&self) -> Option<&dyn Ingress> {
        Some(self)
    }

    fn egress(&self) -> Option<&dyn Egress> {
        Some(self)
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        Ok(self
            .inventory()
            .hosts
            .iter()
            .map(|h| self.node(h))
            .filter(|n| filter.matches(n))
            .collect())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        if *target == Target::Api {
            let inventory = self.inventory();
            let error = self
                .loaded
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .error
                .clone();
            return Ok(HealthSignal {
                target: Target::Api,
                status: if error.is_some() {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Healthy
                },
                rtt: None,
                observed_at: Utc::now(),
                detail: error
                    .unwrap_or_else(|| format!("inventory holds {} hosts", inventory.hosts.len())),
            });
        }
        let host = self.target_host(target, Operation::ProbeHealth)?;
        let probe = probe_host(&self.http, &host, self.settings.probe_timeout()).await;
        Ok(HealthSignal {
            target: target.clone(),
            status: probe.status,
            rtt: probe.rtt,
            observed_at: Utc::now(),
            detail: probe.detail,
        })
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let host = self.target_host(target, Operation::GetMetrics)?;
        let probe = probe_host(&self.http, &host, self.settings.probe_timeout()).await;
        let mut metrics = Metrics::empty(target.clone(), Utc::now());
        metrics.rtt = probe.rtt;
        // A heartbeat may report counters: {"rx_bytes": .., "tx_bytes": .., "active_peers": .., "cpu_percent": ..}
        if let Some(body) = probe.body {
            metrics.rx_bytes = body.get("rx_bytes").and_then(|v| v.as_u64());
            metrics.tx_bytes = body.get("tx_bytes").and_then(|v| v.as_u64());
            metrics.active_peers = body.get("active_peers").and_then(|v| v.as_u64());
            metrics.cpu_percent = body.get("cpu_percent").and_then(|v| v.as_f64());
        }
        Ok(metrics)
    }
}

#[async_trait]
impl Ingress for StaticHost {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        self.include(
            NodeRole::Ingress,
            spec,
            Operation::AllocateIngressFrontdoor,
            Self::frontdoor,
        )
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        self.exclude(
            NodeRole::Ingress,
            &frontdoor.id,
            Operation::ReleaseIngressFrontdoor,
        )
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        Ok(self.included(NodeRole::Ingress, Self::frontdoor))
    }
}

#[async_trait]
impl Egress for StaticHost {
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp> {
        self.include(
            NodeRole::Egress,
            spec,
            Operation::AllocateEgressIp,
            Self::egress_ip,
        )
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        self.exclude(NodeRole::Egress, &ip.id, Operation::ReleaseEgressIp)
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        Ok(self.included(NodeRole::Egress, Self::egress_ip))
    }
}
