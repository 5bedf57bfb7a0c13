//! DAMM adapter for AWS EC2 on `aws-sdk-ec2`: instances as nodes (compute), Elastic IPs
//! as ingress front doors and egress addresses. Everything it creates carries the
//! `damm-fleet` and `damm-key` tags; it never touches a resource without the fleet tag.

mod backend;
mod config;
mod core;

pub use backend::{Aws, CAPABILITIES};
pub use config::{AwsConfig, PROFILES, Profile, REGIONS};

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// The registry's entry for this adapter.
pub const ADAPTER: AdapterDescriptor = AdapterDescriptor {
    name: "aws",
    summary: "AWS EC2: instances, Elastic IPs (front doors and egress)",
    capabilities: CAPABILITIES,
    build: |config: AdapterConfig| {
        Box::pin(async move {
            let provider: Arc<dyn Provider> = Arc::new(Aws::from_config(&config)?);
            Ok(provider)
        })
    },
};
