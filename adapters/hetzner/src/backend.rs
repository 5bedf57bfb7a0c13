//! The [`Provider`] implementation on `hcloud`: servers as nodes, primary IPs as front
//! doors, floating IPs as egress addresses, all carrying the fleet and key labels.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use damm_provider::config::AdapterConfig;
use damm_provider::retry::{RateLimit, RetryPolicy};
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Egress, EgressIp, EgressIpRef, Error,
    ErrorKind, ExposeSecret, FleetId, Frontdoor, FrontdoorRef, HealthSignal, HealthStatus, Ingress,
    LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels, Metrics, Node, NodeFilter, NodeRef,
    NodeRole, NodeSpec, NodeState, Operation, Price, Provider, Region, Result, Target, async_trait,
};
use futures::StreamExt as _;
use hcloud::apis::configuration::Configuration;
use hcloud::apis::{floating_ips_api as fips, primary_ips_api as pips, servers_api as servers};
use hcloud::models;

use crate::config::{HetznerConfig, Profile};
use crate::core::parse_error;

/// What Hetzner hands out.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// Label naming the DAMM region a resource was created for.
const LABEL_REGION: &str = "damm-region";
/// `damm-role` values of addresses.
const ROLE_FRONTDOOR: &str = "frontdoor";
const ROLE_EGRESS: &str = "egress";
/// The base path `hcloud` maps to the configured API URL.
const HCLOUD_BASE: &str = "https://api.hetzner.cloud/v1";
/// Listing pages fetched at once once the first page told how many there are.
const PAGE_CONCURRENCY: usize = 8;

/// The Hetzner Cloud provider.
pub struct Hetzner {
    id: String,
    fleet: FleetId,
    api: Configuration,
    regions: BTreeMap<String, String>,
    profiles: BTreeMap<String, Profile>,
    image: String,
    page_size: i64,
    limits: [RateLimit; 1],
    retry: RetryPolicy,
}

impl std::fmt::Debug for Hetzner {
    // `hcloud`'s Configuration prints the bearer token: never show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hetzner")
            .field("id", &self.id)
            .field("fleet", &self.fleet)
            .field("api_url", &self.api.get_default_base_path())
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

impl Hetzner {
    /// Builds the adapter from its settings.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let invalid = |message: String| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(message)
        };
        let settings: HetznerConfig = config
            .load("hetzner")
            .map_err(|e| e.into_provider_error(&id))?;
        let token = settings.token.as_ref().ok_or_else(|| {
            invalid(format!(
                "{}: no API token: set `token` or DAMM_HETZNER_TOKEN",
                config.origin()
            ))
        })?;
        if !(1..=50).contains(&settings.page_size) {
            return Err(invalid(format!(
                "{}: page_size must be 1-50",
                config.origin()
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(
                settings.request_timeout_ms.max(1),
            ))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, &id, Operation::Configure).with_source(e)
            })?;
        let mut api = Configuration::new();
        api.client = client;
        api.bearer_access_token = Some(token.expose_secret().to_owned());
        api.base_path_mapping.insert(
            HCLOUD_BASE.to_owned(),
            settings.api_url.trim_end_matches('/').to_owned(),
        );
        api.user_agent = Some(format!("damm/{}", env!("CARGO_PKG_VERSION")));
        Ok(Hetzner {
            fleet: config.fleet().clone(),
            regions: settings.region_table(),
            profiles: settings.profile_table(),
            image: settings.image.clone(),
            page_size: i64::from(settings.page_size),
            limits: [RateLimit::per_hour(3600)],
            retry: RetryPolicy::default(),
            api,
            id,
        })
    }

    /// One API call under the shared rate limit and retry policy.
    async fn call<T, E, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, hcloud::apis::Error<E>>>,
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

    /// Every page of a listing. `page_of` answers a page's items, its `next_page` and its
    /// `total_entries`. A listing that ends short of its total (a page lost mid-pagination,
    /// or resources deleted between pages) is an error, never a truncated inventory: the
    /// orchestrator would take the missing resources for vanished ones.
    ///
    /// The first page tells how many follow; those are fetched side by side, at most
    /// [`PAGE_CONCURRENCY`] at once, and kept in order. (One after the other, a 10k-node
    /// fleet is 67 round trips per listing.) Without a total, the `next_page` links are
    /// followed one by one.
    async fn all_pages<T, F, Fut>(&self, operation: Operation, mut page_of: F) -> Result<Vec<T>>
    where
        F: FnMut(i64) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, Option<i64>, Option<i64>)>>,
    {
        let short = |page: i64, got: usize, total: i64| {
            Error::new(ErrorKind::Unexpected, &self.id, operation)
                .with_message(format!(
                    "listing ended at page {page} with {got} of its {total} entries"
                ))
                .set_temporary(true)
        };
        let (mut all, mut next, total) = page_of(1).await?;
        if let (Some(2), Some(total)) = (next, total)
            && !all.is_empty()
        {
            let per_page = all.len() as i64;
            let last = (total + per_page - 1) / per_page;
            let rest: Vec<Fut> = (2..=last).map(&mut page_of).collect();
            let mut pages = futures::stream::iter(rest).buffered(PAGE_CONCURRENCY);
            let mut least_total = total;
            while let Some(page) = pages.next().await {
                let (items, _, total) = page?;
                all.extend(items);
                least_total = least_total.min(total.unwrap_or(least_total));
            }
            if (all.len() as i64) < least_total {
                return Err(short(last, all.len(), least_total));
            }
            return Ok(all);
        }
        let mut page = 1;
        let mut total = total;
        loop {
            if let Some(total) = total
                && (all.len() as i64) < total
                && next.is_none_or(|next| next <= page)
            {
                return Err(short(page, all.len(), total));
            }
            match next {
                Some(n) if n > page => page = n,
                _ => return Ok(all),
            }
            let (items, more, listed) = page_of(page).await?;
            all.extend(items);
            (next, total) = (more, listed);
        }
    }

    fn selector(&self, extra: &[(&str, &str)]) -> String {
        std::iter::once(format!("{LABEL_FLEET}={}", self.fleet))
            .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn servers(&self, selector: String) -> Result<Vec<models::Server>> {
        self.all_pages(Operation::ListNodes, |page| {
            let params = servers::ListServersParams {
                label_selector: Some(selector.clone()),
                page: Some(page),
                per_page: Some(self.page_size),
                ..Default::default()
            };
            async move {
                let r = self
                    .call(Operation::ListNodes, true, || {
                        servers::list_servers(&self.api, params.clone())
                    })
                    .await?;
                Ok((
                    r.servers,
                    r.meta.pagination.next_page,
                    r.meta.pagination.total_entries,
                ))
            }
        })
        .await
    }

    async fn primary_ips(&self, selector: String) -> Result<Vec<models::PrimaryIp>> {
        self.all_pages(Operation::ListFrontdoors, |page| {
            let params = pips::ListPrimaryIpsParams {
                label_selector: Some(selector.clone()),
                page: Some(page),
                per_page: Some(self.page_size),
                ..Default::default()
            };
            async move {
                let r = self
                    .call(Operation::ListFrontdoors, true, || {
                        pips::list_primary_ips(&self.api, params.clone())
                    })
                    .await?;
                Ok((
                    r.primary_ips,
                    r.meta.pagination.next_page,
                    r.meta.pagination.total_entries,
                ))
            }
        })
        .await
    }

    async fn floating_ips(&self, selector: String) -> Result<Vec<models::FloatingIp>> {
        self.all_pages(Operation::ListEgressIps, |page| {
            let params = fips::ListFloatingIpsParams {
                label_selector: Some(selector.clone()),
                page: Some(page),
                per_page: Some(self.page_size),
                ..Default::default()
            };
            async move {
                let r = self
                    .call(Operation::ListEgressIps, true, || {
                        fips::list_floating_ips(&self.api, params.clone())
                    })
                    .await?;
                Ok((
                    r.floating_ips,
                    r.meta.pagination.next_page,
                    r.meta.pagination.total_entries,
                ))
            }
        })
        .await
    }

    /// The DAMM region of a resource: its label, else the location's entry in the table.
    fn damm_region(&self, labels: &HashMap<String, String>, location: &str) -> Region {
        labels
            .get(LABEL_REGION)
            .and_then(|r| Region::new(r.as_str()).ok())
            .or_else(|| {
                self.regions
                    .iter()
                    .find(|(_, l)| *l == location)
                    .and_then(|(r, _)| Region::new(r.as_str()).ok())
            })
            .or_else(|| Region::new(location).ok())
            .unwrap_or_else(|| Region::new("unknown").expect("valid"))
    }

    fn location(&self, region: &Region, operation: Operation) -> Result<String> {
        self.regions.get(region.as_str()).cloned().ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("region {region} has no Hetzner location in the region table"),
            )
        })
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, operation).with_message(message)
    }

    fn require_owned(
        &self,
        labels: &Labels,
        key: &damm_provider::IdempotencyKey,
        operation: Operation,
    ) -> Result<()> {
        if labels.is_owned_by(&self.fleet) && labels.key().as_ref() == Some(key) {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("spec {key} must carry the fleet label and its key"),
            ))
        }
    }

    fn node(&self, s: &models::Server) -> Node {
        let labels = Labels::from_provider(
            s.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let draining = labels.get(LABEL_DRAINING).is_some();
        let state = match s.status {
            models::server::Status::Initializing | models::server::Status::Starting => {
                NodeState::Provisioning
            }
            models::server::Status::Running if draining => NodeState::Draining,
            models::server::Status::Running => NodeState::Running,
            models::server::Status::Off | models::server::Status::Stopping => NodeState::Stopped,
            models::server::Status::Deleting => NodeState::Deleting,
            _ => NodeState::Unknown,
        };
        let mut addresses = Vec::new();
        if let Some(v4) = s
            .public_net
            .ipv4
            .as_ref()
            .and_then(|v| v.ip.parse::<IpAddr>().ok())
        {
            addresses.push(v4);
        }
        if let Some(v6) = s.public_net.ipv6.as_ref().and_then(|v| first_host(&v.ip)) {
            addresses.push(v6);
        }
        Node {
            reference: NodeRef::new(&self.id, s.id.to_string()),
            region: self.damm_region(&s.labels, &s.location.name),
            provider_region: s.location.name.clone(),
            roles: labels
                .get(LABEL_ROLE)
                .and_then(|r| r.parse().ok())
                .into_iter()
                .collect(),
            state,
            addresses,
            wireguard_port: None,
            labels,
            created_at: DateTime::parse_from_rfc3339(&s.created)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    fn frontdoor(&self, ip: &models::PrimaryIp) -> Option<Frontdoor> {
        Some(Frontdoor {
            reference: FrontdoorRef::new(&self.id, ip.id.to_string()),
            region: self.damm_region(&ip.labels, &ip.location.name),
            address: first_host(&ip.ip)?,
            port: None,
            node: ip
                .assignee_id
                .map(|id| NodeRef::new(&self.id, id.to_string())),
            labels: Labels::from_provider(
                ip.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        })
    }

    fn egress_ip(&self, ip: &models::FloatingIp) -> Option<EgressIp> {
        Some(EgressIp {
            reference: EgressIpRef::new(&self.id, ip.id.to_string()),
            region: self.damm_region(&ip.labels, &ip.home_location.name),
            address: first_host(&ip.ip)?,
            node: ip.server.map(|id| NodeRef::new(&self.id, id.to_string())),
            labels: Labels::from_provider(
                ip.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        })
    }

    /// Parses a resource id DAMM handed out.
    fn numeric_id(&self, id: &str, operation: Operation) -> Result<i64> {
        id.parse().map_err(|_| {
            self.error(
                ErrorKind::NotFound,
                operation,
                format!("`{id}` is not a Hetzner id"),
            )
        })
    }

    /// Labels for a new address: the spec's ownership labels, role and region.
    fn address_labels(spec: &AddressSpec, role: &str) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        labels.insert(LABEL_ROLE.to_owned(), role.to_owned());
        labels.insert(LABEL_REGION.to_owned(), spec.region.to_string());
        labels
    }

    /// The server a spec attaches to, as an id and its location.
    async fn attach_target(
        &self,
        spec: &AddressSpec,
        operation: Operation,
    ) -> Result<Option<(i64, String)>> {
        let Some(node) = &spec.node else {
            return Ok(None);
        };
        let id = self.numeric_id(&node.id, operation)?;
        let server = self.owned_server(id, operation).await?;
        Ok(Some((id, server.location.name)))
    }

    /// A server of this fleet, or NotFound.
    async fn owned_server(&self, id: i64, operation: Operation) -> Result<models::Server> {
        let params = servers::GetServerParams { id };
        let got = self
            .call(operation, true, || {
                servers::get_server(&self.api, params.clone())
            })
            .await?;
        got.server
            .map(|s| *s)
            .filter(|s| s.labels.get(LABEL_FLEET).map(String::as_str) == Some(self.fleet.as_str()))
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("no server {id} in fleet {}", self.fleet),
                )
            })
    }
}

/// `203.0.113.5` → itself; `2001:db8:1::/64` → `2001:db8:1::1`, the address a server uses.
fn first_host(ip: &str) -> Option<IpAddr> {
    match ip.split_once('/') {
        None => ip.parse().ok(),
        Some((network, _)) => match network.parse().ok()? {
            IpAddr::V6(v6) => Some(IpAddr::V6((u128::from(v6) | 1).into())),
            v4 => Some(v4),
        },
    }
}

fn not_found_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Provider for Hetzner {
    fn id(&self) -> &str {
        &self.id
    }

    /// A node probe reads the instance status back, which the listing already holds.
    fn health_in_listing(&self) -> bool {
        true
    }

    fn region(&self, region: &Region) -> Option<String> {
        self.regions.get(region.as_str()).cloned()
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
        let servers = self.servers(self.selector(&[])).await?;
        Ok(servers
            .iter()
            .map(|s| self.node(s))
            .filter(|n| filter.matches(n))
            .collect())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let started = Instant::now();
        let (status, detail) = match target {
            Target::Api => {
                let params = servers::ListServersParams {
                    label_selector: Some(self.selector(&[])),
                    per_page: Some(1),
                    ..Default::default()
                };
                self.call(Operation::ProbeHealth, true, || {
                    servers::list_servers(&self.api, params.clone())
                })
                .await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Node(r) => {
                let server = self
                    .owned_server(
                        self.numeric_id(&r.id, Operation::ProbeHealth)?,
                        Operation::ProbeHealth,
                    )
                    .await?;
                match self.node(&server).state {
                    NodeState::Running | NodeState::Draining => {
                        (HealthStatus::Healthy, "server running".to_owned())
                    }
                    NodeState::Provisioning => (HealthStatus::Unknown, "server booting".to_owned()),
                    other => (
                        HealthStatus::Down,
                        format!("server {other:?}").to_lowercase(),
                    ),
                }
            }
            Target::Frontdoor(r) => {
                let params = pips::GetPrimaryIpParams {
                    id: self.numeric_id(&r.id, Operation::ProbeHealth)?,
                };
                let ip = self
                    .call(Operation::ProbeHealth, true, || {
                        pips::get_primary_ip(&self.api, params.clone())
                    })
                    .await?
                    .primary_ip;
                if ip.labels.get(LABEL_FLEET).map(String::as_str) != Some(self.fleet.as_str()) {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        Operation::ProbeHealth,
                        format!("no front door {r} in the fleet"),
                    ));
                }
                match ip.assignee_id {
                    Some(server) => (
                        HealthStatus::Healthy,
                        format!("assigned to server {server}"),
                    ),
                    None => (HealthStatus::Degraded, "not assigned".to_owned()),
                }
            }
            Target::EgressIp(r) => {
                let params = fips::GetFloatingIpParams {
                    id: self.numeric_id(&r.id, Operation::ProbeHealth)?,
                };
                let ip = self
                    .call(Operation::ProbeHealth, true, || {
                        fips::get_floating_ip(&self.api, params.clone())
                    })
                    .await?
                    .floating_ip;
                if ip.labels.get(LABEL_FLEET).map(String::as_str) != Some(self.fleet.as_str()) {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        Operation::ProbeHealth,
                        format!("no egress ip {r} in the fleet"),
                    ));
                }
                match ip.server {
                    Some(server) => (
                        HealthStatus::Healthy,
                        format!("assigned to server {server}"),
                    ),
                    None => (HealthStatus::Degraded, "not assigned".to_owned()),
                }
            }
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    Operation::ProbeHealth,
                    format!("Hetzner has no {other}"),
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
impl Compute for Hetzner {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = match spec.role {
            NodeRole::Ingress => Operation::CreateIngressNode,
            NodeRole::Egress => Operation::CreateEgressNode,
        };
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let by_key = self.selector(&[(LABEL_KEY, spec.key.as_str())]);
        if let Some(existing) = self.servers(by_key.clone()).await?.first() {
            return Ok(self.node(existing));
        }
        let location = self.location(&spec.region, operation)?;
        let profile = self.profiles.get(&spec.profile).ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("profile `{}` is not in the profile table", spec.profile),
            )
        })?;
        let mut labels: HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        labels.insert(LABEL_REGION.to_owned(), spec.region.to_string());
        let name = format!("damm-{}", spec.key.as_str().replace('_', "-"));
        let mut request =
            models::CreateServerRequest::new(self.image.clone(), name, profile.server_type.clone());
        request.labels = Some(labels);
        request.location = Some(location);
        request.start_after_create = Some(true);
        request.user_data = spec.user_data.as_ref().map(|u| u.expose().to_owned());
        let params = servers::CreateServerParams {
            create_server_request: request,
        };
        // Never retried blindly: a lost answer is found by its key on the next try.
        match self
            .call(operation, false, || {
                servers::create_server(&self.api, params.clone())
            })
            .await
        {
            Ok(created) => Ok(self.node(&created.server)),
            Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => {
                match self.servers(by_key).await?.first() {
                    Some(existing) => Ok(self.node(existing)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn drain_node(&self, node: &NodeRef) -> Result<()> {
        let id = self.numeric_id(&node.id, Operation::DrainNode)?;
        let server = self.owned_server(id, Operation::DrainNode).await?;
        let mut labels = server.labels;
        labels.insert(LABEL_DRAINING.to_owned(), "true".to_owned());
        let mut request = models::ReplaceServerRequest::new();
        request.labels = Some(labels);
        let params = servers::ReplaceServerParams {
            id,
            replace_server_request: request,
        };
        self.call(Operation::DrainNode, true, || {
            servers::replace_server(&self.api, params.clone())
        })
        .await?;
        Ok(())
    }

    async fn retire_node(&self, node: &NodeRef) -> Result<()> {
        let id = self.numeric_id(&node.id, Operation::RetireNode)?;
        not_found_is_ok(
            async {
                self.owned_server(id, Operation::RetireNode).await?;
                let params = servers::DeleteServerParams { id };
                self.call(Operation::RetireNode, true, || {
                    servers::delete_server(&self.api, params.clone())
                })
                .await?;
                Ok(())
            }
            .await,
        )
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
impl Ingress for Hetzner {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        let operation = Operation::AllocateIngressFrontdoor;
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let by_key = self.selector(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, ROLE_FRONTDOOR)]);
        if let Some(door) = self
            .primary_ips(by_key.clone())
            .await?
            .iter()
            .find_map(|ip| self.frontdoor(ip))
        {
            return Ok(door);
        }
        let target = self.attach_target(spec, operation).await?;
        let name = format!("damm-fd-{}", spec.key.as_str().replace('_', "-"));
        let mut request = models::CreatePrimaryIpRequest::new(
            models::create_primary_ip_request::AssigneeType::Server,
            name,
            models::IpType::Ipv4,
        );
        match &target {
            Some((server, _)) => request.assignee_id = Some(Some(*server)),
            None => request.location = Some(self.location(&spec.region, operation)?),
        }
        request.auto_delete = Some(false);
        request.labels = Some(Self::address_labels(spec, ROLE_FRONTDOOR));
        let params = pips::CreatePrimaryIpParams {
            create_primary_ip_request: request,
        };
        let created = match self
            .call(operation, false, || {
                pips::create_primary_ip(&self.api, params.clone())
            })
            .await
        {
            Ok(created) => created.primary_ip,
            Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => {
                match self.primary_ips(by_key).await?.into_iter().next() {
                    Some(ip) => Box::new(ip),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.frontdoor(&created).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!("primary IP {} has no parsable address", created.id),
            )
        })
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        let operation = Operation::ReleaseIngressFrontdoor;
        let id = self.numeric_id(&frontdoor.id, operation)?;
        not_found_is_ok(
            async {
                let params = pips::GetPrimaryIpParams { id };
                let ip = self
                    .call(operation, true, || {
                        pips::get_primary_ip(&self.api, params.clone())
                    })
                    .await?
                    .primary_ip;
                if ip.labels.get(LABEL_FLEET).map(String::as_str) != Some(self.fleet.as_str()) {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        operation,
                        format!("primary IP {id} is not the fleet's"),
                    ));
                }
                if ip.assignee_id.is_some() {
                    let params = pips::UnassignPrimaryIpFromResourceParams { id };
                    self.call(operation, true, || {
                        pips::unassign_primary_ip_from_resource(&self.api, params.clone())
                    })
                    .await?;
                }
                let params = pips::DeletePrimaryIpParams { id };
                self.call(operation, true, || {
                    pips::delete_primary_ip(&self.api, params.clone())
                })
                .await
            }
            .await,
        )
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        let ips = self
            .primary_ips(self.selector(&[(LABEL_ROLE, ROLE_FRONTDOOR)]))
            .await?;
        Ok(ips.iter().filter_map(|ip| self.frontdoor(ip)).collect())
    }
}

#[async_trait]
impl Egress for Hetzner {
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp> {
        let operation = Operation::AllocateEgressIp;
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let by_key = self.selector(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, ROLE_EGRESS)]);
        if let Some(ip) = self
            .floating_ips(by_key.clone())
            .await?
            .iter()
            .find_map(|ip| self.egress_ip(ip))
        {
            return Ok(ip);
        }
        let target = self.attach_target(spec, operation).await?;
        let mut request = models::CreateFloatingIpRequest::new(models::IpType::Ipv4);
        request.name = Some(format!("damm-eg-{}", spec.key.as_str().replace('_', "-")));
        match &target {
            Some((server, location)) => {
                request.server = Some(Some(*server));
                request.home_location = Some(location.clone());
            }
            None => request.home_location = Some(self.location(&spec.region, operation)?),
        }
        request.labels = Some(Self::address_labels(spec, ROLE_EGRESS));
        let params = fips::CreateFloatingIpParams {
            create_floating_ip_request: request,
        };
        let created = match self
            .call(operation, false, || {
                fips::create_floating_ip(&self.api, params.clone())
            })
            .await
        {
            Ok(created) => created.floating_ip,
            Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => {
                match self.floating_ips(by_key).await?.into_iter().next() {
                    Some(ip) => Box::new(ip),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.egress_ip(&created).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!("floating IP {} has no parsable address", created.id),
            )
        })
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        let operation = Operation::ReleaseEgressIp;
        let id = self.numeric_id(&ip.id, operation)?;
        not_found_is_ok(
            async {
                let params = fips::GetFloatingIpParams { id };
                let found = self
                    .call(operation, true, || {
                        fips::get_floating_ip(&self.api, params.clone())
                    })
                    .await?
                    .floating_ip;
                if found.labels.get(LABEL_FLEET).map(String::as_str) != Some(self.fleet.as_str()) {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        operation,
                        format!("floating IP {id} is not the fleet's"),
                    ));
                }
                let params = fips::DeleteFloatingIpParams { id };
                self.call(operation, true, || {
                    fips::delete_floating_ip(&self.api, params.clone())
                })
                .await
            }
            .await,
        )
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        let ips = self
            .floating_ips(self.selector(&[(LABEL_ROLE, ROLE_EGRESS)]))
            .await?;
        Ok(ips.iter().filter_map(|ip| self.egress_ip(ip)).collect())
    }
}
