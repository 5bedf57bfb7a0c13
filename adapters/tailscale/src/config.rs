//! Settings: section `[providers.tailscale]`, or `DAMM_TAILSCALE_<FIELD>` in the
//! environment (`DAMM_TAILSCALE_<FIELD>_FILE` reads the value from a file).
//!
//! ```toml
//! [providers.tailscale]
//! token_file = "/run/secrets/tailscale-token"
//! tailnet = "-"                 # the token's own tailnet
//! tag_prefix = "tag:damm"       # ownership tags: tag:damm-fleet-<fleet>, tag:damm-key-<key>
//! key_expiry_seconds = 3600
//! ```

use std::fmt;

use damm_provider::SecretString;
use serde::Deserialize;

/// The adapter's name: its config section and its environment prefix.
pub(crate) const ADAPTER: &str = "tailscale";

/// Tailscale's public API.
pub const DEFAULT_API_URL: &str = "https://api.tailscale.com/api/v2";

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailscaleConfig {
    /// Base URL of the API, up to and including `/api/v2` (tests point it at the simulator).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// API access token (`DAMM_TAILSCALE_TOKEN` or `DAMM_TAILSCALE_TOKEN_FILE`); required.
    /// Sent as a bearer token; never logged.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// The tailnet; `-` means the token's own tailnet.
    #[serde(default = "default_tailnet")]
    pub tailnet: String,
    /// Prefix of the ownership tags (`<prefix>-fleet-<fleet>`, `<prefix>-key-<key>`).
    #[serde(default = "default_tag_prefix")]
    pub tag_prefix: String,
    /// Lifetime of the auth keys `join_overlay` mints, in seconds.
    #[serde(default = "default_key_expiry_seconds")]
    pub key_expiry_seconds: u64,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_tailnet() -> String {
    "-".to_owned()
}

fn default_tag_prefix() -> String {
    "tag:damm".to_owned()
}

fn default_key_expiry_seconds() -> u64 {
    3600
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

impl TailscaleConfig {
    /// Checks the settings that serde cannot: the token is present, the tag prefix is a
    /// valid tag, the numbers are positive.
    pub fn check(&self) -> Result<(), String> {
        if self.token.is_none() {
            return Err(
                "`token` is required (set DAMM_TAILSCALE_TOKEN or DAMM_TAILSCALE_TOKEN_FILE)"
                    .to_owned(),
            );
        }
        let name = self.tag_prefix.strip_prefix("tag:").unwrap_or_default();
        if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "`tag_prefix` {:?} must be `tag:` followed by lowercase letters, digits and dashes",
                self.tag_prefix
            ));
        }
        if self.tailnet.is_empty() || self.tailnet.contains('/') {
            return Err("`tailnet` must be a tailnet name or `-`".to_owned());
        }
        if self.key_expiry_seconds == 0 || self.request_timeout_ms == 0 {
            return Err(
                "`key_expiry_seconds` and `request_timeout_ms` must be positive".to_owned(),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for TailscaleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TailscaleConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("tailnet", &self.tailnet)
            .field("tag_prefix", &self.tag_prefix)
            .field("key_expiry_seconds", &self.key_expiry_seconds)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::FleetId;
    use damm_provider::config::AdapterConfig;

    #[test]
    fn defaults_and_redaction() {
        let cfg = AdapterConfig::new(FleetId::new("f").unwrap(), ADAPTER)
            .with_env([("DAMM_TAILSCALE_TOKEN", "tskey-api-secret")]);
        let settings: TailscaleConfig = cfg.load(ADAPTER).unwrap();
        assert_eq!(settings.api_url, DEFAULT_API_URL);
        assert_eq!(settings.tailnet, "-");
        assert_eq!(settings.tag_prefix, "tag:damm");
        assert_eq!(settings.key_expiry_seconds, 3600);
        settings.check().unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("tskey-api-secret"), "{debug}");
    }

    #[test]
    fn token_is_required_and_prefix_checked() {
        let cfg = AdapterConfig::new(FleetId::new("f").unwrap(), ADAPTER).without_env();
        let settings: TailscaleConfig = cfg.load(ADAPTER).unwrap();
        assert!(settings.check().unwrap_err().contains("token"));
        let cfg = AdapterConfig::new(FleetId::new("f").unwrap(), ADAPTER).with_env([
            ("DAMM_TAILSCALE_TOKEN", "t"),
            ("DAMM_TAILSCALE_TAG_PREFIX", "damm"),
        ]);
        let settings: TailscaleConfig = cfg.load(ADAPTER).unwrap();
        assert!(settings.check().unwrap_err().contains("tag_prefix"));
    }
}
