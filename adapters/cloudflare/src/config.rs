//! Settings: section `[providers.cloudflare]`, or `DAMM_CLOUDFLARE_<FIELD>` in the environment.

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::SecretString;
use serde::Deserialize;

/// Cloudflare's production API.
pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4/";

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareConfig {
    /// Base URL of the API, ending in `/` (point it at the simulator in tests).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// API token (`DAMM_CLOUDFLARE_TOKEN` or `DAMM_CLOUDFLARE_TOKEN_FILE`); needs DNS edit
    /// on the zone and Cloudflare Tunnel edit on the account.
    pub token: SecretString,
    /// The account that owns the tunnels; taken from the zone when absent.
    #[serde(default)]
    pub account_id: Option<String>,
    /// The zone's name (`damm.example`); one of `zone` and `zone_id` is required.
    #[serde(default)]
    pub zone: Option<String>,
    /// The zone's id; looked up by `zone` when absent.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// DAMM's subdomain under the zone: fronts are `<name>.<subdomain>.<zone>`.
    #[serde(default = "default_subdomain")]
    pub subdomain: String,
    /// Timeout of one API request, in milliseconds.
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    /// DAMM region → the name reported for it (Cloudflare is global: every region in
    /// the default map answers `global`).
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_subdomain() -> String {
    "damm".to_owned()
}

impl fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_url", &self.api_url)
            .field("token", &"[redacted]")
            .field("account_id", &self.account_id)
            .field("zone", &self.zone)
            .field("zone_id", &self.zone_id)
            .field("subdomain", &self.subdomain)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("regions", &self.regions)
            .finish()
    }
}
