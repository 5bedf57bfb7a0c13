//! Settings: section `[gcore]` of the adapters' settings file (the policy's provider name),
//! or `DAMM_GCORE_<FIELD>` in the environment (`DAMM_GCORE_<FIELD>_FILE` reads the value
//! from a file).
//!
//! ```toml
//! [gcore]
//! token_file = "/run/secrets/gcore-api-token"
//! zone = "example.org"        # fronts are <label>.<subdomain>.<zone>
//! subdomain = "cdn"
//! certificate_id = 4102       # a certificate for *.cdn.example.org, added to Gcore CDN
//! origin_port = 80            # the policy's [transports] t3_port
//! ```

use std::collections::BTreeMap;
use std::fmt;

use damm_provider::SecretString;
use serde::Deserialize;

/// The adapter's name: its config section and its environment prefix.
pub(crate) const ADAPTER: &str = "gcore";

/// Gcore's API (the CDN paths start with `/cdn/`).
pub const DEFAULT_API_URL: &str = "https://api.gcore.com";

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcoreConfig {
    /// Base URL of the API, without `/cdn` (tests point it at the simulator).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Permanent API token (`DAMM_GCORE_TOKEN` or `DAMM_GCORE_TOKEN_FILE`); required. Sent as
    /// `Authorization: APIKey <token>`; never logged.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// The DNS zone the fronts' hostnames live in (`example.org`); required. Its DNS is the
    /// operator's: `*.<subdomain>.<zone>` must be a CNAME to the account's Gcore CDN domain.
    #[serde(default)]
    pub zone: Option<String>,
    /// DAMM's subdomain under the zone: fronts are `<label>.<subdomain>.<zone>`.
    #[serde(default = "default_subdomain")]
    pub subdomain: String,
    /// The id of the SSL certificate (for `*.<subdomain>.<zone>`) added to Gcore CDN that
    /// every front serves HTTPS with; required.
    #[serde(default)]
    pub certificate_id: Option<u64>,
    /// The port of the gateways' T3 listener the CDN connects to over plain HTTP: the
    /// policy's `[transports] t3_port`.
    #[serde(default = "default_origin_port")]
    pub origin_port: u16,
    /// Timeout of one API request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// DAMM region → the name reported for it (Gcore's CDN is global: every region in the
    /// default map answers `global`).
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_subdomain() -> String {
    "damm".to_owned()
}

fn default_origin_port() -> u16 {
    80
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

/// Whether `name` is a DNS label DAMM puts in a hostname: 1 to 63 of `a-z`, `0-9` and `-`,
/// not starting or ending with `-`.
pub(crate) fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `name` (a dotted domain) lowercased without its final dot, when every label is one.
pub(crate) fn domain(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty() && name.split('.').all(is_label)).then_some(name)
}

impl GcoreConfig {
    /// Checks what serde cannot: the required settings are there and well-formed.
    pub fn check(&self) -> Result<(), String> {
        if self.token.is_none() {
            return Err(
                "`token` is required (set DAMM_GCORE_TOKEN or DAMM_GCORE_TOKEN_FILE)".to_owned(),
            );
        }
        match self.zone.as_deref() {
            None => return Err("`zone` is required: the DNS zone of the fronts".to_owned()),
            Some(zone) if domain(zone).is_none_or(|z| !z.contains('.')) => {
                return Err(format!("`zone` {zone:?} is not a domain name"));
            }
            Some(_) => {}
        }
        if domain(&self.subdomain).is_none() {
            return Err(format!(
                "`subdomain` {:?} must be one or more DNS labels",
                self.subdomain
            ));
        }
        if self.certificate_id.is_none() {
            return Err(
                "`certificate_id` is required: the Gcore CDN certificate for *.<subdomain>.<zone>"
                    .to_owned(),
            );
        }
        if self.origin_port == 0 || self.request_timeout_ms == 0 {
            return Err("`origin_port` and `request_timeout_ms` must be positive".to_owned());
        }
        Ok(())
    }
}

impl fmt::Debug for GcoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcoreConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("zone", &self.zone)
            .field("subdomain", &self.subdomain)
            .field("certificate_id", &self.certificate_id)
            .field("origin_port", &self.origin_port)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("regions", &self.regions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::FleetId;
    use damm_provider::config::AdapterConfig;

    fn load(env: &[(&str, &str)]) -> GcoreConfig {
        let cfg = AdapterConfig::new(FleetId::new("f").unwrap(), ADAPTER)
            .with_env(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        cfg.load(ADAPTER).unwrap()
    }

    #[test]
    fn defaults_checks_and_redaction() {
        let settings = load(&[
            ("DAMM_GCORE_TOKEN", "gcore-secret-token"),
            ("DAMM_GCORE_ZONE", "Example.ORG."),
            ("DAMM_GCORE_CERTIFICATE_ID", "4102"),
        ]);
        assert_eq!(settings.api_url, DEFAULT_API_URL);
        assert_eq!(settings.subdomain, "damm");
        assert_eq!(settings.origin_port, 80);
        assert_eq!(settings.certificate_id, Some(4102));
        settings.check().unwrap();
        assert_eq!(
            domain(settings.zone.as_deref().unwrap()).as_deref(),
            Some("example.org")
        );
        let debug = format!("{settings:?}");
        assert!(!debug.contains("gcore-secret-token"), "{debug}");
    }

    #[test]
    fn required_settings_are_named() {
        let missing = |env: &[(&str, &str)], what: &str| {
            let err = load(env).check().unwrap_err();
            assert!(err.contains(what), "{err}");
        };
        missing(&[], "token");
        missing(&[("DAMM_GCORE_TOKEN", "t")], "zone");
        missing(
            &[
                ("DAMM_GCORE_TOKEN", "t"),
                ("DAMM_GCORE_ZONE", "example.org"),
            ],
            "certificate_id",
        );
        missing(
            &[
                ("DAMM_GCORE_TOKEN", "t"),
                ("DAMM_GCORE_ZONE", "not_a_domain"),
                ("DAMM_GCORE_CERTIFICATE_ID", "1"),
            ],
            "zone",
        );
        missing(
            &[
                ("DAMM_GCORE_TOKEN", "t"),
                ("DAMM_GCORE_ZONE", "example.org"),
                ("DAMM_GCORE_CERTIFICATE_ID", "1"),
                ("DAMM_GCORE_SUBDOMAIN", "-bad"),
            ],
            "subdomain",
        );
    }

    #[test]
    fn labels_are_dns_labels() {
        assert!(is_label("w0123456789abcd"));
        assert!(is_label("conf-fr-1"));
        for bad in ["", "-a", "a-", "a_b", "A", "a.b", &"x".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }
}
