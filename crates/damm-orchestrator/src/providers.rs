//! Builds the policy's providers through the registry, with their settings from an
//! optional config file (one `[NAME]` section per provider) and the environment
//! (`DAMM_<ADAPTER>_<FIELD>`, `..._FILE` for secrets).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use damm_fleet::Policy;
use damm_provider::Provider;
use damm_provider::config::AdapterConfig;

/// Providers by policy name.
pub type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// Builds every provider the policy allows: compute, fronts and overlay. `config` is the adapters' settings file.
pub async fn build(policy: &Policy, config: Option<&Path>) -> anyhow::Result<Providers> {
    let text: Option<Arc<str>> = match config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the adapter settings {}", path.display()))?
                .into(),
        ),
        None => None,
    };
    let mut providers = Providers::new();
    for (name, adapter) in policy.adapters() {
        let settings = match (config, &text) {
            (Some(path), Some(text)) => AdapterConfig::from_toml(
                policy.fleet.id.clone(),
                name,
                path,
                Arc::clone(text),
                &[name],
            ),
            _ => AdapterConfig::new(policy.fleet.id.clone(), name),
        };
        let built = damm_registry::get_adapter(adapter, &settings)
            .await
            .with_context(|| format!("provider `{name}` (adapter `{adapter}`)"))?;
        providers.insert(name.to_owned(), built);
    }
    Ok(providers)
}
