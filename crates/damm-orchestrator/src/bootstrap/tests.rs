use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::*;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("damm-bootstrap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trusted_key() -> String {
    damm_catalog::SigningKey::generate()
        .public_key()
        .to_minisign()
}

fn bootstrap() -> Bootstrap {
    Bootstrap::new(
        "https://orchestrator.example.net:9477/",
        "https://artifacts.example.net/damm-0.1.0-x86_64",
        SHA,
        &trusted_key(),
    )
    .expect("valid settings")
}

fn user_data(bootstrap: &Bootstrap) -> String {
    let key = IdempotencyKey::new("gw-eu-1").unwrap();
    let secrets = GatewaySecrets {
        key: &key,
        wg_private_key: "YAbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcd=",
        token: "tok-0123456789abcdef",
    };
    bootstrap.user_data(&secrets).expose().to_owned()
}

/// A program from cloud-init's Debian package (and its Python), or `None` after saying why
/// the test is skipped. In CI as root, where `cargo xtask ci` installs `cloud-init`, a missing
/// program fails the test.
fn cloud_init_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let root = std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        assert!(
            std::env::var_os("CI").is_none() || !root,
            "`{name}` is missing: `cargo xtask ci` installs Debian's cloud-init package \
             (xtask/src/tools.rs) before the tests"
        );
        eprintln!("\n!!!!! SKIPPED: `{name}` is not on PATH (Debian package cloud-init).\n");
    }
    found
}

/// Parses YAML with the same parser cloud-init uses (PyYAML's safe loader) into JSON.
fn parse_yaml(python: &PathBuf, yaml: &str) -> serde_json::Value {
    let mut child = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML refused the user-data");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_user_data_passes_cloud_inits_own_schema_check() {
    let Some(cloud_init) = cloud_init_tool("cloud-init") else {
        return;
    };
    let dir = scratch("schema");
    let path = dir.join("user-data");
    std::fs::write(&path, user_data(&bootstrap())).unwrap();
    let out = Command::new(cloud_init)
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .expect("cloud-init runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cloud-init schema refused it:\n{text}"
    );
    assert!(text.contains("Valid cloud-config"), "{text}");
}

#[test]
fn every_file_and_command_reads_back_exactly_as_meant() {
    let Some(python) = cloud_init_tool("python3") else {
        return;
    };
    let bootstrap = bootstrap();
    let doc = parse_yaml(&python, &user_data(&bootstrap));
    let files = doc["write_files"].as_array().unwrap();
    let file = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} is written"))
    };
    assert_eq!(
        file(WG_KEY_PATH)["content"],
        "YAbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcd=\n"
    );
    assert_eq!(file(WG_KEY_PATH)["permissions"], "0600");
    assert_eq!(file(TOKEN_PATH)["content"], "tok-0123456789abcdef\n");
    assert_eq!(file(TOKEN_PATH)["permissions"], "0600");
    assert_eq!(file(TRUSTED_KEY_PATH)["content"], bootstrap.trusted_key);
    assert_eq!(file(AGENT_UNIT_PATH)["content"], Bootstrap::agent_unit());
    let env = file(AGENT_ENV_PATH)["content"].as_str().unwrap().to_owned();
    for line in [
        "DAMM_GATEWAY=gw-eu-1",
        "DAMM_ORCHESTRATOR=https://orchestrator.example.net:9477",
        "DAMM_TRUSTED_KEY=/etc/damm/catalog.pub",
        "DAMM_GATEWAY_TOKEN_FILE=/etc/damm/gateway.token",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in {env}");
    }
    // The install command runs the script with the values as arguments.
    let runcmd = doc["runcmd"].as_array().unwrap();
    let install = runcmd[0].as_array().unwrap();
    assert_eq!(install[..2], ["sh", "-c"]);
    assert_eq!(
        install[3..],
        [
            "https://artifacts.example.net/damm-0.1.0-x86_64",
            SHA,
            GATEWAY_BINARY
        ]
    );
    assert_eq!(
        runcmd.last().unwrap(),
        &serde_json::json!(["systemctl", "enable", "--now", "damm-agent.service"])
    );
}

#[test]
fn the_install_script_refuses_a_download_whose_hash_differs() {
    // The script as cloud-init runs it, on a local file: the right hash installs it, any
    // other leaves nothing behind.
    let dir = scratch("install");
    let artifact = dir.join("artifact");
    std::fs::write(&artifact, b"#!/bin/sh\necho damm\n").unwrap();
    let url = format!("file://{}", artifact.display());
    let sha = Command::new("sha256sum").arg(&artifact).output().unwrap();
    let sha = String::from_utf8(sha.stdout).unwrap();
    let sha = sha.split_whitespace().next().unwrap().to_owned();
    let bootstrap = bootstrap();
    let text = user_data(&bootstrap);
    let script_line = text
        .lines()
        .find(|l| l.starts_with("  - [sh, -c, '"))
        .unwrap();
    let script = script_line
        .strip_prefix("  - [sh, -c, '")
        .and_then(|rest| rest.split("', '").next())
        .unwrap()
        .replace("''", "'");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("\n!!!!! SKIPPED: curl is not installed\n");
        return;
    }
    for (hash, installs) in [(sha.as_str(), true), (SHA, false)] {
        let target = dir.join("damm");
        let status = Command::new("sh")
            .args(["-c", &script, &url, hash])
            .arg(&target)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.success(), installs, "hash {hash}");
        assert_eq!(target.exists(), installs);
        if installs {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
            std::fs::remove_file(&target).unwrap();
        }
    }
}

#[test]
fn the_agent_unit_runs_the_installed_binary() {
    let unit = Bootstrap::agent_unit();
    assert!(
        unit.contains(&format!("ExecStart={GATEWAY_BINARY} agent")),
        "{unit}"
    );
    // `/usr/bin/damm` may only remain as part of `/usr/local/bin/damm`.
    assert!(
        !unit.replace(GATEWAY_BINARY, "").contains(PACKAGED_BINARY),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("EnvironmentFile={AGENT_ENV_PATH}")),
        "{unit}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let key = IdempotencyKey::new("gw-1").unwrap();
    let secrets = GatewaySecrets {
        key: &key,
        wg_private_key: "PRIVATE-KEY-CANARY",
        token: "TOKEN-CANARY",
    };
    let shown = format!("{secrets:?} {:?}", bootstrap().user_data(&secrets));
    assert!(!shown.contains("CANARY"), "{shown}");
}

#[test]
fn bad_settings_name_the_setting() {
    let key = trusted_key();
    for (url, artifact, sha, setting) in [
        ("ftp://o", "https://a/d", SHA, "--public-url"),
        ("https://", "https://a/d", SHA, "--public-url"),
        ("https://o", "https://a/d'; rm -rf /", SHA, "--agent-url"),
        ("https://o", "https://a/d", "abc", "--agent-sha256"),
    ] {
        let err = Bootstrap::new(url, artifact, sha, &key).unwrap_err();
        assert_eq!(err.setting, setting, "{err}");
    }
    let err = Bootstrap::new("https://o", "https://a/d", SHA, "not a key").unwrap_err();
    assert_eq!(err.setting, "trusted key");
}

#[test]
fn literal_blocks_keep_text_byte_for_byte() {
    assert_eq!(literal_block("a\n\nb\n", 6), "|2\n      a\n\n      b");
    assert_eq!(literal_block("  lead", 6), "|2-\n        lead");
    assert_eq!(literal_block("a\n\n", 6), "|2+\n      a\n");
    assert_eq!(quoted("it's"), "'it''s'");
}

#[test]
fn gateway_tokens_are_per_gateway_and_checked_exactly() {
    use damm_provider::ExposeSecret as _;
    let keys = crate::publish::Keys::generate();
    let a = keys.gateway_token("gw-a");
    let a = a.expose_secret();
    assert_eq!(a.len(), 64);
    assert_eq!(
        keys.gateway_token("gw-a").expose_secret(),
        a,
        "derived, stable"
    );
    assert_ne!(keys.gateway_token("gw-b").expose_secret(), a);
    assert_ne!(
        crate::publish::Keys::generate()
            .gateway_token("gw-a")
            .expose_secret(),
        a,
        "another seed, another token"
    );
    assert!(keys.is_gateway_token("gw-a", a));
    assert!(keys.is_gateway_token("gw-a", &format!("{a}\n")));
    assert!(!keys.is_gateway_token("gw-b", a));
    assert!(!keys.is_gateway_token("gw-a", &a[..63]));
    assert!(!keys.is_gateway_token("gw-a", ""));
}
