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
#[test]
fn demo_probes_a_loopback_fleet_and_finds_the_offline_host() {
    let (ok, out, err) = damm(&["demo", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 4);
    let status = |id: &str| {
        hosts
            .iter()
            .find(|h| h["host"] == id)
            .map(|h| h["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("pi-berlin"), "healthy");
    assert_eq!(status("vps-frankfurt"), "healthy");
    assert_eq!(status("nuc-newyork"), "healthy");
    assert_eq!(status("pi-offline"), "down");
    assert_eq!(report["healthy"], 3);
    let doors = hosts.iter().filter(|h| h["frontdoor"] == true).count();
    assert_eq!(doors, 2, "one front door per region");
}

#[cfg(all(
    feature = "sim",
    feature = "hetzner",
    feature = "digitalocean",
    feature = "vultr"
))]
#[test]
fn demo_runs_a_cloud_fleet_on_the_simulator_and_survives_a_dark_provider() {
    let (ok, out, err) = damm(&["demo", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cloud = &report["cloud"];
    let before = cloud["before"].as_array().unwrap();
    assert_eq!(before.len(), 3, "one node per compute provider: {cloud}");
    assert!(before.iter().all(|r| r["status"] == "healthy"), "{cloud}");
    let dark = cloud["dark"].as_str().unwrap();
    let after = cloud["after"].as_array().unwrap();
    for row in after {
        let expected = if row["provider"] == dark {
            "down"
        } else {
            "healthy"
        };
        assert_eq!(row["status"], expected, "{row}");
    }
    #[cfg(feature = "cloudflare")]
    assert!(
        before[0]["front"]
            .as_str()
            .unwrap()
            .ends_with(".damm.example"),
        "{cloud}"
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
