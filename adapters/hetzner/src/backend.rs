//! The [`Provider`] implementation on `hcloud`: servers as nodes, primary IPs as front
//! doors, floating IPs as egress addresses, all carrying the fleet and key labels.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use damm_provider::api::{
    AddressParts, Calls, NextPage, Page, Paging, collect_pages, create_operation, create_or_adopt,
    gone_is_fine, node_verdict, probe_signal, require_owned,
};
use damm_provider::config::AdapterConfig;
use damm_provider::retry::RateLimit;
use damm_provider::tables::damm_region;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Egress, EgressIp, EgressIpRef, Error,
    ErrorKind, ExposeSecret, FleetId, Frontdoor, FrontdoorRef, HealthSignal, HealthStatus,
    IdempotencyKey, Ingress, LABEL_DRAINING, LABEL_FLEET, LABEL_KEY, LABEL_ROLE, Labels, Node,
    NodeFilter, NodeRef, NodeSpec, NodeState, Operation, Price, Provider, Region, Result, Target,
    async_trait,
};
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

/// The parameters of one page of a label-selected listing: every `hcloud` listing has
/// its own parameter struct, all with these fields.
macro_rules! page_params {
    ($($params:ident)::+, $selector:expr, $page:expr, $per_page:expr) => {
        $($params)::+ {
            label_selector: Some($selector.clone()),
            page: Some($page),
            per_page: Some($per_page),
            ..Default::default()
        }
    };
}

/// The Hetzner Cloud provider.
pub struct Hetzner {
    id: String,
    fleet: FleetId,
    api: Configuration,
    regions: BTreeMap<String, String>,
    profiles: BTreeMap<String, Profile>,
    image: String,
    page_size: i64,
    calls: Calls,
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
            calls: Calls::new(&id, vec![RateLimit::per_hour(3600)]),
            api,
            id,
        })
    }

    /// One API call under the instance's rate limit and retry policy.
    async fn call<T, E, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, hcloud::apis::Error<E>>>,
    {
        self.calls
            .run_mapped(operation, idempotent, parse_error, call)
            .await
    }

    /// Every page of a listing: `list` answers the page of a number, `split` takes its
    /// items and pagination apart. The first page tells how many follow; those are
    /// fetched side by side, [`PAGE_CONCURRENCY`] at once (one after the other, a
    /// 10k-node fleet is 67 round trips per listing). A listing that ends short of its
    /// total is an error, never a truncated inventory (see [`collect_pages`]).
    async fn all_pages<T, R, E, F, Fut>(
        &self,
        operation: Operation,
        what: &str,
        list: F,
        split: fn(R) -> (Vec<T>, Box<models::Meta>),
    ) -> Result<Vec<T>>
    where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = std::result::Result<R, hcloud::apis::Error<E>>>,
    {
        let list = &list;
        let paging = Paging::default().concurrent(PAGE_CONCURRENCY);
        collect_pages(&self.id, operation, what, paging, |at| async move {
            let page = match at {
                NextPage::Number(n) => i64::try_from(n).unwrap_or(i64::MAX),
                NextPage::First | NextPage::Token(_) => 1,
            };
            let (items, meta) = split(self.call(operation, true, || list(page)).await?);
            let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
            Ok(Page {
                items,
                next: count(meta.pagination.next_page).map(NextPage::Number),
                total: count(meta.pagination.total_entries),
            })
        })
        .await
    }

    fn selector(&self, extra: &[(&str, &str)]) -> String {
        std::iter::once(format!("{LABEL_FLEET}={}", self.fleet))
            .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn servers(&self, selector: String) -> Result<Vec<models::Server>> {
        let list = |page| {
            let params = page_params!(servers::ListServersParams, selector, page, self.page_size);
            servers::list_servers(&self.api, params)
        };
        self.all_pages(Operation::ListNodes, "GET /servers", list, |r| {
            (r.servers, r.meta)
        })
        .await
    }

    async fn primary_ips(&self, selector: String) -> Result<Vec<models::PrimaryIp>> {
        let list = |page| {
            let params = page_params!(pips::ListPrimaryIpsParams, selector, page, self.page_size);
            pips::list_primary_ips(&self.api, params)
        };
        let operation = Operation::ListFrontdoors;
        self.all_pages(operation, "GET /primary_ips", list, |r| {
            (r.primary_ips, r.meta)
        })
        .await
    }

    async fn floating_ips(&self, selector: String) -> Result<Vec<models::FloatingIp>> {
        let list = |page| {
            let params = page_params!(fips::ListFloatingIpsParams, selector, page, self.page_size);
            fips::list_floating_ips(&self.api, params)
        };
        let (operation, what) = (Operation::ListEgressIps, "GET /floating_ips");
        self.all_pages(operation, what, list, |r| (r.floating_ips, r.meta))
            .await
    }

    /// The DAMM region of a resource: its label, else the location's entry in the table.
    fn damm_region(&self, labels: &HashMap<String, String>, location: &str) -> Region {
        let label = labels.get(LABEL_REGION).map(String::as_str);
        damm_region(&self.regions, label, location, |l| l == location)
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

    fn require_owned(&self, labels: &Labels, key: &IdempotencyKey, op: Operation) -> Result<()> {
        require_owned(&self.id, &self.fleet, labels, key, op)
    }

    /// `found` when it carries this fleet's label, else NotFound: the adapter never
    /// touches a resource of another fleet.
    fn owned<T>(
        &self,
        found: Option<T>,
        labels: fn(&T) -> &HashMap<String, String>,
        (what, id): (&str, i64),
        operation: Operation,
    ) -> Result<T> {
        found
            .filter(|r| labels(r).get(LABEL_FLEET).map(String::as_str) == Some(self.fleet.as_str()))
            .ok_or_else(|| {
                self.error(
                    ErrorKind::NotFound,
                    operation,
                    format!("no {what} {id} in fleet {}", self.fleet),
                )
            })
    }

    /// A server of this fleet, or NotFound.
    async fn owned_server(&self, id: i64, operation: Operation) -> Result<models::Server> {
        let get = || servers::get_server(&self.api, servers::GetServerParams { id });
        let got = self.call(operation, true, get).await?.server.map(|s| *s);
        self.owned(got, |s| &s.labels, ("server", id), operation)
    }

    /// A primary IP of this fleet, or NotFound.
    async fn owned_primary_ip(&self, id: i64, operation: Operation) -> Result<models::PrimaryIp> {
        let get = || pips::get_primary_ip(&self.api, pips::GetPrimaryIpParams { id });
        let got = *self.call(operation, true, get).await?.primary_ip;
        self.owned(Some(got), |ip| &ip.labels, ("primary IP", id), operation)
    }

    /// A floating IP of this fleet, or NotFound.
    async fn owned_floating_ip(&self, id: i64, op: Operation) -> Result<models::FloatingIp> {
        let get = || fips::get_floating_ip(&self.api, fips::GetFloatingIpParams { id });
        let got = *self.call(op, true, get).await?.floating_ip;
        self.owned(Some(got), |ip| &ip.labels, ("floating IP", id), op)
    }

    fn node(&self, s: &models::Server) -> Node {
        let labels = labels_of(&s.labels);
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
        let at = (ip.location.name.as_str(), ip.assignee_id);
        Some(
            self.address(ip.id, &ip.ip, &ip.labels, at)?
                .frontdoor(&self.id),
        )
    }

    fn egress_ip(&self, ip: &models::FloatingIp) -> Option<EgressIp> {
        let at = (ip.home_location.name.as_str(), ip.server);
        Some(
            self.address(ip.id, &ip.ip, &ip.labels, at)?
                .egress_ip(&self.id),
        )
    }

    /// A primary or floating IP as DAMM sees it: `id`, address `ip`, `labels`, and the
    /// location and server it is `at`.
    fn address(
        &self,
        id: i64,
        ip: &str,
        labels: &HashMap<String, String>,
        (location, server): (&str, Option<i64>),
    ) -> Option<AddressParts> {
        Some(AddressParts {
            id: id.to_string(),
            region: self.damm_region(labels, location),
            address: first_host(ip)?,
            node: server.map(|id| NodeRef::new(&self.id, id.to_string())),
            labels: labels_of(labels),
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

    /// An address of `role` for `spec`: the one its key finds (`list` lists by label
    /// selector), else the one `create` makes for the server the spec attaches to. A
    /// create is never retried blindly: after a lost or conflicting answer, the key
    /// finds what it made.
    async fn allocate<Ip, T, L, LFut, C, CFut>(
        &self,
        spec: &AddressSpec,
        (role, operation): (&str, Operation),
        list: L,
        view: impl Fn(&Ip) -> Option<T>,
        create: C,
    ) -> Result<T>
    where
        L: Fn(String) -> LFut,
        LFut: Future<Output = Result<Vec<Ip>>>,
        C: FnOnce(Option<(i64, String)>) -> CFut,
        CFut: Future<Output = Result<Ip>>,
    {
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let by_key = self.selector(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, role)]);
        if let Some(found) = list(by_key.clone()).await?.iter().find_map(&view) {
            return Ok(found);
        }
        let created = create(self.attach_target(spec, operation).await?).await;
        let adopt = || async { Ok(list(by_key).await?.into_iter().next()) };
        let ip = create_or_adopt(created, adopt).await?;
        view(&ip).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                format!("the new {role} address has no parsable IP"),
            )
        })
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
}

/// Labels as DAMM holds them.
fn labels_of(labels: &HashMap<String, String>) -> Labels {
    Labels::from_provider(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Labels for a new resource: the spec's ownership labels, its region and, for an
/// address, its role.
fn new_labels(labels: &Labels, region: &Region, role: Option<&str>) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    labels.insert(LABEL_REGION.to_owned(), region.to_string());
    if let Some(role) = role {
        labels.insert(LABEL_ROLE.to_owned(), role.to_owned());
    }
    labels
}

/// A resource name from the key: `damm-<key>` with `_` as `-`.
fn name_of(prefix: &str, key: &IdempotencyKey) -> String {
    format!("{prefix}-{}", key.as_str().replace('_', "-"))
}

/// An address's health: assigned to a server → healthy, unassigned → degraded.
fn assignment(server: Option<i64>) -> (HealthStatus, String) {
    match server {
        Some(server) => (
            HealthStatus::Healthy,
            format!("assigned to server {server}"),
        ),
        None => (HealthStatus::Degraded, "not assigned".to_owned()),
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

#[async_trait]
impl Provider for Hetzner {
    damm_provider::provider_methods!(id, region, health_in_listing, compute, ingress, egress);

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
        let operation = Operation::ProbeHealth;
        let verdict = match target {
            Target::Api => {
                let params = servers::ListServersParams {
                    label_selector: Some(self.selector(&[])),
                    per_page: Some(1),
                    ..Default::default()
                };
                self.call(operation, true, || {
                    servers::list_servers(&self.api, params.clone())
                })
                .await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Node(r) => {
                let id = self.numeric_id(&r.id, operation)?;
                let server = self.owned_server(id, operation).await?;
                node_verdict(self.node(&server).state, "server")
            }
            Target::Frontdoor(r) => {
                let id = self.numeric_id(&r.id, operation)?;
                assignment(self.owned_primary_ip(id, operation).await?.assignee_id)
            }
            Target::EgressIp(r) => {
                let id = self.numeric_id(&r.id, operation)?;
                assignment(self.owned_floating_ip(id, operation).await?.server)
            }
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    operation,
                    format!("Hetzner has no {other}"),
                ));
            }
        };
        Ok(probe_signal(target, started, verdict))
    }
}

#[async_trait]
impl Compute for Hetzner {
    async fn create_node(&self, spec: &NodeSpec) -> Result<Node> {
        let operation = create_operation(spec.role);
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
        let mut request = models::CreateServerRequest::new(
            self.image.clone(),
            name_of("damm", &spec.key),
            profile.server_type.clone(),
        );
        request.labels = Some(new_labels(&spec.labels, &spec.region, None));
        request.location = Some(location);
        request.start_after_create = Some(true);
        request.user_data = spec.user_data.as_ref().map(|u| u.expose().to_owned());
        let params = servers::CreateServerParams {
            create_server_request: request,
        };
        // Never retried blindly: a lost answer is found by its key.
        let created = self
            .call(operation, false, || {
                servers::create_server(&self.api, params.clone())
            })
            .await
            .map(|created| *created.server);
        let server = create_or_adopt(created, || async {
            Ok(self.servers(by_key).await?.into_iter().next())
        })
        .await?;
        Ok(self.node(&server))
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
        gone_is_fine(
            async {
                self.owned_server(id, Operation::RetireNode).await?;
                self.call(Operation::RetireNode, true, || {
                    servers::delete_server(&self.api, servers::DeleteServerParams { id })
                })
                .await?;
                Ok(())
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
impl Ingress for Hetzner {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        let operation = Operation::AllocateIngressFrontdoor;
        let create = |target: Option<(i64, String)>| async move {
            let mut request = models::CreatePrimaryIpRequest::new(
                models::create_primary_ip_request::AssigneeType::Server,
                name_of("damm-fd", &spec.key),
                models::IpType::Ipv4,
            );
            match target {
                Some((server, _)) => request.assignee_id = Some(Some(server)),
                None => request.location = Some(self.location(&spec.region, operation)?),
            }
            request.auto_delete = Some(false);
            request.labels = Some(new_labels(&spec.labels, &spec.region, Some(ROLE_FRONTDOOR)));
            let params = pips::CreatePrimaryIpParams {
                create_primary_ip_request: request,
            };
            let create = || pips::create_primary_ip(&self.api, params.clone());
            Ok(*self.call(operation, false, create).await?.primary_ip)
        };
        let list = |selector| self.primary_ips(selector);
        let view = |ip: &models::PrimaryIp| self.frontdoor(ip);
        self.allocate(spec, (ROLE_FRONTDOOR, operation), list, view, create)
            .await
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        let operation = Operation::ReleaseIngressFrontdoor;
        let id = self.numeric_id(&frontdoor.id, operation)?;
        gone_is_fine(
            async {
                let ip = self.owned_primary_ip(id, operation).await?;
                if ip.assignee_id.is_some() {
                    let params = pips::UnassignPrimaryIpFromResourceParams { id };
                    self.call(operation, true, || {
                        pips::unassign_primary_ip_from_resource(&self.api, params.clone())
                    })
                    .await?;
                }
                self.call(operation, true, || {
                    pips::delete_primary_ip(&self.api, pips::DeletePrimaryIpParams { id })
                })
                .await
            }
            .await,
        )
        .map(drop)
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
        let create = |target: Option<(i64, String)>| async move {
            let mut request = models::CreateFloatingIpRequest::new(models::IpType::Ipv4);
            request.name = Some(name_of("damm-eg", &spec.key));
            match target {
                Some((server, location)) => {
                    request.server = Some(Some(server));
                    request.home_location = Some(location);
                }
                None => request.home_location = Some(self.location(&spec.region, operation)?),
            }
            request.labels = Some(new_labels(&spec.labels, &spec.region, Some(ROLE_EGRESS)));
            let params = fips::CreateFloatingIpParams {
                create_floating_ip_request: request,
            };
            let create = || fips::create_floating_ip(&self.api, params.clone());
            Ok(*self.call(operation, false, create).await?.floating_ip)
        };
        let list = |selector| self.floating_ips(selector);
        let view = |ip: &models::FloatingIp| self.egress_ip(ip);
        self.allocate(spec, (ROLE_EGRESS, operation), list, view, create)
            .await
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        let operation = Operation::ReleaseEgressIp;
        let id = self.numeric_id(&ip.id, operation)?;
        gone_is_fine(
            async {
                self.owned_floating_ip(id, operation).await?;
                self.call(operation, true, || {
                    fips::delete_floating_ip(&self.api, fips::DeleteFloatingIpParams { id })
                })
                .await
            }
            .await,
        )
        .map(drop)
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        let ips = self
            .floating_ips(self.selector(&[(LABEL_ROLE, ROLE_EGRESS)]))
            .await?;
        Ok(ips.iter().filter_map(|ip| self.egress_ip(ip)).collect())
    }
}
