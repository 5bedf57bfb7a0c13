//! Settings: section `[providers.hetzner]`, or `DAMM_HETZNER_<FIELD>` in the environment.

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::SecretString;
use damm_provider::tables::{profile_table, region_table, string_table};
use serde::Deserialize;

/// A size profile: the Hetzner server type and what it costs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server type name (`cx22`, ...).
    pub server_type: String,
    /// Monthly price in hundredths of `currency`.
    pub monthly_cents: u64,
    /// Billing currency.
    #[serde(default = "eur")]
    pub currency: String,
}

fn eur() -> String {
    "EUR".to_owned()
}

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HetznerConfig {
    /// Base URL of the API (tests point it at the simulator).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// API token (`DAMM_HETZNER_TOKEN` or `DAMM_HETZNER_TOKEN_FILE`).
    pub token: Option<SecretString>,
    /// DAMM region → Hetzner location, added to (and overriding) the built-in table. A
    /// table, or in the environment a list such as `eu-central=nbg1,us-east=ash`.
    #[serde(default, deserialize_with = "string_table")]
    pub regions: BTreeMap<String, String>,
    /// Profile → server type and price, added to (and overriding) the built-in table.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Image for new servers.
    #[serde(default = "default_image")]
    pub image: String,
    /// Entries per page when listing (Hetzner allows up to 50).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of one API request, in milliseconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
}

fn default_api_url() -> String {
    "https://api.hetzner.cloud/v1".to_owned()
}
fn default_image() -> String {
    "debian-12".to_owned()
}
fn default_page_size() -> u32 {
    50
}
fn default_timeout() -> u64 {
    10_000
}

impl fmt::Debug for HetznerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HetznerConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("regions", &self.regions)
            .field("profiles", &self.profiles)
            .field("image", &self.image)
            .field("page_size", &self.page_size)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

/// The built-in region table: DAMM region → Hetzner location.
pub const REGIONS: &[(&str, &str)] = &[
    ("ap-southeast", "sin"),
    ("eu-central", "fsn1"),
    ("eu-north", "hel1"),
    ("eu-south", "nbg1"),
    ("us-east", "ash"),
    ("us-west", "hil"),
];

/// The built-in profiles: name, server type, monthly price in euro cents (net).
pub const PROFILES: &[(&str, &str, u64)] = &[
    ("large", "cx32", 680),
    ("medium", "cpx21", 755),
    ("small", "cx22", 379),
];

impl HetznerConfig {
    /// The region table in force: the built-in one, with the configured entries on top.
    pub fn region_table(&self) -> BTreeMap<String, String> {
        region_table(REGIONS, &self.regions)
    }

    /// The profile table in force: the built-in one, with the configured entries on top.
    pub fn profile_table(&self) -> BTreeMap<String, Profile> {
        profile_table(PROFILES, &self.profiles, |server_type, monthly_cents| {
            Profile {
                server_type: server_type.to_owned(),
                monthly_cents,
                currency: eur(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use damm_provider::FleetId;
    use damm_provider::config::AdapterConfig;

    use super::*;

    #[test]
    fn configured_entries_are_laid_over_the_built_in_tables() {
        let config = AdapterConfig::new(FleetId::new("f").unwrap(), "hetzner")
            .with_env([("DAMM_HETZNER_REGIONS", "eu-central=nbg1, mars=mrs1")]);
        let settings: HetznerConfig = config.load("hetzner").unwrap();
        let regions = settings.region_table();
        assert_eq!(regions["eu-central"], "nbg1");
        assert_eq!(regions["mars"], "mrs1");
        assert_eq!(regions["us-east"], "ash");
        let small = &settings.profile_table()["small"];
        assert_eq!(
            (
                small.server_type.as_str(),
                small.monthly_cents,
                small.currency.as_str()
            ),
            ("cx22", 379, "EUR")
        );
    }
}
