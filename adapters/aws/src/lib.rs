//! DAMM adapter for AWS: on `aws-sdk-ec2`, instances as nodes (compute) and Elastic IPs
//! as ingress front doors and egress addresses; on `aws-sdk-cloudfront`, CloudFront
//! distributions as CDN fronts (`cdn_front`). Everything it creates carries the
//! `damm-fleet` and `damm-key` tags; it never touches a resource without the fleet tag.

mod backend;
mod config;
mod core;

pub use backend::{Aws, CAPABILITIES};
pub use config::{AwsConfig, PROFILES, Profile, REGIONS};

damm_provider::adapter!(
    "aws",
    "AWS: EC2 instances, Elastic IPs (front doors and egress), CloudFront fronts",
    CAPABILITIES,
    Aws::from_config
);
