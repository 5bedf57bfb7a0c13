//! Settings: section `[providers.aws]`, or `DAMM_AWS_<FIELD>` in the environment.
//!
//! Credentials come from `access_key_id` + `secret_access_key` (+ `session_token`) when
//! set, and otherwise from the AWS SDK's standard chain (`AWS_ACCESS_KEY_ID`, the shared
//! profile files, web identity, ECS/EC2 instance roles).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use damm_provider::tables::{check_tables, profile_table, region_table, string_table};
use damm_provider::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A size profile: the EC2 instance type and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// EC2 instance type (`t3.micro`, ...).
    pub instance_type: String,
    /// Monthly price in hundredths of `currency` (on-demand, Linux, 730 hours).
    pub monthly_cents: u64,
    /// ISO 4217 code; AWS bills in `USD`.
    #[serde(default = "usd")]
    pub currency: String,
}

fn usd() -> String {
    "USD".to_owned()
}

/// The built-in region table: DAMM region → AWS region. Only regions every account has
/// enabled (opt-in regions such as eu-south-1 would make listings fail until enabled).
pub const REGIONS: &[(&str, &str)] = &[
    ("ap-southeast", "ap-southeast-1"),
    ("eu-central", "eu-central-1"),
    ("eu-north", "eu-north-1"),
    ("eu-west", "eu-west-1"),
    ("uk", "eu-west-2"),
    ("us-east", "us-east-1"),
    ("us-west", "us-west-2"),
];

/// The built-in profiles: name, instance type, monthly price in US cents (us-east-1
/// on-demand Linux list price × 730 hours; other regions cost somewhat more).
pub const PROFILES: &[(&str, &str, u64)] = &[
    ("large", "c6i.large", 6205),
    ("medium", "t3.small", 1518),
    ("small", "t3.micro", 759),
];

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Endpoint of EC2 in every region and of CloudFront (tests point it at moto on
    /// 127.0.0.1); unset means AWS's own endpoints.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Access key id (`DAMM_AWS_ACCESS_KEY_ID`); unset means the standard credential chain.
    #[serde(default)]
    pub access_key_id: Option<SecretString>,
    /// Secret access key (`DAMM_AWS_SECRET_ACCESS_KEY` or `DAMM_AWS_SECRET_ACCESS_KEY_FILE`).
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// Session token of temporary credentials (`DAMM_AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub session_token: Option<SecretString>,
    /// DAMM region → AWS region, added to (and overriding) [`REGIONS`]. A table, or in
    /// the environment a list such as `eu-central=eu-central-1,uk=eu-west-2`.
    #[serde(default, deserialize_with = "string_table")]
    pub regions: BTreeMap<String, String>,
    /// Profile → instance type and price, added to (and overriding) [`PROFILES`].
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// AMI new instances boot, in every region without an entry in `amis`.
    #[serde(default)]
    pub ami: Option<String>,
    /// AWS region → AMI (AMI ids are regional), over `ami`.
    #[serde(default, deserialize_with = "string_table")]
    pub amis: BTreeMap<String, String>,
    /// AWS region → security groups of new instances (they must let WireGuard in);
    /// unset means the VPC's default group.
    #[serde(default)]
    pub security_groups: BTreeMap<String, Vec<String>>,
    /// Instances per DescribeInstances page (5–1000); distributions per ListDistributions
    /// page up to 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of one API request, in milliseconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// CloudFront fronts: the DNS domain under which `<address with dashes>.<domain>`
    /// resolves to that address (`192-0-2-10.origin.example.net` → 192.0.2.10), because a
    /// CloudFront origin must be a DNS name, never an IP address. Without it, fronts can be
    /// listed and retired, but not published or repointed.
    #[serde(default)]
    pub front_origin_domain: Option<String>,
    /// The gateways' T3 port, where CloudFront connects over plain HTTP: the policy's
    /// `[transports] t3_port`.
    #[serde(default = "default_front_port")]
    pub front_origin_port: u16,
    /// CloudFront's origin response timeout, in seconds (1–120; above 60 needs a quota
    /// increase): how long it waits for the gateway's answer to the upgrade.
    #[serde(default = "default_front_read_timeout")]
    pub front_read_timeout_s: u32,
    /// The edges fronts are served from: `PriceClass_All` (every edge, default),
    /// `PriceClass_200` or `PriceClass_100` (cheaper, fewer regions).
    #[serde(default = "default_price_class")]
    pub front_price_class: String,
}

/// CloudFront's price classes.
pub(crate) const PRICE_CLASSES: &[&str] = &["PriceClass_All", "PriceClass_200", "PriceClass_100"];

fn default_front_port() -> u16 {
    80
}

fn default_front_read_timeout() -> u32 {
    60
}

fn default_price_class() -> String {
    "PriceClass_All".to_owned()
}

/// Whether `domain` is a DNS name of at least two labels, each 1–63 letters, digits and
/// inner `-`, 253 bytes at most.
pub(crate) fn valid_dns_name(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn default_page_size() -> u32 {
    1000
}

fn default_timeout() -> u64 {
    10_000
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<SecretString>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("AwsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("regions", &self.regions)
            .field("profiles", &self.profiles)
            .field("ami", &self.ami)
            .field("amis", &self.amis)
            .field("security_groups", &self.security_groups)
            .field("page_size", &self.page_size)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("front_origin_domain", &self.front_origin_domain)
            .field("front_origin_port", &self.front_origin_port)
            .field("front_read_timeout_s", &self.front_read_timeout_s)
            .field("front_price_class", &self.front_price_class)
            .finish()
    }
}

impl AwsConfig {
    /// Checks what serde cannot: the numbers are in range, the endpoint is an http(s)
    /// URL, static credentials come as a pair.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.endpoint_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|host| host.trim_matches('/').is_empty()) {
                return Err(format!("endpoint_url `{url}` must be an http(s) URL"));
            }
        }
        let set =
            |s: &Option<SecretString>| s.as_ref().is_some_and(|s| !s.expose_secret().is_empty());
        match (set(&self.access_key_id), set(&self.secret_access_key)) {
            (true, false) => {
                return Err("access_key_id is set but secret_access_key is not (DAMM_AWS_SECRET_ACCESS_KEY)".to_owned());
            }
            (false, true) => {
                return Err(
                    "secret_access_key is set but access_key_id is not (DAMM_AWS_ACCESS_KEY_ID)"
                        .to_owned(),
                );
            }
            _ => {}
        }
        if set(&self.session_token) && !set(&self.access_key_id) {
            return Err("session_token needs access_key_id and secret_access_key".to_owned());
        }
        if !(5..=1000).contains(&self.page_size) {
            return Err(format!(
                "page_size {} is out of range (5-1000)",
                self.page_size
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("request_timeout_ms must be at least 1".to_owned());
        }
        check_tables(&self.regions, &self.profiles, "instance_type", |p| {
            (&p.instance_type, &p.currency)
        })?;
        if self.ami.as_ref().is_some_and(|a| a.trim().is_empty()) {
            return Err("ami must not be empty".to_owned());
        }
        if let Some(domain) = &self.front_origin_domain
            && !valid_dns_name(&domain.trim_end_matches('.').to_ascii_lowercase())
        {
            return Err(format!(
                "front_origin_domain `{domain}` is not a DNS domain (such as origin.example.net)"
            ));
        }
        if self.front_origin_port == 0 {
            return Err("front_origin_port must be 1-65535".to_owned());
        }
        if !(1..=120).contains(&self.front_read_timeout_s) {
            return Err(format!(
                "front_read_timeout_s {} is out of range (1-120)",
                self.front_read_timeout_s
            ));
        }
        if !PRICE_CLASSES.contains(&self.front_price_class.as_str()) {
            return Err(format!(
                "front_price_class `{}` is not one of {}",
                self.front_price_class,
                PRICE_CLASSES.join(", ")
            ));
        }
        Ok(())
    }

    /// The front origin domain in force, lower case, without a final dot.
    pub fn front_origin_domain(&self) -> Option<String> {
        self.front_origin_domain
            .as_deref()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
    }

    /// The region table in force: the built-in one, with the configured entries on top.
    pub fn region_table(&self) -> BTreeMap<String, String> {
        region_table(REGIONS, &self.regions)
    }

    /// The profile table in force: the built-in one, with the configured entries on top.
    pub fn profile_table(&self) -> BTreeMap<String, Profile> {
        profile_table(PROFILES, &self.profiles, |instance_type, monthly_cents| {
            Profile {
                instance_type: instance_type.to_owned(),
                monthly_cents,
                currency: usd(),
            }
        })
    }

    /// The timeout of one request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::testkit::checks;

    fn load(env: &[(&str, &str)]) -> Result<AwsConfig, String> {
        let settings: AwsConfig = checks::settings("aws", env)?;
        settings.validate().map(|()| settings)
    }

    #[test]
    fn tables_come_from_the_environment_and_override_the_built_in_ones() {
        let c = load(&[
            ("DAMM_AWS_REGIONS", "eu-central=eu-central-2, mars=mars-1"),
            ("DAMM_AWS_AMIS", "eu-central-2=ami-1"),
        ])
        .unwrap();
        let regions = c.region_table();
        assert_eq!(regions["eu-central"], "eu-central-2");
        assert_eq!(regions["mars"], "mars-1");
        assert_eq!(regions["us-east"], "us-east-1");
        assert_eq!(c.amis["eu-central-2"], "ami-1");
        assert_eq!(c.profile_table()["small"].instance_type, "t3.micro");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(load(&[("DAMM_AWS_PAGE_SIZE", "2")]).is_err());
        assert!(load(&[("DAMM_AWS_ENDPOINT_URL", "127.0.0.1:5000")]).is_err());
        let err = load(&[("DAMM_AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]).unwrap_err();
        assert!(err.contains("DAMM_AWS_SECRET_ACCESS_KEY"), "{err}");
        assert!(load(&[("DAMM_AWS_REGIONS", "nonsense")]).is_err());
        let err = load(&[("DAMM_AWS_FRONT_ORIGIN_DOMAIN", "192.0.2.1:80")]).unwrap_err();
        assert!(err.contains("front_origin_domain"), "{err}");
        assert!(load(&[("DAMM_AWS_FRONT_ORIGIN_DOMAIN", "localhost")]).is_err());
        assert!(load(&[("DAMM_AWS_FRONT_READ_TIMEOUT_S", "121")]).is_err());
        assert!(load(&[("DAMM_AWS_FRONT_ORIGIN_PORT", "0")]).is_err());
        let err = load(&[("DAMM_AWS_FRONT_PRICE_CLASS", "PriceClass_1")]).unwrap_err();
        assert!(err.contains("PriceClass_All"), "{err}");
        let c = load(&[("DAMM_AWS_FRONT_ORIGIN_DOMAIN", "Origin.Example.NET.")]).unwrap();
        assert_eq!(
            c.front_origin_domain().as_deref(),
            Some("origin.example.net")
        );
        assert_eq!((c.front_origin_port, c.front_read_timeout_s), (80, 60));
        let err = load(&[("DAMM_AWS_REGIONS", "uk=")]).unwrap_err();
        assert!(err.contains("`uk` maps to an empty region"), "{err}");
    }

    #[test]
    fn debug_hides_the_credentials() {
        let c = load(&[
            ("DAMM_AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("DAMM_AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
            ("DAMM_AWS_SESSION_TOKEN", "session-secret"),
        ])
        .unwrap();
        let secrets = ["very-secret", "session-secret", "AKIDEXAMPLE"];
        checks::assert_redacted(&format!("{c:?}"), &secrets);
    }
}
