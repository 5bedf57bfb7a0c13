//! The [`Provider`] implementation and the capability declaration.
//!
//! Ownership lives in Vultr's own metadata:
//! - instances carry tags `damm-fleet:<fleet>`, `damm-key:<key>`, `damm-role:<role>`,
//!   `damm-region:<DAMM region>` (each label `k=v` is the tag `k:v`), and
//!   `damm-draining` once drained; their `label` is `damm-<key>`;
//! - reserved IPs have no tags, so their free-text `label` holds
//!   `damm-fleet=<fleet>,damm-key=<key>,damm-role=frontdoor|egress,damm-region=<region>`,
//!   parsed back strictly.
//!
//! Nothing without this fleet's marks is ever changed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use damm_provider::addresses::{AddressBackend, AddressParts, AddressRole};
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Error, ErrorKind, FleetId, HealthSignal,
    HealthStatus, IdempotencyKey, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels,
    Metrics, Node, NodeFilter, NodeRef, NodeRole, NodeSpec, NodeState, Operation, Price, Provider,
    Region, Result, Target, async_trait,
};
use serde_json::json;

use crate::config::VultrConfig;
use crate::core::{Client, Instance, ReservedIp, base64};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// Label (tag) recording the DAMM region a node was created for.
pub(crate) const LABEL_REGION: &str = "damm-region";

/// The adapter name, as in `[providers.vultr]` and `DAMM_VULTR_*`.
const ADAPTER: &str = "vultr";

/// Vultr compute instances as nodes, reserved IPs as front doors and egress addresses.
#[derive(Debug)]
pub struct Vultr {
    id: String,
    fleet: FleetId,
    settings: VultrConfig,
    api: Client,
}

/// The ownership a reserved IP's label encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AddressLabel {
    fleet: FleetId,
    key: IdempotencyKey,
    role: AddressRole,
    region: Option<Region>,
}

impl AddressLabel {
    fn encode(&self) -> String {
        let mut text = format!(
            "{LABEL_FLEET}={},{LABEL_KEY}={},{LABEL_ROLE}={}",
            self.fleet,
            self.key,
            self.role.label()
        );
        if let Some(region) = &self.region {
            text.push_str(&format!(",{LABEL_REGION}={region}"));
        }
        text
    }

    /// Reads a label back; anything that is not exactly this scheme is not DAMM's.
    fn parse(label: &str) -> Option<AddressLabel> {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for part in label.split(',') {
            let (k, v) = part.split_once('=')?;
            if ![LABEL_FLEET, LABEL_KEY, LABEL_ROLE, LABEL_REGION].contains(&k)
                || fields.insert(k, v).is_some()
            {
                return None;
            }
        }
        let role = AddressRole::from_label(fields.get(LABEL_ROLE)?)?;
        let region = match fields.get(LABEL_REGION) {
            Some(r) => Some(Region::new(*r).ok()?),
            None => None,
        };
        Some(AddressLabel {
            fleet: FleetId::new(*fields.get(LABEL_FLEET)?).ok()?,
            key: IdempotencyKey::new(*fields.get(LABEL_KEY)?).ok()?,
            role,
            region,
        })
    }
}

/// Labels as Vultr tags: `k=v` → `k:v`, an empty value → the bare key.
fn labels_to_tags(labels: &Labels) -> Vec<String> {
    labels
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_owned()
            } else {
                format!("{k}:{v}")
            }
        })
        .collect()
}

/// Vultr tags as labels: `k:v` → `k=v`, a bare tag → `k=""`.
fn tags_to_labels(tags: &[String]) -> Labels {
    Labels::from_provider(
        tags.iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect(),
    )
}

/// A host name from a key: DNS allows no `_`, and at most 63 characters.
fn hostname(key: &IdempotencyKey) -> String {
    let mut name: String = format!("damm-{key}").replace('_', "-");
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// An address the API reported, unless it is a placeholder (`""`, `0.0.0.0`, `::`).
fn address(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.split('/').next()?.trim().parse().ok()?;
    (!ip.is_unspecified()).then_some(ip)
}

fn operation_for(role: NodeRole) -> Operation {
    match role {
        NodeRole::Ingress => Operation::CreateIngressNode,
        NodeRole::Egress => Operation::CreateEgressNode,
    }
}

impl Vultr {
    /// Builds the adapter from its settings.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let invalid = |message: String| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(message)
        };
        let settings: VultrConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        settings
            .validate()
            .map_err(|e| invalid(format!("{}: {e}", config.origin())))?;
        let token = settings.token().cloned().ok_or_else(|| {
            invalid(format!(
                "{}: no Vultr API token: set DAMM_VULTR_TOKEN (or DAMM_VULTR_TOKEN_FILE, or \
                 `token` / `token_file` in [providers.vultr])",
                config.origin()
            ))
        })?;
        let api = Client::new(
            &id,
            &settings.api_url,
            token,
            Duration::from_millis(settings.request_timeout_ms),
        )?;
        Ok(Vultr {
            fleet: config.fleet().clone(),
            api,
            settings,
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

    fn fleet_tag(&self) -> String {
        format!("{LABEL_FLEET}:{}", self.fleet)
    }

    /// The DAMM region of a Vultr region: the first entry of the table naming it.
    fn damm_region(&self, vultr: &str) -> Option<Region> {
        self.settings
            .regions
            .iter()
            .find(|(_, v)| v.as_str() == vultr)
            .and_then(|(d, _)| Region::new(d.as_str()).ok())
    }

    /// The Vultr region for `region`, or `InvalidInput`.
    fn mapped_region(&self, region: &Region, operation: Operation) -> Result<&str> {
        self.settings
            .regions
            .get(region.as_str())
            .map(String::as_str)
            .ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidInput,
                    operation,
                    format!("region `{region}` is not mapped to a Vultr region (see `regions`)"),
                )
            })
    }

    /// Refuses a spec whose labels name another fleet.
    fn check_spec_fleet(&self, labels: &Labels, operation: Operation) -> Result<()> {
        match labels.get(LABEL_FLEET) {
            Some(fleet) if fleet != self.fleet.as_str() => Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "the spec is labelled for fleet `{fleet}`, not `{}`",
                    self.fleet
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses references to another provider's resources.
    fn check_provider(&self, provider: &str, operation: Operation) -> Result<()> {
        if provider == self.id {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "the reference names provider `{provider}`, not `{}`",
                    self.id
                ),
            ))
        }
    }

    /// The node an instance is, when it carries this fleet's tag.
    fn node(&self, instance: &Instance) -> Option<Node> {
        let labels = tags_to_labels(instance.tags());
        if !labels.is_owned_by(&self.fleet) {
            return None;
        }
        let region = labels
            .get(LABEL_REGION)
            .and_then(|r| Region::new(r).ok())
            .or_else(|| self.damm_region(&instance.region))
            .or_else(|| Region::new(instance.region.as_str()).ok());
        let Some(region) = region else {
            tracing::warn!(
                instance = %instance.id,
                region = %instance.region,
                "fleet instance in an unmapped Vultr region; left out of inventory"
            );
            return None;
        };
        let roles = labels
            .get(LABEL_ROLE)
            .and_then(|r| NodeRole::from_str(r).ok())
            .into_iter()
            .collect();
        let state = match (
            instance.status.as_str(),
            instance.power_status.as_str(),
            instance.server_status.as_str(),
        ) {
            ("pending" | "resizing", _, _) => NodeState::Provisioning,
            ("suspended", _, _) | ("active", "stopped", _) => NodeState::Stopped,
            ("active", "running", "ok") if labels.get(LABEL_DRAINING).is_some() => {
                NodeState::Draining
            }
            ("active", "running", "ok") => NodeState::Running,
            ("active", "running", _) => NodeState::Provisioning,
            _ => NodeState::Unknown,
        };
        let addresses = [instance.main_ip.as_str(), instance.v6_main_ip.as_str()]
            .into_iter()
            .filter_map(address)
            .collect();
        let created_at = DateTime::parse_from_rfc3339(&instance.date_created)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        Some(Node {
            reference: NodeRef::new(&self.id, &instance.id),
            region,
            provider_region: instance.region.clone(),
            roles,
            state,
            addresses,
            wireguard_port: None,
            labels,
            created_at,
        })
    }

    /// The fleet's instances (every page).
    async fn fleet_instances(&self, operation: Operation) -> Result<Vec<Instance>> {
        self.api
            .list_instances(operation, &self.fleet_tag(), self.settings.page_size)
            .await
    }

    /// The instance behind `node` when it exists and is this fleet's; `None` when it is
    /// gone; `InvalidInput` when it belongs to someone else.
    async fn owned_instance(
        &self,
        node: &NodeRef,
        operation: Operation,
    ) -> Result<Option<Instance>> {
        self.check_provider(&node.provider, operation)?;
        let Some(instance) = self.api.get_instance(operation, &node.id).await? else {
            return Ok(None);
        };
        if !tags_to_labels(instance.tags()).is_owned_by(&self.fleet) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "instance {} does not carry the tag {}: not touching it",
                    node.id,
                    self.fleet_tag()
                ),
            ));
        }
        Ok(Some(instance))
    }

    /// The fleet's reserved IPs for `role`, with their parsed labels.
    async fn fleet_addresses(
        &self,
        role: AddressRole,
        operation: Operation,
    ) -> Result<Vec<(ReservedIp, AddressLabel)>> {
        let all = self
            .api
            .list_reserved_ips(operation, self.settings.page_size)
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|ip| {
                let label = AddressLabel::parse(ip.label.as_deref().unwrap_or_default())?;
                (label.fleet == self.fleet && label.role == role).then_some((ip, label))
            })
            .collect())
    }

    /// Reads a reserved IP as one of the fleet's addresses.
    fn address_of(
        &self,
        ip: &ReservedIp,
        label: &AddressLabel,
        operation: Operation,
    ) -> Result<AddressParts> {
        let region = label
            .region
            .clone()
            .or_else(|| self.damm_region(&ip.region))
            .or_else(|| Region::new(ip.region.as_str()).ok())
            .ok_or_else(|| {
                self.error(
                    ErrorKind::Unexpected,
                    operation,
                    format!(
                        "reserved IP {} is in unmapped region `{}`",
                        ip.id, ip.region
                    ),
                )
            })?;
        let address = address(&ip.subnet).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!("reserved IP {} has no address (`{}`)", ip.id, ip.subnet),
            )
        })?;
        Ok(AddressParts {
            id: ip.id.clone(),
            region,
            address,
            node: ip.attached_to().map(|id| NodeRef::new(&self.id, id)),
            labels: Labels::owned(&label.fleet, &label.key),
        })
    }

    /// Allocates (or finds, by key) a reserved IP for `role`, attached to `spec.node`
    /// when one is given.
    async fn allocate(
        &self,
        spec: &AddressSpec,
        role: AddressRole,
        operation: Operation,
    ) -> Result<(ReservedIp, AddressLabel)> {
        self.check_spec_fleet(&spec.labels, operation)?;
        let vultr_region = self.mapped_region(&spec.region, operation)?.to_owned();
        let instance = match &spec.node {
            None => None,
            Some(node) => {
                let instance = self.owned_instance(node, operation).await?.ok_or_else(|| {
                    self.error(
                        ErrorKind::NotFound,
                        operation,
                        format!("node {node} to attach to does not exist"),
                    )
                })?;
                if instance.region != vultr_region {
                    return Err(self.error(
                        ErrorKind::InvalidInput,
                        operation,
                        format!(
                            "node {node} is in {}, the address would be in {vultr_region}",
                            instance.region
                        ),
                    ));
                }
                Some(instance)
            }
        };
        let existing = self
            .fleet_addresses(role, operation)
            .await?
            .into_iter()
            .find(|(_, label)| label.key == spec.key);
        let (mut ip, label) = match existing {
            Some(found) => found,
            None => {
                let label = AddressLabel {
                    fleet: self.fleet.clone(),
                    key: spec.key.clone(),
                    role,
                    region: Some(spec.region.clone()),
                };
                let ip = self
                    .api
                    .create_reserved_ip(operation, &vultr_region, &label.encode())
                    .await?;
                (ip, label)
            }
        };
        if let Some(instance) = instance
            && ip.attached_to().is_none()
        {
            self.api
                .attach_reserved_ip(operation, &ip.id, &instance.id)
                .await?;
            ip.instance_id = Some(instance.id);
        }
        Ok((ip, label))
    }

    /// Detaches (when attached) and deletes one of the fleet's reserved IPs; one that is
    /// already gone is fine.
    async fn release(&self, id: &str, role: AddressRole, operation: Operation) -> Result<()> {
        let Some(ip) = self.api.get_reserved_ip(operation, id).await? else {
            return Ok(());
        };
        let label = AddressLabel::parse(ip.label.as_deref().unwrap_or_default());
        if !label.is_some_and(|l| l.fleet == self.fleet && l.role == role) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "reserved IP {id} is not a {} of fleet {}: not touching it",
                    role.label(),
                    self.fleet
                ),
            ));
        }
        if ip.attached_to().is_some() && !self.api.detach_reserved_ip(operation, id).await? {
            return Ok(());
        }
        self.api.delete_reserved_ip(operation, id).await.map(|_| ())
    }

    /// One probe of `target` (one attempt, no retries: the shared client makes one for
    /// probes and metrics): the verdict and a detail line.
    async fn probe(&self, target: &Target, operation: Operation) -> Result<(HealthStatus, String)> {
        let not_found = |what: String| self.error(ErrorKind::NotFound, operation, what);
        match target {
            Target::Api => {
                self.api.ping(operation, &self.fleet_tag()).await?;
                Ok((HealthStatus::Healthy, "API answered".to_owned()))
            }
            Target::Node(node) => {
                let instance = match self.owned_instance(node, operation).await {
                    Ok(Some(instance)) => instance,
                    Ok(None) => return Err(not_found(format!("node {node} does not exist"))),
                    Err(e) if e.kind() == ErrorKind::InvalidInput => {
                        return Err(not_found(format!(
                            "node {node} is not in fleet {}",
                            self.fleet
                        )));
                    }
                    Err(e) => return Err(e),
                };
                let status = match (
                    instance.status.as_str(),
                    instance.power_status.as_str(),
                    instance.server_status.as_str(),
                ) {
                    ("active", "running", "ok") => HealthStatus::Healthy,
                    ("suspended", _, _) | (_, "stopped", _) => HealthStatus::Down,
                    _ => HealthStatus::Unknown,
                };
                Ok((
                    status,
                    format!(
                        "status {}, power {}, server {}",
                        instance.status, instance.power_status, instance.server_status
                    ),
                ))
            }
            Target::Frontdoor(r) => {
                self.probe_address(&r.provider, &r.id, AddressRole::Frontdoor, operation)
                    .await
            }
            Target::EgressIp(r) => {
                self.probe_address(&r.provider, &r.id, AddressRole::Egress, operation)
                    .await
            }
            other => Err(self.error(
                ErrorKind::Unsupported,
                operation,
                format!("Vultr has no {other}"),
            )),
        }
    }

    async fn probe_address(
        &self,
        provider: &str,
        id: &str,
        role: AddressRole,
        operation: Operation,
    ) -> Result<(HealthStatus, String)> {
        self.check_provider(provider, operation)?;
        let ip = self
            .api
            .get_reserved_ip(operation, id)
            .await?
            .filter(|ip| {
                AddressLabel::parse(ip.label.as_deref().unwrap_or_default())
                    .is_some_and(|l| l.fleet == self.fleet && l.role == role)
            })
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!(
                        "reserved IP {id} is not a {} of fleet {}",
                        role.label(),
                        self.fleet
                    ),
                )
            })?;
        Ok(match ip.attached_to() {
            Some(instance) => (HealthStatus::Healthy, format!("attached to {instance}")),
            None => (HealthStatus::Degraded, "reserved, not attached".to_owned()),
        })
    }
}

#[async_trait]
impl Provider for Vultr {
    damm_provider::provider_methods!(id, health_in_listing, compute, ingress, egress);

    fn region(&self, region: &Region) -> Option<String> {
        self.settings.regions.get(region.as_str()).cloned()
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let instances = self.fleet_instances(Operation::ListNodes).await?;
        Ok(instances
            .iter()
            .filter_map(|i| self.node(i))
            .filter(|n| filter.matches(n))
            .collect())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let started = Instant::now();
        let (status, detail) = self.probe(target, Operation::ProbeHealth).await?;
        Ok(HealthSignal {
            target: target.clone(),
            status,
            rtt: Some(started.elapsed()),
            observed_at: Utc::now(),
            detail,
        })
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let started = Instant::now();
        self.probe(target, Operation::GetMetrics).await?;
        let mut metrics = Metrics::empty(target.clone(), Utc::now());
        metrics.rtt = Some(started.elapsed());
        Ok(metrics)
    }
}

#[async_trait]
impl Compute for Vultr {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = operation_for(spec.role);
        self.check_spec_fleet(&spec.labels, operation)?;
        let region = self.mapped_region(&spec.region, operation)?;
        let profile = self.settings.profiles.get(&spec.profile).ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "profile `{}` is not configured (see `profiles`)",
                    spec.profile
                ),
            )
        })?;

        // A replayed create finds the node made before.
        let key_tag = format!("{LABEL_KEY}:{}", spec.key);
        let existing = self
            .api
            .list_instances(operation, &key_tag, self.settings.page_size)
            .await?;
        if let Some(node) = existing
            .iter()
            .filter_map(|i| self.node(i))
            .find(|n| n.key().as_ref() == Some(&spec.key))
        {
            return Ok(node);
        }

        let mut labels = spec.labels.clone();
        let invalid = |e: damm_provider::InvalidName| {
            self.error(ErrorKind::InvalidInput, operation, e.to_string())
        };
        labels
            .insert(LABEL_FLEET, self.fleet.as_str())
            .map_err(invalid)?;
        labels
            .insert(LABEL_KEY, spec.key.as_str())
            .map_err(invalid)?;
        labels
            .insert(LABEL_ROLE, spec.role.as_str())
            .map_err(invalid)?;
        labels
            .insert(LABEL_REGION, spec.region.as_str())
            .map_err(invalid)?;
        let mut body = json!({
            "region": region,
            "plan": profile.plan,
            "os_id": self.settings.os_id,
            "label": format!("damm-{}", spec.key),
            "hostname": hostname(&spec.key),
            "tags": labels_to_tags(&labels),
        });
        if let Some(user_data) = &spec.user_data {
            body["user_data"] = json!(base64(user_data.expose().as_bytes()));
        }
        let instance = self.api.create_instance(operation, body).await?;
        self.node(&instance).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!(
                    "created instance {} came back without the fleet tag",
                    instance.id
                ),
            )
        })
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::DrainNode;
        let instance = self.owned_instance(node, operation).await?.ok_or_else(|| {
            self.error(
                ErrorKind::NotFound,
                operation,
                format!("node {node} does not exist"),
            )
        })?;
        let mut tags = instance.tags().to_vec();
        if tags.iter().any(|t| t == LABEL_DRAINING) {
            return Ok(());
        }
        tags.push(LABEL_DRAINING.to_owned());
        self.api
            .set_instance_tags(operation, &instance.id, &tags)
            .await
            .map(|_| ())
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::RetireNode;
        if self.owned_instance(node, operation).await?.is_none() {
            return Ok(());
        }
        self.api
            .delete_instance(operation, &node.id)
            .await
            .map(|_| ())
    }

    fn price(&self, profile: &str, region: &Region) -> Option<Price> {
        self.settings.regions.get(region.as_str())?;
        let profile = self.settings.profiles.get(profile)?;
        Some(Price {
            monthly_cents: profile.monthly_cents,
            currency: profile.currency.clone(),
        })
    }
}

#[async_trait]
impl AddressBackend for Vultr {
    async fn allocate_address(
        &self,
        spec: &AddressSpec,
        role: AddressRole,
    ) -> Result<AddressParts> {
        let (ip, label) = self.allocate(spec, role, role.allocate_operation()).await?;
        self.address_of(&ip, &label, role.allocate_operation())
    }

    async fn release_address(&self, id: &str, role: AddressRole) -> Result<()> {
        self.release(id, role, role.release_operation()).await
    }

    async fn list_addresses(&self, role: AddressRole) -> Result<Vec<AddressParts>> {
        let operation = role.list_operation();
        let found = self.fleet_addresses(role, operation).await?;
        found
            .iter()
            .map(|(ip, label)| self.address_of(ip, label, operation))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(fleet: &str, key: &str, role: AddressRole) -> AddressLabel {
        AddressLabel {
            fleet: FleetId::new(fleet).unwrap(),
            key: IdempotencyKey::new(key).unwrap(),
            role,
            region: Some(Region::new("eu-central").unwrap()),
        }
    }

    #[test]
    fn address_labels_round_trip_and_parse_strictly() {
        let l = label("prod", "k-1", AddressRole::Frontdoor);
        let text = l.encode();
        assert_eq!(
            text,
            "damm-fleet=prod,damm-key=k-1,damm-role=frontdoor,damm-region=eu-central"
        );
        assert_eq!(AddressLabel::parse(&text), Some(l));
        let short = AddressLabel::parse("damm-fleet=prod,damm-key=k,damm-role=egress").unwrap();
        assert_eq!((short.role, short.region), (AddressRole::Egress, None));
        for foreign in [
            "",
            "my reserved ip",
            "damm-fleet=prod,damm-key=k",
            "damm-fleet=prod,damm-key=k,damm-role=gateway",
            "damm-fleet=prod,damm-key=k,damm-role=egress,owner=bob",
            "damm-fleet=prod,damm-fleet=prod,damm-key=k,damm-role=egress",
            "damm-fleet=Prod,damm-key=k,damm-role=egress",
            "damm-fleet=prod,damm-key=k,damm-role=egress,",
        ] {
            assert_eq!(AddressLabel::parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn labels_and_tags_correspond() {
        let mut labels = Labels::owned(
            &FleetId::new("prod").unwrap(),
            &IdempotencyKey::new("k1").unwrap(),
        );
        labels.insert(LABEL_DRAINING, "").unwrap();
        let tags = labels_to_tags(&labels);
        assert_eq!(tags, ["damm-draining", "damm-fleet:prod", "damm-key:k1"]);
        assert_eq!(tags_to_labels(&tags), labels);
        let odd = tags_to_labels(&["web server".to_owned(), "a:b:c".to_owned()]);
        assert_eq!(odd.get("web server"), Some(""));
        assert_eq!(odd.get("a"), Some("b:c"));
    }

    #[test]
    fn host_names_are_dns_labels() {
        assert_eq!(hostname(&IdempotencyKey::new("k_1").unwrap()), "damm-k-1");
        let long = IdempotencyKey::new(format!("{}_", "a".repeat(57))).unwrap();
        let name = hostname(&long);
        assert!(name.len() <= 63 && !name.ends_with('-'), "{name}");
    }

    #[test]
    fn placeholder_addresses_are_skipped() {
        assert_eq!(address("0.0.0.0"), None);
        assert_eq!(address(""), None);
        assert_eq!(address("::"), None);
        assert_eq!(address("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(
            address("2001:db8::/64"),
            Some("2001:db8::".parse().unwrap())
        );
    }
}
