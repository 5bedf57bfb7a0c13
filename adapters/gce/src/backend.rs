//! The [`Provider`] implementation on `google-cloud-compute-v1`: zonal instances as
//! nodes, regional static external addresses as front doors and egress addresses, all
//! carrying the fleet and key labels; every mutation waits for its zone or region
//! operation to be `DONE`.
//!
//! References: a node is `ZONE/NAME`, an address `REGION/NAME`. Names are derived from
//! the idempotency key, so a create replayed after a lost answer meets `409
//! alreadyExists` and adopts what the first attempt made.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use damm_provider::config::AdapterConfig;
use damm_provider::retry::{RateLimit, RetryPolicy};
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Egress, EgressIp, EgressIpRef, Error,
    ErrorKind, FleetId, Frontdoor, FrontdoorRef, HealthSignal, HealthStatus, IdempotencyKey,
    Ingress, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels, Metrics, Node, NodeFilter,
    NodeRef, NodeRole, NodeSpec, NodeState, Operation, Price, Provider, Region, Result, Target,
    async_trait,
};
use google_cloud_compute_v1::model::{
    self, AccessConfig, Address, AttachedDisk, AttachedDiskInitializeParams, Instance,
    InstancesSetLabelsRequest, Metadata, NetworkInterface,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;
use tokio::time::Instant;

use crate::config::{ADAPTER, GceConfig, Profile, region_of_zone};
use crate::core::{Clients, clients, parse_error};

/// What Compute Engine hands out.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// Label naming the DAMM region a resource was created for.
const LABEL_REGION: &str = "damm-region";
/// `damm-role` values of addresses.
const ROLE_FRONTDOOR: &str = "frontdoor";
const ROLE_EGRESS: &str = "egress";
/// The access config name Google uses by default.
const EXTERNAL_NAT: &str = "External NAT";
/// `operations.wait` blocks for up to two minutes at Google.
const WAIT_CALL: Duration = Duration::from_secs(120);

/// The Compute Engine provider.
pub struct Gce {
    id: String,
    fleet: FleetId,
    project: String,
    api_url: String,
    clients: Clients,
    zones: BTreeMap<String, String>,
    profiles: BTreeMap<String, Profile>,
    image: String,
    network: String,
    page_size: u32,
    request_timeout: Duration,
    operation_timeout: Duration,
    limits: [RateLimit; 1],
    retry: RetryPolicy,
}

impl std::fmt::Debug for Gce {
    // The clients hold the credentials: show only what identifies the instance.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gce")
            .field("id", &self.id)
            .field("fleet", &self.fleet)
            .field("project", &self.project)
            .field("api_url", &self.api_url)
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

/// Where an address's role shows: front doors and egress addresses are the same kind of
/// resource at Google.
#[derive(Debug, Clone, Copy)]
enum Role {
    Frontdoor,
    Egress,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Frontdoor => ROLE_FRONTDOOR,
            Role::Egress => ROLE_EGRESS,
        }
    }

    fn name_prefix(self) -> &'static str {
        match self {
            Role::Frontdoor => "damm-fd",
            Role::Egress => "damm-eg",
        }
    }
}

impl Gce {
    /// Builds the adapter from its settings (the clients are built here; no request is
    /// sent until the first call).
    pub async fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: GceConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        settings.validate().map_err(|why| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure)
                .with_message(format!("{}: {why}", config.origin()))
        })?;
        let clients = clients(&settings, &id).await?;
        Ok(Gce {
            fleet: config.fleet().clone(),
            project: settings.project.clone().unwrap_or_default(),
            api_url: settings.api_url.clone(),
            clients,
            zones: settings.zone_table(),
            profiles: settings.profile_table(),
            image: settings.image.clone(),
            network: settings.network.clone(),
            page_size: settings.page_size,
            request_timeout: settings.request_timeout(),
            operation_timeout: settings.operation_timeout(),
            // Compute Engine's API quotas are per project and minute.
            limits: [RateLimit::per_minute(1500)],
            retry: RetryPolicy::default(),
            id,
        })
    }

    /// The fleet whose resources this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, operation).with_message(message)
    }

    /// One API call under the shared rate limit and retry policy.
    async fn call<T, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        self.retry
            .run(&self.limits, idempotent, || {
                let answer = call();
                async move {
                    answer
                        .await
                        .map_err(|e| parse_error(&self.id, operation, e))
                }
            })
            .await
    }

    /// Every item of a listing, read through the client's paginator. A failed page
    /// restarts the listing (it is idempotent) under the retry policy; each page after
    /// the first takes its own rate-limit token.
    async fn all_pages<P, T, Page, Build>(
        &self,
        operation: Operation,
        build: Build,
        items: fn(Page) -> Vec<T>,
    ) -> Result<Vec<T>>
    where
        Build: Fn() -> P,
        P: google_cloud_gax::paginator::Paginator<Page, google_cloud_compute_v1::Error>,
        Page: google_cloud_gax::paginator::internal::PageableResponse,
    {
        self.retry
            .run(&self.limits, true, || {
                let mut pages = build();
                async move {
                    let mut all = Vec::new();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| parse_error(&self.id, operation, e))?;
                        let more = !page.next_page_token().is_empty();
                        all.extend(items(page));
                        if more {
                            for limit in &self.limits {
                                limit.acquire().await;
                            }
                        }
                    }
                    Ok(all)
                }
            })
            .await
    }

    /// A filter selecting this fleet's resources and `extra` labels.
    fn filter(&self, extra: &[(&str, &str)]) -> String {
        std::iter::once((LABEL_FLEET, self.fleet.as_str()))
            .chain(extra.iter().copied())
            .map(|(k, v)| format!("(labels.{k} = \"{v}\")"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn instances_in(
        &self,
        zone: &str,
        filter: String,
        operation: Operation,
    ) -> Result<Vec<Instance>> {
        self.all_pages(
            operation,
            || {
                self.clients
                    .instances
                    .list()
                    .set_project(&self.project)
                    .set_zone(zone)
                    .set_filter(filter.clone())
                    .set_max_results(self.page_size)
                    .by_page()
            },
            |page: model::InstanceList| page.items,
        )
        .await
    }

    async fn addresses_in(
        &self,
        region: &str,
        filter: String,
        operation: Operation,
    ) -> Result<Vec<Address>> {
        self.all_pages(
            operation,
            || {
                self.clients
                    .addresses
                    .list()
                    .set_project(&self.project)
                    .set_region(region)
                    .set_filter(filter.clone())
                    .set_max_results(self.page_size)
                    .by_page()
            },
            |page: model::AddressList| page.items,
        )
        .await
    }

    /// The zones the region table names, each once.
    fn all_zones(&self) -> BTreeSet<&str> {
        self.zones.values().map(String::as_str).collect()
    }

    /// The regions of those zones, each once.
    fn all_regions(&self) -> BTreeSet<&str> {
        self.zones.values().map(|z| region_of_zone(z)).collect()
    }

    fn zone(&self, region: &Region, operation: Operation) -> Result<&str> {
        self.zones
            .get(region.as_str())
            .map(String::as_str)
            .ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidInput,
                    operation,
                    format!("region {region} has no Compute Engine zone in the region table"),
                )
            })
    }

    /// The DAMM region of a resource: its label, else the table's entry for its zone or
    /// region.
    fn damm_region(&self, labels: &Labels, location: &str) -> Region {
        labels
            .get(LABEL_REGION)
            .and_then(|r| Region::new(r).ok())
            .or_else(|| {
                self.zones
                    .iter()
                    .find(|(_, z)| *z == location || region_of_zone(z) == location)
                    .and_then(|(r, _)| Region::new(r.as_str()).ok())
            })
            .or_else(|| Region::new(location).ok())
            .unwrap_or_else(|| Region::new("unknown").expect("valid"))
    }

    fn require_owned(&self, labels: &Labels, key: &IdempotencyKey, op: Operation) -> Result<()> {
        if labels.is_owned_by(&self.fleet) && labels.key().as_ref() == Some(key) {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("spec {key} must carry the fleet label and its key"),
            ))
        }
    }

    fn owned(&self, labels: &std::collections::HashMap<String, String>) -> bool {
        labels.get(LABEL_FLEET).map(String::as_str) == Some(self.fleet.as_str())
    }

    fn node(&self, i: &Instance) -> Node {
        let labels = labels_of(&i.labels);
        let zone = last_segment(i.zone.as_deref().unwrap_or_default()).to_owned();
        let name = i.name.clone().unwrap_or_default();
        let draining = labels.get(LABEL_DRAINING).is_some();
        use model::instance::Status;
        let state = match &i.status {
            Some(Status::Provisioning | Status::Staging | Status::Pending) => {
                NodeState::Provisioning
            }
            Some(Status::Running) if draining => NodeState::Draining,
            Some(Status::Running) => NodeState::Running,
            Some(
                Status::Stopping
                | Status::Stopped
                | Status::Suspending
                | Status::Suspended
                | Status::Terminated,
            ) => NodeState::Stopped,
            Some(Status::Deprovisioning) => NodeState::Deleting,
            _ => NodeState::Unknown,
        };
        let addresses = i
            .network_interfaces
            .iter()
            .flat_map(|nic| nic.access_configs.iter())
            .filter_map(|ac| ac.nat_ip.as_deref()?.parse::<IpAddr>().ok())
            .collect();
        Node {
            reference: NodeRef::new(&self.id, format!("{zone}/{name}")),
            region: self.damm_region(&labels, &zone),
            provider_region: zone,
            roles: labels
                .get(LABEL_ROLE)
                .and_then(|r| r.parse().ok())
                .into_iter()
                .collect(),
            state,
            addresses,
            wireguard_port: None,
            created_at: i
                .creation_timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            labels,
        }
    }

    /// An address as DAMM sees it: reference, region, IP and the node holding it.
    fn address_parts(
        &self,
        a: &Address,
    ) -> Option<(String, Region, IpAddr, Option<NodeRef>, Labels)> {
        let labels = labels_of(&a.labels);
        let region = last_segment(a.region.as_deref().unwrap_or_default()).to_owned();
        let ip = a.address.as_deref()?.parse().ok()?;
        let node = a
            .users
            .iter()
            .find_map(|u| instance_of_link(u))
            .map(|(zone, name)| NodeRef::new(&self.id, format!("{zone}/{name}")));
        Some((
            format!("{region}/{}", a.name.as_deref().unwrap_or_default()),
            self.damm_region(&labels, &region),
            ip,
            node,
            labels,
        ))
    }

    fn frontdoor(&self, a: &Address) -> Option<Frontdoor> {
        let (id, region, address, node, labels) = self.address_parts(a)?;
        Some(Frontdoor {
            reference: FrontdoorRef::new(&self.id, id),
            region,
            address,
            port: None,
            node,
            labels,
        })
    }

    fn egress_ip(&self, a: &Address) -> Option<EgressIp> {
        let (id, region, address, node, labels) = self.address_parts(a)?;
        Some(EgressIp {
            reference: EgressIpRef::new(&self.id, id),
            region,
            address,
            node,
            labels,
        })
    }

    /// `ZONE/NAME` or `REGION/NAME`.
    fn split_ref<'a>(&self, id: &'a str, operation: Operation) -> Result<(&'a str, &'a str)> {
        id.split_once('/')
            .filter(|(place, name)| !place.is_empty() && !name.is_empty())
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("`{id}` is not a Compute Engine reference (PLACE/NAME)"),
                )
            })
    }

    async fn get_instance(&self, zone: &str, name: &str, operation: Operation) -> Result<Instance> {
        self.call(operation, true, || {
            self.clients
                .instances
                .get()
                .set_project(&self.project)
                .set_zone(zone)
                .set_instance(name)
                .send()
        })
        .await
    }

    /// An instance of this fleet, or NotFound.
    async fn owned_instance(
        &self,
        zone: &str,
        name: &str,
        operation: Operation,
    ) -> Result<Instance> {
        let instance = self.get_instance(zone, name, operation).await?;
        if self.owned(&instance.labels) {
            Ok(instance)
        } else {
            Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("no instance {zone}/{name} in fleet {}", self.fleet),
            ))
        }
    }

    async fn get_address(&self, region: &str, name: &str, operation: Operation) -> Result<Address> {
        self.call(operation, true, || {
            self.clients
                .addresses
                .get()
                .set_project(&self.project)
                .set_region(region)
                .set_address(name)
                .send()
        })
        .await
    }

    async fn owned_address(
        &self,
        region: &str,
        name: &str,
        operation: Operation,
    ) -> Result<Address> {
        let address = self.get_address(region, name, operation).await?;
        if self.owned(&address.labels) {
            Ok(address)
        } else {
            Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("no address {region}/{name} in fleet {}", self.fleet),
            ))
        }
    }

    /// Waits until a zonal operation is `DONE` and reports its outcome.
    async fn wait_zone(
        &self,
        zone: &str,
        op: model::Operation,
        operation: Operation,
    ) -> Result<()> {
        self.wait(op, operation, |name| {
            self.clients
                .zone_operations
                .wait()
                .set_project(&self.project)
                .set_zone(zone)
                .set_operation(name)
                .with_attempt_timeout(self.request_timeout + WAIT_CALL)
                .send()
        })
        .await
    }

    /// Waits until a regional operation is `DONE` and reports its outcome.
    async fn wait_region(
        &self,
        region: &str,
        op: model::Operation,
        operation: Operation,
    ) -> Result<()> {
        self.wait(op, operation, |name| {
            self.clients
                .region_operations
                .wait()
                .set_project(&self.project)
                .set_region(region)
                .set_operation(name)
                .with_attempt_timeout(self.request_timeout + WAIT_CALL)
                .send()
        })
        .await
    }

    /// Calls `wait_call` (Google's `operations.wait`, which answers when the operation
    /// is done or after a while) until the operation is `DONE`, for at most the
    /// operation timeout.
    async fn wait<F, Fut>(
        &self,
        mut op: model::Operation,
        operation: Operation,
        wait_call: F,
    ) -> Result<()>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<model::Operation>>,
    {
        let deadline = Instant::now() + self.operation_timeout;
        loop {
            if op.status == Some(model::operation::Status::Done) {
                return self.outcome(&op, operation);
            }
            let name = op.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(self.error(
                    ErrorKind::Unexpected,
                    operation,
                    "an operation without a name cannot be waited for",
                ));
            }
            if Instant::now() >= deadline {
                return Err(self
                    .error(
                        ErrorKind::Unavailable,
                        operation,
                        format!(
                            "operation {name} is not done after {:?}",
                            self.operation_timeout
                        ),
                    )
                    .set_temporary(true));
            }
            op = self
                .call(operation, true, || wait_call(name.clone()))
                .await?;
        }
    }

    /// A finished operation's error, as an [`Error`].
    fn outcome(&self, op: &model::Operation, operation: Operation) -> Result<()> {
        let first = op.error.as_ref().and_then(|e| e.errors.first());
        let status = op.http_error_status_code.filter(|s| *s >= 400);
        if first.is_none() && status.is_none() {
            return Ok(());
        }
        let code = first.and_then(|e| e.code.clone()).unwrap_or_default();
        let message = first
            .and_then(|e| e.message.clone())
            .or_else(|| op.http_error_message.clone())
            .unwrap_or_default();
        let kind = match code.as_str() {
            "QUOTA_EXCEEDED" => ErrorKind::QuotaExceeded,
            "RESOURCE_ALREADY_EXISTS" | "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" => {
                ErrorKind::Conflict
            }
            "RESOURCE_NOT_FOUND" => ErrorKind::NotFound,
            "ZONE_RESOURCE_POOL_EXHAUSTED" | "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" => {
                ErrorKind::Unavailable
            }
            _ => status
                .and_then(|s| u16::try_from(s).ok())
                .map_or(ErrorKind::Unexpected, |s| {
                    ErrorKind::from_http_status(s, None)
                }),
        };
        Err(self.error(
            kind,
            operation,
            format!(
                "operation {} failed: {code} {message}",
                op.name.as_deref().unwrap_or("?")
            ),
        ))
    }

    /// The running instance `node` names, checked to be in `region`.
    async fn attach_target(
        &self,
        node: &NodeRef,
        region: &str,
        operation: Operation,
    ) -> Result<(String, Instance)> {
        let (zone, name) = self.split_ref(&node.id, operation)?;
        if region_of_zone(zone) != region {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("node {node} is not in region {region}"),
            ));
        }
        let instance = self.owned_instance(zone, name, operation).await?;
        Ok((zone.to_owned(), instance))
    }

    /// Makes `address` the external IP of the instance: its current access config goes
    /// (when it is an ephemeral address; a static one of the fleet is a conflict), then
    /// an access config with the address is added. An instance has one external IPv4
    /// address, used both ways, so a node holds one front door *or* one egress address.
    async fn attach(
        &self,
        address: &Address,
        node: &NodeRef,
        region: &str,
        operation: Operation,
    ) -> Result<()> {
        let ip = address.address.clone().unwrap_or_default();
        let (zone, instance) = self.attach_target(node, region, operation).await?;
        let name = instance.name.clone().unwrap_or_default();
        let nic = instance.network_interfaces.first();
        let nic_name = nic
            .and_then(|n| n.name.clone())
            .unwrap_or_else(|| "nic0".to_owned());
        if let Some(current) = nic.and_then(|n| n.access_configs.first()) {
            if current.nat_ip.as_deref() == Some(ip.as_str()) {
                return Ok(());
            }
            if let Some(held) = current.nat_ip.as_deref() {
                let fleet_static = self
                    .addresses_in(region, self.filter(&[]), operation)
                    .await?
                    .into_iter()
                    .any(|a| a.address.as_deref() == Some(held));
                if fleet_static {
                    return Err(self.error(
                        ErrorKind::Conflict,
                        operation,
                        format!("node {node} already holds the fleet's address {held}"),
                    ));
                }
            }
            let access_name = current.name.clone().unwrap_or_default();
            let op = self
                .call(operation, true, || {
                    self.clients
                        .instances
                        .delete_access_config()
                        .set_project(&self.project)
                        .set_zone(&zone)
                        .set_instance(&name)
                        .set_network_interface(&nic_name)
                        .set_access_config(&access_name)
                        .send()
                })
                .await?;
            self.wait_zone(&zone, op, operation).await?;
        }
        let config = AccessConfig::new()
            .set_name(EXTERNAL_NAT)
            .set_type(model::access_config::Type::OneToOneNat)
            .set_nat_ip(ip);
        let op = self
            .call(operation, true, || {
                self.clients
                    .instances
                    .add_access_config()
                    .set_project(&self.project)
                    .set_zone(&zone)
                    .set_instance(&name)
                    .set_network_interface(&nic_name)
                    .set_body(config.clone())
                    .send()
            })
            .await?;
        self.wait_zone(&zone, op, operation).await
    }

    /// Takes `address` off every instance using it and gives each an ephemeral
    /// external IP again, so the node stays reachable.
    async fn detach(&self, address: &Address, operation: Operation) -> Result<()> {
        let ip = address.address.clone().unwrap_or_default();
        for (zone, name) in address.users.iter().filter_map(|u| instance_of_link(u)) {
            let instance = match self.get_instance(&zone, &name, operation).await {
                Ok(i) => i,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for nic in &instance.network_interfaces {
                let nic_name = nic.name.clone().unwrap_or_else(|| "nic0".to_owned());
                let Some(held) = nic
                    .access_configs
                    .iter()
                    .find(|ac| ac.nat_ip.as_deref() == Some(ip.as_str()))
                else {
                    continue;
                };
                let access_name = held.name.clone().unwrap_or_default();
                let op = self
                    .call(operation, true, || {
                        self.clients
                            .instances
                            .delete_access_config()
                            .set_project(&self.project)
                            .set_zone(&zone)
                            .set_instance(&name)
                            .set_network_interface(&nic_name)
                            .set_access_config(&access_name)
                            .send()
                    })
                    .await?;
                self.wait_zone(&zone, op, operation).await?;
                let ephemeral = AccessConfig::new()
                    .set_name(EXTERNAL_NAT)
                    .set_type(model::access_config::Type::OneToOneNat);
                let op = self
                    .call(operation, true, || {
                        self.clients
                            .instances
                            .add_access_config()
                            .set_project(&self.project)
                            .set_zone(&zone)
                            .set_instance(&name)
                            .set_network_interface(&nic_name)
                            .set_body(ephemeral.clone())
                            .send()
                    })
                    .await?;
                self.wait_zone(&zone, op, operation).await?;
            }
        }
        Ok(())
    }

    /// Allocates (or adopts, by key) a static external address, attached to the spec's
    /// node when it names one.
    async fn allocate(
        &self,
        spec: &AddressSpec,
        role: Role,
        operation: Operation,
    ) -> Result<Address> {
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let zone = self.zone(&spec.region, operation)?;
        let region = region_of_zone(zone);
        let by_key = self.filter(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, role.label())]);
        let name = resource_name(role.name_prefix(), &spec.key);
        let existing = self
            .addresses_in(region, by_key, operation)
            .await?
            .into_iter()
            .next();
        let mut address = match existing {
            Some(address) => address,
            None => {
                let mut labels: BTreeMap<String, String> = spec
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                labels.insert(LABEL_ROLE.to_owned(), role.label().to_owned());
                labels.insert(LABEL_REGION.to_owned(), spec.region.to_string());
                let body = Address::new()
                    .set_name(&name)
                    .set_address_type(model::address::AddressType::External)
                    .set_network_tier(model::address::NetworkTier::Premium)
                    .set_description(format!("DAMM {} of fleet {}", role.label(), self.fleet))
                    .set_labels(labels);
                // Never retried blindly: a lost answer is found by its name below.
                match self
                    .call(operation, false, || {
                        self.clients
                            .addresses
                            .insert()
                            .set_project(&self.project)
                            .set_region(region)
                            .set_body(body.clone())
                            .send()
                    })
                    .await
                {
                    Ok(op) => self.wait_region(region, op, operation).await?,
                    Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => {
                        match self.owned_address(region, &name, operation).await {
                            Ok(_) => {}
                            Err(lookup) if lookup.kind() == ErrorKind::NotFound => return Err(e),
                            Err(lookup) => return Err(lookup),
                        }
                    }
                    Err(e) => return Err(e),
                }
                self.owned_address(region, &name, operation).await?
            }
        };
        if let Some(node) = &spec.node {
            let (zone, instance_name) = self.split_ref(&node.id, operation)?;
            let held = address
                .users
                .iter()
                .filter_map(|u| instance_of_link(u))
                .any(|(z, n)| z == zone && n == instance_name);
            if !held {
                self.attach(&address, node, region, operation).await?;
                let current_name = address.name.clone().unwrap_or_default();
                address = self.owned_address(region, &current_name, operation).await?;
            }
        }
        Ok(address)
    }

    /// Releases an address: off its node, then deleted. Gone already is fine.
    async fn release(&self, id: &str, operation: Operation) -> Result<()> {
        let (region, name) = self.split_ref(id, operation)?;
        not_found_is_ok(
            async {
                let address = self.owned_address(region, name, operation).await?;
                if !address.users.is_empty() {
                    self.detach(&address, operation).await?;
                }
                let op = self
                    .call(operation, true, || {
                        self.clients
                            .addresses
                            .delete()
                            .set_project(&self.project)
                            .set_region(region)
                            .set_address(name)
                            .send()
                    })
                    .await?;
                self.wait_region(region, op, operation).await
            }
            .await,
        )
    }

    async fn list_addresses(&self, role: Role, operation: Operation) -> Result<Vec<Address>> {
        let filter = self.filter(&[(LABEL_ROLE, role.label())]);
        let mut all = Vec::new();
        for region in self.all_regions() {
            all.extend(self.addresses_in(region, filter.clone(), operation).await?);
        }
        Ok(all)
    }

    async fn probe_address(&self, id: &str) -> Result<(HealthStatus, String)> {
        let operation = Operation::ProbeHealth;
        let (region, name) = self.split_ref(id, operation)?;
        let address = self.owned_address(region, name, operation).await?;
        Ok(match address.users.first() {
            Some(user) => (
                HealthStatus::Healthy,
                format!("in use by {}", last_segment(user)),
            ),
            None => (HealthStatus::Degraded, "reserved, not attached".to_owned()),
        })
    }
}

/// Labels as DAMM holds them.
fn labels_of(map: &std::collections::HashMap<String, String>) -> Labels {
    Labels::from_provider(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The last path segment of a resource URL (`.../zones/europe-west3-a` → the zone).
fn last_segment(link: &str) -> &str {
    link.rsplit('/').next().unwrap_or(link)
}

/// `(zone, name)` of an instance URL.
fn instance_of_link(link: &str) -> Option<(String, String)> {
    let mut parts = link.rsplit('/');
    let name = parts.next()?;
    (parts.next()? == "instances").then_some(())?;
    let zone = parts.next()?;
    (parts.next()? == "zones").then_some(())?;
    Some((zone.to_owned(), name.to_owned()))
}

/// A Compute Engine name (RFC 1035, at most 63 characters) derived from the key, so a
/// replayed create names the same resource. Long keys keep a prefix and a hash.
fn resource_name(prefix: &str, key: &IdempotencyKey) -> String {
    let plain = format!("{prefix}-{}", key.as_str().replace('_', "-"));
    if plain.len() <= 63 && !plain.ends_with('-') {
        return plain;
    }
    // FNV-1a: stable across runs and builds (the name must not change between them).
    let hash = key.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let head = plain[..46.min(plain.len())].trim_end_matches('-');
    format!("{head}-{hash:016x}")
}

fn not_found_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Provider for Gce {
    fn id(&self) -> &str {
        &self.id
    }

    /// A node probe reads the instance status back, which the listing already holds.
    fn health_in_listing(&self) -> bool {
        true
    }

    fn region(&self, region: &Region) -> Option<String> {
        self.zones
            .get(region.as_str())
            .map(|z| region_of_zone(z).to_owned())
    }

    fn compute(&self) -> Option<&dyn Compute> {
        Some(self)
    }

    fn ingress(&self) -> Option<&dyn Ingress> {
        Some(self)
    }

    fn egress(&self) -> Option<&dyn Egress> {
        Some(self)
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let zones: Vec<&str> = match &filter.region {
            Some(region) => self
                .zones
                .get(region.as_str())
                .map(String::as_str)
                .into_iter()
                .collect(),
            None => self.all_zones().into_iter().collect(),
        };
        let mut nodes = Vec::new();
        for zone in zones {
            let instances = self
                .instances_in(zone, self.filter(&[]), Operation::ListNodes)
                .await?;
            nodes.extend(
                instances
                    .iter()
                    .map(|i| self.node(i))
                    .filter(|n| filter.matches(n)),
            );
        }
        Ok(nodes)
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let started = std::time::Instant::now();
        let operation = Operation::ProbeHealth;
        let (status, detail) = match target {
            Target::Api => {
                let zone = self.all_zones().into_iter().next().ok_or_else(|| {
                    self.error(
                        ErrorKind::InvalidInput,
                        operation,
                        "the region table is empty",
                    )
                })?;
                self.call(operation, true, || {
                    self.clients
                        .instances
                        .list()
                        .set_project(&self.project)
                        .set_zone(zone)
                        .set_filter(self.filter(&[]))
                        .set_max_results(1u32)
                        .send()
                })
                .await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Node(r) => {
                let (zone, name) = self.split_ref(&r.id, operation)?;
                let instance = self.owned_instance(zone, name, operation).await?;
                match self.node(&instance).state {
                    NodeState::Running | NodeState::Draining => {
                        (HealthStatus::Healthy, "instance running".to_owned())
                    }
                    NodeState::Provisioning => {
                        (HealthStatus::Unknown, "instance starting".to_owned())
                    }
                    other => (
                        HealthStatus::Down,
                        format!("instance {other:?}").to_lowercase(),
                    ),
                }
            }
            Target::Frontdoor(r) => self.probe_address(&r.id).await?,
            Target::EgressIp(r) => self.probe_address(&r.id).await?,
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    operation,
                    format!("Compute Engine has no {other}"),
                ));
            }
        };
        Ok(HealthSignal {
            target: target.clone(),
            status,
            rtt: Some(started.elapsed()),
            observed_at: Utc::now(),
            detail,
        })
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let signal = self.probe_health(target).await?;
        let mut metrics = Metrics::empty(target.clone(), signal.observed_at);
        metrics.rtt = signal.rtt;
        Ok(metrics)
    }
}

#[async_trait]
impl Compute for Gce {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = match spec.role {
            NodeRole::Ingress => Operation::CreateIngressNode,
            NodeRole::Egress => Operation::CreateEgressNode,
        };
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let zone = self.zone(&spec.region, operation)?;
        let profile = self.profiles.get(&spec.profile).ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("profile `{}` is not in the profile table", spec.profile),
            )
        })?;
        let by_key = self.filter(&[(LABEL_KEY, spec.key.as_str())]);
        if let Some(existing) = self.instances_in(zone, by_key, operation).await?.first() {
            return Ok(self.node(existing));
        }
        let name = resource_name("damm", &spec.key);
        let mut labels: BTreeMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        labels.insert(LABEL_REGION.to_owned(), spec.region.to_string());
        let boot_disk = AttachedDisk::new()
            .set_boot(true)
            .set_auto_delete(true)
            .set_type(model::attached_disk::Type::Persistent)
            .set_initialize_params(
                AttachedDiskInitializeParams::new().set_source_image(&self.image),
            );
        let nic = NetworkInterface::new()
            .set_network(&self.network)
            .set_access_configs([AccessConfig::new()
                .set_name(EXTERNAL_NAT)
                .set_type(model::access_config::Type::OneToOneNat)]);
        let mut body = Instance::new()
            .set_name(&name)
            .set_description(format!("DAMM {} node of fleet {}", spec.role, self.fleet))
            .set_machine_type(format!(
                "zones/{zone}/machineTypes/{}",
                profile.machine_type
            ))
            .set_labels(labels)
            .set_disks([boot_disk])
            .set_network_interfaces([nic]);
        if let Some(user_data) = &spec.user_data {
            body = body.set_metadata(
                Metadata::new().set_items([model::metadata::Items::new()
                    .set_key("user-data")
                    .set_value(user_data.expose())]),
            );
        }
        // Never retried blindly: a replay meets 409 alreadyExists (the name comes from
        // the key) and adopts the instance.
        match self
            .call(operation, false, || {
                self.clients
                    .instances
                    .insert()
                    .set_project(&self.project)
                    .set_zone(zone)
                    .set_body(body.clone())
                    .send()
            })
            .await
        {
            Ok(op) => self.wait_zone(zone, op, operation).await?,
            Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => {
                match self.get_instance(zone, &name, operation).await {
                    Ok(found) if self.owned(&found.labels) => return Ok(self.node(&found)),
                    Ok(_) => {
                        return Err(self.error(
                            ErrorKind::Conflict,
                            operation,
                            format!("instance {zone}/{name} exists outside fleet {}", self.fleet),
                        ));
                    }
                    Err(lookup) if lookup.kind() == ErrorKind::NotFound => return Err(e),
                    Err(lookup) => return Err(lookup),
                }
            }
            Err(e) => return Err(e),
        }
        let created = self.owned_instance(zone, &name, operation).await?;
        Ok(self.node(&created))
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::DrainNode;
        let (zone, name) = self.split_ref(&node.id, operation)?;
        // setLabels is guarded by the label fingerprint: a concurrent change answers 412
        // (Conflict), and the labels are read again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let instance = self.owned_instance(zone, name, operation).await?;
            if instance.labels.contains_key(LABEL_DRAINING) {
                return Ok(());
            }
            let mut labels = instance.labels.clone();
            labels.insert(LABEL_DRAINING.to_owned(), "true".to_owned());
            let request = InstancesSetLabelsRequest::new()
                .set_labels(labels)
                .set_label_fingerprint(instance.label_fingerprint.clone().unwrap_or_default());
            match self
                .call(operation, true, || {
                    self.clients
                        .instances
                        .set_labels()
                        .set_project(&self.project)
                        .set_zone(zone)
                        .set_instance(name)
                        .set_body(request.clone())
                        .send()
                })
                .await
            {
                Ok(op) => return self.wait_zone(zone, op, operation).await,
                Err(e) if e.kind() == ErrorKind::Conflict && attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::RetireNode;
        let (zone, name) = self.split_ref(&node.id, operation)?;
        not_found_is_ok(
            async {
                self.owned_instance(zone, name, operation).await?;
                let op = self
                    .call(operation, true, || {
                        self.clients
                            .instances
                            .delete()
                            .set_project(&self.project)
                            .set_zone(zone)
                            .set_instance(name)
                            .send()
                    })
                    .await?;
                self.wait_zone(zone, op, operation).await
            }
            .await,
        )
    }

    fn price(&self, profile: &str, region: &Region) -> Option<Price> {
        self.zones.get(region.as_str())?;
        let p = self.profiles.get(profile)?;
        Some(Price {
            monthly_cents: p.monthly_cents,
            currency: p.currency.clone(),
        })
    }
}

#[async_trait]
impl Ingress for Gce {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        let operation = Operation::AllocateIngressFrontdoor;
        let address = self.allocate(spec, Role::Frontdoor, operation).await?;
        self.frontdoor(&address).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                "the address has no parsable IP",
            )
        })
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        self.release(&frontdoor.id, Operation::ReleaseIngressFrontdoor)
            .await
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        let addresses = self
            .list_addresses(Role::Frontdoor, Operation::ListFrontdoors)
            .await?;
        Ok(addresses.iter().filter_map(|a| self.frontdoor(a)).collect())
    }
}

#[async_trait]
impl Egress for Gce {
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp> {
        let operation = Operation::AllocateEgressIp;
        let address = self.allocate(spec, Role::Egress, operation).await?;
        self.egress_ip(&address).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                "the address has no parsable IP",
            )
        })
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        self.release(&ip.id, Operation::ReleaseEgressIp).await
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        let addresses = self
            .list_addresses(Role::Egress, Operation::ListEgressIps)
            .await?;
        Ok(addresses.iter().filter_map(|a| self.egress_ip(a)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_keys_and_fit_compute_rules() {
        let key = IdempotencyKey::new("conf-node-12_3").unwrap();
        assert_eq!(resource_name("damm", &key), "damm-conf-node-12-3");
        let long = IdempotencyKey::new("k".repeat(63)).unwrap();
        let name = resource_name("damm-fd", &long);
        assert!(name.len() <= 63, "{name}");
        assert_eq!(name, resource_name("damm-fd", &long), "stable");
        let trailing = IdempotencyKey::new("key_").unwrap();
        assert!(!resource_name("damm", &trailing).ends_with('-'));
    }

    #[test]
    fn instance_links_split_into_zone_and_name() {
        let link = "https://www.googleapis.com/compute/v1/projects/p/zones/us-west1-a/instances/n1";
        assert_eq!(
            instance_of_link(link),
            Some(("us-west1-a".to_owned(), "n1".to_owned()))
        );
        assert_eq!(instance_of_link("projects/p/regions/r/addresses/a"), None);
        assert_eq!(last_segment("a/b/c"), "c");
    }
}
