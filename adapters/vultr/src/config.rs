//! Settings: section `[providers.vultr]`, or `DAMM_VULTR_<FIELD>` in the environment
//! (`DAMM_VULTR_<FIELD>_FILE` reads the value from a file, as container secrets are
//! mounted).
//!
//! ```toml
//! [providers.vultr]
//! token_file = "/run/secrets/vultr"     # or DAMM_VULTR_TOKEN
//! regions = { eu-north = "sto" }        # added to the built-in table
//! profiles = { tiny = { plan = "vc2-1c-0.5gb", monthly_cents = 350 } }
//! page_size = 500
//! request_timeout_ms = 10000
//! ```

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::http::check_base_url;
use damm_provider::tables::{check_tables, profile_table, region_table, string_table};
use damm_provider::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// The API's public base URL.
pub(crate) const DEFAULT_API_URL: &str = "https://api.vultr.com/v2";

/// Built-in DAMM region → Vultr region table.
pub(crate) const DEFAULT_REGIONS: &[(&str, &str)] = &[
    ("ap-southeast", "sgp"),
    ("eu-central", "fra"),
    ("eu-west", "ams"),
    ("uk", "lhr"),
    ("us-east", "ewr"),
    ("us-west", "lax"),
];

/// Built-in size profiles: profile, Vultr plan, monthly price in US cents.
pub(crate) const DEFAULT_PROFILES: &[(&str, &str, u64)] = &[
    ("small", "vc2-1c-1gb", 500),
    ("medium", "vc2-1c-2gb", 1000),
    ("large", "vc2-2c-4gb", 2000),
];

/// Debian 12 x64.
pub(crate) const DEFAULT_OS_ID: u32 = 2136;

/// The largest page Vultr serves.
pub(crate) const MAX_PAGE_SIZE: u32 = 500;

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VultrConfig {
    /// Base URL of the API (tests point it at the simulator on 127.0.0.1).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// API token (`DAMM_VULTR_TOKEN` or `DAMM_VULTR_TOKEN_FILE`); required.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// DAMM region → Vultr region. Entries given in the config are added to (or replace
    /// entries of) the built-in table. From the environment: `"eu-north=sto,uk=lhr"`.
    #[serde(default = "default_regions", deserialize_with = "regions")]
    pub regions: BTreeMap<String, String>,
    /// Size profile → plan and price. Entries given are added to (or replace entries of)
    /// the built-in `small`, `medium` and `large`.
    #[serde(default = "default_profiles", deserialize_with = "profiles")]
    pub profiles: BTreeMap<String, Profile>,
    /// Operating system of new instances.
    #[serde(default = "default_os_id")]
    pub os_id: u32,
    /// Items per page when listing (1–500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

/// What a size profile means at Vultr.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Vultr plan id (`vc2-1c-1gb`).
    pub plan: String,
    /// Monthly price in hundredths of `currency`.
    pub monthly_cents: u64,
    /// ISO 4217 code of the price; default `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
}

impl Default for VultrConfig {
    /// The built-in settings, without a token.
    fn default() -> Self {
        VultrConfig {
            api_url: default_api_url(),
            token: None,
            regions: default_regions(),
            profiles: default_profiles(),
            os_id: default_os_id(),
            page_size: default_page_size(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }
}

impl VultrConfig {
    /// The token, unless it is missing or blank.
    pub fn token(&self) -> Option<&SecretString> {
        self.token
            .as_ref()
            .filter(|t| !t.expose_secret().trim().is_empty())
    }

    /// Checks the values serde cannot: the URL, the ranges, the region and profile tables.
    pub fn validate(&self) -> Result<(), String> {
        check_base_url(&self.api_url)?;
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(format!(
                "`page_size` must be 1 to {MAX_PAGE_SIZE}, not {}",
                self.page_size
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("`request_timeout_ms` must be at least 1".to_owned());
        }
        check_tables(&self.regions, &self.profiles, "plan", |p| {
            (&p.plan, &p.currency)
        })
    }
}

impl fmt::Debug for VultrConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VultrConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("regions", &self.regions)
            .field("profiles", &self.profiles)
            .field("os_id", &self.os_id)
            .field("page_size", &self.page_size)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_regions() -> BTreeMap<String, String> {
    region_table(DEFAULT_REGIONS, &BTreeMap::new())
}

fn default_profiles() -> BTreeMap<String, Profile> {
    profile_table(DEFAULT_PROFILES, &BTreeMap::new(), built_in_profile)
}

fn built_in_profile(plan: &str, monthly_cents: u64) -> Profile {
    Profile {
        plan: plan.to_owned(),
        monthly_cents,
        currency: default_currency(),
    }
}

fn default_currency() -> String {
    "USD".to_owned()
}

fn default_os_id() -> u32 {
    DEFAULT_OS_ID
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

/// The built-in table with the configured entries (a table, or `damm=vultr` pairs
/// separated by commas, the environment form) over it.
fn regions<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(region_table(DEFAULT_REGIONS, &string_table(d)?))
}

/// The built-in profiles with the configured ones over them.
fn profiles<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Profile>, D::Error> {
    let given = BTreeMap::<String, Profile>::deserialize(d)?;
    Ok(profile_table(DEFAULT_PROFILES, &given, built_in_profile))
}

#[cfg(test)]
mod tests {
    use damm_provider::FleetId;
    use damm_provider::config::AdapterConfig;
    use damm_provider::testkit::checks;

    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<VultrConfig, String> {
        AdapterConfig::from_toml(
            FleetId::new("f").unwrap(),
            "vultr",
            "fleet.toml",
            toml,
            &["providers", "vultr"],
        )
        .with_env(env.iter().copied())
        .load::<VultrConfig>("vultr")
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_everything_but_the_token() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert!(c.token().is_none());
        assert_eq!(c.regions["eu-central"], "fra");
        assert_eq!(c.regions["ap-southeast"], "sgp");
        assert_eq!(c.profiles["medium"].plan, "vc2-1c-2gb");
        assert_eq!(c.profiles["large"].monthly_cents, 2000);
        assert_eq!(c.profiles["small"].currency, "USD");
        assert_eq!(
            (c.os_id, c.page_size, c.request_timeout_ms),
            (2136, 500, 10_000)
        );
        c.validate().unwrap();
    }

    #[test]
    fn tables_extend_the_defaults_and_env_wins() {
        let toml = "[providers.vultr]\nregions = { eu-north = \"sto\" }\n\
                    profiles = { tiny = { plan = \"vc2-1c-0.5gb\", monthly_cents = 350 } }\n";
        let c = load(
            toml,
            &[("DAMM_VULTR_PAGE_SIZE", "2"), ("DAMM_VULTR_TOKEN", "t0k3n")],
        )
        .unwrap();
        assert_eq!(c.regions["eu-north"], "sto");
        assert_eq!(c.regions["uk"], "lhr");
        assert_eq!(c.profiles["tiny"].monthly_cents, 350);
        assert_eq!(c.profiles["small"].plan, "vc2-1c-1gb");
        assert_eq!(c.page_size, 2);
        assert_eq!(c.token().unwrap().expose_secret(), "t0k3n");
        let c = load("", &[("DAMM_VULTR_REGIONS", "eu-north=sto, uk=man")]).unwrap();
        assert_eq!(c.regions["eu-north"], "sto");
        assert_eq!(c.regions["uk"], "man");
        assert!(load("", &[("DAMM_VULTR_REGIONS", "eu-north")]).is_err());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let err = load("[providers.vultr]\ntokn = \"x\"\n", &[]).unwrap_err();
        assert!(err.contains("tokn") && err.contains("line 2"), "{err}");
        let c = load("", &[("DAMM_VULTR_PAGE_SIZE", "501")]).unwrap();
        assert!(c.validate().unwrap_err().contains("page_size"));
        let c = load("", &[("DAMM_VULTR_API_URL", "ftp://x")]).unwrap();
        assert!(c.validate().unwrap_err().contains("api_url"));
        let c = load("[providers.vultr]\nregions = { EU = \"fra\" }\n", &[]).unwrap();
        assert!(c.validate().unwrap_err().contains("regions"));
    }

    #[test]
    fn debug_hides_the_token() {
        let c = load("", &[("DAMM_VULTR_TOKEN", "hunter2-secret")]).unwrap();
        checks::assert_redacted(&format!("{c:?}"), &["hunter2-secret"]);
    }
}
