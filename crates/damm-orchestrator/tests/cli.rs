//! The `damm` binary, run as a user runs it.

use std::process::Command;

fn damm(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_damm"))
        .args(args)
        .env_remove("DAMM_LOG")
        .output()
        .expect("damm runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn adapters_lists_what_is_compiled_with_capabilities() {
    let (ok, out, err) = damm(&["adapters", "--json"]);
    assert!(ok, "{err}");
    let listing: serde_json::Value = serde_json::from_str(&out).unwrap();
    let adapters = listing["adapters"].as_array().unwrap();
    let names: Vec<_> = adapters
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        damm_registry::known(),
        "every known adapter, in order"
    );
    for entry in adapters {
        let compiled = damm_registry::compiled()
            .iter()
            .find(|d| d.name == entry["name"]);
        assert_eq!(entry["compiled"], compiled.is_some(), "{entry}");
        if let Some(descriptor) = compiled {
            let caps: Vec<String> = descriptor
                .capabilities
                .iter()
                .map(|c| c.to_string())
                .collect();
            assert_eq!(entry["capabilities"], serde_json::json!(caps), "{entry}");
        }
    }

    let (ok, table, _) = damm(&["adapters"]);
    assert!(ok);
    assert!(table.starts_with("ADAPTER"), "{table}");
    #[cfg(feature = "static-host")]
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq(["static-host", "ingress,egress"])),
        "{table}"
    );
}

#[cfg(feature = "static-host")]
#[cfg(all(feature = "sim", feature = "cloudflare", feature = "tailscale"))]
#[test]
fn demo_converges_on_the_simulator_and_survives_a_dark_provider() {
    let (ok, out, err) = damm(&["demo", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dark = report["dark_provider"].as_str().unwrap();
    // Converged: the default policy's fleet, live.
    let fleet = report["fleet"].as_array().unwrap();
    for region in ["eu-central", "us-east"] {
        let live_ingress: Vec<_> = fleet
            .iter()
            .filter(|n| n["region"] == region && n["role"] == "ingress" && n["status"] == "active")
            .collect();
        assert!(live_ingress.len() >= 2, "{region}: {live_ingress:?}");
        let providers: std::collections::BTreeSet<_> = live_ingress
            .iter()
            .map(|n| n["provider"].as_str().unwrap())
            .collect();
        assert!(providers.len() >= 2, "{region}: one provider only");
    }
    // After the outage: every region back at its minimums without the dark provider.
    let after = report["fleet_after"].as_array().unwrap();
    for region in ["eu-central", "us-east"] {
        for (role, min) in [("ingress", 2), ("egress", 1)] {
            let live = after
                .iter()
                .filter(|n| {
                    n["region"] == region
                        && n["role"] == role
                        && n["status"] == "active"
                        && n["provider"] != dark
                        && n["healthy"] == true
                })
                .count();
            assert!(live >= min, "{region} {role}: {live} live, want {min}");
        }
    }
    let last = report["timeline"].as_array().unwrap().last().unwrap();
    assert_eq!(last["capacity_percent"], 100.0);
    assert!(last["dark"].as_array().unwrap().iter().any(|d| d == dark));

    // Then the CDN goes dark: the fronted paths leave the catalog, the bare ones stay.
    assert_eq!(report["cdn_provider"], "cloudflare");
    assert_eq!(report["fronted_region"], "eu-central");
    let ids = |rows: &serde_json::Value, transport: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["transport"] == transport)
            .map(|p| p["path_id"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = &report["catalog_before_cdn_outage"];
    let (t0, t3) = (ids(before, "T0"), ids(before, "T3"));
    assert!(!t0.is_empty() && !t3.is_empty(), "{before}");
    for path in before.as_array().unwrap() {
        if path["transport"] == "T3" {
            assert!(
                path["path_id"].as_str().unwrap().starts_with("t3:"),
                "{path}"
            );
            assert!(
                path["endpoint"].as_str().unwrap().ends_with(":443"),
                "{path}"
            );
            assert_eq!(
                path["providers"][0], "cloudflare",
                "the front comes first: {path}"
            );
        }
    }
    // A gateway of the fronted region is offered three ways: T0 and T1 on its bare path, T3
    // through its front.
    let mut ways: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for path in before.as_array().unwrap() {
        let gateway = path["gateway"].as_str().unwrap();
        for kind in path["offers"].as_array().unwrap() {
            ways.entry(gateway)
                .or_default()
                .insert(kind.as_str().unwrap());
        }
    }
    assert!(
        ways.values()
            .any(|kinds| kinds.iter().copied().eq(["T0", "T1", "T3"])),
        "{ways:?}"
    );
    let after = &report["catalog_after_cdn_outage"];
    assert!(ids(after, "T3").is_empty(), "{after}");
    assert_eq!(ids(after, "T0"), t0, "the same bare WireGuard paths stay");
    assert!(
        last["dark"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "cloudflare")
    );
    assert!(last["catalog_transports"].get("T3").is_none(), "{last}");
    assert!(
        last["catalog_transports"]["T0"].as_u64().unwrap() > 0,
        "{last}"
    );
    let timeline = report["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["catalog_transports"]["T3"].as_u64() > Some(0)),
        "fronted paths were published before the outage"
    );
    // No simulated gateway redeems its overlay key: memberships exist, none joined.
    assert!(last["overlay_memberships"].as_u64().unwrap() > 0, "{last}");
    assert!(report["cdn_dark_after"].as_u64().unwrap() >= 1);
}

/// A fleet on the simulator with the demo's fronts, its state, policy and published catalog
/// written to `dir`.
#[cfg(all(feature = "sim", feature = "cloudflare", feature = "tailscale"))]
async fn fronted_fleet(dir: &std::path::Path) {
    use damm_fleet::Mode;
    use damm_orchestrator::engine::{Engine, ManualClock, Options};

    let policy = damm_orchestrator::demo::policy().unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        damm_orchestrator::demo::policy_text().unwrap(),
    )
    .unwrap();
    let sim = damm_sim::testing::booting_in(std::time::Duration::from_millis(100)).await;
    let providers = damm_orchestrator::sim::providers(&sim, &policy)
        .await
        .unwrap();
    let store = damm_orchestrator::FileStore::open(&dir.join("state.json")).unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let mut engine = Engine::new(
        policy,
        providers,
        Box::new(store),
        clock.clock(),
        Options::default(),
    )
    .unwrap();
    engine.set_publisher(
        std::sync::Arc::new(damm_orchestrator::publish::Keys::generate()),
        damm_orchestrator::publish::Sink {
            path: dir.join("catalog.json"),
        },
    );
    for _ in 0..10 {
        let report = engine.tick(Mode::Apply, true).await.unwrap();
        let fronted = report
            .catalog
            .as_ref()
            .and_then(|c| c.regions.get("eu-central"))
            .is_some_and(|r| {
                r.paths
                    .iter()
                    .filter(|p| p.transports.contains(&damm_catalog::Transport::CdnFronted))
                    .count()
                    >= 2
            });
        if fronted && report.plan.actions.is_empty() {
            sim.shutdown().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        clock.advance(std::time::Duration::from_secs(60));
    }
    panic!("no fronted paths for eu-central after 10 ticks");
}

#[cfg(all(feature = "sim", feature = "cloudflare", feature = "tailscale"))]
#[tokio::test(flavor = "multi_thread")]
async fn whatif_takes_cdn_and_overlay_providers_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    fronted_fleet(dir.path()).await;
    let file = |name: &str| dir.path().join(name).display().to_string();
    let whatif = |provider: &str, catalog: &str| {
        damm(&[
            "whatif",
            "--provider-down",
            provider,
            "--state",
            &file("state.json"),
            "--policy",
            &file("policy.toml"),
            "--catalog",
            &file(catalog),
            "--json",
        ])
    };
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("catalog.json")).unwrap()).unwrap();
    let paths = catalog["regions"]["eu-central"]["paths"]
        .as_array()
        .unwrap();
    let bare = paths.iter().filter(|p| p["transports"][0] == "T0").count();
    assert!(bare > 0 && bare < paths.len(), "T0 and T3 paths: {paths:?}");

    // From the published catalog, and composed from state when there is none.
    for catalog in ["catalog.json", "no-catalog.json"] {
        let (ok, out, err) = whatif("cloudflare", catalog);
        assert!(ok, "{err}");
        let w: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(w["inPolicy"], true, "{w}");
        let eu = &w["regions"]["eu-central"];
        assert_eq!(eu["paths"], paths.len(), "{catalog}: {eu}");
        assert_eq!(
            eu["alternatePaths"], bare,
            "{catalog}: only T0 is left: {eu}"
        );
        assert_eq!(eu["lostIngress"], 0, "{eu}");
        assert_eq!(
            w["regions"]["us-east"]["alternatePaths"], w["regions"]["us-east"]["paths"],
            "us-east is not fronted"
        );
        assert_eq!(
            w["capacityAfterLossPercent"], w["capacityNowPercent"],
            "{w}"
        );
        assert_eq!(w["users"]["percent"], 100.0, "{w}");
    }

    // Overlay paths are only in the overlay's own catalogs: the public one loses nothing.
    let (ok, out, err) = whatif("tailscale", "catalog.json");
    assert!(ok, "{err}");
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["inPolicy"], true, "{w}");
    assert_eq!(w["regions"]["eu-central"]["alternatePaths"], paths.len());

    // The human answer names the CDN; a misspelt provider is refused, naming the known ones.
    let (ok, out, err) = damm(&[
        "whatif",
        "--provider-down",
        "cloudflare",
        "--state",
        &file("state.json"),
        "--policy",
        &file("policy.toml"),
        "--catalog",
        &file("catalog.json"),
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("what if cloudflare went dark"), "{out}");
    assert!(!out.contains("not in the policy"), "{out}");
    let (ok, out, err) = whatif("cloudfare", "catalog.json");
    assert!(!ok, "{out}");
    assert!(err.contains("unknown provider `cloudfare`"), "{err}");
    assert!(
        err.contains("cloudflare, digitalocean, hetzner, tailscale, vultr"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let (ok, _, err) = damm(&["adapters", "--yaml"]);
    assert!(!ok);
    assert!(err.contains("--yaml"), "{err}");
    let (ok, _, err) = damm(&["teleport"]);
    assert!(!ok);
    assert!(err.contains("teleport"), "{err}");
}
