//! Settings: section `[providers.hetzner]`, or `DAMM_HETZNER_<FIELD>` in the environment.

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::SecretString;
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
    /// DAMM region → Hetzner location, added to (and overriding) the built-in table.
    #[serde(default)]
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
        let mut table: BTreeMap<String, String> = REGIONS
            .iter()
            .map(|(d, h)| ((*d).to_owned(), (*h).to_owned()))
            .collect();
        table.extend(self.regions.clone());
        table
    }

    /// The profile table in force: the built-in one, with the configured entries on top.
    pub fn profile_table(&self) -> BTreeMap<String, Profile> {
        let mut table: BTreeMap<String, Profile> = PROFILES
            .iter()
            .map(|(name, server_type, cents)| {
                let profile = Profile {
                    server_type: (*server_type).to_owned(),
                    monthly_cents: *cents,
                    currency: eur(),
                };
                ((*name).to_owned(), profile)
            })
            .collect();
        table.extend(self.profiles.clone());
        table
    }
}
