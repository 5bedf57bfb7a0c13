//! Settings: section `[providers.gce]`, or `DAMM_GCE_<FIELD>` in the environment
//! (`DAMM_GCE_<FIELD>_FILE` reads the value from a file).
//!
//! ```toml
//! [providers.gce]
//! project = "my-vpn-project"
//! # credentials: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud,
//! # the metadata server) unless `token` or `anonymous` says otherwise
//! regions = { eu-central = "europe-west3-b" }   # DAMM region → zone, over the built-in table
//! profiles = { tiny = { machine_type = "e2-micro", monthly_cents = 611 } }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use damm_provider::tables::{check_tables, profile_table, region_table, string_table};
use damm_provider::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The adapter's name: its config section and its environment prefix.
pub(crate) const ADAPTER: &str = "gce";

/// Google's Compute Engine endpoint.
pub const DEFAULT_API_URL: &str = "https://compute.googleapis.com";

/// The built-in region table: DAMM region → Compute Engine zone (the region is the zone
/// without its letter). The DAMM names are the ones the other adapters use.
pub const DEFAULT_REGIONS: &[(&str, &str)] = &[
    ("ap-southeast", "asia-southeast1-a"),
    ("eu-central", "europe-west3-a"),
    ("eu-north", "europe-north1-a"),
    ("eu-south", "europe-west8-a"),
    ("eu-west", "europe-west4-a"),
    ("uk", "europe-west2-a"),
    ("us-east", "us-east4-a"),
    ("us-west", "us-west1-a"),
];

/// The built-in profiles: profile → machine type and its on-demand list price per month
/// (730 hours) in US cents, in us-central1; other regions cost somewhat more.
pub const DEFAULT_PROFILES: &[(&str, &str, u64)] = &[
    ("large", "e2-standard-2", 4891),
    ("medium", "e2-medium", 2446),
    ("small", "e2-small", 1223),
];

/// What a DAMM size profile means at Compute Engine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Machine type (`e2-small`).
    pub machine_type: String,
    /// Monthly price in hundredths of `currency`.
    pub monthly_cents: u64,
    /// ISO 4217 code; Google bills in `USD` unless the billing account says otherwise.
    #[serde(default = "default_currency")]
    pub currency: String,
}

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GceConfig {
    /// The Google Cloud project every resource lives in (`DAMM_GCE_PROJECT`); required.
    #[serde(default)]
    pub project: Option<String>,
    /// The API endpoint, without `/compute/v1` (tests point it at the simulator,
    /// `http://127.0.0.1:PORT/gce`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// A ready OAuth 2.0 access token sent as `Authorization: Bearer` (short-lived; for
    /// tests and for tokens minted elsewhere). Without it, and without `anonymous`,
    /// Application Default Credentials are used.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Send no credentials at all (emulators that do not check them).
    #[serde(default)]
    pub anonymous: bool,
    /// DAMM region → zone, added to (or overriding) [`DEFAULT_REGIONS`]. A table, or in
    /// the environment a list such as `eu-central=europe-west3-b,uk=europe-west2-a`.
    #[serde(default, deserialize_with = "string_table")]
    pub regions: BTreeMap<String, String>,
    /// Size profiles, added to (or overriding) [`DEFAULT_PROFILES`].
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Boot image of new instances.
    #[serde(default = "default_image")]
    pub image: String,
    /// Network of new instances' interface.
    #[serde(default = "default_network")]
    pub network: String,
    /// Items per list page (1–500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long to wait for an operation to finish, in milliseconds.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_image() -> String {
    "projects/debian-cloud/global/images/family/debian-12".to_owned()
}

fn default_network() -> String {
    "global/networks/default".to_owned()
}

fn default_page_size() -> u32 {
    500
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

fn default_operation_timeout_ms() -> u64 {
    300_000
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// A zone's region: `europe-west3-a` → `europe-west3`.
pub(crate) fn region_of_zone(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(region, _)| region)
}

impl GceConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        match &self.project {
            Some(p) if !p.trim().is_empty() => {}
            _ => {
                return Err(
                    "no project: set DAMM_GCE_PROJECT (or `project` in [providers.gce])".into(),
                );
            }
        }
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose_secret().trim().is_empty())
        {
            return Err("token is empty".into());
        }
        if self.token.is_some() && self.anonymous {
            return Err("token and anonymous exclude each other".into());
        }
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            return Err(format!("api_url `{}` must be an http(s) URL", self.api_url));
        }
        if !(1..=500).contains(&self.page_size) {
            return Err(format!(
                "page_size {} is out of range (1-500)",
                self.page_size
            ));
        }
        if self.request_timeout_ms == 0 || self.operation_timeout_ms == 0 {
            return Err("request_timeout_ms and operation_timeout_ms must be at least 1".into());
        }
        for (damm, zone) in &self.regions {
            if zone.matches('-').count() < 2 {
                return Err(format!(
                    "regions: `{damm}` maps to `{zone}`, which is not a zone (like europe-west3-a)"
                ));
            }
        }
        check_tables(&self.regions, &self.profiles, "machine_type", |p| {
            (&p.machine_type, &p.currency)
        })
    }

    /// The region table in force: DAMM region → zone.
    pub fn zone_table(&self) -> BTreeMap<String, String> {
        region_table(DEFAULT_REGIONS, &self.regions)
    }

    /// The profiles in force.
    pub fn profile_table(&self) -> BTreeMap<String, Profile> {
        profile_table(
            DEFAULT_PROFILES,
            &self.profiles,
            |machine_type, monthly_cents| Profile {
                machine_type: machine_type.to_owned(),
                monthly_cents,
                currency: default_currency(),
            },
        )
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The longest wait for one operation.
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_millis(self.operation_timeout_ms.max(1))
    }
}

impl fmt::Debug for GceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GceConfig")
            .field("project", &self.project)
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("anonymous", &self.anonymous)
            .field("regions", &self.regions)
            .field("profiles", &self.profiles)
            .field("image", &self.image)
            .field("network", &self.network)
            .field("page_size", &self.page_size)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("operation_timeout_ms", &self.operation_timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use damm_provider::testkit::checks;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<GceConfig, String> {
        let settings: GceConfig = checks::settings(ADAPTER, env)?;
        settings.validate().map(|()| settings)
    }

    #[test]
    fn defaults_fill_everything_but_the_project() {
        let err = load(&[]).unwrap_err();
        assert!(err.contains("DAMM_GCE_PROJECT"), "{err}");
        let s = load(&[("DAMM_GCE_PROJECT", "p")]).unwrap();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.page_size, 500);
        assert_eq!(s.zone_table()["eu-central"], "europe-west3-a");
        assert_eq!(region_of_zone(&s.zone_table()["uk"]), "europe-west2");
        assert_eq!(s.profile_table()["small"].machine_type, "e2-small");
        assert_eq!(s.request_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn regions_come_from_the_environment_over_the_built_in_table() {
        let s = load(&[
            ("DAMM_GCE_PROJECT", "p"),
            (
                "DAMM_GCE_REGIONS",
                "eu-central=europe-west3-b, mars=mars-north1-a",
            ),
        ])
        .unwrap();
        let zones = s.zone_table();
        assert_eq!(zones["eu-central"], "europe-west3-b");
        assert_eq!(zones["mars"], "mars-north1-a");
        assert_eq!(zones["uk"], "europe-west2-a");
        let err = load(&[("DAMM_GCE_PROJECT", "p"), ("DAMM_GCE_REGIONS", "uk=europe")]);
        assert!(err.unwrap_err().contains("not a zone"));
    }

    #[test]
    fn the_token_never_shows() {
        let s = load(&[
            ("DAMM_GCE_PROJECT", "p"),
            ("DAMM_GCE_TOKEN", "ya29.secret-token"),
        ])
        .unwrap();
        checks::assert_redacted(&format!("{s:?}"), &["ya29.secret-token"]);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = load(&[("DAMM_GCE_PROJECT", "p"), ("DAMM_GCE_PAGE_SIZE", "0")]).unwrap_err();
        assert!(err.contains("page_size"), "{err}");
        let err = load(&[
            ("DAMM_GCE_PROJECT", "p"),
            ("DAMM_GCE_TOKEN", "t"),
            ("DAMM_GCE_ANONYMOUS", "true"),
        ])
        .unwrap_err();
        assert!(err.contains("anonymous"), "{err}");
    }
}
