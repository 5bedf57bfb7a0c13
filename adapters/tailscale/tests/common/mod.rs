//! Shared test helpers: the simulator and an adapter pointed at it.

#![allow(dead_code)] // each test file uses a different part

use damm_adapter_tailscale::Tailscale;
use damm_provider::config::AdapterConfig;
use damm_provider::{ExposeSecret, FleetId, OverlayMembership};
use damm_sim::{Provider, SimConfig, SimHandle};

/// A simulator on a free port.
pub(crate) async fn sim() -> SimHandle {
    damm_sim::testing::start(SimConfig::default()).await
}

/// The adapter for `fleet`, pointed at `sim` with `token`.
pub(crate) fn adapter_with_token(sim: &SimHandle, fleet: &str, token: &str) -> Tailscale {
    let config = AdapterConfig::new(FleetId::new(fleet).unwrap(), "tailscale").with_env([
        ("DAMM_TAILSCALE_API_URL", sim.url(Provider::Tailscale)),
        ("DAMM_TAILSCALE_TOKEN", token.to_owned()),
        ("DAMM_TAILSCALE_REQUEST_TIMEOUT_MS", "2000".to_owned()),
    ]);
    Tailscale::from_config(&config).unwrap()
}

/// The adapter for `fleet`, pointed at `sim`.
pub(crate) fn adapter(sim: &SimHandle, fleet: &str) -> Tailscale {
    adapter_with_token(sim, fleet, sim.token())
}

/// A gateway redeeming the membership's auth key; the simulator's status and answer.
pub(crate) async fn join(
    sim_addr: std::net::SocketAddr,
    m: &OverlayMembership,
) -> (u16, serde_json::Value) {
    let key = m
        .auth_key
        .as_ref()
        .expect("a pending membership carries its key");
    let resp = reqwest::Client::new()
        .post(format!("http://{sim_addr}/_sim/tailscale/join"))
        .json(&serde_json::json!({ "key": key.expose_secret(), "hostname": m.hostname }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// No response drifted from the document, and the document was used when present.
pub(crate) fn assert_clean(sim: &SimHandle) {
    assert!(sim.drifts().is_empty(), "drifts: {:?}", sim.drifts());
    if damm_sim::shared_specs_dir()
        .join("tailscale.subset.json")
        .exists()
    {
        assert!(sim.schema_checked(Provider::Tailscale));
    }
}
