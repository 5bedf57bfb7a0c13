//! Settings: section `[providers.gce]`, or `DAMM_GCE_<FIELD>` in the environment.

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::SecretString;
use serde::Deserialize;

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GceConfig {
    /// Base URL of the provider's API (point it at the simulator in tests).
    pub api_url: String,
    /// API token (`DAMM_GCE_TOKEN` or `DAMM_GCE_TOKEN_FILE`).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// DAMM region → the provider's region.
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
}

impl fmt::Debug for GceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GceConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("regions", &self.regions)
            .finish()
    }
}
