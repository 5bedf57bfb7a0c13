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
#[cfg(feature = "sim")]
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
