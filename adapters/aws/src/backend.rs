//! The [`Provider`] implementation on `aws-sdk-ec2`: instances as nodes, Elastic IPs as
//! front doors and egress addresses, all carrying the fleet and key tags; and `cdn_front`
//! on `aws-sdk-cloudfront` (the `cloudfront` module).
//!
//! EC2 is regional: the adapter keeps one client per AWS region (sharing one HTTP pool
//! and credentials cache), lists every region of its table, and names resources
//! `<aws region>/<id>` so later calls know where to go. CloudFront is global: fronts are
//! named by their distribution id.

mod cloudfront;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Address, DomainType, Filter, Instance, InstanceStateName, InstanceType, Reservation,
    ResourceType, Tag, TagSpecification,
};
use chrono::{DateTime, Utc};
use damm_provider::addresses::{AddressBackend, AddressParts, AddressRole};
use damm_provider::api::{
    Calls, NextPage, Page, Paging, collect_pages, create_operation, create_or_adopt, gone_is_fine,
    node_verdict, probe_signal, require_owned,
};
use damm_provider::config::AdapterConfig;
use damm_provider::retry::RateLimit;
use damm_provider::tables::damm_region;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Error, ErrorKind, FleetId, HealthSignal,
    HealthStatus, IdempotencyKey, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels, Node,
    NodeFilter, NodeRef, NodeSpec, NodeState, Operation, Price, Provider, Region, Result, Target,
    async_trait,
};
use tokio::sync::OnceCell;

use crate::config::{AwsConfig, Profile};
use crate::core::{load_sdk_config, parse_error, regional_client};

/// What EC2 and CloudFront hand out.
pub const CAPABILITIES: Capabilities = Capabilities::of(&[
    Capability::Compute,
    Capability::Ingress,
    Capability::Egress,
    Capability::CdnFront,
]);

/// Tag naming the DAMM region a resource was created for.
const LABEL_REGION: &str = "damm-region";
/// `damm-role` values of Elastic IPs.
/// Instance states that still count as inventory (terminated instances linger in
/// DescribeInstances for about an hour).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];
/// EC2 `ClientToken`s are at most 64 ASCII characters.
const CLIENT_TOKEN_MAX: usize = 64;

/// The AWS EC2 provider.
pub struct Aws {
    id: String,
    fleet: FleetId,
    settings: AwsConfig,
    regions: BTreeMap<String, String>,
    profiles: BTreeMap<String, Profile>,
    /// Loaded on first use: the standard credential chain is asynchronous.
    sdk: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<BTreeMap<String, aws_sdk_ec2::Client>>,
    /// The CloudFront client, made on first use.
    cloudfront: OnceCell<aws_sdk_cloudfront::Client>,
    calls: Calls,
    /// CloudFront's calls: its API has throttles of its own, apart from EC2's.
    front_calls: Calls,
}

impl std::fmt::Debug for Aws {
    // The settings and the SDK configuration hold credentials: show neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("id", &self.id)
            .field("fleet", &self.fleet)
            .field("endpoint_url", &self.settings.endpoint_url)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

impl Aws {
    /// Builds the adapter from its settings. Nothing is contacted yet: credentials are
    /// resolved on the first API call.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: AwsConfig = config.load("aws").map_err(|e| e.into_provider_error(&id))?;
        settings.validate().map_err(|message| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure)
                .with_message(format!("{}: {message}", config.origin()))
        })?;
        Ok(Aws {
            fleet: config.fleet().clone(),
            regions: settings.region_table(),
            profiles: settings.profile_table(),
            sdk: OnceCell::new(),
            clients: Mutex::new(BTreeMap::new()),
            cloudfront: OnceCell::new(),
            // CloudFront's control API throttles per account at a few requests a second
            // (the numbers are not published): a burst of 50, then 2 a second.
            front_calls: Calls::new(
                &id,
                vec![RateLimit::new(50, std::time::Duration::from_secs(25))],
            ),
            // EC2 throttles per account and region with token buckets; the smallest
            // documented refill (mutating calls) is a few per second, so stay below it.
            calls: Calls::new(
                &id,
                vec![RateLimit::new(100, std::time::Duration::from_secs(20))],
            ),
            settings,
            id,
        })
    }

    /// The fleet whose resources this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    /// The client of one AWS region.
    async fn client(&self, aws_region: &str) -> aws_sdk_ec2::Client {
        let shared = self
            .sdk
            .get_or_init(|| load_sdk_config(&self.settings))
            .await;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(aws_region.to_owned())
            .or_insert_with(|| regional_client(shared, aws_region))
            .clone()
    }

    /// One API call under the shared rate limit and retry policy (the SDK's own
    /// retries are off).
    async fn call<T, E, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.calls
            .run_mapped(operation, idempotent, parse_error, call)
            .await
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, operation).with_message(message)
    }

    /// The AWS regions of the table, each once.
    fn aws_regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self.regions.values().cloned().collect();
        regions.sort();
        regions.dedup();
        regions
    }

    fn aws_region(&self, region: &Region, operation: Operation) -> Result<String> {
        self.regions.get(region.as_str()).cloned().ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("region {region} has no AWS region in the region table"),
            )
        })
    }

    /// The DAMM region of a resource: its tag, else the AWS region's entry in the table.
    fn damm_region(&self, labels: &Labels, aws_region: &str) -> Region {
        let label = labels.get(LABEL_REGION);
        damm_region(&self.regions, label, aws_region, |a| a == aws_region)
    }

    /// `<aws region>/<resource id>` → its parts; anything else names nothing of ours.
    fn split_id<'a>(&self, id: &'a str, operation: Operation) -> Result<(&'a str, &'a str)> {
        id.split_once('/')
            .filter(|(region, resource)| !region.is_empty() && !resource.is_empty())
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("`{id}` is not an `<aws region>/<id>` this adapter handed out"),
                )
            })
    }

    fn require_owned(&self, labels: &Labels, key: &IdempotencyKey, op: Operation) -> Result<()> {
        require_owned(&self.id, &self.fleet, labels, key, op)
    }

    /// Tag filters: the fleet's, plus `extra`.
    fn filters(&self, extra: &[(&str, &str)]) -> Vec<Filter> {
        std::iter::once((LABEL_FLEET, self.fleet.as_str()))
            .chain(extra.iter().copied())
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect()
    }

    /// The live instances of one region matching `filters`, every page (a call, with
    /// its own rate-limit token and retries, per page).
    async fn instances(
        &self,
        aws_region: &str,
        mut filters: Vec<Filter>,
        operation: Operation,
    ) -> Result<Vec<Instance>> {
        let client = self.client(aws_region).await;
        let mut states = Filter::builder().name("instance-state-name");
        for state in LIVE_STATES {
            states = states.values(*state);
        }
        filters.push(states.build());
        let request = client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(self.settings.page_size as i32);
        let request = &request;
        let what = format!("DescribeInstances in {aws_region}");
        collect_pages(
            &self.id,
            operation,
            &what,
            Paging::default(),
            |at| async move {
                let token = match at {
                    NextPage::Token(token) => Some(token),
                    NextPage::First | NextPage::Number(_) => None,
                };
                let send = || request.clone().set_next_token(token.clone()).send();
                let page = self.call(operation, true, send).await?;
                Ok(Page {
                    next: page
                        .next_token
                        .filter(|t| !t.is_empty())
                        .map(NextPage::Token),
                    items: instances_of(page.reservations).collect(),
                    total: None,
                })
            },
        )
        .await
    }

    /// The live instances of one region matching `extra` tags, as nodes.
    async fn nodes_in(
        &self,
        aws_region: &str,
        extra: &[(&str, &str)],
        operation: Operation,
    ) -> Result<Vec<Node>> {
        let found = self
            .instances(aws_region, self.filters(extra), operation)
            .await?;
        Ok(found.iter().map(|i| self.node(i, aws_region)).collect())
    }

    /// `per_region` of every AWS region of the table, side by side, in one list.
    async fn everywhere<T, F, Fut>(&self, per_region: F) -> Result<Vec<T>>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Vec<T>>>,
    {
        let regions = self.aws_regions().into_iter().map(per_region);
        let all = futures::future::try_join_all(regions).await?;
        Ok(all.into_iter().flatten().collect())
    }

    /// The resource of `what` at `aws_region/id` is none of this fleet's.
    fn not_in_fleet(&self, what: &str, (aws_region, id): (&str, &str), op: Operation) -> Error {
        self.error(
            ErrorKind::NotFound,
            op,
            format!("no {what} {aws_region}/{id} in fleet {}", self.fleet),
        )
    }

    /// An instance of this fleet (in any state), or NotFound.
    async fn owned_instance(
        &self,
        aws_region: &str,
        instance_id: &str,
        operation: Operation,
    ) -> Result<Instance> {
        let client = self.client(aws_region).await;
        let request = client
            .describe_instances()
            .instance_ids(instance_id)
            .set_filters(Some(self.filters(&[])));
        let answer = self
            .call(operation, true, || request.clone().send())
            .await?;
        instances_of(answer.reservations)
            .find(|i| i.instance_id() == Some(instance_id))
            .ok_or_else(|| self.not_in_fleet("instance", (aws_region, instance_id), operation))
    }

    fn node(&self, instance: &Instance, aws_region: &str) -> Node {
        let labels = labels_of(instance.tags());
        let draining = labels.get(LABEL_DRAINING).is_some();
        let state = match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Pending) => NodeState::Provisioning,
            Some(InstanceStateName::Running) if draining => NodeState::Draining,
            Some(InstanceStateName::Running) => NodeState::Running,
            Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => NodeState::Stopped,
            Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated) => {
                NodeState::Deleting
            }
            _ => NodeState::Unknown,
        };
        let addresses = [instance.public_ip_address(), instance.ipv6_address()]
            .into_iter()
            .flatten()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .collect();
        let instance_id = instance.instance_id().unwrap_or_default();
        Node {
            reference: NodeRef::new(&self.id, format!("{aws_region}/{instance_id}")),
            region: self.damm_region(&labels, aws_region),
            provider_region: aws_region.to_owned(),
            roles: labels
                .get(LABEL_ROLE)
                .and_then(|r| r.parse().ok())
                .into_iter()
                .collect(),
            state,
            addresses,
            wireguard_port: None,
            created_at: instance
                .launch_time()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            labels,
        }
    }

    /// The Elastic IPs of one region matching `filters` (and, when given, of one
    /// allocation id).
    async fn addresses(
        &self,
        (aws_region, allocation_id): (&str, Option<&str>),
        filters: Vec<Filter>,
        operation: Operation,
    ) -> Result<Vec<Address>> {
        let client = self.client(aws_region).await;
        // DescribeAddresses is not paginated: it answers with every match.
        let request = client
            .describe_addresses()
            .set_allocation_ids(allocation_id.map(|id| vec![id.to_owned()]))
            .set_filters(Some(filters));
        let answer = self
            .call(operation, true, || request.clone().send())
            .await?;
        Ok(answer.addresses.unwrap_or_default())
    }

    /// An Elastic IP of this fleet, or NotFound.
    async fn owned_address(
        &self,
        aws_region: &str,
        allocation_id: &str,
        operation: Operation,
    ) -> Result<Address> {
        let at = (aws_region, Some(allocation_id));
        let found = self.addresses(at, self.filters(&[]), operation).await?;
        found
            .into_iter()
            .find(|a| a.allocation_id() == Some(allocation_id))
            .ok_or_else(|| self.not_in_fleet("Elastic IP", (aws_region, allocation_id), operation))
    }

    /// The parts of an Elastic IP a front door or egress IP is made of.
    fn address_parts(&self, address: &Address, aws_region: &str) -> Option<AddressParts> {
        let labels = labels_of(address.tags());
        Some(AddressParts {
            id: format!("{aws_region}/{}", address.allocation_id()?),
            region: self.damm_region(&labels, aws_region),
            address: address.public_ip()?.parse().ok()?,
            node: address
                .instance_id()
                .filter(|i| !i.is_empty())
                .map(|i| NodeRef::new(&self.id, format!("{aws_region}/{i}"))),
            labels,
        })
    }

    /// Health of an Elastic IP: associated → healthy, unassociated → degraded.
    async fn probe_address(&self, id: &str) -> Result<(HealthStatus, String)> {
        let operation = Operation::ProbeHealth;
        let (aws_region, allocation_id) = self.split_id(id, operation)?;
        let address = self
            .owned_address(aws_region, allocation_id, operation)
            .await?;
        Ok(match address.instance_id().filter(|i| !i.is_empty()) {
            Some(instance) => (
                HealthStatus::Healthy,
                format!("associated with instance {instance}"),
            ),
            None => (HealthStatus::Degraded, "not associated".to_owned()),
        })
    }

    /// The `ClientToken` of a create: unique per fleet and key, at most 64 characters.
    fn client_token(&self, key: &IdempotencyKey) -> String {
        let token = format!("{}/{}", self.fleet, key);
        if token.len() <= CLIENT_TOKEN_MAX {
            return token;
        }
        // Names are ASCII, so any byte index is a character boundary.
        format!("{}-{:016x}", &token[..CLIENT_TOKEN_MAX - 17], fnv1a(&token))
    }
}

/// Tags for a new resource: the spec's ownership labels, its region and `extra`.
fn new_tags(labels: &Labels, region: &Region, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .chain(extra.iter().copied())
        .chain([(LABEL_REGION, region.as_str())])
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The instances of DescribeInstances' reservations.
fn instances_of(reservations: Option<Vec<Reservation>>) -> impl Iterator<Item = Instance> {
    reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
}

fn labels_of(tags: &[Tag]) -> Labels {
    Labels::from_provider(
        tags.iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    )
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_specification(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
}

/// FNV-1a: a stable, dependency-free hash for shortening long client tokens.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl Provider for Aws {
    damm_provider::provider_methods!(
        id,
        region,
        health_in_listing,
        compute,
        ingress,
        egress,
        cdn_front
    );

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let operation = Operation::ListNodes;
        let nodes = match &filter.region {
            // One region asked for: ask only its AWS region.
            Some(region) => match self.regions.get(region.as_str()) {
                Some(aws_region) => self.nodes_in(aws_region, &[], operation).await?,
                None => Vec::new(),
            },
            None => {
                let in_region = |aws_region: String| async move {
                    self.nodes_in(&aws_region, &[], operation).await
                };
                self.everywhere(in_region).await?
            }
        };
        Ok(nodes.into_iter().filter(|n| filter.matches(n)).collect())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let started = Instant::now();
        let operation = Operation::ProbeHealth;
        let verdict = match target {
            Target::Api => {
                // A cheap, authenticated read: one page of at most five fleet instances.
                let aws_region = self.aws_regions().into_iter().next().ok_or_else(|| {
                    self.error(
                        ErrorKind::InvalidInput,
                        operation,
                        "the region table is empty",
                    )
                })?;
                let client = self.client(&aws_region).await;
                let request = client
                    .describe_instances()
                    .set_filters(Some(self.filters(&[])))
                    .max_results(5);
                self.call(operation, true, || request.clone().send())
                    .await?;
                (
                    HealthStatus::Healthy,
                    format!("EC2 API in {aws_region} answered"),
                )
            }
            Target::Node(r) => {
                let (aws_region, instance_id) = self.split_id(&r.id, operation)?;
                let instance = self
                    .owned_instance(aws_region, instance_id, operation)
                    .await?;
                node_verdict(self.node(&instance, aws_region).state, "instance")
            }
            Target::Frontdoor(r) => self.probe_address(&r.id).await?,
            Target::EgressIp(r) => self.probe_address(&r.id).await?,
            Target::Front(r) => self.probe_front(r).await?,
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    operation,
                    format!("AWS has no {other} (EC2 and CloudFront fronts only)"),
                ));
            }
        };
        Ok(probe_signal(target, started, verdict))
    }
}

#[async_trait]
impl Compute for Aws {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = create_operation(spec.role);
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let aws_region = self.aws_region(&spec.region, operation)?;
        let by_key = [(LABEL_KEY, spec.key.as_str())];
        // A replayed create adopts what the first attempt made.
        if let Some(existing) = self
            .nodes_in(&aws_region, &by_key, operation)
            .await?
            .into_iter()
            .next()
        {
            tracing::debug!(
                provider = %self.id,
                key = %spec.key,
                "create adopts the instance of its key"
            );
            return Ok(existing);
        }
        let profile = self.profiles.get(&spec.profile).ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("profile `{}` is not in the profile table", spec.profile),
            )
        })?;
        let ami = self
            .settings
            .amis
            .get(&aws_region)
            .or(self.settings.ami.as_ref())
            .ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidInput,
                    operation,
                    format!("no AMI for {aws_region}: set `ami` or `amis` (DAMM_AWS_AMI)"),
                )
            })?;
        let tags = new_tags(&spec.labels, &spec.region, &[]);
        let client = self.client(&aws_region).await;
        let request = client
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(profile.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(self.client_token(&spec.key))
            .set_security_group_ids(self.settings.security_groups.get(&aws_region).cloned())
            .set_user_data(
                spec.user_data
                    .as_ref()
                    .map(|u| aws_smithy_types::base64::encode(u.expose())),
            )
            .tag_specifications(tag_specification(ResourceType::Instance, &tags));
        // The client token makes RunInstances idempotent at AWS: a retry after a lost
        // answer returns the same instance, so the shared retry may repeat it.
        let created = match self.call(operation, true, || request.clone().send()).await {
            Ok(created) => created.instances.unwrap_or_default().into_iter().next(),
            Err(e) => {
                let adopt = || async {
                    Ok(self
                        .nodes_in(&aws_region, &by_key, operation)
                        .await?
                        .into_iter()
                        .next())
                };
                return create_or_adopt(Err(e), adopt).await;
            }
        };
        let instance = created.ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                "RunInstances returned no instance",
            )
        })?;
        let mut node = self.node(&instance, &aws_region);
        // The answer may omit the tags just set; they are known.
        for (k, v) in &tags {
            if node.labels.get(k).is_none() {
                let _ = node.labels.insert(k.as_str(), v.as_str());
            }
        }
        node.region = spec.region.clone();
        if node.roles.is_empty() {
            node.roles.push(spec.role);
        }
        Ok(node)
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::DrainNode;
        let (aws_region, instance_id) = self.split_id(&node.id, operation)?;
        let instance = self
            .owned_instance(aws_region, instance_id, operation)
            .await?;
        if matches!(
            instance.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated)
        ) {
            return Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("instance {} is terminated", node.id),
            ));
        }
        let client = self.client(aws_region).await;
        let request = client
            .create_tags()
            .resources(instance_id)
            .tags(tag(LABEL_DRAINING, "true"));
        self.call(operation, true, || request.clone().send())
            .await
            .map(drop)
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let operation = Operation::RetireNode;
        gone_is_fine(
            async {
                let (aws_region, instance_id) = self.split_id(&node.id, operation)?;
                let instance = self
                    .owned_instance(aws_region, instance_id, operation)
                    .await?;
                if matches!(
                    instance.state().and_then(|s| s.name()),
                    Some(InstanceStateName::Terminated)
                ) {
                    return Ok(());
                }
                let client = self.client(aws_region).await;
                let request = client.terminate_instances().instance_ids(instance_id);
                self.call(operation, true, || request.clone().send())
                    .await
                    .map(drop)
            }
            .await,
        )
        .map(drop)
    }

    fn price(&self, profile: &str, region: &Region) -> Option<Price> {
        self.regions.get(region.as_str())?;
        let p = self.profiles.get(profile)?;
        Some(Price {
            monthly_cents: p.monthly_cents,
            currency: p.currency.clone(),
        })
    }
}

#[async_trait]
impl AddressBackend for Aws {
    /// Allocates (or finds, by key) an Elastic IP tagged with `role`, associated with
    /// `spec.node` when there is one.
    async fn allocate_address(
        &self,
        spec: &AddressSpec,
        role: AddressRole,
    ) -> Result<AddressParts> {
        let operation = role.allocate_operation();
        self.require_owned(&spec.labels, &spec.key, operation)?;
        // An address for a node lives in the node's region.
        let (aws_region, instance_id) = match &spec.node {
            Some(node) => {
                let (aws_region, instance_id) = self.split_id(&node.id, operation)?;
                (aws_region.to_owned(), Some(instance_id.to_owned()))
            }
            None => (self.aws_region(&spec.region, operation)?, None),
        };
        let by_key = self.filters(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, role.label())]);
        let existing = self
            .addresses((&aws_region, None), by_key.clone(), operation)
            .await?
            .into_iter()
            .next();
        let address = match existing {
            Some(address) => {
                tracing::debug!(
                    provider = %self.id,
                    key = %spec.key,
                    "allocation adopts the address of its key"
                );
                address
            }
            None => {
                if let Some(instance_id) = &instance_id {
                    self.owned_instance(&aws_region, instance_id, operation)
                        .await?;
                }
                let tags = new_tags(&spec.labels, &spec.region, &[(LABEL_ROLE, role.label())]);
                let client = self.client(&aws_region).await;
                let request = client
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tag_specification(ResourceType::ElasticIp, &tags));
                // AllocateAddress has no client token: never retried blindly, and a
                // lost answer is found by its key.
                let allocated = self.call(operation, false, || request.clone().send()).await;
                let allocated = allocated.map(|allocated| {
                    Address::builder()
                        .allocation_id(allocated.allocation_id.unwrap_or_default())
                        .set_public_ip(allocated.public_ip)
                        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                        .build()
                });
                create_or_adopt(allocated, || async {
                    let found = self
                        .addresses((&aws_region, None), by_key, operation)
                        .await?;
                    Ok(found.into_iter().next())
                })
                .await?
            }
        };
        let mut parts = self.address_parts(&address, &aws_region).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!(
                    "Elastic IP {:?} has no allocation id or parsable address",
                    address.allocation_id()
                ),
            )
        })?;
        if let (Some(instance_id), None) = (&instance_id, &parts.node) {
            let allocation_id = address.allocation_id().unwrap_or_default();
            let client = self.client(&aws_region).await;
            let request = client
                .associate_address()
                .allocation_id(allocation_id)
                .instance_id(instance_id);
            // Associating the same address with the same instance again is a no-op.
            if let Err(e) = self.call(operation, true, || request.clone().send()).await {
                // Do not leave an unattached address behind, billed by the hour.
                let _ = self.release_address(&parts.id, role).await;
                return Err(e);
            }
            parts.node = Some(NodeRef::new(
                &self.id,
                format!("{aws_region}/{instance_id}"),
            ));
        }
        Ok(parts)
    }

    /// Disassociates and releases an Elastic IP of the fleet; already gone is fine.
    async fn release_address(&self, id: &str, role: AddressRole) -> Result<()> {
        let operation = role.release_operation();
        gone_is_fine(
            async {
                let (aws_region, allocation_id) = self.split_id(id, operation)?;
                let address = self
                    .owned_address(aws_region, allocation_id, operation)
                    .await?;
                let client = self.client(aws_region).await;
                if let Some(association_id) = address.association_id().filter(|a| !a.is_empty()) {
                    let request = client.disassociate_address().association_id(association_id);
                    gone_is_fine(self.call(operation, true, || request.clone().send()).await)?;
                }
                let request = client.release_address().allocation_id(allocation_id);
                self.call(operation, true, || request.clone().send())
                    .await
                    .map(drop)
            }
            .await,
        )
        .map(drop)
    }

    /// The fleet's Elastic IPs of `role`, in every region.
    async fn list_addresses(&self, role: AddressRole) -> Result<Vec<AddressParts>> {
        let operation = role.list_operation();
        self.everywhere(|aws_region| async move {
            let filters = self.filters(&[(LABEL_ROLE, role.label())]);
            let found = self
                .addresses((&aws_region, None), filters, operation)
                .await?;
            Ok(found
                .iter()
                .filter_map(|a| self.address_parts(a, &aws_region))
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(fleet: &str) -> Aws {
        let config = AdapterConfig::new(FleetId::new(fleet).unwrap(), "aws").without_env();
        Aws::from_config(&config).unwrap()
    }

    #[test]
    fn client_tokens_fit_and_stay_distinct() {
        let short = adapter("f");
        let key = IdempotencyKey::new("node-1").unwrap();
        assert_eq!(short.client_token(&key), "f/node-1");
        let long_fleet = "f".repeat(40);
        let long = adapter(&long_fleet);
        let a = long.client_token(&IdempotencyKey::new(format!("{}-a", "k".repeat(40))).unwrap());
        let b = long.client_token(&IdempotencyKey::new(format!("{}-b", "k".repeat(40))).unwrap());
        assert_eq!(a.len(), CLIENT_TOKEN_MAX);
        assert_ne!(a, b);
    }

    #[test]
    fn regions_and_prices_come_from_the_tables() {
        let aws = adapter("f");
        let eu: Region = "eu-central".parse().unwrap();
        assert_eq!(aws.region(&eu).as_deref(), Some("eu-central-1"));
        assert_eq!(aws.price("small", &eu).map(|p| p.monthly_cents), Some(759));
        assert_eq!(aws.price("huge", &eu), None);
        assert_eq!(aws.price("small", &"mars".parse().unwrap()), None);
        let labels = Labels::new();
        assert_eq!(aws.damm_region(&labels, "us-west-2").as_str(), "us-west");
    }

    #[test]
    fn foreign_ids_name_nothing() {
        let aws = adapter("f");
        let err = aws.split_id("i-123", Operation::RetireNode).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            aws.split_id("eu-west-1/i-123", Operation::RetireNode)
                .unwrap(),
            ("eu-west-1", "i-123")
        );
    }
}
