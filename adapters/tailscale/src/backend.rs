//! The [`Provider`] implementation and the capability declaration.
//!
//! Ownership lives in ACL tags, since Tailscale resources carry no labels: every auth key
//! the adapter mints (and so every device that joins with it) carries
//! `<tag_prefix>-fleet-<fleet>` and `<tag_prefix>-key-<key>` (by default
//! `tag:damm-fleet-<fleet>`, `tag:damm-key-<key>`), with `_` mapped to `-` because tags
//! hold only lowercase letters, digits and dashes. Keys recovered from tags therefore
//! come back with dashes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    Capabilities, Capability, Error, ErrorKind, FleetId, HealthSignal, HealthStatus,
    IdempotencyKey, LABEL_FLEET, Labels, MembershipRef, MembershipState, Metrics, Node, NodeFilter,
    Operation, Overlay, OverlayMembership, OverlaySpec, Provider, Region, Result, Target,
    async_trait,
};
use serde_json::json;

use crate::config::{ADAPTER, TailscaleConfig};
use crate::core::{Client, Device, Key};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities = Capabilities::of(&[Capability::Overlay]);

/// A device unseen for longer than this is `Degraded`.
const SEEN_RECENTLY: Duration = Duration::from_secs(300);

/// Tailscale's limit on an auth key's description.
const MAX_DESCRIPTION: usize = 50;

/// The Tailscale provider: a tailnet DAMM gateways join with tagged auth keys.
#[derive(Debug)]
pub struct Tailscale {
    id: String,
    fleet: FleetId,
    tag_prefix: String,
    key_expiry_seconds: u64,
    client: Client,
}

impl Tailscale {
    /// Builds the adapter from its settings (`[providers.tailscale]`, `DAMM_TAILSCALE_*`).
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: TailscaleConfig = config
            .load(ADAPTER)
            .map_err(|e| e.into_provider_error(&id))?;
        settings.check().map_err(|m| {
            Error::new(ErrorKind::InvalidInput, &id, Operation::Configure).with_message(m)
        })?;
        let Some(token) = settings.token.clone() else {
            return Err(
                Error::new(ErrorKind::InvalidInput, &id, Operation::Configure)
                    .with_message("`token` is required"),
            );
        };
        let client = Client::new(
            &id,
            &settings.api_url,
            &settings.tailnet,
            token,
            Duration::from_millis(settings.request_timeout_ms),
        )?;
        Ok(Tailscale {
            fleet: config.fleet().clone(),
            tag_prefix: settings.tag_prefix,
            key_expiry_seconds: settings.key_expiry_seconds,
            client,
            id,
        })
    }

    /// The fleet whose memberships this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    /// The tag every resource of the fleet carries.
    pub fn fleet_tag(&self) -> String {
        format!(
            "{}-fleet-{}",
            self.tag_prefix,
            tag_part(self.fleet.as_str())
        )
    }

    /// The tag carrying idempotency key `key`.
    pub fn key_tag(&self, key: &IdempotencyKey) -> String {
        format!("{}-key-{}", self.tag_prefix, tag_part(key.as_str()))
    }

    fn key_of_tags(&self, tags: &[String]) -> Option<String> {
        let prefix = format!("{}-key-", self.tag_prefix);
        tags.iter()
            .find_map(|t| t.strip_prefix(&prefix))
            .map(str::to_owned)
    }

    fn labels(&self, tags: &[String]) -> Labels {
        match self
            .key_of_tags(tags)
            .and_then(|k| IdempotencyKey::new(k).ok())
        {
            Some(key) => Labels::owned(&self.fleet, &key),
            None => {
                let mut map = BTreeMap::new();
                map.insert(LABEL_FLEET.to_owned(), self.fleet.to_string());
                Labels::from_provider(map)
            }
        }
    }

    fn joined(&self, device: &Device) -> OverlayMembership {
        OverlayMembership {
            reference: MembershipRef::new(&self.id, format!("device:{}", device.id)),
            hostname: device.hostname.clone(),
            node: None,
            state: MembershipState::Joined,
            address: device.ipv4(),
            auth_key: None,
            labels: self.labels(&device.tags),
        }
    }

    fn pending(&self, key: &Key) -> OverlayMembership {
        let hostname = key
            .description
            .as_deref()
            .and_then(|d| d.strip_prefix("damm "))
            .unwrap_or_default()
            .to_owned();
        OverlayMembership {
            reference: MembershipRef::new(&self.id, format!("key:{}", key.id)),
            hostname,
            node: None,
            state: MembershipState::Pending,
            address: None,
            auth_key: None,
            labels: self.labels(key.tags()),
        }
    }

    fn error(&self, kind: ErrorKind, op: Operation, message: impl Into<String>) -> Error {
        Error::new(kind, &self.id, op).with_message(message)
    }

    fn signal(
        &self,
        target: &Target,
        status: HealthStatus,
        rtt: Duration,
        detail: String,
    ) -> HealthSignal {
        HealthSignal {
            target: target.clone(),
            status,
            rtt: Some(rtt),
            observed_at: Utc::now(),
            detail,
        }
    }

    async fn probe(&self, target: &Target, op: Operation) -> Result<HealthSignal> {
        let started = Instant::now();
        match target {
            Target::Api => {
                self.client.ping(op).await?;
                Ok(self.signal(
                    target,
                    HealthStatus::Healthy,
                    started.elapsed(),
                    "API answered".into(),
                ))
            }
            Target::Membership(m) => {
                if let Some(id) = m.id.strip_prefix("device:") {
                    let Some(device) = self.client.get_device(op, id).await? else {
                        return Err(self.error(ErrorKind::NotFound, op, format!("no device {id}")));
                    };
                    let rtt = started.elapsed();
                    let (status, detail) = match (device.connected_to_control, device.last_seen) {
                        (Some(true), _) => {
                            (HealthStatus::Healthy, "connected to control".to_owned())
                        }
                        (Some(false), _) => (
                            HealthStatus::Degraded,
                            "not connected to control".to_owned(),
                        ),
                        (None, Some(seen)) => {
                            let ago = (Utc::now() - seen).to_std().unwrap_or_default();
                            let status = if ago <= SEEN_RECENTLY {
                                HealthStatus::Healthy
                            } else {
                                HealthStatus::Degraded
                            };
                            (status, format!("last seen {}s ago", ago.as_secs()))
                        }
                        (None, None) => (HealthStatus::Unknown, "never seen".to_owned()),
                    };
                    Ok(self.signal(target, status, rtt, detail))
                } else if let Some(id) = m.id.strip_prefix("key:") {
                    if self.client.get_key(op, id).await?.is_none() {
                        return Err(self.error(
                            ErrorKind::NotFound,
                            op,
                            format!("no auth key {id}"),
                        ));
                    }
                    Ok(self.signal(
                        target,
                        HealthStatus::Unknown,
                        started.elapsed(),
                        "pending: the member has not joined yet".into(),
                    ))
                } else {
                    Err(self.error(
                        ErrorKind::InvalidInput,
                        op,
                        format!("not a Tailscale membership: {m}"),
                    ))
                }
            }
            other => Err(self.error(
                ErrorKind::NotFound,
                op,
                format!("{other} is not a Tailscale resource"),
            )),
        }
    }

    /// Revokes every usable key carrying `key_tag`.
    async fn revoke_keys(&self, op: Operation, key_tag: &str) -> Result<()> {
        let now = Utc::now();
        for key in self.client.list_keys(op).await? {
            if key.usable(now) && key.tags().iter().any(|t| t == key_tag) {
                self.client.delete_key(op, &key.id).await?;
            }
        }
        Ok(())
    }
}

/// A name as a tag part: lowercase, `_` → `-`.
fn tag_part(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

#[async_trait]
impl Provider for Tailscale {
    damm_provider::provider_methods!(id, overlay);

    /// A tailnet is global: every DAMM region maps to `global`.
    fn region(&self, _region: &Region) -> Option<String> {
        Some("global".to_owned())
    }

    /// Tailscale creates no nodes: the inventory is always empty.
    async fn list_nodes(&self, _filter: &NodeFilter) -> Result<Vec<Node>> {
        Ok(Vec::new())
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        self.probe(target, Operation::ProbeHealth).await
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        let signal = self.probe(target, Operation::GetMetrics).await?;
        let mut metrics = Metrics::empty(target.clone(), signal.observed_at);
        metrics.rtt = signal.rtt;
        Ok(metrics)
    }
}

#[async_trait]
impl Overlay for Tailscale {
    async fn join_overlay(&self, spec: &OverlaySpec) -> Result<OverlayMembership> {
        let op = Operation::JoinOverlay;
        if spec
            .labels
            .get(LABEL_FLEET)
            .is_some_and(|f| f != self.fleet.as_str())
        {
            return Err(self.error(
                ErrorKind::InvalidInput,
                op,
                "the spec belongs to another fleet",
            ));
        }
        let (fleet_tag, key_tag) = (self.fleet_tag(), self.key_tag(&spec.key));
        // Replays: a device that joined with this key's tag is the membership.
        if let Some(device) = self
            .client
            .list_devices(op)
            .await?
            .into_iter()
            .find(|d| d.has_tag(&fleet_tag) && d.has_tag(&key_tag))
        {
            return Ok(self.joined(&device));
        }
        // An unused key from an earlier attempt cannot be read again (the secret is only
        // in the create answer): revoke it so one pending key remains.
        self.revoke_keys(op, &key_tag).await?;
        let description: String = format!("damm {}", spec.hostname)
            .chars()
            .take(MAX_DESCRIPTION)
            .collect();
        let body = json!({
            "capabilities": { "devices": { "create": {
                "reusable": false,
                "ephemeral": spec.ephemeral,
                "preauthorized": true,
                "tags": [fleet_tag, key_tag],
            }}},
            "expirySeconds": self.key_expiry_seconds,
            "description": description,
        });
        let key = self.client.create_key(op, body).await?;
        let Some(secret) = key.secret.clone() else {
            return Err(self
                .error(
                    ErrorKind::Unexpected,
                    op,
                    "the created auth key came back without its secret",
                )
                .set_temporary(true));
        };
        tracing::info!(provider = %self.id, key_id = %key.id, "minted a Tailscale auth key");
        Ok(OverlayMembership {
            reference: MembershipRef::new(&self.id, format!("key:{}", key.id)),
            hostname: spec.hostname.clone(),
            node: spec.node.clone(),
            state: MembershipState::Pending,
            address: None,
            auth_key: Some(secret),
            labels: Labels::owned(&self.fleet, &spec.key),
        })
    }

    async fn leave_overlay(&self, membership: &MembershipRef) -> Result<()> {
        let op = Operation::LeaveOverlay;
        if let Some(id) = membership.id.strip_prefix("device:") {
            let Some(device) = self.client.get_device(op, id).await? else {
                return Ok(());
            };
            if !device.has_tag(&self.fleet_tag()) {
                return Err(self.error(
                    ErrorKind::InvalidInput,
                    op,
                    format!("device {id} does not carry {}", self.fleet_tag()),
                ));
            }
            self.client.delete_device(op, id).await?;
            if let Some(key) = self.key_of_tags(&device.tags) {
                self.revoke_keys(op, &format!("{}-key-{key}", self.tag_prefix))
                    .await?;
            }
            Ok(())
        } else if let Some(id) = membership.id.strip_prefix("key:") {
            if let Some(key) = self.client.get_key(op, id).await?
                && !key.tags().iter().any(|t| *t == self.fleet_tag())
            {
                return Err(self.error(
                    ErrorKind::InvalidInput,
                    op,
                    format!("auth key {id} does not carry {}", self.fleet_tag()),
                ));
            }
            self.client.delete_key(op, id).await?;
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::InvalidInput,
                op,
                format!("not a Tailscale membership: {membership}"),
            ))
        }
    }

    async fn list_memberships(&self) -> Result<Vec<OverlayMembership>> {
        let op = Operation::ListMemberships;
        let fleet_tag = self.fleet_tag();
        let devices: Vec<Device> = self
            .client
            .list_devices(op)
            .await?
            .into_iter()
            .filter(|d| d.has_tag(&fleet_tag))
            .collect();
        let joined_keys: Vec<String> = devices
            .iter()
            .filter_map(|d| self.key_of_tags(&d.tags))
            .collect();
        let now = Utc::now();
        let mut all: Vec<OverlayMembership> = devices.iter().map(|d| self.joined(d)).collect();
        for key in self.client.list_keys(op).await? {
            let tags = key.tags();
            if key.usable(now)
                && tags.contains(&fleet_tag)
                && !self
                    .key_of_tags(tags)
                    .is_some_and(|k| joined_keys.contains(&k))
            {
                all.push(self.pending(&key));
            }
        }
        Ok(all)
    }
}
