//! The [`Provider`] implementation and the capability declaration.
//!
//! A front is one Gcore CDN resource serving `<label>.<subdomain>.<zone>` (its CNAME, the
//! hostname clients connect to on 443) over HTTPS with the configured certificate, with the
//! `websockets` option on, pulling over plain HTTP from an origin group that holds one
//! source, `<gateway IPv4>:<origin_port>` (the gateway's T3 listener). Moving the front moves
//! the group's source; the CNAME stays.
//!
//! Ownership: Gcore resources carry no labels, so a resource is this fleet's when its CNAME
//! is under `.<subdomain>.<zone>` **and** its description is
//! `damm-fleet=<fleet>;damm-key=<key>`; its origin group carries the same marker as its
//! name. Nothing without the marker is ever changed or deleted.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use damm_provider::api::{probe_metrics, probe_signal};
use damm_provider::config::AdapterConfig;
use damm_provider::{
    Capabilities, Capability, CdnFront, Error, ErrorKind, FleetId, Front, FrontRef, FrontSpec,
    HealthSignal, HealthStatus, IdempotencyKey, LABEL_FLEET, LABEL_KEY, Labels, Metrics, Node,
    NodeFilter, Operation, Provider, Region, Result, Target, async_trait,
};
use serde_json::{Value, json};

use crate::config::{ADAPTER, GcoreConfig, domain, is_label};
use crate::core::{Client, OriginGroup, Resource};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities = Capabilities::of(&[Capability::CdnFront]);

/// The Gcore provider: fronts as CDN resources passing WebSockets to the gateways.
#[derive(Debug)]
pub struct Gcore {
    id: String,
    fleet: FleetId,
    client: Client,
    zone: String,
    subdomain: String,
    certificate: u64,
    origin_port: u16,
    regions: BTreeMap<String, String>,
}

impl Gcore {
    /// Builds the adapter from its settings (`[gcore]`, `DAMM_GCORE_*`).
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let invalid = |message: String| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(message)
        };
        let settings: GcoreConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        settings.check().map_err(invalid)?;
        let (Some(token), Some(zone), Some(certificate)) = (
            settings.token.clone(),
            settings.zone.as_deref().and_then(domain),
            settings.certificate_id,
        ) else {
            return Err(invalid(
                "`token`, `zone` and `certificate_id` are required".into(),
            ));
        };
        let subdomain =
            domain(&settings.subdomain).ok_or_else(|| invalid("bad `subdomain`".into()))?;
        let client = Client::new(
            &id,
            &settings.api_url,
            token,
            Duration::from_millis(settings.request_timeout_ms),
        )?;
        Ok(Gcore {
            fleet: config.fleet().clone(),
            client,
            zone,
            subdomain,
            certificate,
            origin_port: settings.origin_port,
            regions: settings.regions,
            id,
        })
    }

    /// The fleet whose fronts this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    fn error(&self, kind: ErrorKind, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, operation).with_message(message)
    }

    fn foreign(&self, operation: Operation) -> Error {
        self.error(
            ErrorKind::InvalidInput,
            operation,
            format!(
                "front belongs to provider instance other than `{}`",
                self.id
            ),
        )
    }

    /// `.<subdomain>.<zone>`: what every front's hostname ends with.
    fn suffix(&self) -> String {
        format!(".{}.{}", self.subdomain, self.zone)
    }

    /// The ownership marker of key `key`: the resource's description, the group's name.
    fn marker(&self, key: &IdempotencyKey) -> String {
        format!("{LABEL_FLEET}={};{LABEL_KEY}={key}", self.fleet)
    }

    /// `<ip>:<origin_port>`: the gateway's T3 listener as an origin source.
    fn source(&self, ip: Ipv4Addr) -> String {
        format!("{ip}:{}", self.origin_port)
    }

    /// The labels of `resource` when it is one of this fleet's fronts.
    fn labels_of(&self, resource: &Resource) -> Option<Labels> {
        if resource.deleted
            || !resource
                .cname
                .to_ascii_lowercase()
                .ends_with(&self.suffix())
        {
            return None;
        }
        let labels = labels_from_marker(resource.description.as_deref()?)?;
        labels.is_owned_by(&self.fleet).then_some(labels)
    }

    fn front(&self, resource: &Resource, labels: Labels, origin: Option<Ipv4Addr>) -> Front {
        let origin = origin.unwrap_or_else(|| {
            tracing::warn!(provider = %self.id, resource = resource.id, "the front's origin group names no readable IPv4 origin");
            Ipv4Addr::UNSPECIFIED
        });
        Front {
            reference: FrontRef::new(&self.id, resource.id.to_string()),
            hostname: resource.cname.to_ascii_lowercase(),
            origin: IpAddr::V4(origin),
            labels,
        }
    }

    /// Gcore pulls from IPv4 origins only.
    fn ipv4(&self, origin: IpAddr, operation: Operation) -> Result<Ipv4Addr> {
        match origin {
            IpAddr::V4(ip) => Ok(ip),
            IpAddr::V6(_) => Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("origin {origin} is IPv6: Gcore CDN pulls from IPv4 origins only"),
            )),
        }
    }

    /// The resource `id` (as a `FrontRef` holds it), when it is one of this fleet's fronts.
    async fn owned(&self, operation: Operation, id: &str) -> Result<Option<(Resource, Labels)>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        let Some(resource) = self.client.resource(operation, id).await? else {
            return Ok(None);
        };
        Ok(self.labels_of(&resource).map(|labels| (resource, labels)))
    }

    /// The origin of the resource's group, read from the API.
    async fn origin(&self, operation: Operation, resource: &Resource) -> Result<Option<Ipv4Addr>> {
        let Some(group) = resource.origin_group else {
            return Ok(None);
        };
        Ok(self
            .client
            .group(operation, group)
            .await?
            .as_ref()
            .and_then(origin_of))
    }

    /// The front already serving `hostname`, when it is this key's; a `Conflict` when the
    /// hostname is served by a resource that is not.
    async fn find_front(
        &self,
        operation: Operation,
        hostname: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Front>> {
        let serving = self.client.resources(operation, Some(hostname)).await?;
        let Some(resource) = serving
            .into_iter()
            .find(|r| r.cname.eq_ignore_ascii_case(hostname))
        else {
            return Ok(None);
        };
        match self.labels_of(&resource) {
            Some(labels) if labels.key().as_ref() == Some(key) => {
                let origin = self.origin(operation, &resource).await?;
                Ok(Some(self.front(&resource, labels, origin)))
            }
            _ => Err(self.error(
                ErrorKind::Conflict,
                operation,
                format!(
                    "{hostname} is served by Gcore resource {}, which is not front {key} of fleet {}",
                    resource.id, self.fleet
                ),
            )),
        }
    }

    /// The origin group named `marker`, pulling from `ip` alone: found (and corrected when
    /// it points elsewhere) or created.
    async fn ensure_group(
        &self,
        operation: Operation,
        marker: &str,
        ip: Ipv4Addr,
    ) -> Result<OriginGroup> {
        let wanted = self.source(ip);
        let body = group_body(marker, &wanted);
        let existing = match self.client.groups(operation, Some(marker)).await?.pop() {
            Some(group) => group,
            None => match self.client.create_group(operation, body.clone()).await {
                Ok(group) => return Ok(group),
                // Made meanwhile (a replay overtaking itself): use that one.
                Err(e) if e.kind() == ErrorKind::Conflict => self
                    .client
                    .groups(operation, Some(marker))
                    .await?
                    .pop()
                    .ok_or(e)?,
                Err(e) => return Err(e),
            },
        };
        if pulls_only_from(&existing, &wanted) {
            Ok(existing)
        } else {
            self.client.patch_group(operation, existing.id, body).await
        }
    }
}

/// An origin group body pulling from `source` alone.
fn group_body(name: &str, source: &str) -> Value {
    json!({
        "name": name,
        "sources": [{ "source": source, "enabled": true, "backup": false }],
    })
}

/// Whether `group` pulls from `source` and nothing else.
fn pulls_only_from(group: &OriginGroup, source: &str) -> bool {
    group.sources.len() == 1 && group.primary() == Some(source)
}

/// The IPv4 address a group's primary source names (`<ip>[:port]`).
fn origin_of(group: &OriginGroup) -> Option<Ipv4Addr> {
    let source = group.primary()?;
    let host = source.rsplit_once(':').map_or(source, |(host, _)| host);
    host.parse().ok()
}

/// Parses `damm-fleet=<fleet>;damm-key=<key>` back into labels; `None` unless both are
/// there and valid.
fn labels_from_marker(marker: &str) -> Option<Labels> {
    let mut map = BTreeMap::new();
    for part in marker.split(';') {
        let (k, v) = part.split_once('=')?;
        map.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let labels = Labels::from_provider(map);
    FleetId::new(labels.get(LABEL_FLEET)?).ok()?;
    labels.key()?;
    Some(labels)
}

/// A removal's step that found the object gone already.
fn gone_is_done<T>(answer: Result<T>) -> Result<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Provider for Gcore {
    damm_provider::provider_methods!(id, cdn_front);

    /// Gcore's CDN is global: every DAMM region maps to `global` unless the `regions`
    /// setting says otherwise.
    fn region(&self, region: &Region) -> Option<String> {
        if self.regions.is_empty() {
            Some("global".to_owned())
        } else {
            self.regions.get(region.as_str()).cloned()
        }
    }

    /// Gcore runs no DAMM nodes.
    async fn list_nodes(&self, _filter: &NodeFilter) -> Result<Vec<Node>> {
        Ok(Vec::new())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        let op = Operation::ProbeHealth;
        let started = Instant::now();
        let verdict = match target {
            Target::Api => {
                self.client.ping(op).await?;
                (HealthStatus::Healthy, "API answered".to_owned())
            }
            Target::Front(front) => {
                if front.provider != self.id {
                    return Err(self.foreign(op));
                }
                let Some((resource, _)) = self.owned(op, &front.id).await? else {
                    return Err(self.error(
                        ErrorKind::NotFound,
                        op,
                        format!("front {front} is not one of the fleet's resources"),
                    ));
                };
                let name = &resource.cname;
                let status = resource.status.as_deref().unwrap_or("active");
                if !resource.active || status == "suspended" {
                    (
                        HealthStatus::Down,
                        format!("{name} is deactivated or suspended ({status})"),
                    )
                } else if !resource.websockets() {
                    (
                        HealthStatus::Degraded,
                        format!("{name} has WebSockets off: T3 cannot pass"),
                    )
                } else if !resource.ssl_enabled {
                    (HealthStatus::Degraded, format!("{name} serves no HTTPS"))
                } else if status == "processed" {
                    (
                        HealthStatus::Degraded,
                        format!("{name} is still propagating"),
                    )
                } else {
                    (
                        HealthStatus::Healthy,
                        format!("{name} is active with WebSockets"),
                    )
                }
            }
            other => {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    op,
                    format!("cannot probe {other}: Gcore serves fronts"),
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
impl CdnFront for Gcore {
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front> {
        let op = Operation::PublishFront;
        let label = spec.name.to_ascii_lowercase();
        if !is_label(&label) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("front name `{}` is not one DNS label", spec.name),
            ));
        }
        let ip = self.ipv4(spec.origin, op)?;
        let hostname = format!("{label}{}", self.suffix());
        if let Some(front) = self.find_front(op, &hostname, &spec.key).await? {
            return Ok(front);
        }
        let marker = self.marker(&spec.key);
        let group = self.ensure_group(op, &marker, ip).await?;
        let body = json!({
            "cname": hostname,
            "originGroup": group.id,
            "originProtocol": "HTTP",
            "description": marker,
            "active": true,
            "sslEnabled": true,
            "sslData": self.certificate,
            "options": { "websockets": { "enabled": true, "value": true } },
        });
        let resource = match self.client.create_resource(op, body).await {
            Ok(resource) => resource,
            // The CNAME was taken meanwhile: by this key's earlier create, or by another.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return self.find_front(op, &hostname, &spec.key).await?.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        tracing::info!(provider = %self.id, resource = resource.id, hostname = %resource.cname, %ip, "published front");
        let labels = self.labels_of(&resource).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                op,
                "the created resource does not read back as this fleet's front",
            )
        })?;
        Ok(self.front(&resource, labels, Some(ip)))
    }

    async fn repoint_front(&self, front: &FrontRef, origin: IpAddr) -> Result<Front> {
        let op = Operation::RepointFront;
        if front.provider != self.id {
            return Err(self.foreign(op));
        }
        let ip = self.ipv4(origin, op)?;
        // Only this fleet's resource is ever changed; the CNAME stays, the origin moves.
        let Some((resource, labels)) = self.owned(op, &front.id).await? else {
            return Err(self.error(
                ErrorKind::NotFound,
                op,
                format!("front {} is not one of this fleet's resources", front.id),
            ));
        };
        let key = labels.key().ok_or_else(|| {
            self.error(ErrorKind::Unexpected, op, "the front's marker lost its key")
        })?;
        let marker = self.marker(&key);
        let wanted = self.source(ip);
        let current = match resource.origin_group {
            Some(group) => self.client.group(op, group).await?,
            None => None,
        };
        match current {
            Some(group) if group.name == marker => {
                if !pulls_only_from(&group, &wanted) {
                    self.client
                        .patch_group(op, group.id, group_body(&marker, &wanted))
                        .await?;
                }
            }
            // The resource pulls from a group that is not its own (changed by hand): give it
            // its own again, never touching the other.
            _ => {
                let group = self.ensure_group(op, &marker, ip).await?;
                self.client
                    .patch_resource(op, resource.id, json!({ "originGroup": group.id }))
                    .await?;
            }
        }
        tracing::info!(provider = %self.id, resource = resource.id, hostname = %resource.cname, %ip, "moved front");
        Ok(self.front(&resource, labels, Some(ip)))
    }

    async fn retire_front(&self, front: &FrontRef) -> Result<()> {
        let op = Operation::RetireFront;
        if front.provider != self.id {
            return Err(self.foreign(op));
        }
        // Never delete a resource that is not this fleet's; one not there is gone already.
        let Some((resource, labels)) = self.owned(op, &front.id).await? else {
            return Ok(());
        };
        // Gcore deletes only deactivated resources.
        if resource.active {
            let off = self
                .client
                .patch_resource(op, resource.id, json!({ "active": false }))
                .await;
            if gone_is_done(off)?.is_none() {
                return Ok(());
            }
        }
        self.client.delete_resource(op, resource.id).await?;
        tracing::info!(provider = %self.id, resource = resource.id, hostname = %resource.cname, "retired front");
        // Its own origin group goes too. The front is gone either way: a group left behind
        // (named with the marker, pulling from nowhere DAMM uses) is only logged.
        let (Some(group), Some(key)) = (resource.origin_group, labels.key()) else {
            return Ok(());
        };
        let marker = self.marker(&key);
        let cleanup = async {
            match self.client.group(op, group).await? {
                Some(g) if g.name == marker => self.client.delete_group(op, group).await.map(drop),
                _ => Ok(()),
            }
        };
        if let Err(e) = cleanup.await {
            tracing::warn!(provider = %self.id, group, error = %e, "the retired front's origin group was left behind");
        }
        Ok(())
    }

    async fn list_fronts(&self) -> Result<Vec<Front>> {
        let op = Operation::ListFronts;
        let owned: Vec<(Resource, Labels)> = self
            .client
            .resources(op, None)
            .await?
            .into_iter()
            .filter_map(|r| self.labels_of(&r).map(|labels| (r, labels)))
            .collect();
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        let groups: BTreeMap<i64, OriginGroup> = self
            .client
            .groups(op, None)
            .await?
            .into_iter()
            .map(|g| (g.id, g))
            .collect();
        Ok(owned
            .into_iter()
            .map(|(resource, labels)| {
                let origin = resource
                    .origin_group
                    .and_then(|g| groups.get(&g))
                    .and_then(origin_of);
                self.front(&resource, labels, origin)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_strangers_are_refused() {
        let labels = labels_from_marker("damm-fleet=prod;damm-key=k-1").unwrap();
        assert_eq!(labels.get(LABEL_FLEET), Some("prod"));
        assert_eq!(labels.key().unwrap().as_str(), "k-1");
        for stranger in [
            "",
            "my website",
            "damm-fleet=prod",
            "damm-key=k1",
            "damm-fleet=Prod;damm-key=k1",
            "damm-fleet=prod;damm-key=K 1",
        ] {
            assert!(labels_from_marker(stranger).is_none(), "{stranger}");
        }
    }

    #[test]
    fn a_group_names_its_ipv4_origin() {
        let group = |source: &str| OriginGroup {
            id: 1,
            name: "g".into(),
            sources: serde_json::from_value(json!([{ "source": source }])).unwrap(),
        };
        assert_eq!(
            origin_of(&group("192.0.2.10:80")),
            Some(Ipv4Addr::new(192, 0, 2, 10))
        );
        assert_eq!(
            origin_of(&group("192.0.2.10")),
            Some(Ipv4Addr::new(192, 0, 2, 10))
        );
        assert_eq!(origin_of(&group("origin.example.org:80")), None);
        assert!(pulls_only_from(&group("192.0.2.10:80"), "192.0.2.10:80"));
        assert!(!pulls_only_from(&group("192.0.2.10:80"), "192.0.2.11:80"));
    }
}
