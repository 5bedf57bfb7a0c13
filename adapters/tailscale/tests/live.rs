//! Against the real Tailscale API: `DAMM_LIVE_TAILSCALE_TOKEN` (an API access token whose
//! tailnet policy lets it own `tag:damm-*`), optionally `DAMM_LIVE_TAILSCALE_TAILNET`.

use damm_adapter_tailscale::Tailscale;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    FleetId, IdempotencyKey, Labels, MembershipState, OverlaySpec, Provider, Target,
};

#[tokio::test]
#[ignore = "talks to api.tailscale.com: set DAMM_LIVE_TAILSCALE_TOKEN"]
async fn mints_lists_and_revokes_a_key_live() {
    let token = std::env::var("DAMM_LIVE_TAILSCALE_TOKEN").expect("DAMM_LIVE_TAILSCALE_TOKEN");
    let tailnet = std::env::var("DAMM_LIVE_TAILSCALE_TAILNET").unwrap_or_else(|_| "-".into());
    let fleet = FleetId::new("damm-live").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "tailscale").with_env([
        ("DAMM_TAILSCALE_TOKEN", token),
        ("DAMM_TAILSCALE_TAILNET", tailnet),
    ]);
    let ts = Tailscale::from_config(&config).unwrap();
    ts.probe_health(&Target::Api).await.unwrap();
    let key = IdempotencyKey::new("live-probe").unwrap();
    let spec = OverlaySpec {
        key: key.clone(),
        hostname: "damm-live-probe".into(),
        node: None,
        labels: Labels::owned(&fleet, &key),
        ephemeral: true,
    };
    let overlay = ts.overlay().unwrap();
    let m = overlay.join_overlay(&spec).await.unwrap();
    assert_eq!(m.state, MembershipState::Pending);
    let listed = overlay.list_memberships().await.unwrap();
    assert!(listed.iter().any(|l| l.reference == m.reference));
    overlay.leave_overlay(&m.reference).await.unwrap();
}
