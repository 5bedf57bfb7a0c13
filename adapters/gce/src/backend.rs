//! The [`Provider`] implementation on `google-cloud-compute-v1`: zonal instances as
//! nodes, regional static external addresses as front doors and egress addresses
//! ([`addresses`]), all carrying the fleet and key labels; every mutation waits for its
//! zone or region operation to be `DONE`.
//!
//! References: a node is `ZONE/NAME`, an address `REGION/NAME`. Names are derived from
//! the idempotency key, so a create replayed after a lost answer meets `409
//! alreadyExists` and adopts what the first attempt made.

mod addresses;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use damm_provider::api::{
    Calls, NextPage, Page, Paging, collect_pages, create_operation, create_or_adopt, found,
    gone_is_fine, node_verdict, probe_signal, require_owned,
};
use damm_provider::config::AdapterConfig;
use damm_provider::retry::RateLimit;
use damm_provider::tables::damm_region;
use damm_provider::{
    Capabilities, Capability, Compute, Error, ErrorKind, FleetId, HealthSignal, HealthStatus,
    IdempotencyKey, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels, Node, NodeFilter,
    NodeRef, NodeSpec, NodeState, Operation, Price, Provider, Region, Result, Target, async_trait,
};
use google_cloud_compute_v1::model::{
    self, AccessConfig, AttachedDisk, AttachedDiskInitializeParams, Instance,
    InstancesSetLabelsRequest, Metadata, NetworkInterface,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_gax::paginator::internal::PageableResponse;
use tokio::time::Instant;

use crate::config::{ADAPTER, GceConfig, Profile, region_of_zone};
use crate::core::{Clients, clients, parse_error, request};

/// What Compute Engine hands out.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// Label naming the DAMM region a resource was created for.
const LABEL_REGION: &str = "damm-region";
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
    calls: Calls,
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

/// Where a resource lives: instances in a zone, addresses in a region. It names the
/// operations client that waits for the resource's mutations.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    Zone(&'a str),
    Region(&'a str),
}

/// A resource whose labels tell whose it is.
trait Labelled {
    fn labels(&self) -> &HashMap<String, String>;
}

impl Labelled for Instance {
    fn labels(&self) -> &HashMap<String, String> {
        &self.labels
    }
}

impl Labelled for model::Address {
    fn labels(&self) -> &HashMap<String, String> {
        &self.labels
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
            calls: Calls::new(&id, vec![RateLimit::per_minute(1500)]),
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

    /// One API call under the instance's rate limit and retry policy.
    async fn call<T, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        self.calls
            .run_mapped(operation, idempotent, parse_error, call)
            .await
    }

    /// Every item of a listing, a call (with its own rate-limit token and retries) per
    /// page: `list` answers the page of a `pageToken` (empty for the first).
    async fn all_pages<P, F, Fut>(
        &self,
        operation: Operation,
        what: &str,
        list: F,
    ) -> Result<Vec<P::PageItem>>
    where
        P: PageableResponse,
        F: Fn(String) -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<P>>,
    {
        let list = &list;
        collect_pages(
            &self.id,
            operation,
            what,
            Paging::default(),
            |at| async move {
                let token = match at {
                    NextPage::Token(token) => token,
                    NextPage::First | NextPage::Number(_) => String::new(),
                };
                let page = self.call(operation, true, || list(token.clone())).await?;
                let next = page.next_page_token();
                Ok(Page {
                    next: (!next.is_empty()).then_some(NextPage::Token(next)),
                    items: page.items(),
                    total: None,
                })
            },
        )
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

    /// One page of a zone's instances matching `filter`.
    fn instance_page(
        &self,
        zone: &str,
        filter: &str,
        max: u32,
        token: String,
    ) -> impl Future<Output = google_cloud_compute_v1::Result<model::InstanceList>> {
        request!(self, instances.list().set_zone(zone).set_filter(filter))
            .set_max_results(max)
            .set_page_token(token)
            .send()
    }

    async fn instances_in(
        &self,
        zone: &str,
        filter: String,
        operation: Operation,
    ) -> Result<Vec<Instance>> {
        let list = |token| self.instance_page(zone, &filter, self.page_size, token);
        self.all_pages(operation, "instances.list", list).await
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
        let is_at = |zone: &str| zone == location || region_of_zone(zone) == location;
        damm_region(&self.zones, labels.get(LABEL_REGION), location, is_at)
    }

    fn require_owned(&self, labels: &Labels, key: &IdempotencyKey, op: Operation) -> Result<()> {
        require_owned(&self.id, &self.fleet, labels, key, op)
    }

    /// Whether `resource` carries this fleet's label.
    fn is_fleets(&self, resource: &impl Labelled) -> bool {
        resource.labels().get(LABEL_FLEET).map(String::as_str) == Some(self.fleet.as_str())
    }

    /// `resource` (the `what` at `place/name`) when it is this fleet's, else NotFound:
    /// the adapter never touches another fleet's resource.
    fn owned<T: Labelled>(
        &self,
        resource: T,
        (what, place, name): (&str, &str, &str),
        operation: Operation,
    ) -> Result<T> {
        if self.is_fleets(&resource) {
            Ok(resource)
        } else {
            Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("no {what} {place}/{name} in fleet {}", self.fleet),
            ))
        }
    }

    async fn get_instance(&self, zone: &str, name: &str, operation: Operation) -> Result<Instance> {
        let get = || {
            request!(self, instances.get().set_zone(zone))
                .set_instance(name)
                .send()
        };
        self.call(operation, true, get).await
    }

    /// An instance of this fleet, or NotFound.
    async fn owned_instance(&self, zone: &str, name: &str, op: Operation) -> Result<Instance> {
        let instance = self.get_instance(zone, name, op).await?;
        self.owned(instance, ("instance", zone, name), op)
    }

    /// The instance a replayed create meets under its name: this fleet's is adopted,
    /// another fleet's is a conflict.
    async fn instance_named(
        &self,
        zone: &str,
        name: &str,
        op: Operation,
    ) -> Result<Option<Instance>> {
        match found(self.get_instance(zone, name, op).await)? {
            Some(instance) if !self.is_fleets(&instance) => Err(self.error(
                ErrorKind::Conflict,
                op,
                format!("instance {zone}/{name} exists outside fleet {}", self.fleet),
            )),
            other => Ok(other),
        }
    }

    /// A mutation in `place`: `send` (retried when `idempotent`), then its operation
    /// waited for.
    async fn mutate<F, Fut>(
        &self,
        place: Place<'_>,
        operation: Operation,
        idempotent: bool,
        send: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<model::Operation>>,
    {
        let op = self.call(operation, idempotent, send).await?;
        self.wait(place, op, operation).await
    }

    /// Calls Google's `operations.wait` of `place` (which answers when the operation is
    /// done or after a while) until the operation is `DONE`, for at most the operation
    /// timeout, and reports its outcome.
    async fn wait(
        &self,
        place: Place<'_>,
        mut op: model::Operation,
        operation: Operation,
    ) -> Result<()> {
        let deadline = Instant::now() + self.operation_timeout;
        let timeout = self.request_timeout + WAIT_CALL;
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
            let name = name.as_str();
            op = match place {
                Place::Zone(zone) => {
                    let wait = || {
                        request!(self, zone_operations.wait().set_zone(zone))
                            .set_operation(name)
                            .with_attempt_timeout(timeout)
                            .send()
                    };
                    self.call(operation, true, wait).await?
                }
                Place::Region(region) => {
                    let wait = || {
                        request!(self, region_operations.wait().set_region(region))
                            .set_operation(name)
                            .with_attempt_timeout(timeout)
                            .send()
                    };
                    self.call(operation, true, wait).await?
                }
            };
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
}

/// Labels as DAMM holds them.
fn labels_of(map: &HashMap<String, String>) -> Labels {
    Labels::from_provider(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Labels for a new resource: the spec's ownership labels, its region and `extra`.
fn new_labels(
    labels: &Labels,
    region: &Region,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    labels
        .iter()
        .chain([(LABEL_REGION, region.as_str())])
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
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

#[async_trait]
impl Provider for Gce {
    damm_provider::provider_methods!(id, health_in_listing, compute, ingress, egress);

    fn region(&self, region: &Region) -> Option<String> {
        self.zones
            .get(region.as_str())
            .map(|z| region_of_zone(z).to_owned())
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
        let verdict = match target {
            Target::Api => {
                let zone = self.all_zones().into_iter().next().ok_or_else(|| {
                    self.error(
                        ErrorKind::InvalidInput,
                        operation,
                        "the region table is empty",
                    )
                })?;
                let filter = self.filter(&[]);
                let list = || self.instance_page(zone, &filter, 1, String::new());
                self.call(operation, true, list).await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Node(r) => {
                let (zone, name) = self.split_ref(&r.id, operation)?;
                let instance = self.owned_instance(zone, name, operation).await?;
                node_verdict(self.node(&instance).state, "instance")
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
        Ok(probe_signal(target, started, verdict))
    }
}

#[async_trait]
impl Compute for Gce {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = create_operation(spec.role);
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
            .set_labels(new_labels(&spec.labels, &spec.region, &[]))
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
        let insert = || {
            request!(self, instances.insert().set_zone(zone))
                .set_body(body.clone())
                .send()
        };
        match self.call(operation, false, insert).await {
            Ok(op) => self.wait(Place::Zone(zone), op, operation).await?,
            Err(e) => {
                let adopt = || self.instance_named(zone, &name, operation);
                return Ok(self.node(&create_or_adopt(Err(e), adopt).await?));
            }
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
            let set_labels = || {
                request!(self, instances.set_labels().set_zone(zone))
                    .set_instance(name)
                    .set_body(request.clone())
                    .send()
            };
            match self.call(operation, true, set_labels).await {
                Ok(op) => return self.wait(Place::Zone(zone), op, operation).await,
                Err(e) if e.kind() == ErrorKind::Conflict && attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::RetireNode;
        let (zone, name) = self.split_ref(&node.id, operation)?;
        gone_is_fine(
            async {
                self.owned_instance(zone, name, operation).await?;
                let delete = || {
                    request!(self, instances.delete().set_zone(zone))
                        .set_instance(name)
                        .send()
                };
                self.mutate(Place::Zone(zone), operation, true, delete)
                    .await
            }
            .await,
        )
        .map(drop)
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
