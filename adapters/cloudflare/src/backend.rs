//! The [`Provider`] implementation and the capability declaration.
//!
//! - `cdn_front`: a front is a proxied `A`/`AAAA` record `<name>.<subdomain>.<zone>`
//!   pointing at the gateway. Records carry no labels, so ownership is the name under
//!   DAMM's subdomain *and* the record comment `damm-fleet=<fleet>;damm-key=<key>`.
//! - `tunnel_term`: a tunnel is a remotely configured Cloudflare Tunnel named
//!   `damm-<fleet>-<key>`, whose ingress sends `<name>.<subdomain>.<zone>` to the spec's
//!   origin and everything else to `http_status:404`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use cloudflare::framework::endpoint::Method;
use damm_provider::api::{probe_metrics, probe_signal};
use damm_provider::config::AdapterConfig;
use damm_provider::{
    Capabilities, Capability, CdnFront, Error, ErrorKind, FleetId, Front, FrontRef, FrontSpec,
    HealthSignal, HealthStatus, IdempotencyKey, LABEL_FLEET, LABEL_KEY, Labels, Metrics, Node,
    NodeFilter, Operation, Provider, Region, Result, SecretString, Target, Tunnel, TunnelRef,
    TunnelSpec, TunnelTerm, async_trait,
};
use serde_json::json;

use crate::config::CloudflareConfig;
use crate::core::{Api, Call, CfdTunnel, Deleted, DnsRecord, Zone};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::CdnFront, Capability::TunnelTerm]);

/// Records and tunnels listed per page.
const PER_PAGE: u32 = 100;

/// The zone and account, once resolved.
#[derive(Debug, Clone)]
struct Scope {
    zone_id: String,
    zone_name: String,
    account_id: String,
}

/// The Cloudflare provider: fronts as proxied DNS records, tunnels as Cloudflare
/// Tunnels.
#[derive(Debug)]
pub struct Cloudflare {
    id: String,
    fleet: FleetId,
    api: Api,
    zone: Option<String>,
    zone_id: Option<String>,
    account_id: Option<String>,
    subdomain: String,
    regions: BTreeMap<String, String>,
    scope: OnceLock<Scope>,
}

impl Cloudflare {
    /// Builds the adapter from its settings.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: CloudflareConfig = config
            .load("cloudflare")
            .map_err(|e| e.into_provider_error(&id))?;
        let invalid = |message: &str| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(message)
        };
        let zone = settings
            .zone
            .as_deref()
            .map(|z| z.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|z| !z.is_empty());
        let zone_id = settings.zone_id.clone().filter(|z| !z.is_empty());
        if zone.is_none() && zone_id.is_none() {
            return Err(invalid("set `zone` (the zone name) or `zone_id`"));
        }
        let subdomain = settings
            .subdomain
            .trim()
            .trim_matches('.')
            .to_ascii_lowercase();
        if subdomain.is_empty() {
            return Err(invalid("`subdomain` must not be empty"));
        }
        let api = Api::new(&id, &settings)?;
        Ok(Cloudflare {
            fleet: config.fleet().clone(),
            api,
            zone,
            zone_id,
            account_id: settings.account_id.clone().filter(|a| !a.is_empty()),
            subdomain,
            regions: settings.regions,
            scope: OnceLock::new(),
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

    /// The zone id and name and the account id, looking them up once.
    async fn scope(&self, operation: Operation) -> Result<Scope> {
        if let Some(scope) = self.scope.get() {
            return Ok(scope.clone());
        }
        let zones: Vec<Zone> = match &self.zone {
            Some(name) => {
                self.api
                    .all_pages(operation, "zones", &[("name", name.clone())], 50)
                    .await?
            }
            None => self.api.all_pages(operation, "zones", &[], 50).await?,
        };
        let found = zones.into_iter().find(|z| {
            self.zone
                .as_ref()
                .is_none_or(|n| z.name.eq_ignore_ascii_case(n))
                && self.zone_id.as_ref().is_none_or(|i| z.id == *i)
        });
        let Some(zone) = found else {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "zone {} is not visible to the token",
                    self.zone
                        .as_deref()
                        .or(self.zone_id.as_deref())
                        .unwrap_or("?")
                ),
            ));
        };
        let scope = Scope {
            account_id: self.account_id.clone().unwrap_or(zone.account.id),
            zone_id: zone.id,
            zone_name: zone.name.to_ascii_lowercase(),
        };
        Ok(self.scope.get_or_init(|| scope).clone())
    }

    /// `<name>.<subdomain>.<zone>`.
    fn hostname(&self, scope: &Scope, name: &str) -> String {
        format!(
            "{}.{}.{}",
            name.to_ascii_lowercase(),
            self.subdomain,
            scope.zone_name
        )
    }

    /// The comment that marks a record as this fleet's, with its key.
    fn comment(&self, key: &IdempotencyKey) -> String {
        format!("{LABEL_FLEET}={};{LABEL_KEY}={}", self.fleet, key)
    }

    fn fleet_comment_prefix(&self) -> String {
        format!("{LABEL_FLEET}={};", self.fleet)
    }

    /// The front a record stands for, when it is this fleet's.
    fn front_of(&self, scope: &Scope, record: DnsRecord) -> Option<Front> {
        let suffix = format!(".{}.{}", self.subdomain, scope.zone_name);
        if !record.name.to_ascii_lowercase().ends_with(&suffix) {
            return None;
        }
        let labels = labels_from_comment(record.comment.as_deref()?)?;
        if !labels.is_owned_by(&self.fleet) || !matches!(record.kind.as_str(), "A" | "AAAA") {
            return None;
        }
        let origin: IpAddr = record.content.parse().ok()?;
        Some(Front {
            reference: FrontRef::new(&self.id, record.id),
            hostname: record.name,
            origin,
            labels,
        })
    }

    /// The zone's records matching one query `filter`, every page.
    async fn records(
        &self,
        scope: &Scope,
        operation: Operation,
        filter: (&str, String),
    ) -> Result<Vec<DnsRecord>> {
        let path = format!("zones/{}/dns_records", scope.zone_id);
        self.api
            .all_pages(operation, &path, &[filter], PER_PAGE)
            .await
    }

    /// The account's live tunnels matching one query `filter`, every page.
    async fn tunnels(
        &self,
        scope: &Scope,
        operation: Operation,
        filter: (&str, String),
    ) -> Result<Vec<CfdTunnel>> {
        let path = format!("accounts/{}/cfd_tunnel", scope.account_id);
        let query = [filter, ("is_deleted", "false".to_owned())];
        self.api.all_pages(operation, &path, &query, PER_PAGE).await
    }

    /// The fleet's records: under the subdomain, comment naming the fleet, every page.
    async fn fleet_records(&self, scope: &Scope, operation: Operation) -> Result<Vec<DnsRecord>> {
        let filter = ("comment.startswith", self.fleet_comment_prefix());
        let records = self.records(scope, operation, filter).await?;
        Ok(records
            .into_iter()
            .filter(|r| self.front_of(scope, r.clone()).is_some())
            .collect())
    }

    /// The fleet's fronts.
    async fn fleet_fronts(&self, scope: &Scope, operation: Operation) -> Result<Vec<Front>> {
        Ok(self
            .fleet_records(scope, operation)
            .await?
            .into_iter()
            .filter_map(|r| self.front_of(scope, r))
            .collect())
    }

    /// One of the fleet's records by id, found in the fleet's listing (so a record
    /// without the fleet's comment is never touched, and a gone one is `None`).
    async fn fleet_record(
        &self,
        scope: &Scope,
        id: &str,
        operation: Operation,
    ) -> Result<Option<DnsRecord>> {
        Ok(self
            .fleet_records(scope, operation)
            .await?
            .into_iter()
            .find(|r| r.id == id))
    }

    fn tunnel_prefix(&self) -> String {
        format!("damm-{}-", self.fleet)
    }

    /// The tunnel a Cloudflare Tunnel stands for, when it is this fleet's and alive.
    fn tunnel_of(&self, tunnel: CfdTunnel, origin: String) -> Option<Tunnel> {
        if tunnel.deleted_at.is_some() {
            return None;
        }
        let key = IdempotencyKey::new(tunnel.name.strip_prefix(&self.tunnel_prefix())?).ok()?;
        Some(Tunnel {
            reference: TunnelRef::new(&self.id, tunnel.id),
            connected: Some(!tunnel.connections.is_empty()),
            labels: Labels::owned(&self.fleet, &key),
            name: tunnel.name,
            origin,
            token: None,
        })
    }

    async fn find_record(&self, scope: &Scope, key: &IdempotencyKey) -> Result<Option<Front>> {
        let filter = ("comment", self.comment(key));
        let records = self.records(scope, Operation::PublishFront, filter).await?;
        Ok(records.into_iter().find_map(|r| self.front_of(scope, r)))
    }

    async fn find_tunnel(
        &self,
        scope: &Scope,
        name: &str,
        op: Operation,
    ) -> Result<Option<CfdTunnel>> {
        let tunnels = self.tunnels(scope, op, ("name", name.to_owned())).await?;
        Ok(tunnels
            .into_iter()
            .find(|t| t.name == name && t.deleted_at.is_none()))
    }

    fn tunnel_path(&self, scope: &Scope, id: &str) -> String {
        format!("accounts/{}/cfd_tunnel/{id}", scope.account_id)
    }

    /// The origin the tunnel's ingress sends its hostname to.
    async fn tunnel_origin(&self, scope: &Scope, id: &str, op: Operation) -> Result<String> {
        let config: serde_json::Value = self
            .api
            .result(
                op,
                Call::new(
                    Method::GET,
                    format!("{}/configurations", self.tunnel_path(scope, id)),
                ),
            )
            .await?;
        Ok(config["config"]["ingress"][0]["service"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn connections(&self, scope: &Scope, id: &str, op: Operation) -> Result<usize> {
        let clients: Vec<serde_json::Value> = self
            .api
            .result(
                op,
                Call::new(
                    Method::GET,
                    format!("{}/connections", self.tunnel_path(scope, id)),
                ),
            )
            .await?;
        Ok(clients.len())
    }

    fn foreign(&self, operation: Operation, what: &str) -> Error {
        self.error(
            ErrorKind::InvalidInput,
            operation,
            format!(
                "{what} belongs to provider instance other than `{}`",
                self.id
            ),
        )
    }
}

/// A removal's answer: done, or gone already.
fn gone_is_fine<T>(answer: Result<T>) -> Result<()> {
    match answer {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other.map(drop),
    }
}

/// Parses `damm-fleet=<fleet>;damm-key=<key>` back into labels.
fn labels_from_comment(comment: &str) -> Option<Labels> {
    let mut map = BTreeMap::new();
    for part in comment.split(';') {
        let (k, v) = part.split_once('=')?;
        map.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let labels = Labels::from_provider(map);
    labels.get(LABEL_FLEET)?;
    labels.key()?;
    Some(labels)
}

#[async_trait]
impl Provider for Cloudflare {
    damm_provider::provider_methods!(id, cdn_front, tunnel_term);

    /// Cloudflare's edge is global: every DAMM region maps to `global` unless the
    /// `regions` setting says otherwise.
    fn region(&self, region: &Region) -> Option<String> {
        if self.regions.is_empty() {
            Some("global".to_owned())
        } else {
            self.regions.get(region.as_str()).cloned()
        }
    }

    /// Cloudflare runs no DAMM nodes.
    async fn list_nodes(&self, _filter: &NodeFilter) -> Result<Vec<Node>> {
        Ok(Vec::new())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let op = Operation::ProbeHealth;
        let started = Instant::now();
        let verdict = match target {
            Target::Api => {
                let name = self.zone.clone().unwrap_or_default();
                let query: Vec<(&str, String)> = if name.is_empty() {
                    vec![("per_page", "5".to_owned())]
                } else {
                    vec![("name", name)]
                };
                let _: Vec<Zone> = self
                    .api
                    .result(op, Call::new(Method::GET, "zones").query(&query))
                    .await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Front(front) => {
                if front.provider != self.id {
                    return Err(self.foreign(op, "front"));
                }
                let scope = self.scope(op).await?;
                let Some(record) = self.fleet_record(&scope, &front.id, op).await? else {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        op,
                        format!("front {front} is not among the fleet's records"),
                    ));
                };
                if record.proxied == Some(true) {
                    (HealthStatus::Healthy, format!("{} is proxied", record.name))
                } else {
                    (
                        HealthStatus::Degraded,
                        format!("{} is not proxied", record.name),
                    )
                }
            }
            Target::Tunnel(tunnel) => {
                if tunnel.provider != self.id {
                    return Err(self.foreign(op, "tunnel"));
                }
                let scope = self.scope(op).await?;
                match self.connections(&scope, &tunnel.id, op).await? {
                    0 => (HealthStatus::Degraded, "no connector attached".to_owned()),
                    n => (HealthStatus::Healthy, format!("{n} connector(s) attached")),
                }
            }
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    op,
                    format!("cannot probe {other}: Cloudflare serves fronts and tunnels"),
                ));
            }
        };
        Ok(probe_signal(target, started, verdict))
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let signal = self.probe_health(target).await.map_err(|e| {
            Error::new(e.kind(), &self.id, Operation::GetMetrics)
                .with_message(e.message().to_owned())
                .set_temporary(e.is_temporary())
        })?;
        Ok(probe_metrics(signal))
    }
}

#[async_trait]
impl CdnFront for Cloudflare {
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front> {
        let op = Operation::PublishFront;
        let label = spec.name.to_ascii_lowercase();
        if label.is_empty()
            || label.len() > 63
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("front name `{}` is not one DNS label", spec.name),
            ));
        }
        let scope = self.scope(op).await?;
        if let Some(front) = self.find_record(&scope, &spec.key).await? {
            return Ok(front);
        }
        let hostname = self.hostname(&scope, &label);
        let kind = match spec.origin {
            IpAddr::V4(_) => "A",
            IpAddr::V6(_) => "AAAA",
        };
        let body = json!({
            "type": kind,
            "name": hostname,
            "content": spec.origin.to_string(),
            "proxied": true,
            "ttl": 1,
            "comment": self.comment(&spec.key),
        });
        let record: DnsRecord = self
            .api
            .result(
                op,
                Call::new(Method::POST, format!("zones/{}/dns_records", scope.zone_id)).json(&body),
            )
            .await?;
        tracing::info!(provider = %self.id, record = %record.id, hostname = %record.name, "published front");
        self.front_of(&scope, record).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                op,
                "the created record does not read back as this fleet's front",
            )
        })
    }

    async fn repoint_front(&self, front: &FrontRef, origin: IpAddr) -> Result<Front> {
        let op = Operation::RepointFront;
        if front.provider != self.id {
            return Err(self.foreign(op, "front"));
        }
        let scope = self.scope(op).await?;
        // Only this fleet's record is ever changed; the hostname stays, the origin moves.
        let Some(record) = self.fleet_record(&scope, &front.id, op).await? else {
            return Err(self.error(
                ErrorKind::NotFound,
                op,
                format!("front {} is not one of this fleet's records", front.id),
            ));
        };
        let kind = match origin {
            IpAddr::V4(_) => "A",
            IpAddr::V6(_) => "AAAA",
        };
        // Compared as addresses: Cloudflare may spell an IPv6 origin differently.
        let unchanged = record.kind == kind && record.content.parse::<IpAddr>() == Ok(origin);
        let record = if unchanged {
            record
        } else {
            let path = format!("zones/{}/dns_records/{}", scope.zone_id, front.id);
            // The document's PATCH body is a whole record: `type`, `name` and `content`
            // are required (the simulator refuses a body without `name`). The record's own
            // name keeps the hostname; `proxied`, `ttl` and the ownership comment are left
            // out, so they stay as they are.
            let body = json!({ "type": kind, "name": record.name, "content": origin.to_string() });
            let updated: DnsRecord = self
                .api
                .result(op, Call::new(Method::PATCH, &path).json(&body))
                .await?;
            tracing::info!(provider = %self.id, record = %updated.id, hostname = %updated.name, %origin, "moved front");
            updated
        };
        self.front_of(&scope, record).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                op,
                "the updated record does not read back as this fleet's front",
            )
        })
    }

    async fn retire_front(&self, front: &FrontRef) -> Result<()> {
        let op = Operation::RetireFront;
        if front.provider != self.id {
            return Err(self.foreign(op, "front"));
        }
        let scope = self.scope(op).await?;
        // Never delete a record that is not this fleet's; one not listed is gone already.
        if self.fleet_record(&scope, &front.id, op).await?.is_none() {
            return Ok(());
        }
        let path = format!("zones/{}/dns_records/{}", scope.zone_id, front.id);
        gone_is_fine(
            self.api
                .result::<Deleted>(op, Call::new(Method::DELETE, &path))
                .await,
        )
    }

    async fn list_fronts(&self) -> Result<Vec<Front>> {
        let op = Operation::ListFronts;
        let scope = self.scope(op).await?;
        self.fleet_fronts(&scope, op).await
    }
}

#[async_trait]
impl TunnelTerm for Cloudflare {
    async fn register_tunnel(&self, spec: &TunnelSpec) -> Result<Tunnel> {
        let op = Operation::RegisterTunnel;
        let scope = self.scope(op).await?;
        let name = format!("{}{}", self.tunnel_prefix(), spec.key);
        let existing = self.find_tunnel(&scope, &name, op).await?;
        let tunnel = match existing {
            Some(tunnel) => tunnel,
            None => {
                let body = json!({ "name": name, "config_src": "cloudflare" });
                self.api
                    .result(
                        op,
                        Call::new(
                            Method::POST,
                            format!("accounts/{}/cfd_tunnel", scope.account_id),
                        )
                        .json(&body),
                    )
                    .await?
            }
        };
        let hostname = self.hostname(&scope, &spec.name);
        let config = json!({ "config": { "ingress": [
            { "hostname": hostname, "service": spec.origin },
            // The document requires a hostname on every rule; `*` is cloudflared's catch-all.
            { "hostname": "*", "service": "http_status:404" },
        ] } });
        let _: serde_json::Value = self
            .api
            .result(
                op,
                Call::new(
                    Method::PUT,
                    format!("{}/configurations", self.tunnel_path(&scope, &tunnel.id)),
                )
                .json(&config),
            )
            .await?;
        let token: String = self
            .api
            .result(
                op,
                Call::new(
                    Method::GET,
                    format!("{}/token", self.tunnel_path(&scope, &tunnel.id)),
                ),
            )
            .await?;
        tracing::info!(provider = %self.id, tunnel = %tunnel.id, name = %tunnel.name, "registered tunnel");
        let mut out = self.tunnel_of(tunnel, spec.origin.clone()).ok_or_else(|| {
            self.error(ErrorKind::Unexpected, op, "the tunnel reads back deleted")
        })?;
        out.token = Some(SecretString::from(token));
        Ok(out)
    }

    async fn retire_tunnel(&self, tunnel: &TunnelRef) -> Result<()> {
        let op = Operation::RetireTunnel;
        if tunnel.provider != self.id {
            return Err(self.foreign(op, "tunnel"));
        }
        let scope = self.scope(op).await?;
        let path = self.tunnel_path(&scope, &tunnel.id);
        let current = match self
            .api
            .result::<CfdTunnel>(op, Call::new(Method::GET, &path))
            .await
        {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if current.deleted_at.is_some() {
            return Ok(());
        }
        if !current.name.starts_with(&self.tunnel_prefix()) {
            return Err(self.error(
                ErrorKind::Conflict,
                op,
                format!("tunnel {} is not one of fleet {}", tunnel.id, self.fleet),
            ));
        }
        let delete = Call::new(Method::DELETE, &path).query(&[("cascade", "true".to_owned())]);
        gone_is_fine(self.api.result::<CfdTunnel>(op, delete).await)
    }

    async fn list_tunnels(&self) -> Result<Vec<Tunnel>> {
        let op = Operation::ListTunnels;
        let scope = self.scope(op).await?;
        let tunnels = self
            .tunnels(&scope, op, ("include_prefix", self.tunnel_prefix()))
            .await?;
        let mut out = Vec::new();
        for tunnel in tunnels {
            if tunnel.deleted_at.is_some() || !tunnel.name.starts_with(&self.tunnel_prefix()) {
                continue;
            }
            let origin = match self.tunnel_origin(&scope, &tunnel.id, op).await {
                Ok(origin) => origin,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.extend(self.tunnel_of(tunnel, origin));
        }
        Ok(out)
    }
}
