//! The built-in provider simulator as a set of providers: what `damm demo`, the scenario
//! runs and the tests drive the orchestrator against. Loopback only, no credentials.

use anyhow::Context as _;
use damm_fleet::Policy;
use damm_provider::config::AdapterConfig;
use damm_sim::SimHandle;

use crate::providers::Providers;

/// The adapters the simulator serves, with its API for each.
pub const SIMULATED: &[(&str, damm_sim::Provider)] = &[
    ("cloudflare", damm_sim::Provider::Cloudflare),
    ("digitalocean", damm_sim::Provider::DigitalOcean),
    ("gce", damm_sim::Provider::Gce),
    ("gcore", damm_sim::Provider::Gcore),
    ("hetzner", damm_sim::Provider::Hetzner),
    ("tailscale", damm_sim::Provider::Tailscale),
    ("vultr", damm_sim::Provider::Vultr),
];

/// The simulator API behind an adapter name.
pub fn api(adapter: &str) -> Option<damm_sim::Provider> {
    SIMULATED
        .iter()
        .find(|(name, _)| *name == adapter)
        .map(|(_, p)| *p)
}

/// The zone the simulator's Cloudflare account holds.
pub const SIM_ZONE: &str = "damm.example";

/// The certificate the simulator's Gcore account holds (its fronts' wildcard).
pub const SIM_GCORE_CERTIFICATE: &str = "4101";

/// The project the GCE adapter names on the simulator (any name is served).
pub const SIM_GCE_PROJECT: &str = "damm-sim";

/// Builds every provider of `policy` against `sim`. Each must be an adapter the
/// simulator serves and this build holds.
pub async fn providers(sim: &SimHandle, policy: &Policy) -> anyhow::Result<Providers> {
    let mut out = Providers::new();
    for (name, adapter) in policy.adapters() {
        let api = api(adapter)
            .with_context(|| format!("provider `{name}`: the simulator has no `{adapter}` API"))?;
        let env = damm_provider::config::env_name(adapter);
        // Google's client takes the service root and adds `compute/v1` itself.
        let url = match api {
            damm_sim::Provider::Gce => format!("http://{}/gce", sim.addr()),
            _ => sim.url(api),
        };
        let mut vars = vec![
            (format!("DAMM_{env}_API_URL"), url),
            (format!("DAMM_{env}_TOKEN"), sim.token().to_owned()),
        ];
        match adapter {
            "cloudflare" => vars.push(("DAMM_CLOUDFLARE_ZONE".to_owned(), SIM_ZONE.to_owned())),
            "gce" => vars.push(("DAMM_GCE_PROJECT".to_owned(), SIM_GCE_PROJECT.to_owned())),
            "gcore" => vars.extend([
                ("DAMM_GCORE_ZONE".to_owned(), SIM_ZONE.to_owned()),
                (
                    "DAMM_GCORE_CERTIFICATE_ID".to_owned(),
                    SIM_GCORE_CERTIFICATE.to_owned(),
                ),
            ]),
            _ => {}
        }
        let config = AdapterConfig::new(policy.fleet.id.clone(), name).with_env(vars);
        let built = damm_registry::get_adapter(adapter, &config)
            .await
            .with_context(|| format!("provider `{name}` on the simulator"))?;
        out.insert(name.to_owned(), built);
    }
    Ok(out)
}
