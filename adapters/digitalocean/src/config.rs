//! Settings: section `[providers.digitalocean]`, or `DAMM_DIGITALOCEAN_<FIELD>` in the
//! environment (`DAMM_DIGITALOCEAN_<FIELD>_FILE` reads the value from a file).
//!
//! ```toml
//! [providers.digitalocean]
//! token_file = "/run/secrets/do-token"
//! regions = { eu-north = "ams3" }            # added to (or overriding) the built-in table
//! profiles = { tiny = { size = "s-1vcpu-512mb-10gb", monthly_cents = 400, currency = "USD" } }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use damm_provider::config::env_name;
use damm_provider::http::check_base_url;
use damm_provider::tables::{check_tables, profile_table, region_table, string_table};
use damm_provider::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The adapter's name: its config section and its environment prefix.
pub(crate) const ADAPTER: &str = "digitalocean";

/// DigitalOcean's public API.
pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com/v2";

/// The built-in region table: DAMM region → DigitalOcean region slug.
pub const DEFAULT_REGIONS: &[(&str, &str)] = &[
    ("ap-southeast", "sgp1"),
    ("eu-central", "fra1"),
    ("eu-west", "ams3"),
    ("uk", "lon1"),
    ("us-east", "nyc3"),
    ("us-west", "sfo3"),
];

/// The built-in profiles: profile → (size slug, monthly price in US cents).
pub const DEFAULT_PROFILES: &[(&str, &str, u64)] = &[
    ("large", "s-2vcpu-2gb", 1800),
    ("medium", "s-1vcpu-2gb", 1200),
    ("small", "s-1vcpu-1gb", 600),
];

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitaloceanConfig {
    /// Base URL of the API, up to and including `/v2` (tests point it at the simulator).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// API token (`DAMM_DIGITALOCEAN_TOKEN` or `DAMM_DIGITALOCEAN_TOKEN_FILE`); required.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// DAMM region → DigitalOcean region, added to (or overriding) [`DEFAULT_REGIONS`].
    /// A table, or in the environment a list such as `eu-central=fra1,uk=lon1`.
    #[serde(default, deserialize_with = "string_table")]
    pub regions: BTreeMap<String, String>,
    /// Size profiles, added to (or overriding) [`DEFAULT_PROFILES`].
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Image slug new droplets boot.
    #[serde(default = "default_image")]
    pub image: String,
    /// Items per page when listing (1–200).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

/// What a DAMM size profile means at DigitalOcean.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Droplet size slug (`s-1vcpu-1gb`).
    pub size: String,
    /// Monthly price in hundredths of `currency`.
    pub monthly_cents: u64,
    /// ISO 4217 code; DigitalOcean bills in `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_image() -> String {
    "debian-12-x64".to_owned()
}

fn default_page_size() -> u32 {
    200
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

fn default_currency() -> String {
    "USD".to_owned()
}

impl DigitaloceanConfig {
    /// Checks what serde cannot: the token is there, the numbers are in range, the URL
    /// is an http(s) URL, the region and profile tables are well-formed.
    pub fn validate(&self) -> Result<(), String> {
        let env = env_name(ADAPTER);
        match &self.token {
            Some(token) if !token.expose_secret().trim().is_empty() => {}
            _ => {
                return Err(format!(
                    "no API token: set DAMM_{env}_TOKEN (or DAMM_{env}_TOKEN_FILE, or `token` in [providers.{ADAPTER}])"
                ));
            }
        }
        check_base_url(&self.api_url)?;
        if !(1..=200).contains(&self.page_size) {
            return Err(format!(
                "page_size {} is out of range (1-200)",
                self.page_size
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("request_timeout_ms must be at least 1".to_owned());
        }
        if self.image.trim().is_empty() {
            return Err("image must not be empty".to_owned());
        }
        check_tables(&self.regions, &self.profiles, "size", |p| {
            (&p.size, &p.currency)
        })
    }

    /// The region table in force: the built-in one with this config's entries over it.
    pub fn region_table(&self) -> BTreeMap<String, String> {
        region_table(DEFAULT_REGIONS, &self.regions)
    }

    /// The profiles in force: the built-in ones with this config's entries over them.
    pub fn profile_table(&self) -> BTreeMap<String, Profile> {
        profile_table(DEFAULT_PROFILES, &self.profiles, |size, cents| Profile {
            size: size.to_owned(),
            monthly_cents: cents,
            currency: default_currency(),
        })
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

impl fmt::Debug for DigitaloceanConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigitaloceanConfig")
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

#[cfg(test)]
mod tests {
    use damm_provider::FleetId;
    use damm_provider::config::AdapterConfig;
    use damm_provider::testkit::checks;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<DigitaloceanConfig, String> {
        let settings: DigitaloceanConfig = checks::settings(ADAPTER, env)?;
        settings.validate().map(|()| settings)
    }

    #[test]
    fn defaults_fill_everything_but_the_token() {
        let err = load(&[]).unwrap_err();
        assert!(err.contains("DAMM_DIGITALOCEAN_TOKEN"), "{err}");
        let s = load(&[("DAMM_DIGITALOCEAN_TOKEN", "dop_v1_secret")]).unwrap();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.image, "debian-12-x64");
        assert_eq!(s.page_size, 200);
        assert_eq!(s.request_timeout(), Duration::from_secs(10));
        let regions = s.region_table();
        assert_eq!(regions["eu-central"], "fra1");
        assert_eq!(regions["uk"], "lon1");
        let profiles = s.profile_table();
        assert_eq!(profiles["small"].size, "s-1vcpu-1gb");
        assert_eq!(profiles["large"].monthly_cents, 1800);
        assert_eq!(profiles["medium"].currency, "USD");
    }

    #[test]
    fn debug_redacts_the_token() {
        let s = load(&[("DAMM_DIGITALOCEAN_TOKEN", "dop_v1_secret")]).unwrap();
        checks::assert_redacted(&format!("{s:?}"), &["dop_v1_secret"]);
    }

    #[test]
    fn regions_merge_over_the_defaults_and_read_from_a_string() {
        let s = load(&[
            ("DAMM_DIGITALOCEAN_TOKEN", "t"),
            (
                "DAMM_DIGITALOCEAN_REGIONS",
                "eu-central=ams3, eu-north=ams3",
            ),
        ])
        .unwrap();
        let regions = s.region_table();
        assert_eq!(regions["eu-central"], "ams3");
        assert_eq!(regions["eu-north"], "ams3");
        assert_eq!(regions["us-east"], "nyc3");
        let err = load(&[
            ("DAMM_DIGITALOCEAN_TOKEN", "t"),
            ("DAMM_DIGITALOCEAN_REGIONS", "fra1"),
        ])
        .unwrap_err();
        assert!(
            err.contains("`fra1` is not of the form damm-region="),
            "{err}"
        );
    }

    #[test]
    fn the_file_section_is_strict_and_located() {
        let text = "[providers.digitalocean]\ntoken = \"t\"\npage_size = 2\n\n[providers.digitalocean.profiles.tiny]\nsize = \"s-1vcpu-512mb-10gb\"\nmonthly_cents = 400\n";
        let config = AdapterConfig::from_toml(
            FleetId::new("f").unwrap(),
            ADAPTER,
            "fleet.toml",
            text,
            &["providers", "digitalocean"],
        )
        .without_env();
        let s: DigitaloceanConfig = config.load(ADAPTER).unwrap();
        s.validate().unwrap();
        assert_eq!(s.page_size, 2);
        assert_eq!(s.profile_table()["tiny"].currency, "USD");
        assert_eq!(s.profile_table()["small"].monthly_cents, 600);

        let typo = "[providers.digitalocean]\ntoken = \"t\"\npage_sise = 2\n";
        let config = AdapterConfig::from_toml(
            FleetId::new("f").unwrap(),
            ADAPTER,
            "fleet.toml",
            typo,
            &["providers", "digitalocean"],
        )
        .without_env();
        let err = config.load::<DigitaloceanConfig>(ADAPTER).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("line 3") && err.contains("page_sise"), "{err}");
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        for (key, value, needle) in [
            ("DAMM_DIGITALOCEAN_PAGE_SIZE", "0", "page_size"),
            ("DAMM_DIGITALOCEAN_PAGE_SIZE", "201", "page_size"),
            (
                "DAMM_DIGITALOCEAN_REQUEST_TIMEOUT_MS",
                "0",
                "request_timeout_ms",
            ),
            (
                "DAMM_DIGITALOCEAN_API_URL",
                "ftp://example.invalid",
                "api_url",
            ),
        ] {
            let err = load(&[("DAMM_DIGITALOCEAN_TOKEN", "t"), (key, value)]).unwrap_err();
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }
}
