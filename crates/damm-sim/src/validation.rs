//! Requests and responses checked against each provider's published OpenAPI document.
//!
//! Hetzner (MIT-licensed derivative) and DigitalOcean (Apache-2.0) are vendored under
//! `specs/`; Gcore's is DAMM's own restatement of its published document's facts
//! (`specs/gcore.json`, see `specs/README.md`). Vultr's document states no licence, so it
//! is not vendored: it is read from `../shared/specs/vultr.subset.json` beside the
//! workspace when that folder is present
//! (`DAMM_SIM_SPECS` may name another folder), and Vultr traffic goes unchecked, with a
//! warning, when it is not.
//!
//! Compute Engine is described by a Google Discovery document (Apache-2.0, vendored as
//! `specs/gce-compute.v1.json`), checked by [`crate::discovery`]; Google's error bodies,
//! which the document does not describe, are checked for their documented shape.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Provider;
use crate::discovery::{Discovery, check_google_error};
use crate::schema::ApiSpec;

/// The parsed documents, by provider; `None` where no document is available. Compute
/// Engine's Discovery document is kept beside the OpenAPI ones.
pub(crate) struct Specs(BTreeMap<Provider, Option<ApiSpec>>, Option<Discovery>);

fn vendored(text: &str) -> ApiSpec {
    ApiSpec::from_json(text).expect("vendored documents parse")
}

/// The folder holding the providers' documents that are not vendored.
pub fn shared_specs_dir() -> std::path::PathBuf {
    std::env::var_os("DAMM_SIM_SPECS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
        })
}

/// A document from the shared folder, when it is there.
fn shared_spec(name: &str) -> Option<ApiSpec> {
    let path = shared_specs_dir().join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => match ApiSpec::from_json(&text) {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; this provider's traffic is not checked",
                    path.display()
                );
                None
            }
        },
        Err(_) => {
            tracing::warn!(
                "{} is absent; this provider's traffic is not checked against its schema",
                path.display()
            );
            None
        }
    }
}

impl Specs {
    pub(crate) fn load() -> Specs {
        let mut specs = BTreeMap::new();
        for provider in Provider::ALL {
            let spec = match provider {
                Provider::Hetzner => Some(vendored(include_str!("../specs/hetzner.json"))),
                Provider::DigitalOcean => {
                    Some(vendored(include_str!("../specs/digitalocean.json")))
                }
                Provider::Vultr => shared_spec("vultr.subset.json"),
                Provider::Cloudflare => Some(vendored(include_str!("../specs/cloudflare.json"))),
                Provider::Tailscale => shared_spec("tailscale.subset.json"),
                Provider::Gce => None,
                Provider::Gcore => Some(vendored(include_str!("../specs/gcore.json"))),
            };
            specs.insert(*provider, spec);
        }
        let gce = Discovery::from_json(include_str!("../specs/gce-compute.v1.json"))
            .expect("the vendored Discovery document parses");
        Specs(specs, Some(gce))
    }

    /// Whether `provider`'s traffic is checked.
    pub(crate) fn covers(&self, provider: Provider) -> bool {
        match provider {
            Provider::Gce => self.1.is_some(),
            _ => self.0.get(&provider).is_some_and(Option::is_some),
        }
    }

    /// `path` as the document writes it: DigitalOcean's paths keep the `/v2` prefix.
    fn spec_path(provider: Provider, path: &str) -> String {
        match provider {
            Provider::DigitalOcean => format!("/v2{path}"),
            Provider::Hetzner
            | Provider::Vultr
            | Provider::Cloudflare
            | Provider::Tailscale
            | Provider::Gce
            | Provider::Gcore => path.to_owned(),
        }
    }

    pub(crate) fn check_request(
        &self,
        provider: Provider,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), String> {
        if let (Provider::Gce, Some(gce)) = (provider, &self.1) {
            return gce.validate_request(method, path, body).map_err(|errors| {
                let id = gce.method_id(method, path).unwrap_or("?");
                format!("request does not match {id}: {}", errors.join("; "))
            });
        }
        let Some(Some(spec)) = self.0.get(&provider) else {
            return Ok(());
        };
        let path = Self::spec_path(provider, path);
        let Some(template) = spec.match_path(method, &path) else {
            return Ok(());
        };
        spec.validate_request(method, template, body)
            .map_err(|errors| {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!(
                    "request does not match {method} {template}: {}",
                    list.join("; ")
                )
            })
    }

    pub(crate) fn check_response(
        &self,
        provider: Provider,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        if let (Provider::Gce, Some(gce)) = (provider, &self.1) {
            if status >= 400 {
                return check_google_error(status, body);
            }
            return gce.validate_response(method, path, body).map_err(|errors| {
                let list: Vec<&str> = errors.iter().take(5).map(String::as_str).collect();
                format!("{} schema errors: {}", errors.len(), list.join("; "))
            });
        }
        let Some(Some(spec)) = self.0.get(&provider) else {
            return Ok(());
        };
        let path = Self::spec_path(provider, path);
        let Some(template) = spec.match_path(method, &path) else {
            return Ok(());
        };
        if provider == Provider::Vultr && status >= 400 {
            return vultr_error_shape(status, body);
        }
        spec.validate_response(method, template, status, body)
            .map_err(|errors| {
                let list: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
                format!("{} schema errors: {}", errors.len(), list.join("; "))
            })
    }
}

/// Vultr's document describes no error bodies (its 4xx answers carry a description only),
/// while the API answers them with `{"error": "...", "status": N}`: check that shape.
fn vultr_error_shape(status: u16, body: &Value) -> Result<(), String> {
    let message = body.get("error").is_some_and(Value::is_string);
    let code = body.get("status").and_then(Value::as_u64) == Some(u64::from(status));
    if message && code {
        Ok(())
    } else {
        Err(format!(
            "a Vultr error body is {{\"error\": string, \"status\": {status}}}, found {body}"
        ))
    }
}
