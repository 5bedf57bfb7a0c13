//! DAMM adapter for AWS EC2 on `aws-sdk-ec2`: instances as nodes (compute), Elastic IPs
//! as ingress front doors and egress addresses. Everything it creates carries the
//! `damm-fleet` and `damm-key` tags; it never touches a resource without the fleet tag.

mod backend;
mod config;
mod core;

pub use backend::{Aws, CAPABILITIES};
pub use config::{AwsConfig, PROFILES, Profile, REGIONS};

damm_provider::adapter!(
    "aws",
    "AWS EC2: instances, Elastic IPs (front doors and egress)",
    CAPABILITIES,
    Aws::from_config
);
