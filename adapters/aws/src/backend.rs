//! The [`Provider`] implementation and the capability declaration.
//!
//! Each method below still answers `unsupported`: implement it against the provider's
//! API (see README.md), then run the conformance test against the simulator.

use std::collections::BTreeMap;

use chrono::Utc;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, Capabilities, Capability, Compute, Egress, EgressIp, EgressIpRef, Error,
    ErrorKind, ExposeSecret, FleetId, Frontdoor, FrontdoorRef, HealthSignal, HealthStatus, Ingress,
    Metrics, Node, NodeFilter, NodeRef, NodeSpec, Operation, Provider, Region, Result,
    SecretString, Target, async_trait,
};

use crate::config::AwsConfig;
use crate::core::{parse_error, retry_after};

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities =
    Capabilities::of(&[Capability::Compute, Capability::Ingress, Capability::Egress]);

/// The aws provider.
#[derive(Debug)]
pub struct Aws {
    id: String,
    fleet: FleetId,
    api_url: String,
    token: Option<SecretString>,
    regions: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl Aws {
    /// Builds the adapter from its settings.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {
        let id = config.instance().to_owned();
        let settings: AwsConfig = config.load("aws").map_err(|e| e.into_provider_error(&id))?;
        let http = reqwest::Client::builder().build().map_err(|e| {
            Error::new(ErrorKind::Unexpected, &id, Operation::Configure).with_source(e)
        })?;
        Ok(Aws {
            fleet: config.fleet().clone(),
            api_url: settings.api_url.trim_end_matches('/').to_owned(),
            token: settings.token,
            regions: settings.regions,
            http,
            id,
        })
    }

    /// The fleet whose resources this instance manages.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    fn not_yet(&self, operation: Operation) -> Error {
        Error::new(ErrorKind::Unsupported, &self.id, operation)
            .with_message("not implemented yet in adapters/aws/src/backend.rs")
    }
}

#[async_trait]
impl Provider for Aws {
    fn id(&self) -> &str {
        &self.id
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

    async fn list_nodes(&self, _filter: &NodeFilter) -> Result<Vec<Node>> {
        Err(self.not_yet(Operation::ListNodes))
    }

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        if *target != Target::Api {
            return Err(self.not_yet(Operation::ProbeHealth));
        }
        let mut request = self.http.get(&self.api_url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, &self.id, Operation::ProbeHealth).with_source(e)
        })?;
        let status = response.status().as_u16();
        if response.status().is_server_error() || status == 401 || status == 429 {
            let wait = retry_after(&response);
            let body = response.text().await.unwrap_or_default();
            return Err(parse_error(
                &self.id,
                Operation::ProbeHealth,
                status,
                wait,
                &body,
            ));
        }
        Ok(HealthSignal {
            target: Target::Api,
            status: HealthStatus::Healthy,
            rtt: Some(started.elapsed()),
            observed_at: Utc::now(),
            detail: format!("API answered HTTP {status}"),
        })
    }

    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        Ok(Metrics::empty(target.clone(), Utc::now()))
    }
}

#[async_trait]
impl Compute for Aws {
    async fn create_node(&self, _spec: &NodeSpec) -> Result<Node> {
        Err(self.not_yet(Operation::CreateIngressNode))
    }

    async fn drain_node(&self, _node: &NodeRef) -> Result<()> {
        Err(self.not_yet(Operation::DrainNode))
    }

    async fn retire_node(&self, _node: &NodeRef) -> Result<()> {
        Err(self.not_yet(Operation::RetireNode))
    }
}

#[async_trait]
impl Ingress for Aws {
    async fn allocate_ingress_frontdoor(&self, _spec: &AddressSpec) -> Result<Frontdoor> {
        Err(self.not_yet(Operation::AllocateIngressFrontdoor))
    }

    async fn release_ingress_frontdoor(&self, _frontdoor: &FrontdoorRef) -> Result<()> {
        Err(self.not_yet(Operation::ReleaseIngressFrontdoor))
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        Err(self.not_yet(Operation::ListFrontdoors))
    }
}

#[async_trait]
impl Egress for Aws {
    async fn allocate_egress_ip(&self, _spec: &AddressSpec) -> Result<EgressIp> {
        Err(self.not_yet(Operation::AllocateEgressIp))
    }

    async fn release_egress_ip(&self, _ip: &EgressIpRef) -> Result<()> {
        Err(self.not_yet(Operation::ReleaseEgressIp))
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        Err(self.not_yet(Operation::ListEgressIps))
    }
}
