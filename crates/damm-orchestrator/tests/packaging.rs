//! The systemd units in `packaging/` against the binary they run: every `damm` command line
//! parses (sub-commands, flags and values, through the binary's own clap parser), every
//! variable a unit sets is one that `damm`, an adapter or systemd itself reads, and
//! `systemd-analyze verify` accepts the units where it is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &[&str] = &[
    "damm-agent.service",
    "damm-client.service",
    "damm-orchestrator.service",
];

/// The binary path every unit names (the Debian package's; the gateway bootstrap rewrites it).
const BINARY: &str = "/usr/bin/damm";

/// Environment files the units read, and the example of each in `packaging/`.
const ENV_FILES: &[(&str, &str)] = &[
    ("/etc/damm/agent.env", "agent.env"),
    ("/etc/damm/client.env", "client.env"),
];

/// Variables read by a cloud SDK inside an adapter, not by DAMM's own code: (variable, adapter).
const SDK_VARS: &[(&str, &str)] = &[("GOOGLE_APPLICATION_CREDENTIALS", "gce")];

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging")
}

/// `section → [(key, value)]`, comments and blank lines left out.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line.split_once('=').expect("a Key=Value line");
        let section = current.clone().expect("a key before any section");
        sections
            .entry(section)
            .or_default()
            .push((key.to_owned(), value.to_owned()));
    }
    sections
}

/// `KEY=VALUE` lines of an environment file (or of `Environment=` values).
fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Expands `${X}` (one word) and `$X` (split at whitespace) as systemd does.
fn expand(words: &str, env: &BTreeMap<String, String>, used: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for word in words.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            let value = env
                .get(name)
                .unwrap_or_else(|| panic!("${{{name}}} is not set"));
            used.push(name.to_owned());
            out.push(value.clone());
        } else if let Some(name) = word.strip_prefix('$') {
            let value = env
                .get(name)
                .unwrap_or_else(|| panic!("${name} is not set"));
            used.push(name.to_owned());
            out.extend(value.split_whitespace().map(str::to_owned));
        } else {
            assert!(!word.contains('$'), "unsupported substitution in `{word}`");
            out.push(word.to_owned());
        }
    }
    out
}

/// The `[env: NAME=` variables of a help text.
fn env_in_help(help: &str) -> Vec<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split_once('=').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Whether a compiled adapter accepts the setting `DAMM_<ADAPTER>_<FIELD>[_FILE]` (an unknown
/// field is refused by name); `None` when no adapter owns the prefix or it is not compiled.
fn adapter_reads(var: &str, file: &Path) -> Option<bool> {
    let adapter = damm_registry::known()
        .iter()
        .find(|a| var.starts_with(&format!("DAMM_{}_", damm_provider::config::env_name(a))))?;
    if !damm_registry::compiled().iter().any(|d| d.name == *adapter) {
        eprintln!("note: adapter `{adapter}` is not compiled in: {var} is not checked");
        return Some(true);
    }
    let value = if var.ends_with("_FILE") {
        file.display().to_string()
    } else {
        "x".to_owned()
    };
    let config = damm_provider::config::AdapterConfig::new(
        damm_provider::FleetId::new("packaging").unwrap(),
        *adapter,
    )
    .with_env([(var.to_owned(), value)]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(
        match runtime.block_on(damm_registry::get_adapter(adapter, &config)) {
            Ok(_) => true,
            Err(err) => !err.to_string().contains("unknown field"),
        },
    )
}

#[test]
fn every_unit_runs_flags_and_variables_the_binary_has() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "not-a-real-credential\n").unwrap();
    for name in UNITS {
        let text = std::fs::read_to_string(packaging().join(name)).unwrap();
        let unit = parse_unit(&text);
        let get = |section: &str, key: &str| -> Vec<String> {
            unit.get(section)
                .unwrap_or_else(|| panic!("{name}: no [{section}]"))
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(get("Unit", "Description").len(), 1, "{name}: Description");
        assert!(!get("Install", "WantedBy").is_empty(), "{name}: WantedBy");
        assert_eq!(get("Service", "ExecStart").len(), 1, "{name}: ExecStart");

        let mut env: Vec<(String, String)> = get("Service", "Environment")
            .iter()
            .flat_map(|e| parse_env(e))
            .collect();
        for file in get("Service", "EnvironmentFile") {
            let (_, example) = ENV_FILES
                .iter()
                .find(|(path, _)| *path == file.trim_start_matches('-'))
                .unwrap_or_else(|| panic!("{name}: no example for EnvironmentFile={file}"));
            let text = std::fs::read_to_string(packaging().join(example)).unwrap();
            env.extend(parse_env(&text));
        }
        let env_map: BTreeMap<String, String> = env.iter().cloned().collect();

        let mut substituted = Vec::new();
        let mut binary_env = Vec::new();
        for key in [
            "ExecStartPre",
            "ExecStart",
            "ExecStartPost",
            "ExecStop",
            "ExecReload",
        ] {
            for line in get("Service", key) {
                let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
                let (program, args) = line.split_once(' ').unwrap_or((line, ""));
                if !program.ends_with("damm") {
                    continue;
                }
                assert_eq!(program, BINARY, "{name}: {key} runs the binary as {BINARY}");
                let args = expand(args, &env_map, &mut substituted);
                let out = Command::new(env!("CARGO_BIN_EXE_damm"))
                    .args(&args)
                    .arg("--help")
                    .env_clear()
                    .output()
                    .unwrap();
                let help = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && help.contains("Usage: damm "),
                    "{name}: `damm {}` is not a valid command line: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                binary_env.extend(env_in_help(&help));
            }
        }

        for (var, _) in &env {
            let read = substituted.contains(var)
                || binary_env.contains(var)
                || SDK_VARS
                    .iter()
                    .any(|(v, adapter)| v == var && damm_registry::known().contains(adapter))
                || adapter_reads(var, &secret).unwrap_or(false);
            assert!(read, "{name}: nothing reads {var}");
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("note: systemd-analyze is not installed; units not verified by systemd");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in UNITS {
        let text = std::fs::read_to_string(packaging().join(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace(BINARY, env!("CARGO_BIN_EXE_damm"))).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values, but says so on stderr.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
