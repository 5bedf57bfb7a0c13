//! The [`Provider`] implementation: droplets as nodes, reserved IPs as front doors and
//! egress addresses, and the tag scheme that carries DAMM's labels.
//!
//! DigitalOcean tags cannot hold `=`, so a label `k=v` is the tag `k:v` (`damm-fleet:prod`,
//! `damm-key:k-42`, `damm-role:ingress`, `damm-region:eu-central`) and a label with an
//! empty value is the bare tag (`damm-draining`). Reserved IPs carry no tags at all, so
//! the fleet's claim on one lives on the droplet it is assigned to:
//! `damm-frontdoor:<ip with dashes>:<key>` or `damm-egress:<ip with dashes>:<key>`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use damm_provider::addresses::{AddressBackend, AddressParts, AddressRole};
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Error, ErrorKind, FleetId, HealthSignal,
    HealthStatus, IdempotencyKey, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels,
    Metrics, Node, NodeFilter, NodeRef, NodeSpec, NodeState, Operation, Price, Provider, Region,
    Result, Target, async_trait,
};
use serde_json::json;

use crate::config::{ADAPTER, DigitaloceanConfig, Profile};
use crate::core::{Client, Droplet};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// Label (and tag) holding the DAMM region a droplet was created for.
const LABEL_REGION: &str = "damm-region";

/// The prefix of a droplet's claim tag for an address of `role`.
const fn claim_prefix(role: AddressRole) -> &'static str {
    match role {
        AddressRole::Frontdoor => "damm-frontdoor",
        AddressRole::Egress => "damm-egress",
    }
}

/// The claim tag: `damm-frontdoor:192-0-2-10:<key>`.
fn claim_tag(role: AddressRole, ip: Ipv4Addr, key: &IdempotencyKey) -> String {
    format!(
        "{}:{}:{key}",
        claim_prefix(role),
        ip.to_string().replace('.', "-")
    )
}

/// A claim tag read back from a droplet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    role: AddressRole,
    ip: Ipv4Addr,
    key: String,
    tag: String,
}

impl Claim {
    fn parse(tag: &str) -> Option<Claim> {
        let (prefix, rest) = tag.split_once(':')?;
        let role = [AddressRole::Frontdoor, AddressRole::Egress]
            .into_iter()
            .find(|r| claim_prefix(*r) == prefix)?;
        let (ip, key) = rest.split_once(':')?;
        Some(Claim {
            role,
            ip: ip.replace('-', ".").parse().ok()?,
            key: key.to_owned(),
            tag: tag.to_owned(),
        })
    }

    fn all(droplet: &Droplet) -> Vec<Claim> {
        droplet
            .tags
            .iter()
            .filter_map(|t| Claim::parse(t))
            .collect()
    }
}

/// A label as a tag: `k=v` → `k:v`; an empty value → `k`.
fn label_tag(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_owned()
    } else {
        format!("{key}:{value}")
    }
}

/// A droplet's tags as labels (claim tags are address bookkeeping, not node labels).
fn labels_of(tags: &[String]) -> Labels {
    let map: BTreeMap<String, String> = tags
        .iter()
        .filter(|t| Claim::parse(t).is_none())
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (t.clone(), String::new()),
        })
        .collect();
    Labels::from_provider(map)
}

/// DigitalOcean's rule for tag names: letters, digits, `:`, `-`, `_`; at most 255.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 255
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
}

/// The droplet name for a key: `damm-<key>`, `_` as `-` (droplet names refuse `_`).
fn droplet_name(key: &IdempotencyKey) -> String {
    format!("damm-{}", key.as_str().replace('_', "-"))
        .trim_end_matches('-')
        .to_owned()
}

/// DigitalOcean droplets, reserved IPs and tags as DAMM nodes, front doors and egress IPs.
#[derive(Debug)]
pub struct Digitalocean {
    id: String,
    fleet: FleetId,
    fleet_tag: String,
    regions: BTreeMap<String, String>,
    profiles: BTreeMap<String, Profile>,
    image: String,
    client: Client,
}

impl Digitalocean {
    /// Builds the adapter from its settings (no API call is made).
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: DigitaloceanConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        let invalid = |message: String| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure)
                .with_message(format!("{}: {message}", config.origin()))
        };
        settings.validate().map_err(invalid)?;
        let token = settings
            .token
            .clone()
            .ok_or_else(|| invalid("no API token".to_owned()))?;
        let client = Client::new(
            &id,
            &settings.api_url,
            token,
            settings.request_timeout(),
            settings.page_size,
        )?;
        let fleet = config.fleet().clone();
        Ok(Digitalocean {
            fleet_tag: label_tag(LABEL_FLEET, fleet.as_str()),
            regions: settings.region_table(),
            profiles: settings.profile_table(),
            image: settings.image,
            fleet,
            client,
            id,
        })
    }

    /// The fleet whose resources this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    fn error(&self, kind: ErrorKind, op: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, op).with_message(message)
    }

    fn is_fleet(&self, droplet: &Droplet) -> bool {
        droplet.has_tag(&self.fleet_tag)
    }

    /// The DAMM region of a droplet: its `damm-region` tag, else the region table read
    /// backwards, else the slug itself.
    fn damm_region(&self, droplet: &Droplet) -> Option<Region> {
        let tagged = droplet
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix(LABEL_REGION)?.strip_prefix(':'))
            .find_map(|r| Region::new(r).ok());
        tagged
            .or_else(|| {
                self.regions
                    .iter()
                    .find(|(_, slug)| **slug == droplet.region.slug)
                    .and_then(|(damm, _)| Region::new(damm.as_str()).ok())
            })
            .or_else(|| Region::new(droplet.region.slug.as_str()).ok())
    }

    fn node(&self, droplet: &Droplet) -> Option<Node> {
        let labels = labels_of(&droplet.tags);
        let region = self.damm_region(droplet)?;
        let roles = labels
            .get(LABEL_ROLE)
            .and_then(|r| r.parse().ok())
            .into_iter()
            .collect();
        let state = match droplet.status.as_str() {
            "new" => NodeState::Provisioning,
            "active" if droplet.has_tag(LABEL_DRAINING) => NodeState::Draining,
            "active" => NodeState::Running,
            "off" => NodeState::Stopped,
            "archive" => NodeState::Deleting,
            _ => NodeState::Unknown,
        };
        let addresses = droplet
            .networks
            .v4
            .iter()
            .chain(&droplet.networks.v6)
            .filter(|n| n.kind == "public")
            .filter_map(|n| n.ip_address.parse::<IpAddr>().ok())
            .collect();
        Some(Node {
            reference: NodeRef::new(&self.id, droplet.id.to_string()),
            region,
            provider_region: droplet.region.slug.clone(),
            roles,
            state,
            addresses,
            wireguard_port: None,
            labels,
            created_at: droplet
                .created_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    }

    /// The droplet id a node reference names at this provider.
    fn droplet_id(&self, op: Operation, node: &NodeRef) -> Result<u64> {
        if node.provider != self.id {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("{node} belongs to another provider than {}", self.id),
            ));
        }
        node.id.parse().map_err(|_| {
            self.error(
                ErrorKind::NotFound,
                op,
                format!("{node}: `{}` is not a droplet id", node.id),
            )
        })
    }

    /// The fleet droplet `node` names, for an operation that changes it: a droplet that
    /// is gone is `NotFound`, one without the fleet tag is refused.
    async fn fleet_droplet(&self, op: Operation, node: &NodeRef) -> Result<Droplet> {
        let id = self.droplet_id(op, node)?;
        let droplet = self
            .client
            .get_droplet(op, id)
            .await?
            .ok_or_else(|| self.error(ErrorKind::NotFound, op, format!("no droplet {id}")))?;
        if !self.is_fleet(&droplet) {
            return Err(self.foreign(op, id));
        }
        Ok(droplet)
    }

    fn foreign(&self, op: Operation, id: u64) -> Error {
        self.error(
            ErrorKind::InvalidInput,
            op,
            format!(
                "droplet {id} does not carry the tag {}; DAMM never touches it",
                self.fleet_tag
            ),
        )
    }

    fn check_owned(&self, labels: &Labels, key: &IdempotencyKey, op: Operation) -> Result<()> {
        if labels.is_owned_by(&self.fleet) && labels.key().as_ref() == Some(key) {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("spec {key} must carry the fleet label {LABEL_FLEET} and its key"),
            ))
        }
    }

    /// The fleet droplet created with `key`, if there is one.
    async fn find_by_key(&self, op: Operation, key: &IdempotencyKey) -> Result<Option<Droplet>> {
        let tag = label_tag(LABEL_KEY, key.as_str());
        let found = self.client.list_droplets(op, &tag).await?;
        Ok(found
            .into_iter()
            .filter(|d| self.is_fleet(d))
            .min_by_key(|d| d.id))
    }

    fn address_region(&self, op: Operation, region: &Region) -> Result<String> {
        self.region(region).ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                op,
                format!("DAMM region {region} is not mapped to a DigitalOcean region (setting `regions`)"),
            )
        })
    }

    /// Allocates (or finds) the reserved IP that `spec` asks for, as `role`.
    async fn allocate(
        &self,
        role: AddressRole,
        spec: &AddressSpec,
        op: Operation,
    ) -> Result<(Ipv4Addr, Droplet)> {
        self.check_owned(&spec.labels, &spec.key, op)?;
        let Some(node) = &spec.node else {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                "digitalocean reserved IPs carry no tags; give the droplet to attach to (spec.node)",
            ));
        };
        let wanted = self.address_region(op, &spec.region)?;
        let droplet = self.fleet_droplet(op, node).await?;
        if droplet.region.slug != wanted {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!(
                    "droplet {} is in {}, but {} maps to {wanted}",
                    droplet.id, droplet.region.slug, spec.region
                ),
            ));
        }
        let mut claims = Claim::all(&droplet);

        // A replay: the droplet already records this role and key.
        if let Some(claim) = claims
            .iter()
            .find(|c| c.role == role && c.key == spec.key.as_str())
            .cloned()
        {
            match self.client.get_reserved_ip(op, claim.ip).await? {
                Some(r) => match r.droplet {
                    Some(d) if d.id == droplet.id => return Ok((claim.ip, droplet)),
                    None => {
                        let action = self
                            .client
                            .reserved_ip_action(op, claim.ip, Some(droplet.id))
                            .await?;
                        self.client.wait_action(op, &action).await;
                        return Ok((claim.ip, droplet));
                    }
                    Some(other) => {
                        return Err(self.error(
                            ErrorKind::Conflict,
                            op,
                            format!(
                                "reserved IP {} of key {} is now assigned to droplet {}",
                                claim.ip, spec.key, other.id
                            ),
                        ));
                    }
                },
                None => {
                    // The address is gone; forget the stale claim and allocate anew.
                    self.client
                        .untag_droplet(op, &claim.tag, droplet.id)
                        .await?;
                    self.client.delete_tag(op, &claim.tag).await?;
                    claims.retain(|c| *c != claim);
                }
            }
        }

        // DigitalOcean assigns at most one reserved IP to a droplet. One that no claim
        // names was left by an allocation interrupted before its tag: adopt it.
        let current = self
            .client
            .list_reserved_ips(op)
            .await?
            .into_iter()
            .find(|r| r.droplet.as_ref().is_some_and(|d| d.id == droplet.id));
        let (ip, created) = match current {
            Some(r) => {
                if let Some(other) = claims.iter().find(|c| c.ip == r.ip) {
                    return Err(self.error(
                        ErrorKind::Conflict,
                        op,
                        format!(
                            "droplet {} already carries reserved IP {} ({}); DigitalOcean assigns one per droplet",
                            droplet.id, r.ip, other.tag
                        ),
                    ));
                }
                tracing::info!(
                    provider = %self.id,
                    droplet = droplet.id,
                    ip = %r.ip,
                    "adopting the unclaimed reserved IP of a fleet droplet"
                );
                (r.ip, false)
            }
            None => (
                self.client.create_reserved_ip(op, droplet.id).await?.ip,
                true,
            ),
        };
        let tag = claim_tag(role, ip, &spec.key);
        if let Err(e) = self.client.tag_droplet(op, &tag, droplet.id).await {
            if created && let Err(undo) = self.client.delete_reserved_ip(op, ip).await {
                tracing::warn!(
                    provider = %self.id,
                    %ip,
                    "could not delete the reserved IP after failing to tag its droplet: {undo}"
                );
            }
            return Err(e);
        }
        Ok((ip, droplet))
    }

    /// The fleet's addresses of `role`: reserved IPs assigned to a fleet droplet whose
    /// claim tag names them.
    async fn addresses(
        &self,
        role: AddressRole,
        op: Operation,
    ) -> Result<Vec<(Ipv4Addr, Droplet, IdempotencyKey, Region)>> {
        let all = self.client.list_reserved_ips(op).await?;
        Ok(all
            .into_iter()
            .filter_map(|r| {
                let droplet = r.droplet.filter(|d| self.is_fleet(d))?;
                let claim = Claim::all(&droplet)
                    .into_iter()
                    .find(|c| c.role == role && c.ip == r.ip)?;
                let key = IdempotencyKey::new(claim.key).ok()?;
                let region = self.damm_region(&droplet)?;
                Some((r.ip, droplet, key, region))
            })
            .collect())
    }

    /// Releases reserved IP `id` held as `role`: unassign, delete, then drop the claim.
    async fn release(&self, role: AddressRole, id: &str, op: Operation) -> Result<()> {
        let ip: Ipv4Addr = id.parse().map_err(|_| {
            self.error(
                ErrorKind::InvalidInput,
                op,
                format!("`{id}` is not an IPv4 address"),
            )
        })?;
        let Some(reserved) = self.client.get_reserved_ip(op, ip).await? else {
            return Ok(());
        };
        let claim_on = |d: &Droplet| {
            Claim::all(d)
                .into_iter()
                .find(|c| c.role == role && c.ip == ip)
                .map(|c| (d.clone(), c))
        };
        let owner = match &reserved.droplet {
            Some(d) if self.is_fleet(d) => claim_on(d),
            Some(_) => None,
            // Unassigned (an earlier release stopped half-way): the claim is still on a
            // fleet droplet.
            None => self
                .client
                .list_droplets(op, &self.fleet_tag)
                .await?
                .iter()
                .find_map(claim_on),
        };
        let Some((droplet, claim)) = owner else {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!(
                    "reserved IP {ip} is not a {} of fleet {}; not touching it",
                    role.noun(),
                    self.fleet
                ),
            ));
        };
        if reserved.droplet.is_some() {
            match self.client.reserved_ip_action(op, ip, None).await {
                Ok(action) => self.client.wait_action(op, &action).await,
                // Deleting an assigned reserved IP works too; go on.
                Err(e) => tracing::debug!(provider = %self.id, %ip, "unassign failed: {e}"),
            }
        }
        self.client.delete_reserved_ip(op, ip).await?;
        self.client
            .untag_droplet(op, &claim.tag, droplet.id)
            .await?;
        self.client.delete_tag(op, &claim.tag).await
    }

    /// Looks at `target` once: its verdict, how long the look took, and why.
    async fn observe(
        &self,
        target: &Target,
        op: Operation,
    ) -> Result<(HealthStatus, Duration, String)> {
        let started = Instant::now();
        let (status, detail) = match target {
            Target::Api => {
                self.client.ping(op, &self.fleet_tag).await?;
                (HealthStatus::Healthy, "the API answered".to_owned())
            }
            Target::Node(node) => {
                let id = self.droplet_id(op, node)?;
                let droplet = self
                    .client
                    .get_droplet(op, id)
                    .await?
                    .filter(|d| self.is_fleet(d))
                    .ok_or_else(|| {
                        self.error(
                            ErrorKind::NotFound,
                            op,
                            format!("no droplet {id} in fleet {}", self.fleet),
                        )
                    })?;
                let status = match droplet.status.as_str() {
                    "active" => HealthStatus::Healthy,
                    "off" | "archive" => HealthStatus::Down,
                    _ => HealthStatus::Unknown,
                };
                (status, format!("droplet {id} is {}", droplet.status))
            }
            Target::Frontdoor(r) => self.observe_address(op, &r.provider, &r.id).await?,
            Target::EgressIp(r) => self.observe_address(op, &r.provider, &r.id).await?,
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    op,
                    format!("digitalocean has no {other}"),
                ));
            }
        };
        Ok((status, started.elapsed(), detail))
    }

    async fn observe_address(
        &self,
        op: Operation,
        provider: &str,
        id: &str,
    ) -> Result<(HealthStatus, String)> {
        let missing = || self.error(ErrorKind::NotFound, op, format!("no reserved IP {id}"));
        if provider != self.id {
            return Err(missing());
        }
        let ip: Ipv4Addr = id.parse().map_err(|_| missing())?;
        let reserved = self
            .client
            .get_reserved_ip(op, ip)
            .await?
            .ok_or_else(missing)?;
        Ok(match reserved.droplet {
            Some(d) => (
                HealthStatus::Healthy,
                format!("reserved IP {ip} is assigned to droplet {}", d.id),
            ),
            None => (
                HealthStatus::Degraded,
                format!("reserved IP {ip} is reserved but assigned to no droplet"),
            ),
        })
    }

    fn address_parts(
        &self,
        ip: Ipv4Addr,
        droplet: &Droplet,
        key: &IdempotencyKey,
        region: Region,
    ) -> AddressParts {
        AddressParts {
            id: ip.to_string(),
            region,
            address: IpAddr::V4(ip),
            node: Some(NodeRef::new(&self.id, droplet.id.to_string())),
            labels: Labels::owned(&self.fleet, key),
        }
    }
}

#[async_trait]
impl Provider for Digitalocean {
    damm_provider::provider_methods!(id, region, health_in_listing, compute, ingress, egress);

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let droplets = self
            .client
            .list_droplets(Operation::ListNodes, &self.fleet_tag)
            .await?;
        Ok(droplets
            .iter()
            .filter(|d| self.is_fleet(d))
            .filter_map(|d| self.node(d))
            .filter(|n| filter.matches(n))
            .collect())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let (status, rtt, detail) = self.observe(target, Operation::ProbeHealth).await?;
        Ok(HealthSignal {
            target: target.clone(),
            status,
            rtt: Some(rtt),
            observed_at: Utc::now(),
            detail,
        })
    }

    /// The RTT of one look at the target; DigitalOcean's monitoring API is not used yet.
    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let (_, rtt, _) = self.observe(target, Operation::GetMetrics).await?;
        let mut metrics = Metrics::empty(target.clone(), Utc::now());
        metrics.rtt = Some(rtt);
        Ok(metrics)
    }
}

#[async_trait]
impl Compute for Digitalocean {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let op = match spec.role {
            damm_provider::NodeRole::Ingress => Operation::CreateIngressNode,
            damm_provider::NodeRole::Egress => Operation::CreateEgressNode,
        };
        self.check_owned(&spec.labels, &spec.key, op)?;
        let unexpected = || {
            self.error(
                ErrorKind::Unexpected,
                op,
                "the droplet's region maps to no DAMM region",
            )
        };
        // Idempotency first: a replayed create finds the droplet made under its key.
        if let Some(existing) = self.find_by_key(op, &spec.key).await? {
            return self.node(&existing).ok_or_else(unexpected);
        }
        let region = self.address_region(op, &spec.region)?;
        let profile = self.profiles.get(&spec.profile).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            self.error(
                ErrorKind::InvalidInput,
                op,
                format!(
                    "unknown profile `{}` (known: {})",
                    spec.profile,
                    known.join(", ")
                ),
            )
        })?;
        let mut tags = vec![self.fleet_tag.clone()];
        let labels = spec.labels.iter().map(|(k, v)| label_tag(k, v));
        for tag in labels.chain([label_tag(LABEL_REGION, spec.region.as_str())]) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("label tag `{bad}` is not a valid DigitalOcean tag"),
            ));
        }
        let image = match self.image.parse::<u64>() {
            Ok(id) => json!(id),
            Err(_) => json!(self.image),
        };
        let mut body = json!({
            "name": droplet_name(&spec.key),
            "region": region,
            "size": profile.size,
            "image": image,
            "ipv6": true,
            "tags": tags,
        });
        if let Some(user_data) = &spec.user_data {
            body["user_data"] = json!(user_data.expose());
        }
        // Tags named at create are created with the droplet; no POST /tags needed.
        let droplet = self.client.create_droplet(op, body).await?;
        self.node(&droplet).ok_or_else(unexpected)
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let op = Operation::DrainNode;
        let droplet = self.fleet_droplet(op, node).await?;
        if droplet.has_tag(LABEL_DRAINING) {
            return Ok(());
        }
        self.client
            .tag_droplet(op, LABEL_DRAINING, droplet.id)
            .await
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let op = Operation::RetireNode;
        let id = match self.droplet_id(op, node) {
            Ok(id) => id,
            // Not a droplet id: nothing by that name can exist.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(droplet) = self.client.get_droplet(op, id).await? else {
            return Ok(());
        };
        if !self.is_fleet(&droplet) {
            return Err(self.foreign(op, id));
        }
        // DigitalOcean keeps (and bills) a reserved IP whose droplet is destroyed, and the
        // droplet's claim tags are the fleet's only record of it: delete those first.
        let claims = Claim::all(&droplet);
        for claim in &claims {
            if let Some(r) = self.client.get_reserved_ip(op, claim.ip).await?
                && r.droplet.as_ref().is_none_or(|d| d.id == droplet.id)
            {
                self.client.delete_reserved_ip(op, claim.ip).await?;
            }
        }
        self.client.delete_droplet(op, id).await?;
        for claim in &claims {
            if let Err(e) = self.client.delete_tag(op, &claim.tag).await {
                tracing::debug!(provider = %self.id, tag = %claim.tag, "leftover tag: {e}");
            }
        }
        Ok(())
    }

    fn price(&self, profile: &str, region: &Region) -> Option<Price> {
        self.region(region)?;
        let profile = self.profiles.get(profile)?;
        Some(Price {
            monthly_cents: profile.monthly_cents,
            currency: profile.currency.clone(),
        })
    }
}

#[async_trait]
impl AddressBackend for Digitalocean {
    async fn allocate_address(
        &self,
        spec: &AddressSpec,
        role: AddressRole,
    ) -> Result<AddressParts> {
        let (ip, droplet) = self.allocate(role, spec, role.allocate_operation()).await?;
        Ok(self.address_parts(ip, &droplet, &spec.key, spec.region.clone()))
    }

    async fn release_address(&self, id: &str, role: AddressRole) -> Result<()> {
        self.release(role, id, role.release_operation()).await
    }

    async fn list_addresses(&self, role: AddressRole) -> Result<Vec<AddressParts>> {
        let found = self.addresses(role, role.list_operation()).await?;
        Ok(found
            .into_iter()
            .map(|(ip, d, key, region)| self.address_parts(ip, &d, &key, region))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_tags() {
        assert_eq!(label_tag("damm-fleet", "prod"), "damm-fleet:prod");
        assert_eq!(label_tag(LABEL_DRAINING, ""), "damm-draining");
        let tags: Vec<String> = [
            "damm-fleet:prod",
            "damm-key:k_1",
            "damm-draining",
            "damm-frontdoor:192-0-2-10:k_1",
        ]
        .map(String::from)
        .to_vec();
        let labels = labels_of(&tags);
        assert_eq!(labels.get("damm-fleet"), Some("prod"));
        assert_eq!(labels.get("damm-key"), Some("k_1"));
        assert_eq!(labels.get("damm-draining"), Some(""));
        assert_eq!(labels.get("damm-frontdoor"), None, "claims are not labels");
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn claim_tags_round_trip() {
        let key = IdempotencyKey::new("conf-fd-1_2").unwrap();
        let ip = Ipv4Addr::new(203, 0, 113, 77);
        let tag = claim_tag(AddressRole::Egress, ip, &key);
        assert_eq!(tag, "damm-egress:203-0-113-77:conf-fd-1_2");
        assert!(valid_tag(&tag));
        let claim = Claim::parse(&tag).unwrap();
        assert_eq!(
            (claim.role, claim.ip, claim.key.as_str()),
            (AddressRole::Egress, ip, "conf-fd-1_2")
        );
        assert!(Claim::parse("damm-frontdoor:not-an-ip:k").is_none());
        assert!(Claim::parse("damm-fleet:prod").is_none());
    }

    #[test]
    fn droplet_names_are_valid_hostnames() {
        let name = droplet_name(&IdempotencyKey::new("k_1_").unwrap());
        assert_eq!(name, "damm-k-1");
        assert!(valid_tag("damm-region:eu-central"));
        assert!(!valid_tag("damm-fleet=prod"));
    }
}
